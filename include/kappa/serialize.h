// Serialization of values that cross tasks: spawn arguments, results and queue
// items (DESIGN.md section 2). One format: cereal's binary archive (host byte order; every process
// of a job runs the same binary).
//
// Supported out of the box: arithmetic types, enums, std::string, the standard
// containers, std::optional/variant/pair/tuple/array, std::chrono durations,
// nlohmann::json, and any user type with a `serialize(Archive&)` member or a
// free `serialize(Archive&, T&)` found by ADL (see cereal's documentation).
#pragma once

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
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <typeinfo>

#include "kappa/error.h"

namespace nlohmann {
// nlohmann::json travels as its CBOR encoding.
template <class Archive>
void save(Archive& ar, const json& j) {
  ar(json::to_cbor(j));
}
template <class Archive>
void load(Archive& ar, json& j) {
  std::vector<std::uint8_t> bytes;
  ar(bytes);
  j = json::from_cbor(bytes);
}
}  // namespace nlohmann

namespace kappa {

/// Serializes `value` to bytes.
template <class T>
std::string encode(const T& value) {
  std::ostringstream out(std::ios::binary);
  {
    cereal::BinaryOutputArchive archive(out);
    archive(value);
  }
  return std::move(out).str();
}

/// Deserializes bytes produced by encode<T>. Throws kappa::Error naming the
/// type when the bytes are truncated or malformed.
template <class T>
T decode(std::string_view bytes) {
  std::istringstream in(std::string(bytes), std::ios::binary);
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
