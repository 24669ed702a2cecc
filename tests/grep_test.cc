// Parallel grep (examples/grep) end to end on small generated files cut into
// many tiny chunks: a match across every chunk boundary, a line longer than
// several chunks, a file without a final newline, an empty file, a folder.
// Its output is checked against a naive scan made here (whole files split at
// '\n', std::string::find or std::regex per line), normally and with workers
// killed at random; the hand-written baseline must give the same answer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace kappa::testing {
namespace {

constexpr uint64_t kChunk = 37;  // bytes: about a hundred chunks in all

// Deterministic lines of words, some of them the needles the patterns look
// for, some lines empty.
std::string generated_text(uint64_t seed, size_t bytes) {
  static const char* words[] = {"needle", "needles", "need", "le",  "hay", "stack",
                                "NEEDLE", "Needle",  "le.x", "lex", "7",   "42"};
  std::string text;
  uint64_t s = seed;
  auto next = [&] { return (s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  while (text.size() < bytes) {
    for (uint64_t w = next() % 7; w > 0; --w) {
      text += words[next() % (sizeof words / sizeof *words)];
      if (w > 1) text += ' ';
    }
    text += '\n';
  }
  return text;
}

// Puts "needle" across each boundary split_ranges makes for kChunk, as the
// app cuts the file (equal parts of at most kChunk bytes).
std::string with_needles_across_boundaries(std::string text) {
  uint64_t size = text.size(), parts = (size + kChunk - 1) / kChunk;
  for (uint64_t i = 1; i < parts; ++i) text.replace(size * i / parts - 3, 6, "needle");
  return text;
}

struct Input {
  std::vector<std::string> paths;  // the event's
  std::vector<std::string> files;  // every file they name, in the order grep lists them
};

Input make_input(const TempDir& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir / "in/b");
  write_file(dir / "in/a.txt", with_needles_across_boundaries(generated_text(1, 2000)));
  write_file(dir / "in/b/empty.txt", "");
  // Lines longer than several chunks, a match at their start, middle, end.
  write_file(dir / "in/b/long.txt", "needle" + std::string(200, 'x') + "\nhay\n" +
                                        std::string(150, 'y') + "needle" + std::string(150, 'y') +
                                        "\n" + std::string(300, 'z') + "le.x needle\n");
  // No final newline; the last line matches and crosses a boundary.
  write_file(dir / "in/c.txt", generated_text(2, 500) + "hay stack needle 42");
  write_file(dir / "extra.txt", with_needles_across_boundaries(generated_text(3, 1000)));
  return {{dir / "in", dir / "extra.txt"},
          {dir / "in/a.txt", dir / "in/b/empty.txt", dir / "in/b/long.txt", dir / "in/c.txt",
           dir / "extra.txt"}};
}

struct Case {
  std::string name;
  std::string pattern;
  bool fixed = false;
  bool ignore_case = false;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// grep -n's output for the files, line by line.
std::string naive_grep(const std::vector<std::string>& files, const Case& c) {
  auto flags =
      std::regex::ECMAScript | (c.ignore_case ? std::regex::icase : std::regex::ECMAScript);
  std::regex re(c.fixed ? "" : c.pattern, flags);
  std::regex literal_ci(c.fixed && c.ignore_case ? c.pattern : "", flags);
  std::string out;
  for (const std::string& f : files) {
    std::string text = read_file(f);
    uint64_t number = 0;
    for (size_t pos = 0; pos < text.size();) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      std::string line = text.substr(pos, nl - pos);
      ++number;
      bool match = false;
      if (c.fixed && !c.ignore_case) {
        match = line.find(c.pattern) != std::string::npos;
      } else if (c.fixed) {  // the literal's letters in either case: no metacharacter in it
        match = std::regex_search(line, literal_ci);
      } else {
        match = std::regex_search(line, re);
      }
      if (match) out += f + ":" + std::to_string(number) + ":" + line + "\n";
      pos = nl + 1;
    }
  }
  return out;
}

nlohmann::json event_for(const Input& in, const Case& c, size_t max_lines) {
  return {{"paths", in.paths},     {"pattern", c.pattern},
          {"fixed", c.fixed},      {"ignore_case", c.ignore_case},
          {"chunk_bytes", kChunk}, {"max_lines", max_lines}};
}

size_t count_lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

// The first `n` lines of `text`, without their '\n'.
nlohmann::json first_lines(const std::string& text, size_t n) {
  nlohmann::json lines = nlohmann::json::array();
  for (size_t pos = 0; pos < text.size() && lines.size() < n;) {
    size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

// Runs the app; checks its summary and its full output against the naive
// scan; returns its summary.
nlohmann::json run_and_check(const TempDir& dir, const Input& in, const Case& c,
                             const std::string& data, const std::vector<std::string>& options,
                             std::string* err = nullptr) {
  const size_t max_lines = 5;
  std::vector<std::string> argv = {
      GREP_APP, "run", "--event", event_for(in, c, max_lines).dump(), "--data", "file://" + data};
  argv.insert(argv.end(), options.begin(), options.end());
  ProcessResult r = run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  if (err) *err = r.err;
  auto out = nlohmann::json::parse(r.out);
  std::string expected = naive_grep(in.files, c);
  EXPECT_GT(count_lines(expected), max_lines) << c.name << ": too few matches to test";
  EXPECT_EQ(out["matching_lines"], count_lines(expected));
  EXPECT_EQ(out["lines"], first_lines(expected, max_lines));
  EXPECT_EQ(out["output"], "grep/matches.txt");
  EXPECT_EQ(out["files"], in.files.size());
  EXPECT_GT(out["chunks"].get<int>(), 80);
  EXPECT_EQ(read_file(data + "/grep/matches.txt"), expected) << c.name;
  (void)dir;
  return out;
}

class GrepPatterns : public ::testing::TestWithParam<Case> {};

TEST_P(GrepPatterns, MatchesANaiveScanAcrossChunkBoundaries) {
  TempDir dir;
  Input in = make_input(dir);
  run_and_check(dir, in, GetParam(), dir / "data", {});
}

// The baseline, in one process and in two, gives the app's answer.
TEST_P(GrepPatterns, BaselineGivesTheSameAnswer) {
  TempDir dir;
  Input in = make_input(dir);
  nlohmann::json app = run_and_check(dir, in, GetParam(), dir / "data", {});
  ASSERT_FALSE(app.is_null());
  for (const char* procs : {"1", "2"}) {
    ProcessResult r = run_process(
        {GREP_BASELINE, "--procs", procs, "--event", event_for(in, GetParam(), 5).dump()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto base = nlohmann::json::parse(r.out);
    for (const char* key : {"matching_lines", "lines", "crc32", "files"})
      EXPECT_EQ(base[key], app[key]) << key << " with --procs " << procs;
  }
}

INSTANTIATE_TEST_SUITE_P(Grep, GrepPatterns,
                         ::testing::Values(Case{"Fixed", "needle", true},
                                           Case{"FixedWithADot", "le.x", true},
                                           Case{"FixedIgnoringCase", "needle", true, true},
                                           Case{"Regex", "ne+dles? [0-9]+"},
                                           Case{"Anchored", "^(hay|need|le)\\b.*(needle|42|7)$"},
                                           Case{"WordBoundary", "\\bneed\\b"},
                                           Case{"RegexIgnoringCase", "^needle", false, true},
                                           Case{"EmptyMatches", "x*"}),
                         [](const auto& info) { return info.param.name; });

// Workers killed at random: a killed chunk's task runs again from its last
// checkpoint, its queue calls applied once; the answer does not change. Runs
// until a run has seen a worker killed (most runs do).
TEST(GrepChaos, SameAnswerWithWorkersKilled) {
  TempDir dir;
  Input in = make_input(dir);
  Case c{"Fixed", "needle", true};
  bool killed = false;
  for (int seed = 1; seed <= 12 && !killed && !HasFailure(); ++seed) {
    std::string err;
    run_and_check(dir, in, c, dir / ("data-" + std::to_string(seed)),
                  {"--chaos-kill", "0.5", "--seed", std::to_string(seed)}, &err);
    killed = err.find("by --chaos-kill") != std::string::npos;
  }
  EXPECT_TRUE(killed) << "no run had a worker killed";
}

TEST(GrepErrors, ABadRegexFailsWithRE2sMessage) {
  TempDir dir;
  Input in = make_input(dir);
  ProcessResult r =
      run_process({GREP_APP, "run", "--event", event_for(in, Case{"Bad", "ne(dle"}, 5).dump(),
                   "--data", "file://" + dir / "data"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad pattern: missing )"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kappa::testing
