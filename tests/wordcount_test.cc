// The main example end to end: word count over generated input, normally and
// with workers killed at random, against a count made here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/subprocess.h"

namespace kappa::testing {
namespace {

std::map<std::string, uint64_t> count_words(const std::string& dir, uint64_t* total) {
  std::map<std::string, uint64_t> counts;
  *total = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() != ".txt") continue;
    std::istringstream in(read_file(f.path()));
    std::string w;
    while (in >> w) {
      ++counts[w];
      ++*total;
    }
  }
  return counts;
}

class WordCount : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(WordCount, MatchesACountMadeHere) {
  TempDir dir;
  nlohmann::json event = {{"input", dir / "input"}, {"files", 3},    {"mb_per_file", 1},
                          {"chunks_per_file", 3},   {"reducers", 2}, {"top", 5}};
  std::vector<std::string> argv = {WORDCOUNT_APP, "run", "--event", event.dump()};
  argv.insert(argv.end(), GetParam().begin(), GetParam().end());
  ProcessResult r = run_process(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = nlohmann::json::parse(r.out);
  uint64_t total = 0;
  auto counts = count_words(dir / "input", &total);
  EXPECT_EQ(out.value("words", uint64_t{0}), total);
  EXPECT_EQ(out.value("distinct", size_t{0}), counts.size());
  ASSERT_EQ(out["top"].size(), 5u);
  for (const auto& entry : out["top"])
    EXPECT_EQ(entry[1].get<uint64_t>(), counts[entry[0].get<std::string>()]) << entry;
}

// Words are separated by any whitespace (tabs, CR LF), as `>>` separates
// them: an input of one's own, as part-0.txt in the input folder (a file of
// at least mb_per_file MiB is not generated again).
TEST(WordCountInput, IsSplitAtAnyWhitespace) {
  TempDir dir;
  std::filesystem::create_directories(dir / "input");
  write_file(dir / "input/part-0.txt", "to\tbe or\r\nnot  to\vbe\fto\n\n");
  nlohmann::json event = {{"input", dir / "input"}, {"files", 1},    {"mb_per_file", 0},
                          {"chunks_per_file", 7},   {"reducers", 2}, {"top", 3}};
  ProcessResult r = run_process(
      {WORDCOUNT_APP, "run", "--event", event.dump(), "--data", "file://" + dir / "data"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["words"], 7);
  EXPECT_EQ(out["distinct"], 4);
  EXPECT_EQ(out["top"], nlohmann::json::parse(R"([["to", 3], ["be", 2], ["not", 1]])"));
}

INSTANTIATE_TEST_SUITE_P(
    Modes, WordCount,
    ::testing::Values(std::vector<std::string>{}, std::vector<std::string>{"--chaos-kill", "0.3"},
                      std::vector<std::string>{"--workers", "1", "--time-limit", "1"}));

}  // namespace
}  // namespace kappa::testing
