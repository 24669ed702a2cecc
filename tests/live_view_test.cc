// The live view (--ui) and `APP status` against real jobs: the apps run as
// subprocesses with --ui 127.0.0.1:0, the tests read the URL they print and
// fetch the JSON API with libcurl, and a real headless Chromium renders the
// page. Values are checked against each job's known shape (ui_app's, see
// tests/apps/ui_app.cc; fib's tree of tasks).
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "kappa/detail/calls.h"
#include "support/server_process.h"
#include "support/subprocess.h"
#include "ui/function_names.h"
#include "ui/live_view.h"

namespace kappa::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Http {
  long status = 0;
  std::string body;
};

Http http_get(const std::string& url) {
  Http r;
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t n, size_t k, void* out) {
        static_cast<std::string*>(out)->append(p, n * k);
        return n * k;
      });
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(c);
  return r;
}

json get_json(const std::string& url) {
  Http r = http_get(url);
  EXPECT_EQ(r.status, 200) << url << ": " << r.body;
  if (r.status != 200) return json();
  return json::parse(r.body);
}

// A job (or `status`) started in the background, with its live view's URL
// read from what it prints on stderr.
class ViewedProcess {
 public:
  explicit ViewedProcess(std::vector<std::string> argv) {
    pid_ = spawn_process(argv, {}, dir_ / "out", dir_ / "err");
    std::regex url_re("live view at (http://[^ \n]+/)");
    for (auto end = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < end;
         std::this_thread::sleep_for(20ms)) {
      std::smatch m;
      std::string err = read_file(dir_ / "err");
      if (std::regex_search(err, m, url_re)) {
        url_ = m[1];
        return;
      }
      if (process_gone(pid_)) break;
    }
  }
  ~ViewedProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      wait_process(pid_);
    }
  }
  const std::string& url() const { return url_; }
  std::string err() const { return read_file(dir_ / "err"); }
  std::string out() const { return read_file(dir_ / "out"); }
  int wait() {
    exited_ = true;
    return wait_process(pid_);
  }
  // Polls `path` until `done` holds for its JSON (or 60 s pass); returns the last.
  json poll(const std::string& path, const std::function<bool(const json&)>& done) {
    json j;
    for (auto end = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < end;
         std::this_thread::sleep_for(50ms)) {
      Http r = http_get(url_ + path.substr(1));
      if (r.status != 200) continue;
      j = json::parse(r.body);
      if (done(j)) return j;
    }
    ADD_FAILURE() << path << " never reached the state waited for; last: " << j.dump();
    return j;
  }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string url_;
};

json find_task(const json& page, uint64_t id) {
  for (const json& t : page["tasks"])
    if (t["id"] == id) return t;
  return json();
}

// fib's tasks: fib(n) spawns fib(n - 1) and fib(n - 2) above the cutoff.
uint64_t fib_tasks(int n, int cutoff) {
  return n <= cutoff || n < 2 ? 1 : 1 + fib_tasks(n - 1, cutoff) + fib_tasks(n - 2, cutoff);
}

std::vector<std::string> ui_app(int leaves, int hold_ms, int backlog,
                                std::vector<std::string> extra = {}) {
  json event = {{"leaves", leaves}, {"hold_ms", hold_ms}, {"backlog", backlog}};
  std::vector<std::string> argv = {UI_APP, "run", "--event", event.dump(), "--ui", "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// While ui_app's holder runs: its known shape, task by task, then the final
// state once it ended (the view lingers).
TEST(LiveView, ApiShowsARunningJobAndItsEnd) {
  const int leaves = 20, backlog = 3;
  ViewedProcess job(ui_app(leaves, 6000, backlog, {"--ui-linger", "30"}));
  ASSERT_FALSE(job.url().empty()) << job.err();
  EXPECT_NE(job.url().find("http://127.0.0.1:"), std::string::npos) << job.url();

  // The steady state while the holder runs: the leaves finished, the
  // handler parked awaiting the holder, the consumer parked on the gate.
  json j = job.poll("/api/job", [&](const json& j) {
    return j["tasks"]["total"] == leaves + 3 && j["tasks"]["finished"] == leaves &&
           j["tasks"]["parked"] == 2 && j["tasks"]["running"] == 1;
  });
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["tasks"]["failed"], 0);
  EXPECT_EQ(j["tasks"]["ready"], 0);
  EXPECT_EQ(j["workers"]["busy"], 1);
  // Calls by kind: the handler made 2 queues, enqueued the backlog, spawned
  // 3 times (holder, consumer, the leaves' map_spawn) and awaited.
  EXPECT_EQ(j["calls_by_kind"]["make_queue"], 2) << j["calls_by_kind"];
  EXPECT_EQ(j["calls_by_kind"]["enqueue"], backlog) << j["calls_by_kind"];
  EXPECT_EQ(j["calls_by_kind"]["spawn"], 3) << j["calls_by_kind"];
  EXPECT_GE(j["calls_by_kind"]["wait"].get<int>(), 1) << j["calls_by_kind"];
  EXPECT_GE(j["checkpoints"]["taken"].get<int>(), 7) << j;  // one per call above
  EXPECT_GT(j["checkpoints"]["bytes"].get<int>(), 0) << j;
  EXPECT_GE(j["invocations"].get<int>(), leaves + 3) << j;
  EXPECT_GT(j["cost"]["usd"].get<double>(), 0) << j;
  EXPECT_GE(j["cost"]["usd_if_blocked_billed"].get<double>(), j["cost"]["usd"].get<double>());
  EXPECT_GT(j["elapsed"].get<double>(), 0);
  ASSERT_TRUE(j["recent"].is_array());
  ASSERT_FALSE(j["recent"].empty());
  for (const json& e : j["recent"]) {
    EXPECT_TRUE(e["task"].is_number()) << e;
    EXPECT_FALSE(e["name"].get<std::string>().empty()) << e;
  }

  json page = get_json(job.url() + "api/tasks?offset=0&limit=100");
  EXPECT_EQ(page["total"], leaves + 3);
  ASSERT_EQ(page["tasks"].size(), size_t(leaves + 3));
  EXPECT_EQ(find_task(page, 1)["name"], "handler");
  EXPECT_EQ(find_task(page, 2)["name"], "holder");
  EXPECT_EQ(find_task(page, 2)["parent"], 1);
  EXPECT_EQ(find_task(page, 1)["state"], "parked");
  EXPECT_EQ(find_task(page, 2)["state"], "running");
  EXPECT_EQ(find_task(page, 3)["name"], "consumer");
  EXPECT_EQ(find_task(page, 3)["state"], "parked");
  for (int id = 4; id < leaves + 4; ++id) {
    json t = find_task(page, id);
    EXPECT_EQ(t["name"], "leaf") << t;  // named after its function
    EXPECT_EQ(t["state"], "finished") << t;
    EXPECT_EQ(t["parent"], 1) << t;
  }
  // Paging: the second page of 10 starts at task 11.
  json second = get_json(job.url() + "api/tasks?offset=10&limit=10");
  EXPECT_EQ(second["total"], leaves + 3);
  ASSERT_EQ(second["tasks"].size(), 10u);
  EXPECT_EQ(second["tasks"][0]["id"], 11);

  json parked = get_json(job.url() + "api/tasks?state=parked");
  EXPECT_EQ(parked["total"], 2);
  ASSERT_EQ(parked["tasks"].size(), 2u);
  EXPECT_EQ(parked["tasks"][0]["id"], 1);
  EXPECT_EQ(parked["tasks"][0]["why"], "awaits task 2") << parked;
  EXPECT_EQ(parked["tasks"][1]["id"], 3);
  EXPECT_EQ(parked["tasks"][1]["why"], "dequeues from empty queue 1") << parked;
  EXPECT_EQ(get_json(job.url() + "api/tasks?state=finished")["total"], leaves);
  EXPECT_EQ(http_get(job.url() + "api/tasks?state=sleeping").status, 400);
  EXPECT_EQ(http_get(job.url() + "api/tasks?limit=x").status, 400);

  json queues = get_json(job.url() + "api/queues")["queues"];
  ASSERT_EQ(queues.size(), 2u) << queues;
  EXPECT_EQ(queues[0]["id"], 1);
  EXPECT_EQ(queues[0]["depth"], 0);
  EXPECT_EQ(queues[0]["dequeuers"], json::array({3}));
  EXPECT_EQ(queues[1]["id"], 2);
  EXPECT_EQ(queues[1]["depth"], backlog);
  EXPECT_EQ(queues[1]["max_size"], backlog + 1);

  json holder = get_json(job.url() + "api/tasks/2");
  ASSERT_TRUE(holder["history"].is_array());
  ASSERT_FALSE(holder["history"].empty());
  EXPECT_EQ(holder["history"][0]["kind"], "start");
  EXPECT_GT(holder["history"][0]["worker"].get<int>(), 0);
  EXPECT_EQ(http_get(job.url() + "api/tasks/999").status, 404);
  // The handler's first invocation: its calls' checkpoints, with their sizes.
  json handler = get_json(job.url() + "api/tasks/1");
  ASSERT_FALSE(handler["history"].empty()) << handler;
  EXPECT_GE(handler["history"][0]["checkpoints"].get<int>(), 1) << handler;
  EXPECT_GT(handler["history"][0]["checkpoint_bytes"].get<int>(), 0) << handler;

  // The end: everything finished, the view still up (--ui-linger).
  j = job.poll("/api/job", [](const json& j) { return j["state"] != "running"; });
  EXPECT_EQ(j["state"], "done");
  EXPECT_EQ(j["tasks"]["finished"], leaves + 3);
  EXPECT_EQ(j["tasks"]["parked"], 0);
  json consumer = get_json(job.url() + "api/tasks/3");
  ASSERT_GE(consumer["history"].size(), 2u) << "started, parked, resumed: " << consumer;
  EXPECT_EQ(consumer["history"][0]["outcome"], "park");
  EXPECT_EQ(consumer["history"].back()["kind"], "resume");
  EXPECT_EQ(consumer["history"].back()["outcome"], "finished");
  EXPECT_EQ(consumer["state"], "finished");
  queues = get_json(job.url() + "api/queues")["queues"];
  EXPECT_EQ(queues[1]["depth"], 0);
  // The result is printed when the job ends, not after the linger.
  for (int i = 0; i < 100 && job.out().empty(); ++i) std::this_thread::sleep_for(50ms);
  json result = json::parse(job.out());
  EXPECT_EQ(result["sum"], leaves * (leaves - 1) / 2);
  EXPECT_EQ(result["backlog"], backlog);
}

// fib's tree: the view counts exactly the tasks it spawns, named "fib".
TEST(LiveView, CountsFibsTreeOfTasks) {
  const int n = 12, cutoff = 8;
  json event = {{"n", n}, {"cutoff", cutoff}};
  ViewedProcess job({FIB_APP, "run", "--event", event.dump(), "--ui", "127.0.0.1:0", "--ui-linger",
                     "20", "--lambda-memory", "2048"});
  ASSERT_FALSE(job.url().empty()) << job.err();
  json j = job.poll("/api/job", [](const json& j) { return j["state"] != "running"; });
  uint64_t tasks = 1 + fib_tasks(n, cutoff);  // the handler and the tree
  EXPECT_EQ(j["state"], "done");
  EXPECT_EQ(j["tasks"]["total"], tasks);
  EXPECT_EQ(j["tasks"]["finished"], tasks);
  EXPECT_EQ(j["cost"]["memory_mb"], 2048);            // as --lambda-memory says
  EXPECT_EQ(j["calls_by_kind"]["spawn"], tasks - 1);  // one spawn call per child
  json page = get_json(job.url() + "api/tasks?limit=1000");
  ASSERT_EQ(page["tasks"].size(), tasks);
  EXPECT_EQ(page["tasks"][0]["name"], "handler");
  for (size_t i = 1; i < tasks; ++i) EXPECT_EQ(page["tasks"][i]["name"], "fib") << page["tasks"][i];
  // Every fib above the cutoff awaited its children: parked, then resumed.
  uint64_t resumed = 0;
  for (size_t id = 2; id <= tasks; ++id) {
    json t = get_json(job.url() + "api/tasks/" + std::to_string(id));
    for (const json& h : t["history"]) resumed += h["kind"] == "resume";
  }
  EXPECT_GT(resumed, 0u);
}

// A real browser renders the page while the job runs: the counts and the
// task table come from the API, drawn by the page's script.
TEST(LiveView, RendersInHeadlessChromium) {
  const int leaves = 30;
  ViewedProcess job(ui_app(leaves, 12000, 2, {"--ui-linger", "30"}));
  ASSERT_FALSE(job.url().empty()) << job.err();
  json j = job.poll("/api/job", [&](const json& j) {
    return j["tasks"]["finished"] == leaves && j["tasks"]["parked"] == 2;
  });
  ASSERT_EQ(j["state"], "running") << "the job ended before the browser could see it run";
  TempDir profile;
  auto chromium = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"/usr/bin/chromium",
                                     "--headless",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--user-data-dir=" + profile.path(),
                                     "--virtual-time-budget=3000",
                                     "--window-size=1280,1600"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(job.url());
    return run_process(argv);
  };
  ProcessResult dom = chromium({"--dump-dom"});
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  const std::string& html = dom.out;
  // Rendered by app.js from /api/job and /api/tasks (the static page has
  // placeholders and an empty table).
  EXPECT_NE(html.find("<span id=\"state\" class=\"badge running\">running</span>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<div class=\"v\" id=\"count-total\">" + std::to_string(leaves + 3) + "<"),
            std::string::npos);
  EXPECT_NE(html.find("<div class=\"v\" id=\"count-finished\">" + std::to_string(leaves) + "<"),
            std::string::npos);
  EXPECT_NE(html.find("<td class=\"name\">handler</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"name\">leaf</td>"), std::string::npos);
  EXPECT_NE(html.find("dequeues from empty queue 1"), std::string::npos);  // parked, with why
  EXPECT_NE(html.find("class=\"area-finished\""), std::string::npos);      // the chart
  std::string shot = std::string(UI_SCREENSHOT_DIR) + "/live_view.png";
  std::filesystem::remove(shot);
  ProcessResult png = chromium({"--screenshot=" + shot});
  ASSERT_EQ(png.exit_code, 0) << png.err;
  ASSERT_TRUE(std::filesystem::exists(shot));
  EXPECT_GT(std::filesystem::file_size(shot), 10000u);
  // The job ends (and cleans up after itself) before its process is stopped.
  job.poll("/api/job", [](const json& j) { return j["state"] != "running"; });
}

// `status` reads a finished job's journal: the paragraph, and the view.
TEST(Status, ReadsAFinishedJobFromItsJournal) {
  TempDir dir;
  const int leaves = 10;
  std::string state = "sqlite://" + (dir / "job.db");
  json event = {{"leaves", leaves}, {"hold_ms", 3000}, {"backlog", 2}};
  pid_t run = spawn_process({UI_APP, "run", "--event", event.dump(), "--state", state}, {},
                            dir / "run.out", dir / "run.err");
  // While it runs, its coordinator holds the journal: status says so.
  for (int i = 0; i < 100 && !std::filesystem::exists(dir / "job.db"); ++i)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(300ms);
  ProcessResult busy = run_process({UI_APP, "status", "--state", state});
  EXPECT_NE(busy.exit_code, 0) << busy.out;
  EXPECT_NE(busy.err.find("is in use by another coordinator"), std::string::npos) << busy.err;
  EXPECT_NE(busy.err.find("live view (--ui)"), std::string::npos) << busy.err;
  ASSERT_EQ(wait_process(run), 0) << read_file(dir / "run.err");

  ProcessResult st = run_process({UI_APP, "status", "--state", state});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("The job finished: " + std::to_string(leaves + 3) + " tasks, " +
                        std::to_string(leaves + 3) + " finished, 0 failed"),
            std::string::npos)
      << st.out;

  ViewedProcess view(
      {UI_APP, "status", "--state", state, "--ui", "127.0.0.1:0", "--ui-linger", "30"});
  ASSERT_FALSE(view.url().empty()) << view.err();
  json j = get_json(view.url() + "api/job");
  EXPECT_EQ(j["state"], "done");
  EXPECT_EQ(j["tasks"]["total"], leaves + 3);
  EXPECT_EQ(j["tasks"]["finished"], leaves + 3);
  EXPECT_FALSE(j.contains("cost")) << "a journal counts no calls: nothing to estimate from";
  EXPECT_FALSE(j.contains("checkpoints"));
  json page = get_json(view.url() + "api/tasks?limit=5");
  EXPECT_EQ(page["total"], leaves + 3);
  EXPECT_EQ(page["tasks"][0]["name"], "handler");
  EXPECT_EQ(page["tasks"][0]["state"], "finished");
  EXPECT_EQ(get_json(view.url() + "api/queues")["queues"].size(), 2u);
  Http index = http_get(view.url());
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("<script src=\"/app.js\">"), std::string::npos);

  ProcessResult missing = run_process({UI_APP, "status", "--state", state + ".nope"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "job.db.nope"));
}

// A Redis journal is read while its job runs (without the coordinator's
// lock), and the view follows the job to its end.
TEST(Status, ReadsARunningJobFromItsRedisJournal) {
  ServerProcess redis(redis_server());
  std::string state = "redis://127.0.0.1:" + std::to_string(redis.port()) + "?name=status-test";
  const int leaves = 5;
  json event = {{"leaves", leaves}, {"hold_ms", 8000}, {"backlog", 1}};
  TempDir io;
  pid_t job = spawn_process({UI_APP, "run", "--event", event.dump(), "--state", state}, {},
                            io / "out", io / "err");
  // Once the leaves are journaled as finished and the handler and the
  // consumer as parked, while the holder holds. (A park is journaled up to
  // 2 ms after its event, by the coordinator's flusher, and the two blocked
  // tasks park only after their grace period: the leaves may be seen
  // finished first.)
  std::string out;
  for (auto end = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(100ms)) {
    ProcessResult st = run_process({UI_APP, "status", "--state", state});
    out = st.out;
    if (st.exit_code == 0 && out.find(std::to_string(leaves) + " finished") != std::string::npos &&
        out.find("2 parked") != std::string::npos)
      break;
  }
  EXPECT_NE(out.find("The job has not finished: " + std::to_string(leaves + 3) + " tasks, " +
                     std::to_string(leaves) + " finished, 0 failed"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("2 parked"), std::string::npos) << out;  // the handler and the consumer

  ViewedProcess view(
      {UI_APP, "status", "--state", state, "--ui", "127.0.0.1:0", "--ui-linger", "40"});
  ASSERT_FALSE(view.url().empty()) << view.err();
  json parked = get_json(view.url() + "api/tasks?state=parked");
  EXPECT_EQ(parked["total"], 2) << parked;
  json j = view.poll("/api/job", [](const json& j) { return j["state"] != "running"; });
  EXPECT_EQ(j["state"], "done");
  EXPECT_EQ(j["tasks"]["finished"], leaves + 3);
  EXPECT_EQ(wait_process(job), 0) << read_file(io / "err");
}

// ---------------------------------------------------------------- pieces

[[gnu::noinline]] int64_t a_function_named_for_the_view(int x) { return x * 3 + 1; }

// Unnamed tasks are named after their function, read from the binary's own
// symbols by code offset (as SpawnSpec::fn holds it).
TEST(FunctionNames, NameAFunctionOfThisBinaryByItsCodeOffset) {
  detail::FunctionNames names;
  uint64_t fn = detail::code_offset(reinterpret_cast<uint64_t>(&a_function_named_for_the_view));
  EXPECT_EQ(names.name(fn), "kappa::testing::a_function_named_for_the_view");
  EXPECT_EQ(names.name(0), "");
  EXPECT_EQ(detail::short_function_name("(anonymous namespace)::fib(int, int)"), "fib");
  EXPECT_EQ(detail::short_function_name("kappa::Task<long> ns::f<int>(std::vector<int, A>)"),
            "ns::f<int>");
}

TEST(LiveViewAddress, HostDefaultsToLoopbackAndBadAddressesAreClearErrors) {
  EXPECT_EQ(detail::parse_view_address("8080"), std::make_pair(std::string("127.0.0.1"), 8080));
  EXPECT_EQ(detail::parse_view_address("0.0.0.0:0"), std::make_pair(std::string("0.0.0.0"), 0));
  EXPECT_EQ(detail::parse_view_address("[::1]:9"), std::make_pair(std::string("::1"), 9));
  for (const char* bad : {"", "x", "host:", "70000", "1:-2"})
    EXPECT_THROW(detail::parse_view_address(bad), Error) << bad;
}

}  // namespace
}  // namespace kappa::testing
