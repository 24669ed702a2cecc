// What a user sees of a whole job (issue 12): the summary line with its cost
// estimate, the progress line on a terminal (a real pseudo-terminal), and
// the --trace file's structure. Real `APP run` processes of the semantics
// app.
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "apps/changing_state.h"
#include "support/subprocess.h"

namespace kappa::testing {
namespace {

// Runs argv on a pseudo-terminal `cols` columns wide (stdin, stdout and
// stderr all on it); returns everything it wrote, and its exit code.
std::pair<std::string, int> run_on_terminal(const std::vector<std::string>& argv,
                                            unsigned short cols) {
  winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = cols;
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  if (pid < 0) throw std::runtime_error("forkpty failed");
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, size_t(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO once the child side is closed
    }
  }
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

const char* kZoo = R"({"program":"durable_zoo","n":150})";

std::vector<std::string> zoo(const TempDir& dir, std::vector<std::string> more = {}) {
  std::vector<std::string> argv = {SEMANTICS_APP, "run",    "--event",
                                   kZoo,          "--data", "file://" + dir / "data"};
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

TEST(ProgressLine, IsDrawnInPlaceOnATerminalNeverWiderThanItAndErasedBeforeTheResult) {
  TempDir dir;
  auto [out, code] = run_on_terminal(zoo(dir), 60);
  ASSERT_EQ(code, 0) << out;
  // Each redraw: carriage return, the text, clear to the end of the line.
  std::regex draw("\r(kappa: [^\r\n\x1b]*)\x1b\\[K");
  size_t draws = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), draw); it != std::sregex_iterator();
       ++it) {
    ++draws;
    std::string text = (*it)[1];
    EXPECT_LE(text.size(), 59u) << text;  // one column short of the width: never wraps
    EXPECT_EQ(text.rfind("kappa: ", 0), 0u) << text;
  }
  EXPECT_GE(draws, 2u) << out;  // the job runs for more than half a second
  EXPECT_NE(out.find("tasks done"), std::string::npos) << out;
  // Erased (an empty redraw) before the result line, and never drawn after it.
  size_t result = out.find("{\"parts\"");
  ASSERT_NE(result, std::string::npos) << out;
  size_t erase = out.rfind("\r\x1b[K", result);
  ASSERT_NE(erase, std::string::npos) << out;
  EXPECT_EQ(out.find("tasks done", erase), std::string::npos) << out;
}

// A warning logged while the line is drawn starts on a line of its own: the
// line is erased first (else the warning lands at its end). (It is drawn
// again at its next redraw, if the job lasts until then.)
TEST(ProgressLine, IsErasedBeforeALogLine) {
  TempDir dir;
  // Warnings ("worker N crashed") from 0.6 s on, after the first draws.
  auto [out, code] =
      run_on_terminal({SEMANTICS_APP, "run", "--event", R"({"program":"crash_child","after":0.6})",
                       "--log-dir", dir / "logs"},
                      100);
  ASSERT_EQ(code, 0) << out;
  size_t first_draw = out.find("tasks done");
  size_t warning = out.find("kappa: warning: ");
  ASSERT_NE(first_draw, std::string::npos) << out;
  ASSERT_NE(warning, std::string::npos) << out;
  ASSERT_LT(first_draw, warning) << out;  // else the test shows nothing
  for (size_t at = warning; at != std::string::npos; at = out.find("kappa: warning: ", at + 1)) {
    std::string before = out.substr(0, at);
    bool clean = before.ends_with("\n") || before.ends_with("\r\x1b[K");
    EXPECT_TRUE(clean) << "a warning at byte " << at << " follows "
                       << nlohmann::json(
                              before.substr(before.size() - std::min<size_t>(before.size(), 40)))
                              .dump();
  }
}

TEST(ProgressLine, ShowsEveryCountAtFullWidth) {
  TempDir dir;
  auto [out, code] = run_on_terminal(zoo(dir), 200);
  ASSERT_EQ(code, 0) << out;
  std::regex full(
      R"(kappa: \d+/\d+ tasks done, \d+ running, \d+ parked, \d+ workers, \d+ checkpoints/s, \d+\.\d s)");
  EXPECT_TRUE(std::regex_search(out, full)) << out;
}

TEST(ProgressLine, IsAbsentWithQuietOrWhenStderrIsNoTerminal) {
  TempDir dir;
  auto [out, code] = run_on_terminal(zoo(dir, {"--quiet"}), 80);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out.find("tasks done"), std::string::npos) << out;
  EXPECT_EQ(out.find("\x1b[K"), std::string::npos) << out;
  EXPECT_NE(out.find("done in"), std::string::npos) << out;  // the summary stays

  ProcessResult piped = run_process(zoo(dir));  // stderr is a pipe
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.err.find("tasks done"), std::string::npos) << piped.err;
  EXPECT_EQ(piped.err.find('\r'), std::string::npos) << piped.err;
  EXPECT_NE(piped.err.find("done in"), std::string::npos) << piped.err;
}

// The summary's estimate follows the flags: with only requests priced (at
// $1 each), it is the number of invocations the summary reports.
TEST(Summary, CarriesTheCostEstimateWithThePricesGiven) {
  TempDir dir;
  ProcessResult r =
      run_process(zoo(dir, {"--lambda-memory", "2048", "--price-gb-s", "0", "--price-request", "1",
                            "--price-s3-put", "0", "--price-s3-get", "0"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  std::regex line(
      R"((\d+) checkpoints \([^)]*\), (\d+) invocations; ~\$([0-9.]+) on Lambda \(2048 MB\); \$([0-9.]+) if blocked waits were billed)");
  ASSERT_TRUE(std::regex_search(r.err, m, line)) << r.err;
  EXPECT_GT(std::stoull(m[1]), 0u);
  uint64_t invocations = std::stoull(m[2]);
  EXPECT_GE(invocations, 155u);  // every task ran at least once
  EXPECT_DOUBLE_EQ(std::stod(m[3]), double(invocations));
  EXPECT_DOUBLE_EQ(std::stod(m[4]), double(invocations));  // waits priced at $0 too

  // Default prices: a few hundred invocations of a second or less cost far
  // less than a cent, and a parked wait can only add to it.
  ProcessResult d = run_process(zoo(dir, {"--workers", "1", "--grace-ms", "0"}));
  ASSERT_EQ(d.exit_code, 0) << d.err;
  std::regex dflt(
      R"(~\$([0-9.]+) on Lambda \(1024 MB\); \$([0-9.]+) if blocked waits were billed)");
  ASSERT_TRUE(std::regex_search(d.err, m, dflt)) << d.err;
  double usd = std::stod(m[1]), blocked = std::stod(m[2]);
  EXPECT_GT(usd, 0);
  EXPECT_LT(usd, 0.01);
  EXPECT_GT(blocked, usd);  // one worker, no grace: the producer and consumer park
}

// ---- --trace

struct Span {
  double ts, end;
};

TEST(Trace, HasCheckpointsParksQueueWaitsAndFlowsWithBothEnds) {
  TempDir dir;
  std::string path = dir / "trace.json";
  // One worker and no grace period: every blocked call parks.
  ProcessResult r = run_process(zoo(dir, {"--workers", "1", "--grace-ms", "0", "--trace", path}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"((\d+) tasks, (\d+) parks)"))) << r.err;
  const uint64_t tasks = std::stoull(m[1]), parks = std::stoull(m[2]);
  ASSERT_GT(parks, 0u);

  nlohmann::json doc = nlohmann::json::parse(read_file(path));
  const nlohmann::json& events = doc.at("traceEvents");
  using Track = std::pair<int, uint64_t>;  // pid, tid
  std::map<Track, std::vector<Span>> spans;
  std::map<std::string, size_t> count;
  struct FlowEnd {
    Track track;
    double ts;
  };
  std::map<uint64_t, std::vector<FlowEnd>> flow_starts, flow_ends;
  std::map<std::string, std::pair<int, int>> queue_waits;  // id: begins, ends
  std::set<uint64_t> spawned;                              // tasks a spawn arrow reaches
  for (const nlohmann::json& e : events) {
    std::string ph = e.at("ph");
    if (ph == "M") continue;
    Track track{e.at("pid").get<int>(), e.value("tid", uint64_t{0})};
    std::string name = e.at("name");
    ++count[ph + ":" + name];
    if (ph == "X") {
      double ts = e.at("ts"), dur = e.at("dur");
      ASSERT_GE(dur, 0) << e.dump();
      spans[track].push_back({ts, ts + dur});
      if (name.rfind("checkpoint", 0) == 0) {
        ASSERT_TRUE(e.at("args").contains("bytes")) << e.dump();
        EXPECT_GT(e["args"]["bytes"].get<uint64_t>(), 0u) << e.dump();
      }
    } else if (ph == "s" || ph == "f") {
      uint64_t id = e.at("id");
      (ph == "s" ? flow_starts : flow_ends)[id].push_back({track, e.at("ts")});
      if (ph == "f" && name == "spawn") spawned.insert(e.at("args").at("task").get<uint64_t>());
    } else if (ph == "b" || ph == "e") {
      std::string id = e.at("id").dump();
      (ph == "b" ? queue_waits[id].first : queue_waits[id].second)++;
      if (ph == "b") EXPECT_TRUE(e.at("args").contains("queue")) << e.dump();
    }
  }
  // Spans on a worker's track nest or follow one another: never overlap.
  for (auto& [track, list] : spans) {
    std::sort(list.begin(), list.end(), [](const Span& a, const Span& b) {
      return a.ts != b.ts ? a.ts < b.ts : a.end > b.end;  // the enclosing one first
    });
    std::vector<Span> open;
    for (const Span& s : list) {
      while (!open.empty() && open.back().end <= s.ts) open.pop_back();
      if (!open.empty())
        EXPECT_LE(s.end, open.back().end)
            << "overlapping spans on worker " << track.second << " at " << s.ts;
      open.push_back(s);
    }
  }
  auto inside_a_span = [&](const FlowEnd& f) {
    for (const Span& s : spans[f.track])
      if (s.ts <= f.ts && f.ts <= s.end) return true;
    return false;
  };
  // Every arrow has one start and one end, each within a span of its track.
  std::set<uint64_t> ids;
  for (auto& [id, v] : flow_starts) ids.insert(id);
  for (auto& [id, v] : flow_ends) ids.insert(id);
  for (uint64_t id : ids) {
    ASSERT_EQ(flow_starts[id].size(), 1u) << "flow " << id;
    ASSERT_EQ(flow_ends[id].size(), 1u) << "flow " << id;
    EXPECT_TRUE(inside_a_span(flow_starts[id][0])) << "flow " << id;
    EXPECT_TRUE(inside_a_span(flow_ends[id][0])) << "flow " << id;
    EXPECT_LE(flow_starts[id][0].ts, flow_ends[id][0].ts) << "flow " << id;
  }
  // Each task but the root was spawned, and ran: one spawn arrow each.
  EXPECT_EQ(spawned.size(), tasks - 1);
  EXPECT_EQ(count["s:spawn"], tasks - 1);
  EXPECT_GT(count["s:wake"], 0u);  // wait_all, and the awaited children's finishes
  EXPECT_GT(count["X:checkpoint capture"], 0u);
  EXPECT_GT(count["i:park"], 0u);
  EXPECT_GT(count["i:relaunch"], 0u);
  // Queue waits (the bounded queue, a slow consumer): each begun one ends.
  EXPECT_GT(queue_waits.size(), 0u);
  for (auto& [id, be] : queue_waits) {
    EXPECT_EQ(be.first, 1) << id;
    EXPECT_EQ(be.second, 1) << id;
  }
}

// Images too large to travel inline are written to the store: the trace
// shows the write after the capture, with the worker's own figures.
TEST(Trace, StoredImagesHaveAWriteSpanAfterTheCapture) {
  TempDir dir;
  std::string path = dir / "trace.json";
  ProcessResult r =
      run_process({SEMANTICS_APP, "run", "--event", R"({"program":"changing_state","rounds":5})",
                   "--store", "file://" + dir / "store", "--trace", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json doc = nlohmann::json::parse(read_file(path));
  std::vector<nlohmann::json> captures, writes;
  for (const nlohmann::json& e : doc.at("traceEvents")) {
    if (e.at("name") == "checkpoint capture") captures.push_back(e);
    if (e.at("name") == "checkpoint write") writes.push_back(e);
  }
  // One per round, or fewer: a plain checkpoint still queued in the worker
  // when the next one is taken is superseded by it (worker.cc), which a
  // loaded machine makes happen.
  ASSERT_GE(captures.size(), 1u);
  ASSERT_LE(captures.size(), 5u);
  ASSERT_EQ(writes.size(), captures.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    const nlohmann::json& c = captures[i];
    const nlohmann::json& w = writes[i];
    EXPECT_EQ(w["args"]["image"], "stored");
    EXPECT_GT(w["args"]["bytes"].get<uint64_t>(), 64u << 10);  // too large to go inline
    EXPECT_GT(w["args"]["write_us"].get<uint64_t>(), 0u);
    EXPECT_GT(c["args"]["capture_us"].get<uint64_t>(), 0u);
    EXPECT_EQ(c["ts"].get<int64_t>() + c["dur"].get<int64_t>(), w["ts"].get<int64_t>());
  }
}

// A large state changing by a few pages a call: its deltas travel inline on
// top of the stored chain (an 8 MiB state in images of less than 64 KiB), and
// a task parked at a wait (--grace-ms 0) resumes from such a delta, each time,
// to the exact result.
TEST(Trace, ATaskResumesFromAnInlineDeltaOnTopOfItsStoredChain) {
  TempDir dir;
  std::string path = dir / "trace.json";
  ProcessResult r = run_process(
      {SEMANTICS_APP, "run", "--event", R"({"program":"changing_state","rounds":60,"words":2})",
       "--grace-ms", "0", "--store", "file://" + dir / "store", "--trace", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), nlohmann::json(changing_state::run_plain(60, 8, 2)));
  nlohmann::json doc = nlohmann::json::parse(read_file(path));
  std::vector<nlohmann::json> events(doc.at("traceEvents").begin(), doc.at("traceEvents").end());
  std::sort(events.begin(), events.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a.value("ts", int64_t(0)) < b.value("ts", int64_t(0));
  });
  int stored = 0, resumes_from_inline = 0;
  bool last_inline = false;  // the handler's last image travelled inline
  for (const nlohmann::json& e : events) {
    if (e.value("name", "") == "checkpoint capture" && e["args"]["task"] == 1) {
      last_inline = e["args"]["image"] == "inline";
      stored += !last_inline;
    }
    if (e.value("cat", "") == "resume" && e["args"]["task"] == 1 && stored > 0 && last_inline)
      ++resumes_from_inline;
  }
  EXPECT_GE(stored, 2) << "the full image and a delta that outgrew inline";
  EXPECT_GE(resumes_from_inline, 1) << "the handler parks at its waits and resumes from them";
}

// An item a task enqueues as it dequeued it (a temporary: Queue::enqueue(T&&))
// is released before the pause: the forwarder's images stay small enough to
// travel inline, while every item it hands on is larger than that.
TEST(Trace, AForwardedItemIsNotInTheForwardersImages) {
  TempDir dir;
  std::string path = dir / "trace.json";
  ProcessResult r =
      run_process({SEMANTICS_APP, "run", "--event", R"({"program":"forward","n":6,"kib":256})",
                   "--store", "file://" + dir / "store", "--trace", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), (nlohmann::json{{"same", true}, {"forwarded", 6}}));
  nlohmann::json doc = nlohmann::json::parse(read_file(path));
  int enqueues = 0;
  for (const nlohmann::json& e : doc.at("traceEvents")) {
    if (e.at("name") != "checkpoint capture" || e["args"]["task"] != 2) continue;
    if (e["args"]["op"] == "enqueue") ++enqueues;
    EXPECT_EQ(e["args"]["image"], "inline") << e.dump();
    EXPECT_LE(e["args"]["bytes"].get<uint64_t>(), 64u << 10) << e.dump();
  }
  EXPECT_EQ(enqueues, 6);
}

}  // namespace
}  // namespace kappa::testing

int main(int argc, char** argv) {
  setenv("KAPPA_KEY", "kappa-tests-key-0123456789abcdef", 1);  // as test_main.cc, for the apps
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
