// SharedString: an immutable string whose copies share its bytes. The
// coordinator keeps a call's result (a dequeued item, a future's value) for as
// long as a restart may need it, and sends it to the worker meanwhile: with a
// SharedString both hold the same bytes, where a std::string answer copied a
// 1 MiB item once more per dequeue.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace kappa::detail {

class SharedString {
 public:
  SharedString() = default;
  // Implicit, both ways: a SharedString stands where a string did.
  /// Takes `s`'s bytes (no copy).
  SharedString(std::string s)
      : p_(s.empty() ? nullptr : std::make_shared<std::string>(std::move(s))) {}
  SharedString(const char* s) : SharedString(std::string(s)) {}

  const std::string& str() const { return p_ ? *p_ : empty_string(); }
  operator std::string_view() const { return str(); }
  bool empty() const { return !p_; }
  size_t size() const { return p_ ? p_->size() : 0; }

  /// The bytes as a std::string of the caller's: moved out if no other copy
  /// shares them, else copied. This one is empty afterwards.
  std::string take() {
    std::shared_ptr<std::string> p = std::move(p_);
    if (!p) return {};
    return p.use_count() == 1 ? std::move(*p) : *p;
  }

  friend bool operator==(const SharedString& a, const SharedString& b) {
    return a.str() == b.str();
  }
  friend bool operator==(const SharedString& a, std::string_view b) { return a.str() == b; }

  // cereal: the same bytes as a std::string's.
  template <class A>
  void save(A& a) const {
    a(str());
  }
  template <class A>
  void load(A& a) {
    std::string s;
    a(s);
    *this = SharedString(std::move(s));
  }

 private:
  static const std::string& empty_string() {
    static const std::string empty;
    return empty;
  }
  // Never empty when set (an empty string is no pointer), never written
  // through once shared: take() moves from it only when nothing shares it.
  std::shared_ptr<std::string> p_;
};

}  // namespace kappa::detail
