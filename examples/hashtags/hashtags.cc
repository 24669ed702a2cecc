// Streaming top hashtags per event-time window on Kappa.
//
//   hashtags run --event '{"input": "posts.jsonl", "window_s": 60, "top": 5}'
//   hashtags run --event '{"posts": 1000000}'        # posts generated as they stream
//   hashtags_baseline --event '{"posts": 3000000, "write": "posts.jsonl"}'  # write a file
//
// A producer cuts the stream into batches of whole lines and enqueues them on
// a bounded work queue; N workers dequeue the batches, parse every line with
// nlohmann::json and count the hashtags of each window; each sends its counts
// for the batch to an aggregator with an asynchronous enqueue (one per batch,
// not per post) and goes on with the next batch. The aggregator merges them
// and reports a window on stderr as soon as it is complete, while the stream
// runs:
//
//   hashtags: window 176722561 [1767225610 +10s): 20000 posts, #kapa 1480, #lo 731, ...
//
// A window is complete once every batch before the first one still being
// worked on is merged and those batches reach a later window: the input is
// ordered by window (examples/hashtags/hashtags_kernel.h says what a post, its
// hashtags and its window are), so no later batch can add to it. The batches
// are numbered by the producer; the aggregator tracks which it has merged, so
// its watermark is a fact about the stream, not about which worker ran what,
// and a worker restarted from a checkpoint changes nothing: each queue item is
// taken and given exactly once (DESIGN.md section 4).
//
// The producer and the aggregator run on the coordinator's machine
// (on_coordinator: no time limit, never killed by --chaos-kill). Generated
// posts travel through the work queue as lines. A batch of an input file
// travels as its byte range (path, begin, end), which the worker reads
// itself: the file must be readable at the same path by the workers (any
// local or shared-file-system run); the lines themselves through the queue
// cost a copy through the coordinator and, in each checkpoint that carries
// the enqueue, a compression (measured: +60% CPU at 256 KiB batches). End of
// stream: the producer enqueues one empty batch per worker; a
// worker that takes one sends an end mark and finishes; the aggregator
// finishes after N end marks.
//
// Event fields (all optional):
//   "input"     a JSON-lines file of posts; without it the producer generates
//               "posts" posts (default 200000) at "rate" posts per second of
//               event time (default 2000), as hashtags_baseline's "write" does
//   "window_s"  window length in seconds of event time (default 10)
//   "top"       hashtags listed per window (default 5)
//   "workers"   worker tasks (default 2)
//   "batch_kb"  size of a batch of lines (default 1024)
//   "queue"     capacity of the work queue in batches (default 2 * workers)
//   "report"    print each window's line on stderr (default true)
//
// Result fields: "posts" (total), "hashtags" (occurrences), "distinct" (tags),
// "windows": one {"window": w, "start": w * window_s, "posts", "hashtags",
// "distinct", "top": [[tag, count], ...] (most frequent first, ties by tag)}
// per window that has posts, in window order; and "workers", "batches",
// "seconds". Input that is not ordered by window, or a line that is not a
// post, fails the job with an error saying so.
#include <kappa/kappa.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "hashtags/hashtags_kernel.h"

namespace {

using hashtags_kernel::Counts;
using kappa::Queue;
using kappa::Task;

// A work item: a batch of whole lines of the stream, numbered from 0: either
// the lines themselves (generated posts) or where they lie in the input file
// (the worker reads them). A batch with id -1 ends the stream for the worker
// that takes it.
struct Batch {
  int64_t id = -1;
  std::string lines;
  std::string path;
  uint64_t begin = 0, end = 0;
  template <class A>
  void serialize(A& a) {
    a(id, lines, path, begin, end);
  }
};

// A worker's counts for one batch (batch -1: the worker's end mark), or the
// error it met parsing the batch.
struct Partial {
  int64_t batch = -1;
  Counts counts;
  std::string error;
  template <class A>
  void serialize(A& a) {
    a(batch, counts, error);
  }
};

struct Source {
  std::string input;  // "" : generated
  hashtags_kernel::GenOptions gen;
  uint64_t batch_bytes = 1 << 20;
  template <class A>
  void serialize(A& a) {
    a(input, gen.posts, gen.rate, gen.t0, gen.drift_s, batch_bytes);
  }
};

// ---------------------------------------------------------------- producer

// Enqueues the batch, then numbers the next one. Its lines are freed before
// the pause point: the call holds them, encoded, outside the arena (and in
// the checkpoint that carries the call), so the task's own memory need not
// hold them a second time. (Freed with swap: assigning an empty string would
// keep the buffer.)
Task<void> enqueue_batch(Queue<Batch> work, Batch& batch) {
  auto call = work.enqueue(batch);
  std::string().swap(batch.lines);
  co_await std::move(call);
  ++batch.id;
}

Task<int64_t> producer(Source src, Queue<Batch> work, int workers) {
  Batch batch;
  batch.id = 0;
  if (!src.input.empty()) {
    // Ranges of whole lines of about batch_bytes: only a few bytes around
    // each cut are read here.
    uint64_t size = std::filesystem::file_size(src.input);
    batch.path = src.input;
    while (batch.end < size) {
      batch.begin = batch.end;
      batch.end = hashtags_kernel::line_end_after(src.input, size, batch.begin + src.batch_bytes);
      co_await enqueue_batch(work, batch);
    }
  } else {
    hashtags_kernel::Generator gen(src.gen);
    uint64_t per_batch = std::max<uint64_t>(1, src.batch_bytes / 128);  // ~128 bytes a post
    for (uint64_t i = 0; i < src.gen.posts; i += per_batch) {
      gen.append(batch.lines, i, std::min(src.gen.posts, i + per_batch));
      co_await enqueue_batch(work, batch);
    }
  }
  int64_t batches = batch.id;
  Batch end;
  for (int w = 0; w < workers; ++w) co_await work.enqueue(end);
  co_return batches;
}

// ---------------------------------------------------------------- workers

// Never throws on bad input: it sends the error on, and goes on taking
// batches, so that the producer and the aggregator finish and the job fails
// with the error rather than waiting forever.
Task<int64_t> worker(int id, Queue<Batch> work, Queue<Partial> partials, int64_t window_s) {
  (void)id;
  int64_t batches = 0;
  for (;;) {
    Batch batch = co_await work.dequeue();
    if (batch.id < 0) break;
    Partial p;
    p.batch = batch.id;
    try {
      if (!batch.path.empty())
        batch.lines = kappa_examples::read_at(batch.path, batch.begin, batch.end - batch.begin);
      p.counts = hashtags_kernel::count_lines(batch.lines, window_s);
    } catch (const std::exception& e) {
      p.error = "batch " + std::to_string(batch.id) + ": " + e.what();
    }
    std::string().swap(batch.lines);  // the batch's buffer, freed before the pause
    // The counts travel in the call (and its checkpoint), not in the arena:
    // moved from, and freed before the pause.
    co_await partials.enqueue_async(std::move(p));
    ++batches;
  }
  Partial end;
  co_await partials.enqueue(end);
  co_return batches;
}

// ---------------------------------------------------------------- aggregator

struct BatchSpan {
  uint64_t posts = 0;
  int64_t first = 0, last = 0;
  bool ordered = true;
};

// A window's counts in the aggregator: by tag number (the aggregator numbers
// the tags it meets), so that merging a batch's counts writes a few pages of
// this vector and of no map: the aggregator's checkpoint at each dequeue
// carries the pages written since the last one, and this keeps them few.
struct OpenWindow {
  uint64_t posts = 0;
  std::vector<uint64_t> counts;
};

Task<nlohmann::json> aggregator(Queue<Partial> partials, int workers, int64_t window_s, int64_t top,
                                bool print) {
  std::map<int64_t, OpenWindow> open;                 // windows not reported yet
  std::unordered_map<std::string, uint32_t> numbers;  // every tag met: its number
  std::vector<std::string> tags;                      // and back
  nlohmann::json reported = nlohmann::json::array();
  uint64_t posts = 0, occurrences = 0;
  // The watermark: batches [0, next) are merged, and none after them may
  // hold a window before `high` (the last window of the last of them that
  // holds posts). Windows before `high` are complete.
  int64_t next = 0;
  std::map<int64_t, BatchSpan> ahead;  // merged batches from `next` on
  int64_t high = std::numeric_limits<int64_t>::min();
  std::string error;

  auto report = [&](int64_t upto) {
    while (!open.empty() && open.begin()->first < upto) {
      auto node = open.extract(open.begin());
      hashtags_kernel::WindowCount c;
      c.posts = node.mapped().posts;
      const std::vector<uint64_t>& counts = node.mapped().counts;
      for (size_t t = 0; t < counts.size(); ++t)
        if (counts[t]) c.tags.emplace(tags[t], counts[t]);
      nlohmann::json w = hashtags_kernel::window_json(node.key(), window_s, c, size_t(top));
      if (print)
        std::fprintf(stderr, "hashtags: %s\n", hashtags_kernel::report_line(w, window_s).c_str());
      reported.push_back(std::move(w));
    }
  };

  for (int ended = 0; ended < workers;) {
    Partial p = co_await partials.dequeue();
    if (p.batch < 0) {
      ++ended;
      continue;
    }
    if (!p.error.empty()) {
      if (error.empty()) error = p.error;
      continue;
    }
    BatchSpan span{p.counts.posts, p.counts.first_window, p.counts.last_window, p.counts.ordered};
    posts += span.posts;
    for (auto& [w, c] : p.counts.windows) {
      if (w < high && error.empty()) error = hashtags_kernel::unordered_input().what();
      OpenWindow& mine = open[w];
      mine.posts += c.posts;
      for (auto& [tag, n] : c.tags) {
        occurrences += n;
        auto it = numbers.find(tag);
        if (it == numbers.end()) {
          it = numbers.emplace(tag, uint32_t(tags.size())).first;
          tags.push_back(tag);
        }
        if (mine.counts.size() <= it->second) mine.counts.resize(tags.size() + 1024);
        mine.counts[it->second] += n;
      }
    }
    ahead[p.batch] = span;
    p = Partial();
    for (auto it = ahead.begin(); it != ahead.end() && it->first == next; it = ahead.erase(it)) {
      const BatchSpan& s = it->second;
      ++next;
      if (s.posts == 0) continue;
      if ((!s.ordered || s.first < high) && error.empty())
        error = hashtags_kernel::unordered_input().what();
      high = std::max(high, s.last);
    }
    if (error.empty()) report(high);
  }
  if (!error.empty()) throw std::runtime_error(error);
  report(std::numeric_limits<int64_t>::max());
  co_return nlohmann::json{{"posts", posts},
                           {"hashtags", occurrences},
                           {"distinct", tags.size()},
                           {"windows", reported}};
}

// ---------------------------------------------------------------- handler

Task<nlohmann::json> handler(nlohmann::json event) {
  auto t0 = std::chrono::system_clock::now();  // the handler may resume elsewhere
  Source src;
  src.input = event.value("input", std::string());
  src.gen = hashtags_kernel::GenOptions::from_event(event);
  src.batch_bytes = std::max<uint64_t>(1, event.value("batch_kb", uint64_t{1024})) << 10;
  int64_t window_s = std::max<int64_t>(1, event.value("window_s", int64_t{10}));
  int64_t top = std::max<int64_t>(0, event.value("top", int64_t{5}));
  int workers = std::max(1, event.value("workers", 2));
  uint64_t capacity = std::max<uint64_t>(1, event.value("queue", uint64_t(2 * workers)));
  bool print = event.value("report", true);

  Queue<Batch> work = co_await kappa::make_queue<Batch>(capacity);
  // Unbounded in practice: a worker never waits for the aggregator.
  Queue<Partial> partials = co_await kappa::make_queue<Partial>(uint64_t{1} << 40);
  kappa::SpawnOptions on_coordinator;
  on_coordinator.on_coordinator = true;
  on_coordinator.name = "aggregate";
  auto agg =
      co_await kappa::spawn(on_coordinator, aggregator, partials, workers, window_s, top, print);
  on_coordinator.name = "produce";
  auto prod = co_await kappa::spawn(on_coordinator, producer, src, work, workers);
  std::vector<int> ids;
  for (int w = 0; w < workers; ++w) ids.push_back(w);
  auto ws = co_await kappa::map_spawn(worker, ids, work, partials, window_s);

  int64_t batches = co_await prod;
  co_await kappa::wait_all(ws);
  nlohmann::json out = co_await agg;
  out["workers"] = workers;
  out["batches"] = batches;
  out["seconds"] = std::chrono::duration<double>(std::chrono::system_clock::now() - t0).count();
  co_return out;
}

}  // namespace

KAPPA_MAIN(handler)
