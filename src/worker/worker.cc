#include "worker/worker.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "kappa/pause.h"
#include "protocol/image_chain.h"
#include "rpc/client.h"
#include "runtime/key.h"
#include "runtime/runtime.h"
#include "runtime/task_host.h"
#include "stores/checkpoint_store.h"
#include "util/log.h"
#include "worker/handover_cost.h"
#include "worker/image_chain.h"
#include "worker/liveness.h"
#include "worker/self_chaos.h"

namespace kappa::detail {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Seconds as whole microseconds for CallInfo (saturated: statistics only).
uint32_t micros(double seconds) {
  return uint32_t(std::clamp(seconds * 1e6, 0.0, double(UINT32_MAX)));
}

// Whether the coordinator answers this call at once (its round trip measures
// the connection, not a wait).
bool answered_at_once(Op op) {
  return op == Op::kCheckpoint || op == Op::kYield || op == Op::kSpawn || op == Op::kMakeQueue;
}

// Unique per worker too: a worker that goes on running a task the
// coordinator has already parked (after an asynchronous call) must never
// overwrite the image of the attempt that replaced it.
std::string image_key(uint64_t task, uint64_t seqno, uint64_t worker) {
  char key[96];
  std::snprintf(key, sizeof key, "task-%" PRIu64 "/seq-%012" PRIu64 "-w%" PRIu64 ".kpk", task,
                seqno, worker);
  return key;
}

// Attaches `image` to the call: inline, or written to the store under
// `store_key` (the put's time goes to `cost`).
void attach_image(CallInfo& info, const ImageBuffer& image, const std::string& store_key,
                  CheckpointStore& store, HandoverCost& cost) {
  if (store_key.empty()) {
    info.image.assign(image.view());
    return;
  }
  auto t0 = Clock::now();
  store.put(store_key, image.view());
  double s = seconds_since(t0);
  cost.stored(image.size(), s);
  info.write_us = micros(s);
}

// A store's writer that adds the time spent in it to `seconds`.
class TimedWriter final : public ValueWriter {
 public:
  TimedWriter(std::unique_ptr<ValueWriter> to, double& seconds)
      : to_(std::move(to)), seconds_(seconds) {}
  void write(std::string_view bytes) override {
    auto t0 = Clock::now();
    to_->write(bytes);
    seconds_ += seconds_since(t0);
  }
  void commit() override {
    auto t0 = Clock::now();
    to_->commit();
    seconds_ += seconds_since(t0);
  }

 private:
  std::unique_ptr<ValueWriter> to_;
  double& seconds_;
};

// A store's reader that adds the time spent in it to `seconds`.
class TimedSource final : public ByteSource {
 public:
  TimedSource(std::unique_ptr<ValueReader> from, double& seconds)
      : from_(std::move(from)), seconds_(seconds) {}
  uint64_t size() const override { return from_->size(); }
  void read(uint64_t offset, char* dst, size_t bytes) override {
    auto t0 = Clock::now();
    from_->read(offset, dst, bytes);
    seconds_ += seconds_since(t0);
  }
  std::string_view peek(uint64_t offset, size_t bytes) override {
    return from_->peek(offset, bytes);
  }

 private:
  std::unique_ptr<ValueReader> from_;
  double& seconds_;
};

bool in_chain(std::string_view chain, const std::string& key) {
  for (const std::string& k : split_image_chain(chain))
    if (k == key) return true;
  return false;
}

// Persists checkpoint images and reports plain checkpoint() calls on a
// background thread, so that the task goes on computing meanwhile (DESIGN.md
// section 4: asynchronous checkpoints and enqueues). A queued checkpoint that
// has not started is replaced by the next call (only the latest state
// matters; the coordinator accepts a skipped seqno), except that its image is
// still stored if it is a link of the next one's chain; asynchronous enqueues are
// all sent, in order, at most 16 queued. Every other call waits for the
// uplink to drain first, so calls reach the coordinator in seqno order and
// only one thread uses the session at a time.
class Uplink {
 public:
  Uplink(CoordinatorClient& client, CheckpointStore& store, HandoverCost& cost)
      : client_(client), store_(store), cost_(cost), thread_([this] { run(); }) {}
  ~Uplink() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  /// A buffer to capture the next image into.
  std::unique_ptr<ImageBuffer> buffer() {
    std::lock_guard lock(mu_);
    if (spare_.empty()) return std::make_unique<ImageBuffer>();
    auto b = std::move(spare_.back());
    spare_.pop_back();
    return b;
  }

  /// Queues the call `info` with its image, which goes to the store under
  /// `store_key` (or inline if empty) first.
  void post(CallInfo info, std::unique_ptr<ImageBuffer> image, std::string store_key) {
    std::unique_lock lock(mu_);
    // A queued plain checkpoint is superseded by any later call; every other
    // call (an asynchronous enqueue) must reach the coordinator. Its image is
    // still needed if the new image is a delta of it.
    if (!queued_.empty() && queued_.back().info.op == Op::kCheckpoint && queued_.back().call) {
      Job& old = queued_.back();
      if (!old.store_key.empty() && in_chain(info.image_key, old.store_key)) {
        old.call = false;
      } else {
        spare_.push_back(std::move(old.image));
        queued_.pop_back();
      }
    }
    cv_.wait(lock, [&] { return queued_.size() < kMaxQueued; });  // backpressure
    queued_.push_back(Job{std::move(info), std::move(image), std::move(store_key)});
    cv_.notify_all();
  }

  enum class Drained {
    kOk,
    kAbandoned,  // the coordinator parked or abandoned the task: drop it
    kFailed,     // an asynchronous call failed, or the uplink did: see error
  };
  /// Waits until everything posted has been stored and acknowledged.
  Drained drain(std::string* error = nullptr) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return queued_.empty() && !busy(); });
    if (error) *error = error_;
    if (abandoned_) return Drained::kAbandoned;
    return error_.empty() ? Drained::kOk : Drained::kFailed;
  }

  /// What a drain would still have to do: images to store, calls to make.
  struct Pending {
    uint64_t bytes = 0, puts = 0, calls = 0;
  };
  Pending pending() {
    std::lock_guard lock(mu_);
    Pending p = busy_;
    for (const Job& j : queued_) add(p, j);
    return p;
  }

  /// Returns a buffer the caller used itself.
  void post_back(std::unique_ptr<ImageBuffer> image) {
    std::lock_guard lock(mu_);
    spare_.push_back(std::move(image));
  }

  /// True once an asynchronous call came back other than with a result,
  /// or failed: the task must stop at its next pause point.
  bool stopped() {
    std::lock_guard lock(mu_);
    return abandoned_ || !error_.empty();
  }

  void reset() {
    std::lock_guard lock(mu_);
    abandoned_ = false;
    error_.clear();
  }

 private:
  struct Job {
    CallInfo info;
    std::unique_ptr<ImageBuffer> image;
    std::string store_key;  // empty: the image travels inline
    bool call = true;       // false: only store the image (a link of a later chain)
  };

  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queued_.empty(); });
      if (stop_) return;
      Job job = std::move(queued_.front());
      queued_.pop_front();
      busy_ = {};
      add(busy_, job);
      lock.unlock();
      std::string error;
      bool abandoned = false;
      try {
        attach_image(job.info, *job.image, job.store_key, store_, cost_);
        if (job.call) {
          Op op = job.info.op;
          auto t0 = Clock::now();
          CallOutcome o = client_.call(std::move(job.info));
          if (answered_at_once(op) && o.kind == CallOutcome::Kind::kResult)
            cost_.called(seconds_since(t0));
          abandoned = o.kind != CallOutcome::Kind::kResult;
          // Nobody awaits an asynchronous call's result: its error fails the task.
          if (!abandoned && !o.error.empty())
            error = "an asynchronous call (seqno " + std::to_string(job.info.seqno) +
                    ") failed: " + o.error;
        }
      } catch (const std::exception& e) {
        error = e.what();
      }
      lock.lock();
      spare_.push_back(std::move(job.image));
      abandoned_ = abandoned_ || abandoned;
      if (error_.empty()) error_ = error;
      busy_ = {};
      cv_.notify_all();
    }
  }

  static void add(Pending& p, const Job& j) {
    if (!j.store_key.empty()) p.bytes += j.image->size(), ++p.puts;
    if (j.call) ++p.calls;
  }
  bool busy() const { return busy_.puts || busy_.calls || busy_.bytes; }

  CoordinatorClient& client_;
  CheckpointStore& store_;
  HandoverCost& cost_;
  std::mutex mu_;
  std::condition_variable cv_;
  static constexpr size_t kMaxQueued = 16;
  std::deque<Job> queued_;
  std::vector<std::unique_ptr<ImageBuffer>> spare_;
  Pending busy_;  // the job being stored and sent, if any
  bool stop_ = false, abandoned_ = false;
  std::string error_;
  std::thread thread_;
};

// How often the liveness thread tells the coordinator this worker is alive.
constexpr std::chrono::milliseconds kHeartbeatInterval{500};

// When a process that may live `lifetime` seconds from now must be gone
// (none: 0, no limit).
std::optional<Clock::time_point> end_of_life(double lifetime) {
  if (lifetime <= 0) return std::nullopt;
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(lifetime));
}

class Worker {
 public:
  explicit Worker(const WorkerOptions& o)
      : options_(o),
        end_of_life_(end_of_life(o.lifetime)),
        client_(o.coordinator, o.token, o.worker_id,
                ClientOptions{.tls = {.pin = o.tls_pin, .ca_pem = o.tls_ca},
                              // A platform invocation is billed while it
                              // waits: one started late (a retry of an
                              // asynchronous invoke) for a job that is over
                              // gives up sooner.
                              .connect_timeout =
                                  std::chrono::milliseconds(o.one_invocation ? 10000 : 30000)}),
        liveness_(client_, kHeartbeatInterval),
        store_(scope_store(open_store(o.store_url), o.job)),
        data_(open_store(o.data_url, {.shared = true})),
        key_(load_key()),
        chain_(o.codec, key_, o.incremental, std::nullopt,
               [this](const std::string& key) -> std::unique_ptr<ValueWriter> {
                 return std::make_unique<TimedWriter>(store_->put_stream(key), streamed_s_);
               }),
        uplink_(client_, *store_, cost_),
        chaos_(o.chaos_kill, o.chaos_seed, o.chaos_mean, o.chaos_marker, o.chaos_kill_after) {}

  ~Worker() {
    // The clock must no longer ask this worker for its margin.
    CheckpointClock::configure(std::chrono::duration<double>(options_.checkpoint_interval));
  }

  int run() {
    std::optional<Assignment> next;  // handed over with the last finish
    for (;;) {
      if (!next && leaving()) {
        spdlog::info("leaving: {}", CheckpointClock::handover_requested()
                                        ? "the platform asked for a hand-over (SIGUSR1)"
                                        : "this worker's lifetime is over");
        return 0;
      }
      Assignment a = next ? std::move(*next) : client_.next();
      next.reset();
      switch (a.kind) {
        case Assignment::Kind::kIdle:
          if (options_.one_invocation) return 0;  // nothing to do: end, unbilled
          continue;
        case Assignment::Kind::kShutdown:
          return 0;
        case Assignment::Kind::kStart:
        case Assignment::Kind::kResume:
          next = invocation(a);
          chaos_.invocation_ended();
      }
    }
  }

 private:
  // Seconds this process may still live (infinity: no lifetime).
  double life_left() const {
    if (!end_of_life_) return std::numeric_limits<double>::infinity();
    return std::chrono::duration<double>(*end_of_life_ - Clock::now()).count();
  }

  // The platform is about to end this process (SIGUSR1), or its lifetime is
  // nearly over: no new work. Near its end, as near an invocation's
  // deadline, a task would have to hand over at once.
  bool leaving() const {
    if (CheckpointClock::handover_requested()) return true;
    return end_of_life_ && life_left() <= std::min(2.0, options_.lifetime * 0.2);
  }

  // Reports the end of a task, and takes the next assignment with it unless
  // the worker is leaving.
  std::optional<Assignment> report_finish(const FinishInfo& info) {
    if (!leaving()) return client_.finish(info);
    client_.finish_last(info);
    return std::nullopt;
  }

  // What the running task's hand-over would have to do now (any thread).
  HandoverCost::Next next_handover() {
    HandoverCost::Next n;
    if (int slot = slot_.load(std::memory_order_relaxed); slot >= 0) {
      // The data pages, their page map entries (12 bytes a page) and the
      // arena's header: what a full image carries at most.
      uint64_t pages = Arena::top_pages_of(unsigned(slot));
      n.state_bytes = pages * (kPageBytes + 12) + (64 << 10);
    }
    n.inline_image = n.state_bytes <= kInlineImageBytes;
    n.chained = chained_.load(std::memory_order_relaxed);
    n.since_full_bytes = since_full_.load(std::memory_order_relaxed);
    n.cumulative = cumulative_.load(std::memory_order_relaxed);
    Uplink::Pending p = uplink_.pending();
    n.pending_bytes = p.bytes;
    n.pending_puts = p.puts;
    n.pending_calls = p.calls;
    return n;
  }

  // The chain's state, for next_handover on other threads.
  void note_chain() {
    chained_.store(chain_.chained(), std::memory_order_relaxed);
    since_full_.store(chain_.bytes_since_full(), std::memory_order_relaxed);
    cumulative_.store(chain_.links() >= ImageChain::kMaxLinks, std::memory_order_relaxed);
  }

  // Runs one assignment; returns the next one when the coordinator sent it
  // along with the task's finish.
  std::optional<Assignment> invocation(const Assignment& a) {
    Liveness::set_task(a.task_id);
    auto start = Clock::now();
    std::optional<Clock::time_point> deadline;
    // The invocation's time, within what is left of the process's.
    double time_left = a.time_left > 0 ? a.time_left : std::numeric_limits<double>::infinity();
    time_left = std::max(0.0, std::min(time_left, life_left()));
    if (std::isfinite(time_left))
      deadline = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(time_left));
    chaos_.invocation_started(std::isfinite(time_left) ? time_left : 0);
    if (a.task_id != cost_task_) {  // delta figures are per task
      cost_.task_started();
      cost_task_ = a.task_id;
    }
    // Hand over early enough to write a checkpoint and report it: the
    // margin comes from the measured cost of doing so (HandoverCost), asked
    // again as the task's state grows.
    CheckpointClock::configure(
        std::chrono::duration<double>(options_.checkpoint_interval), deadline,
        std::chrono::duration<double>(0), [this, time_left] {
          return std::chrono::duration<double>(cost_.margin_s(next_handover(), time_left));
        });
    Arena* arena = nullptr;
    // Whatever way the invocation ends, its arena is gone or going: the chain
    // stops tracking it before the slot can serve another task.
    struct EndChain {
      Worker& w;
      ~EndChain() {
        w.slot_.store(-1, std::memory_order_relaxed);
        w.chain_.end();
        w.note_chain();
      }
    } end_chain{*this};
    try {
      if (a.kind == Assignment::Kind::kStart) {
        chain_.begin();
        arena = start_task(reinterpret_cast<Trampoline>(code_address(a.trampoline)),
                           code_address(a.fn), a.args);
      } else if (a.image_key.empty()) {  // an inline full image
        chain_.begin();
        arena = restore_image(a.image, key_);
        deliver(arena, a.reply, a.error);
      } else {
        // Read by ranges, straight into the arena where the store allows:
        // no copy of the images in memory. An inline image with the chain is
        // a delta on top of its stored links.
        std::vector<std::string> keys = split_image_chain(a.image_key);
        std::vector<std::unique_ptr<ByteSource>> images;
        double read_s = 0;
        auto t0 = Clock::now();
        uint64_t stored_bytes = 0;
        for (const std::string& k : keys) {
          std::unique_ptr<ValueReader> stored = store_->open_value(k);
          if (!stored) throw Error("checkpoint image " + k + " is missing from " + store_->url());
          stored_bytes += stored->size();
          images.push_back(std::make_unique<TimedSource>(std::move(stored), read_s));
        }
        bool inline_top = !a.image.empty();
        if (inline_top) images.push_back(std::make_unique<MemorySource>(a.image));
        double open_s = seconds_since(t0);
        // The chain's last delta: what this task's next one may weigh.
        uint64_t last_delta = images.size() > 1 ? images.back()->size() : 0;
        std::vector<ByteSource*> links;
        for (auto& image : images) links.push_back(image.get());
        ChainInfo info;
        arena = restore_chain(std::span<ByteSource* const>(links), key_, &info);
        double restore_s = seconds_since(t0) - open_s - read_s;
        read_s += open_s;
        images.clear();
        chain_.begin(*arena, std::move(keys), info, inline_top);
        cost_.restored(Arena::top_pages_of(arena->slot()) * kPageBytes, stored_bytes, read_s,
                       restore_s);
        cost_.seed_delta(last_delta);
        deliver(arena, a.reply, a.error);
      }
      slot_.store(int(arena->slot()), std::memory_order_relaxed);
      note_chain();
    } catch (const std::exception& e) {
      if (arena) discard_task(arena);
      // The attempt passed the resumed call's pause point, if any.
      uint64_t passed = a.kind == Assignment::Kind::kResume ? a.seqno + 1 : 0;
      return report_finish(FinishInfo{options_.worker_id, a.task_id, passed, true, {}, e.what()});
    }
    return run_task(a.task_id, arena, deadline, time_left);
  }

  // Reports the end of the task once the uplink has drained; an
  // asynchronous call's failure becomes the task's.
  std::optional<Assignment> finish(uint64_t task_id, uint64_t passed, bool failed,
                                   std::string value, std::string error) {
    std::string why;
    switch (uplink_.drain(&why)) {
      case Uplink::Drained::kOk:
        return report_finish(FinishInfo{options_.worker_id, task_id, passed, failed,
                                        std::move(value), std::move(error)});
      case Uplink::Drained::kAbandoned:
        return std::nullopt;
      case Uplink::Drained::kFailed:
        return report_finish(FinishInfo{options_.worker_id, task_id, passed, true, {}, why});
    }
    return std::nullopt;
  }

  std::optional<Assignment> run_task(uint64_t task_id, Arena* arena,
                                     std::optional<Clock::time_point> deadline,
                                     double invocation_s) {
    uplink_.reset();
    std::string reply;  // the last call's result, read as the task resumes (deliver)
    for (;;) {
      bool done;
      uint64_t passed = arena->task().next_seqno;  // pause points passed so far
      try {
        done = resume_task(arena);
        passed = arena->task().next_seqno;
      } catch (const std::exception& e) {
        discard_task(arena);
        return finish(task_id, passed, true, {}, e.what());
      }
      if (done) {
        TaskOutcome out = finish_task(arena);
        return finish(task_id, passed, out.failed, std::move(out.value), std::move(out.error));
      }
      if (uplink_.stopped()) {
        // An asynchronous call was parked or abandoned (stop now), or failed
        // (the task fails, or the coordinator is gone: finish throws then).
        discard_task(arena);
        std::string why;
        if (uplink_.drain(&why) == Uplink::Drained::kFailed)
          return report_finish(FinishInfo{options_.worker_id, task_id, passed, true, {}, why});
        return std::nullopt;
      }
      PendingCall& call = pending_call(arena);
      const TaskState& t = arena->task();
      CallInfo info;
      info.worker_id = options_.worker_id;
      info.task_id = task_id;
      info.seqno = t.seqno;
      info.op = call.op;
      // The request leaves the arena before the image is taken: a task resumed
      // from this image gets the call's result and never sends it again (and
      // one resumed from an earlier image rebuilds it), so the image need not
      // carry it. A 1 MiB enqueue then writes a 1 MiB smaller image.
      if (arena->contains(call.request.data())) {
        info.request = call.request;  // a copy outside the arena
        ArenaScope scope(arena);
        std::string().swap(call.request);  // freed inside the arena
      } else {
        info.request = std::move(call.request);  // built on the heap: taken as is
      }
      if (info.op == Op::kGet) {  // served here: a read needs no coordinator
        std::string error;
        reply = read_data(info.request, &error);
        deliver(arena, reply, error);
        continue;
      }
      if (info.op == Op::kPut) {
        try {
          info.request = stage_put(info);
        } catch (const std::exception& e) {
          discard_task(arena);
          return finish(task_id, passed, true, {}, e.what());
        }
      }
      auto paused = Clock::now();
      double margin = 0;
      if (deadline) margin = cost_.margin_s(next_handover(), invocation_s);
      bool near_deadline =
          CheckpointClock::handover_requested() ||
          (deadline && paused >= *deadline - std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(margin)));
      std::unique_ptr<ImageBuffer> image = uplink_.buffer();
      ImageChain::Captured captured;
      streamed_s_ = 0;
      try {
        captured =
            chain_.capture(*arena, *image, image_key(task_id, info.seqno, options_.worker_id));
      } catch (const std::exception& e) {  // a streamed image's store failed
        uplink_.post_back(std::move(image));
        discard_task(arena);
        return finish(task_id, passed, true, {}, std::string("checkpoint failed: ") + e.what());
      }
      // A streamed image's time is capture and store at once: apart.
      double capture_s = seconds_since(paused) - streamed_s_;
      cost_.captured(captured.full, captured.raw_bytes, captured.image_bytes, capture_s);
      if (captured.stored) cost_.stored(captured.image_bytes, streamed_s_);
      info.image_bytes = captured.image_bytes;
      info.capture_us = micros(capture_s);
      if (captured.stored) info.write_us = micros(streamed_s_);  // else set as it is stored
      note_chain();
      info.image_key = captured.chain;
      // Streamed: in the store already; the call carries only the chain.
      if (captured.stored) captured.store_key.clear();
      if ((info.op == Op::kCheckpoint && !near_deadline) || call.async) {
        // Asynchronous: the task goes on while the image is stored and the
        // call reported. If the coordinator parks or abandons the task
        // meanwhile, the next synchronous call (or the end) drops it.
        if (info.op == Op::kCheckpoint) CheckpointClock::checkpoint_taken();
        uplink_.post(std::move(info), std::move(image), std::move(captured.store_key));
        deliver(arena, {}, {});
        continue;
      }
      bool handing_over = info.op == Op::kCheckpoint;
      if (handing_over) {
        info.op = Op::kYield;  // hand the task to a fresh invocation
        CheckpointClock::checkpoint_taken();
      }
      std::string why;
      switch (uplink_.drain(&why)) {
        case Uplink::Drained::kOk:
          break;
        case Uplink::Drained::kAbandoned:
          discard_task(arena);
          return std::nullopt;
        case Uplink::Drained::kFailed:
          discard_task(arena);
          return report_finish(FinishInfo{options_.worker_id, task_id, passed, true, {}, why});
      }
      if (!captured.stored) attach_image(info, *image, captured.store_key, *store_, cost_);
      uplink_.post_back(std::move(image));
      Op op = info.op;
      auto called = Clock::now();
      std::string_view shared;  // a large reply, read from where it arrived as the task resumes
      CallOutcome o = client_.call(std::move(info), &shared);
      // A yield is answered at once, by a relaunch elsewhere.
      if (answered_at_once(op) && (o.kind == CallOutcome::Kind::kResult || op == Op::kYield))
        cost_.called(seconds_since(called));
      if (handing_over && deadline)
        spdlog::debug(
            "handed over in {:.1f} ms ({} image, {} bytes), {:.1f} ms before the deadline; "
            "margin {:.1f} ms ({})",
            seconds_since(paused) * 1e3, captured.full ? "full" : "delta", captured.image_bytes,
            std::chrono::duration<double>(*deadline - Clock::now()).count() * 1e3, margin * 1e3,
            cost_.describe());
      if (o.kind != CallOutcome::Kind::kResult) {
        discard_task(arena);
        return std::nullopt;
      }
      reply = o.reply.take();
      deliver(arena, shared.empty() ? std::string_view(reply) : shared, o.error);
    }
  }

  // kGet: the object's bytes, or an error naming the key.
  std::string read_data(const std::string& request, std::string* error) {
    std::string key;
    try {
      key = decode<std::string>(request);
      if (std::optional<std::string> v = data_->get(key)) return std::move(*v);
      *error = "no object '" + key + "' in the data store " + data_->url();
    } catch (const std::exception& e) {
      *error = "cannot get '" + key + "' from the data store: " + e.what();
    }
    return {};
  }

  // kPut: the bytes go to a staging key of the job's own (the same for every
  // attempt of this call); the coordinator makes them visible under the key
  // when it records the call. Returns the request to send: key, staged key.
  std::string stage_put(const CallInfo& info) {
    auto [key, bytes] = decode<std::pair<std::string, std::string>>(info.request);
    std::string staged = put_staging_prefix(options_.job) + "t" + std::to_string(info.task_id) +
                         "-s" + std::to_string(info.seqno);
    try {
      data_->put(staged, bytes);
    } catch (const std::exception& e) {
      throw Error("the put of '" + key + "' failed: " + e.what());
    }
    return encode(std::make_pair(std::move(key), std::move(staged)));
  }

  WorkerOptions options_;
  // --lifetime, counted from before the connection (the platform's clock
  // runs meanwhile).
  std::optional<Clock::time_point> end_of_life_;
  CoordinatorClient client_;
  Liveness liveness_;  // after client_, which it uses
  std::unique_ptr<CheckpointStore> store_;
  std::unique_ptr<CheckpointStore> data_;  // put and get
  std::string key_;
  ImageChain chain_;  // the running task's images; after key_
  // The measured cost of a hand-over (before uplink_, which reports to it).
  HandoverCost cost_;
  uint64_t cost_task_ = 0;  // the task cost_'s delta figures are of
  // Read by the checkpoint clock's thread (next_handover): the running
  // task's arena slot (-1: none) and its chain's state.
  std::atomic<int> slot_{-1};
  std::atomic<bool> chained_{false};
  std::atomic<uint64_t> since_full_{0};
  std::atomic<bool> cumulative_{false};
  // Seconds the current capture spent writing a streamed image to the store.
  double streamed_s_ = 0;
  Uplink uplink_;  // after client_, store_ and cost_, which it uses
  // After client_: a kill after a delay counts from when the worker reached
  // the coordinator (one before would look like a worker that never started).
  SelfChaos chaos_;
};

void on_sigusr1(int) { CheckpointClock::hand_over_now(); }

}  // namespace

int run_worker(const WorkerOptions& options) {
  init_logging("worker " + std::to_string(options.worker_id));
  if (options.watch_parent) {
    // Die with the process that started this worker; if it is gone already,
    // its death was missed: end now.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != options.watch_parent) {
      spdlog::error("the process that started this worker ({}) is gone", options.watch_parent);
      return 1;
    }
  }
  runtime_init();
  install_crash_handlers();
  // SIGUSR1: the platform's notice that it will end this process soon.
  struct sigaction sa {};
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
  try {
    return Worker(options).run();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}

}  // namespace kappa::detail
