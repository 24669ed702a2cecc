// The streaming example end to end: top hashtags per window over a JSON-lines
// file written here, normally, with workers killed at random, and by the
// hand-written baseline, against counts kept here while writing the posts
// (not by parsing them back); and the window reports on stderr, printed while
// the stream runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/subprocess.h"

namespace kappa::testing {
namespace {

constexpr int64_t kWindow = 30;
constexpr size_t kTop = 4;

// What the test knows about the posts it wrote.
struct Expected {
  uint64_t posts = 0, occurrences = 0;
  std::map<int64_t, uint64_t> posts_in;                       // window -> posts
  std::map<int64_t, std::map<std::string, uint64_t>> counts;  // window -> tag -> count
};

// The answer fields the app and the baseline print for these posts.
nlohmann::json answer(const Expected& e) {
  nlohmann::json windows = nlohmann::json::array();
  std::map<std::string, int> distinct;
  for (const auto& [w, posts] : e.posts_in) {
    std::vector<std::pair<std::string, uint64_t>> rows;
    uint64_t occurrences = 0;
    if (e.counts.count(w))
      for (const auto& [tag, n] : e.counts.at(w)) {
        rows.emplace_back(tag, n);
        occurrences += n;
        distinct[tag] = 1;
      }
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    nlohmann::json top = nlohmann::json::array();
    for (size_t i = 0; i < std::min(kTop, rows.size()); ++i)
      top.push_back({rows[i].first, rows[i].second});
    windows.push_back({{"window", w},
                       {"start", w * kWindow},
                       {"posts", posts},
                       {"hashtags", occurrences},
                       {"distinct", rows.size()},
                       {"top", top}});
  }
  return {{"posts", e.posts},
          {"hashtags", e.occurrences},
          {"distinct", distinct.size()},
          {"windows", windows}};
}

// Writes `n` posts, about 40 a second of event time, with tags from a small
// set whose favourite changes every window, in the two forms the example
// reads (a "hashtags" array, or #tags in the text, in any case), with blank
// lines, non-integer times and text that holds '#' without a tag.
Expected write_posts(const std::string& path, int n) {
  static const char* tags[] = {"alpha", "beta", "gamma", "delta", "eps_1", "zeta", "eta", "theta"};
  std::mt19937_64 rng(42);
  Expected e;
  std::string out;
  double ts = 1700000000;
  for (int i = 0; i < n; ++i) {
    ts += double(rng() % 50) / 1000.0;
    int64_t w = int64_t(ts) / kWindow;
    bool integer = rng() % 2;
    std::vector<std::string> mine;
    for (int k = int(rng() % 4); k > 0; --k) {
      // Skewed: the window's favourite tag often, then the others by index.
      size_t t = rng() % 3 == 0 ? size_t(w) % 8 : size_t(rng() % 8) * size_t(rng() % 8) / 8;
      mine.push_back(tags[t]);
    }
    nlohmann::json post = {{"id", i}, {"user", "user" + std::to_string(rng() % 100)}};
    post["ts"] = integer ? nlohmann::json(int64_t(ts)) : nlohmann::json(ts);
    if (rng() % 3 == 0) {
      nlohmann::json array = nlohmann::json::array();
      for (const std::string& t : mine) array.push_back(rng() % 2 ? "#" + t : t);
      post["hashtags"] = array;
      post["text"] = "the #ignored text";
    } else {
      std::string text = "C# and # alone,";
      for (const std::string& t : mine) {
        std::string shown = t;
        if (rng() % 2) shown[0] = char(shown[0] - 'a' + 'A');
        text += rng() % 2 ? " #" + shown + "." : " ##" + shown;
      }
      post["text"] = text + " caf\xc3\xa9 \"q\"";
    }
    out += post.dump() + "\n";
    if (rng() % 50 == 0) out += "\n";
    ++e.posts;
    ++e.posts_in[w];
    for (const std::string& t : mine) {
      ++e.counts[w][t];
      ++e.occurrences;
    }
  }
  write_file(path, out);
  return e;
}

nlohmann::json event_for(const std::string& input) {
  // Small batches: many of them, and windows that span several.
  return {{"input", input}, {"window_s", kWindow}, {"top", kTop}, {"batch_kb", 16}, {"workers", 3}};
}

nlohmann::json answer_fields(const nlohmann::json& out) {
  return {{"posts", out["posts"]},
          {"hashtags", out["hashtags"]},
          {"distinct", out["distinct"]},
          {"windows", out["windows"]}};
}

// The report lines on stderr, in order, and where the job's summary line
// ("kappa: done ...") is among them.
std::vector<std::string> report_lines(const std::string& err) {
  std::vector<std::string> lines;
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("hashtags: window ", 0) == 0 || line.rfind("kappa: done", 0) == 0)
      lines.push_back(line);
  return lines;
}

void expect_reports(const std::string& err, const nlohmann::json& expected) {
  std::vector<std::string> lines = report_lines(err);
  ASSERT_EQ(lines.size(), expected["windows"].size() + 1) << err;
  for (size_t i = 0; i < lines.size() - 1; ++i) {
    const nlohmann::json& w = expected["windows"][i];
    std::string want = "hashtags: window " + w["window"].dump() + " [" + w["start"].dump() + " +" +
                       std::to_string(kWindow) + "s): " + w["posts"].dump() + " posts";
    for (const auto& t : w["top"]) want += ", #" + t[0].get<std::string>() + " " + t[1].dump();
    EXPECT_EQ(lines[i], want);
  }
  EXPECT_EQ(lines.back().rfind("kappa: done", 0), 0u) << "a report after the job's end";
}

class HashtagsRun : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(HashtagsRun, MatchesCountsKeptWhileWritingThePosts) {
  TempDir dir;
  Expected e = write_posts(dir / "posts.jsonl", 20000);
  nlohmann::json expected = answer(e);
  ASSERT_GT(expected["windows"].size(), 5u);
  std::vector<std::string> argv = {HASHTAGS_APP, "run", "--event",
                                   event_for(dir / "posts.jsonl").dump()};
  for (const std::string& o : GetParam()) argv.push_back(o);
  ProcessResult r = run_process(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json out = nlohmann::json::parse(r.out);
  EXPECT_EQ(answer_fields(out), expected);
  EXPECT_EQ(out["workers"], 3);
  expect_reports(r.err, expected);
}

INSTANTIATE_TEST_SUITE_P(
    Hashtags, HashtagsRun,
    ::testing::Values(std::vector<std::string>{},
                      std::vector<std::string>{"--chaos-kill", "0.3", "--seed", "1"},
                      std::vector<std::string>{"--chaos-kill", "0.5", "--seed", "7"},
                      std::vector<std::string>{"--workers", "1", "--time-limit", "1"}));

// The chaos runs killed workers indeed: the trace shows invocations of the
// workers' tasks that --chaos-kill ended.
TEST(HashtagsChaos, KillsWorkersAndStaysExact) {
  TempDir dir;
  Expected e = write_posts(dir / "posts.jsonl", 20000);
  int killed = 0;
  for (int seed = 11; seed <= 13; ++seed) {
    std::string trace = dir / ("trace-" + std::to_string(seed) + ".json");
    ProcessResult r =
        run_process({HASHTAGS_APP, "run", "--event", event_for(dir / "posts.jsonl").dump(),
                     "--chaos-kill", "0.5", "--seed", std::to_string(seed), "--trace", trace});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(answer_fields(nlohmann::json::parse(r.out)), answer(e)) << "seed " << seed;
    auto events = nlohmann::json::parse(read_file(trace));
    if (events.is_object()) events = events["traceEvents"];
    for (const auto& ev : events)
      if (ev.contains("args") && ev["args"].is_object() &&
          ev["args"].value("outcome", "").find("--chaos-kill") != std::string::npos)
        ++killed;
  }
  EXPECT_GT(killed, 0) << "no worker was killed";
}

TEST(HashtagsBaseline, GivesTheSameAnswerInOneAndTwoProcesses) {
  TempDir dir;
  Expected e = write_posts(dir / "posts.jsonl", 20000);
  for (const char* procs : {"1", "2"}) {
    ProcessResult r = run_process(
        {HASHTAGS_BASELINE, "--procs", procs, "--event", event_for(dir / "posts.jsonl").dump()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(answer_fields(nlohmann::json::parse(r.out)), answer(e)) << "--procs " << procs;
  }
}

// Generated posts (no "input"): the app and the baseline agree, and the first
// window is reported while the job still runs.
TEST(HashtagsStream, ReportsWindowsWhileTheStreamRuns) {
  TempDir dir;
  nlohmann::json event = {{"posts", 300000}, {"window_s", 10}, {"top", 3}, {"workers", 1}};
  pid_t pid =
      spawn_process({HASHTAGS_APP, "run", "--event", event.dump()}, {}, dir / "out", dir / "err");
  bool live_report = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!process_gone(pid) && std::chrono::steady_clock::now() < deadline) {
    if (read_file(dir / "err").find("hashtags: window ") != std::string::npos) {
      live_report = !process_gone(pid);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(wait_process(pid), 0) << read_file(dir / "err");
  EXPECT_TRUE(live_report) << "no window reported before the job's end";
  nlohmann::json out = nlohmann::json::parse(read_file(dir / "out"));
  ProcessResult b = run_process({HASHTAGS_BASELINE, "--procs", "2", "--event", event.dump()});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(answer_fields(out), answer_fields(nlohmann::json::parse(b.out)));
  EXPECT_EQ(out["posts"], 300000);
  EXPECT_EQ(out["windows"].size(), 15u);
}

// Input out of window order, or a line that is not a post, fails the job
// with an error that says so (rather than a wrong answer, or a job that
// waits forever).
TEST(HashtagsInput, RejectsUnorderedInputAndBadLines) {
  TempDir dir;
  write_file(dir / "unordered.jsonl",
             "{\"ts\": 100, \"text\": \"#a\"}\n{\"ts\": 200, \"text\": \"#b\"}\n"
             "{\"ts\": 100, \"text\": \"#a\"}\n");
  write_file(dir / "bad.jsonl", "{\"ts\": 100, \"text\": \"#a\"}\n{\"ts\": \"noon\"}\n");
  for (const char* name : {"unordered", "bad"}) {
    nlohmann::json event = {{"input", dir / (std::string(name) + ".jsonl")}, {"batch_kb", 0}};
    ProcessResult r = run_process({HASHTAGS_APP, "run", "--event", event.dump()});
    EXPECT_NE(r.exit_code, 0) << name;
    EXPECT_NE(r.err.find(name == std::string("bad") ? "not a post with a numeric \"ts\""
                                                    : "not ordered by window"),
              std::string::npos)
        << r.err;
    ProcessResult b = run_process({HASHTAGS_BASELINE, "--procs", "1", "--event", event.dump()});
    EXPECT_NE(b.exit_code, 0) << name;
  }
}

}  // namespace
}  // namespace kappa::testing
