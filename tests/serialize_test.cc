#include "kappa/serialize.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace {

struct Point {
  int x = 0, y = 0;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, y, label);
  }
  bool operator==(const Point&) const = default;
};

TEST(Serialize, RoundTripsStandardAndUserTypes) {
  std::map<std::string, std::vector<Point>> m{{"a", {{1, 2, "p"}, {3, 4, "q"}}}, {"b", {}}};
  EXPECT_EQ(kappa::decode<decltype(m)>(kappa::encode(m)), m);
  std::variant<int, std::string> v = std::string("text");
  EXPECT_EQ(kappa::decode<decltype(v)>(kappa::encode(v)), v);
  std::optional<std::tuple<int, double, std::string>> o = std::make_tuple(1, 2.5, "x");
  EXPECT_EQ(kappa::decode<decltype(o)>(kappa::encode(o)), o);
  nlohmann::json j = {{"k", {1, 2, 3}}, {"s", "str"}, {"f", 1.5}};
  EXPECT_EQ(kappa::decode<nlohmann::json>(kappa::encode(j)), j);
}

TEST(Serialize, TruncatedInputIsAClearError) {
  std::string bytes = kappa::encode(std::vector<int64_t>{1, 2, 3, 4});
  bytes.resize(bytes.size() - 3);
  try {
    kappa::decode<std::vector<int64_t>>(bytes);
    FAIL() << "expected kappa::Error";
  } catch (const kappa::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot decode"), std::string::npos);
  }
}

// Strings take a shortcut (one copy) that must read what cereal writes, and
// leave malformed input to cereal's checks.
TEST(Serialize, StringsRoundTripAndTruncatedOnesAreErrors) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{100000}}) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = char(i * 31);
    EXPECT_EQ(kappa::decode<std::string>(kappa::encode(s)), s) << n;
  }
  std::string bytes = kappa::encode(std::string("hello"));
  EXPECT_THROW(kappa::decode<std::string>(bytes.substr(0, bytes.size() - 1)), kappa::Error);
  EXPECT_THROW(kappa::decode<std::string>(bytes.substr(0, 3)), kappa::Error);
}

}  // namespace
