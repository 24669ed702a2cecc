// AwsBackend: workers as invocations of an AWS Lambda function deployed by
// `APP deploy` (DESIGN.md section 6), started through the Invoke API.
//
// One invocation is one worker: the payload says which (its id), where the
// coordinator is and how to trust it (address, job token, TLS pin), the
// job's stores, and the chaos draw. The app binary, as the function's custom
// runtime (cli/lambda_runtime.h), runs the worker until it has nothing to do
// or its deadline is near, then ends the invocation and closes its session:
// a frozen environment is never counted as a live worker.
//
// Lambda shows nothing of the process, so a worker's end is seen through its
// session (session_closed) and classified:
//   - closed between tasks: the invocation ended (kExited, status 0);
//   - closed while running a task: --chaos-kill if this invocation drew a
//     kill and its moment had come, else at the time limit if the
//     function's timeout had passed since the invoke, else a crash.
// Invoked RequestResponse (--invocation-type RequestResponse), Lambda's
// answer says which exactly (Sandbox.Timedout, Runtime.ExitError, an
// error of the worker) and is what is reported. An Event invocation that
// never shows up (lost in Lambda's queue) is reported lost once its timeout
// and a margin have passed.
//
// Throttling (429 TooManyRequestsException) and 5xx answers to Invoke are
// retried with backoff and jitter (util/aws_http.h), and counted for the
// summary. --workers bounds the concurrent invocations (the coordinator
// launches no more). on_coordinator tasks run beside the coordinator, in
// local processes (no time limit), through the local backend.
//
// Threads: a watchdog for lost Event invocations and, for RequestResponse,
// one thread per invocation in flight; all joined by shutdown(). Lock
// order: called with the coordinator's lock held (invocation_*), so events
// are reported with no lock of this backend held.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "backends/backend.h"
#include "backends/lambda_client.h"
#include "kappa/error.h"
#include "util/chaos.h"
#include "util/log.h"

namespace kappa::detail {

std::unique_ptr<Backend> make_local_backend(const BackendConfig& config, WorkerEvents* events);

namespace {

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// How long after its invoke an Event invocation that never closed a session
// counts as lost, beyond the function's timeout: Lambda's queue may hold it
// for a while, and a worker that died before it reached the coordinator (a
// start-up failure) is only noticed so.
constexpr double kLostMargin = 10;

class AwsBackend final : public Backend {
 public:
  AwsBackend(BackendConfig config, WorkerEvents* events)
      : config_(std::move(config)),
        events_(events),
        rng_(config_.seed ? config_.seed : std::random_device{}()) {
    if (config_.function.empty())
      throw Error("--backend aws needs --function NAME (the function APP deploy made)");
    // Its configuration: that it exists (a clear error now rather than at
    // the first invoke), and its timeout, the default time limit.
    nlohmann::json f = client_.get_function(config_.function);
    double timeout = f["Configuration"].value("Timeout", 0.0);
    time_limit_ = config_.time_limit_given ? config_.time_limit : timeout;
    if (config_.time_limit_given && timeout > 0 && config_.time_limit > timeout)
      spdlog::warn(
          "--time-limit {} s is longer than function {}'s timeout ({} s): Lambda ends "
          "invocations at {} s",
          config_.time_limit, config_.function, timeout, timeout);
    function_timeout_ = timeout > 0 ? timeout : time_limit_;
    spdlog::info("aws: function {} ({} MB, timeout {} s); invocations {}, time limit {} s",
                 config_.function, f["Configuration"].value("MemorySize", 0), function_timeout_,
                 config_.request_response ? "RequestResponse" : "Event", time_limit_);
    for (const char* var : {"KAPPA_JOB_TOKEN", "KAPPA_TLS_PIN", "KAPPA_TLS_CA"})
      if (const char* v = std::getenv(var); v && *v) trust_[var] = v;
    BackendConfig local = config_;
    local_ = make_local_backend(local, events);
    watchdog_ = std::thread([this] { watch(); });
  }
  ~AwsBackend() override {
    shutdown();
    // RequestResponse invocations end by themselves, once their workers'
    // sessions close (the server stops after shutdown()) or at their
    // deadline; no event is reported for them any more.
    for (Caller& c : callers_) c.thread.join();
  }

  void launch_worker(uint64_t worker_id, bool on_coordinator) override {
    if (on_coordinator) {
      {
        std::lock_guard lock(mu_);
        local_ids_.insert(worker_id);
      }
      return local_->launch_worker(worker_id, true);
    }
    Invocation inv;
    inv.launched = Clock::now();
    nlohmann::json payload = {{"worker_id", worker_id}, {"args", config_.worker_args}};
    for (const auto& [var, value] : trust_) payload["env"][var] = value;
    {
      std::lock_guard lock(mu_);
      if (stopping_) throw Error("the aws backend is shutting down");
      if (config_.chaos_kill > 0 &&
          std::uniform_real_distribution<>(0, 1)(rng_) < config_.chaos_kill) {
        // A random moment of the invocation (util/chaos.h).
        double span = chaos_kill_span(mean_invocation_, time_limit_, 0.05);
        inv.chaos_after = std::uniform_real_distribution<>(0, span)(rng_);
        payload["chaos_kill_after"] = *inv.chaos_after;
      }
      invocations_[worker_id] = inv;
      ++launched_;
    }
    if (!config_.request_response) {
      try {
        client_.invoke(config_.function, payload.dump(), /*event=*/true, &throttled_);
      } catch (...) {
        std::lock_guard lock(mu_);
        invocations_.erase(worker_id);
        ++failed_invokes_;
        throw;
      }
      return;
    }
    std::lock_guard lock(mu_);
    // Threads of invocations that have ended are joined as new ones start:
    // at most about --workers of them are alive at a time.
    std::erase_if(callers_, [](Caller& c) {
      if (!c.done->load()) return false;
      c.thread.join();
      return true;
    });
    auto done = std::make_shared<std::atomic<bool>>(false);
    callers_.push_back({std::thread([this, worker_id, done, body = payload.dump()] {
                          call(worker_id, body);
                          done->store(true);
                        }),
                        done});
  }

  void invocation_started(uint64_t worker_id) override {
    std::unique_lock lock(mu_);
    if (local_ids_.count(worker_id)) {
      lock.unlock();
      return local_->invocation_started(worker_id);
    }
    if (auto it = invocations_.find(worker_id); it != invocations_.end()) it->second.busy = true;
  }

  void invocation_ended(uint64_t worker_id) override {
    std::unique_lock lock(mu_);
    if (local_ids_.count(worker_id)) {
      lock.unlock();
      return local_->invocation_ended(worker_id);
    }
    if (auto it = invocations_.find(worker_id); it != invocations_.end()) it->second.busy = false;
  }

  void kill_worker(uint64_t worker_id, WorkerExit::Cause why) override {
    std::unique_lock lock(mu_);
    if (local_ids_.count(worker_id)) {
      lock.unlock();
      return local_->kill_worker(worker_id, why);
    }
    // An invocation cannot be killed from outside: it ends at its deadline.
    // The coordinator has counted it gone; its session is refused from now.
    spdlog::warn("aws: worker {} is {}; its invocation ends at the function's timeout", worker_id,
                 cause_name(why));
    invocations_.erase(worker_id);
  }

  double time_limit(bool on_coordinator) const override { return on_coordinator ? 0 : time_limit_; }

  std::optional<WorkerExit> session_closed(uint64_t worker_id) override {
    std::lock_guard lock(mu_);
    if (local_ids_.count(worker_id)) return std::nullopt;  // its process is watched
    auto it = invocations_.find(worker_id);
    if (it == invocations_.end()) return std::nullopt;  // reported already
    Invocation& inv = it->second;
    double lived = std::chrono::duration<double>(Clock::now() - inv.launched).count();
    mean_invocation_ = mean_invocation_ == 0 ? lived : 0.9 * mean_invocation_ + 0.1 * lived;
    WorkerExit e;
    if (inv.chaos_after && lived >= *inv.chaos_after) {
      e.cause = WorkerExit::Cause::kChaosKill;
      e.signal = SIGKILL;
    } else if (!inv.busy) {
      e.cause = WorkerExit::Cause::kExited;
    } else if (lived >= function_timeout_ - 0.25) {
      e.cause = WorkerExit::Cause::kTimeLimit;
    } else {
      e.cause = WorkerExit::Cause::kCrashed;
    }
    // Invoked RequestResponse, Lambda's answer tells a death exactly; a
    // normal end needs no wait for it.
    if (config_.request_response && e.cause != WorkerExit::Cause::kExited) {
      inv.closed = true;
      return std::nullopt;
    }
    count(e);
    invocations_.erase(it);
    return e;
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    local_->shutdown();
  }

  uint64_t chaos_kills() const override {
    std::lock_guard lock(mu_);
    return chaos_kills_ + local_->chaos_kills();
  }

  // What only this backend knows: how ends of tasks' invocations were
  // classified is in the coordinator's count of worker deaths (a session
  // closed after a task was handed over, or parked, is no death).
  std::string summary() const override {
    std::lock_guard lock(mu_);
    std::string s = "lambda: " + std::to_string(launched_) + " invocation" +
                    (launched_ == 1 ? "" : "s") + " of " + config_.function;
    std::string parts;
    auto part = [&](uint64_t n, const char* what) {
      if (n) parts += (parts.empty() ? "" : ", ") + std::to_string(n) + " " + what;
    };
    part(throttled_, "throttled answers (429) retried");
    part(failed_invokes_, "invokes failed");
    part(lost_, "never reached the coordinator");
    part(sandbox_timeouts_, "timed out (Sandbox.Timedout)");
    part(exit_errors_, "died (Runtime.ExitError)");
    part(worker_errors_, "failed in the worker");
    if (!parts.empty()) s += " (" + parts + ")";
    return s;
  }

 private:
  struct Invocation {
    Clock::time_point launched;
    std::optional<double> chaos_after;  // seconds into the invocation
    bool busy = false;                  // running a task
    bool closed = false;                // its session closed (RequestResponse: answer pending)
  };

  void count(const WorkerExit& e) {  // mu_ held
    if (e.cause == WorkerExit::Cause::kChaosKill) ++chaos_kills_;
  }

  // A RequestResponse invocation, from its own thread: Lambda's answer says
  // how it ended.
  void call(uint64_t worker_id, const std::string& body) {
    WorkerExit e;
    try {
      LambdaInvokeResult r = client_.invoke(config_.function, body, /*event=*/false, &throttled_);
      if (!r.function_error.empty()) {
        nlohmann::json doc = nlohmann::json::parse(r.payload, nullptr, false);
        std::string type = doc.is_object() ? doc.value("errorType", "") : "";
        std::string message = doc.is_object() ? doc.value("errorMessage", "") : r.payload;
        if (type == "Sandbox.Timedout") {
          e.cause = WorkerExit::Cause::kTimeLimit;
        } else if (type == "Runtime.ExitError" &&
                   message.find("signal: killed") != std::string::npos) {
          e.cause = WorkerExit::Cause::kCrashed;
          e.signal = SIGKILL;
        } else {
          e.cause = WorkerExit::Cause::kExited;
          e.status = 1;
        }
        if (e.cause != WorkerExit::Cause::kTimeLimit)
          spdlog::warn("aws: worker {}'s invocation failed: {}: {}", worker_id, type, message);
        std::lock_guard lock(mu_);
        ++(type == "Sandbox.Timedout"    ? sandbox_timeouts_
           : type == "Runtime.ExitError" ? exit_errors_
                                         : worker_errors_);
      }
    } catch (const std::exception& ex) {
      spdlog::warn("aws: cannot invoke worker {}: {}", worker_id, ex.what());
      e.cause = WorkerExit::Cause::kLost;
      std::lock_guard lock(mu_);
      ++failed_invokes_;
    }
    {
      std::lock_guard lock(mu_);
      auto it = invocations_.find(worker_id);
      if (it == invocations_.end()) return;  // reported already
      const Invocation& inv = it->second;
      double lived = std::chrono::duration<double>(Clock::now() - inv.launched).count();
      if (inv.chaos_after && lived >= *inv.chaos_after && e.signal == SIGKILL)
        e.cause = WorkerExit::Cause::kChaosKill;  // the kill it drew
      count(e);
      invocations_.erase(it);
      if (stopping_) return;
    }
    events_->worker_exited(worker_id, e);
  }

  // Reports Event invocations that never closed a session.
  void watch() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::seconds(1));
      if (stopping_ || config_.request_response) continue;
      auto limit = seconds(function_timeout_ + kLostMargin);
      std::vector<uint64_t> lost;
      for (auto it = invocations_.begin(); it != invocations_.end();) {
        if (Clock::now() - it->second.launched > limit) {
          lost.push_back(it->first);
          ++lost_;
          it = invocations_.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (uint64_t id : lost) {
        spdlog::warn("aws: worker {} never reached the coordinator: lost", id);
        events_->worker_exited(id, WorkerExit{WorkerExit::Cause::kLost});
      }
      lock.lock();
    }
  }

  BackendConfig config_;
  WorkerEvents* events_;
  LambdaClient client_;
  std::map<std::string, std::string> trust_;  // token and TLS trust, sent in every payload
  double time_limit_ = 0, function_timeout_ = 0;
  std::unique_ptr<Backend> local_;  // on_coordinator workers
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Invocation> invocations_;
  std::set<uint64_t> local_ids_;
  std::mt19937_64 rng_;
  double mean_invocation_ = 0;
  bool stopping_ = false;
  struct Caller {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Caller> callers_;  // RequestResponse invocations in flight (or just ended)
  std::atomic<uint64_t> throttled_{0};
  uint64_t launched_ = 0, chaos_kills_ = 0, lost_ = 0, failed_invokes_ = 0;
  // RequestResponse: what Lambda's answers said.
  uint64_t sandbox_timeouts_ = 0, exit_errors_ = 0, worker_errors_ = 0;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Backend> make_aws_backend(const BackendConfig& config, WorkerEvents* events) {
  return std::make_unique<AwsBackend>(config, events);
}

}  // namespace kappa::detail
