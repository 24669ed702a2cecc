// Serialization of values that cross tasks: spawn arguments, results and queue
// items (DESIGN.md section 2). One format: cereal's binary archive (host byte order; every process
// of a job runs the same binary).
//
// Supported out of the box: arithmetic types, enums, std::string, the standard
// containers, std::optional/variant/pair/tuple/array, std::chrono durations,
// nlohmann::json, and any user type with a `serialize(Archive&)` member or a
// free `serialize(Archive&, T&)` found by ADL (see cereal's documentation).
// Raw pointers and references do not serialize: state travels as values.
//
// encode and decode are pure functions of their arguments: thread-safe on
// distinct objects. Inside a task they allocate in the task's arena.
#pragma once

#include <algorithm>
#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <cstdint>
#include <cstring>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

#include "kappa/error.h"

namespace nlohmann {
/// cereal's hook for nlohmann::json: a json value travels as its CBOR
/// encoding. Throws what cereal's archive throws.
template <class Archive>
void save(Archive& ar, const json& j) {
  ar(json::to_cbor(j));
}
/// Reads what save wrote. Throws nlohmann::json::parse_error for bytes that
/// are not CBOR (kappa::decode turns it into kappa::Error).
template <class Archive>
void load(Archive& ar, json& j) {
  std::vector<std::uint8_t> bytes;
  ar(bytes);
  j = json::from_cbor(bytes);
}
}  // namespace nlohmann

namespace kappa {

namespace detail {
/// An output stream buffer appending to a string: a large value is copied
/// once (an ostringstream regrows and copies it ~log2(size) times). Leaves
/// kSlack bytes of spare capacity, so a short trailer appended afterwards
/// does not copy the value again.
class StringSink : public std::streambuf {
 public:
  static constexpr size_t kSlack = 64;
  explicit StringSink(std::string& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    size_t need = out_.size() + size_t(n) + kSlack;
    if (out_.capacity() < need) out_.reserve(std::max(need, 2 * out_.capacity()));
    out_.append(s, size_t(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }

 private:
  std::string& out_;
};

/// Appends the serialized `value` to `out`.
template <class T>
void encode_append(std::string& out, const T& value) {
  StringSink sink(out);
  std::ostream os(&sink);
  cereal::BinaryOutputArchive archive(os);
  archive(value);
}
}  // namespace detail

/// Serializes `value` to bytes with cereal's binary archive (host byte
/// order: read back only by the same binary's decode<T>). Throws only what
/// T's serialize functions throw, and std::bad_alloc.
template <class T>
std::string encode(const T& value) {
  std::string out;
  detail::encode_append(out, value);
  return out;
}

namespace detail {
/// An input stream buffer over bytes owned elsewhere (no copy, read only).
class ViewStreamBuf : public std::streambuf {
 public:
  explicit ViewStreamBuf(std::string_view bytes) {
    char* p = const_cast<char*>(bytes.data());  // never written through
    setg(p, p, p + bytes.size());
  }
};
}  // namespace detail

/// Deserializes bytes produced by encode<T>; T must be default-constructible.
/// Throws kappa::Error naming the (mangled) type and the size when the bytes
/// are truncated or malformed: any std::exception from cereal or from T's
/// serialize functions becomes one. Bytes left over after the value are
/// ignored, so decoding as another type than was encoded may succeed.
template <class T>
T decode(std::string_view bytes) {
  if constexpr (std::is_same_v<T, std::string>) {
    // cereal's layout, a uint64 length and the bytes, read with one copy
    // (cereal resizes the string, zeroing it, then copies into it).
    uint64_t n;
    if (bytes.size() >= sizeof n) {
      std::memcpy(&n, bytes.data(), sizeof n);
      if (n == bytes.size() - sizeof n) return std::string(bytes.substr(sizeof n));
    }  // else cereal says what is wrong
  }
  detail::ViewStreamBuf buf(bytes);
  std::istream in(&buf);
  T value{};
  try {
    cereal::BinaryInputArchive archive(in);
    archive(value);
  } catch (const std::exception& e) {
    throw Error(std::string("cannot decode a value of type ") + typeid(T).name() + " from " +
                std::to_string(bytes.size()) + " bytes: " + e.what());
  }
  return value;
}

}  // namespace kappa
