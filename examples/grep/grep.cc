// Parallel grep on Kappa: the lines of the user's files that match a regex
// (RE2) or a fixed string, with file and line number, in input order.
//
//   grep run --event '{"paths": ["logs/", "notes.txt"], "pattern": "time(out)?"}'
//   cat kappa-data/grep/matches.txt        # every matching line, as grep -n
//
// 1. The handler lists the files (a folder: every regular file under it, in
//    path order) and cuts each into chunks of chunk_mb.
// 2. map_spawn starts one task per chunk. A task owns the lines that start
//    in its chunk and reads only its chunk's bytes, a block at a time,
//    checkpointing between blocks (the file is reopened for every read, so
//    no descriptor crosses a pause point).
// 3. Neighbours exchange their boundary through a queue, one per pair of
//    consecutive chunks of a file, used only when a line crosses the
//    boundary: the right task sends its leading partial line (the bytes up
//    to its first '\n') to the left task, which completes its last line with
//    them and matches it; the right task skips that partial line. So a match
//    across a boundary is found once, by the task where its line starts. A
//    chunk with no '\n' at all (a line longer than a chunk) sends its whole
//    bytes plus what its own right neighbour sent: the pieces chain leftward
//    to the line's start. Messages only flow right to left, so nobody waits
//    in a cycle.
// 4. Line numbers: each task counts its lines from its chunk's start and
//    returns its chunk's number of '\n'; the handler adds the counts of the
//    file's earlier chunks (a prefix sum over the results it gathers anyway),
//    so no task waits for another to number its lines.
// 5. The handler writes the full output with kappa::put (exactly once) and
//    returns a summary.
//
// The full output is one object in the job's data store under the key
// "grep/matches.txt" (the event's "output" names another): one line
// "FILE:LINE:TEXT" per matching line, in input order (files in the order
// listed, lines in file order), as `grep -n` prints them for several files.
// `--data URL` names the store, file://./kappa-data by default.
//
// Event fields:
//   "paths"        (required) a file or folder, or a list of them
//   "pattern"      (required) an RE2 regex, or with "fixed" a literal string
//   "fixed"        false: the pattern is a literal string
//   "ignore_case"  false
//   "chunk_mb"     64: the largest chunk (MiB, may be fractional);
//                  "chunk_bytes" gives it in bytes instead (for tiny inputs)
//   "max_lines"    100: how many matching lines the result lists
//   "output"       "grep/matches.txt": the key of the full output
// Result fields: "matching_lines" (how many), "lines" (the first max_lines
// of the output, "FILE:LINE:TEXT", invalid UTF-8 replaced by U+FFFD),
// "crc32" (of the full output, to compare runs), "output" (its key),
// "files", "chunks", "seconds".
#include <kappa/kappa.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "grep_kernel.h"

namespace {

using kappa_examples::FileRange;
using kappa_examples::read_at;
using namespace kappa_examples::grep;

// One chunk's task: its range, and its queues to its neighbours (valid when
// the neighbour exists: the range does not start, or end, its file).
struct ChunkTask {
  FileRange range;
  Pattern pattern;
  bool has_left = false, has_right = false;
  kappa::Queue<std::string> to_left, from_right;

  template <class A>
  void serialize(A& a) {
    a(range, pattern, has_left, has_right, to_left, from_right);
  }
};

kappa::Task<RangeResult> scan_chunk(ChunkTask t) {
  const FileRange& r = t.range;
  // The byte before each boundary says whether a line crosses it; both
  // neighbours read the same byte, so they agree on whether to exchange.
  const bool cut_left = t.has_left && !line_starts_at(r.path, r.begin);
  const bool cut_right = t.has_right && !line_starts_at(r.path, r.end);
  uint64_t first = r.begin, newlines = 0;
  if (cut_left) {
    // Our leading partial line belongs to the left neighbour: send it.
    uint64_t nl = r.end;
    for (uint64_t p = r.begin; p < r.end && nl == r.end; p += kBlock) {
      nl = find_newline(r.path, p, std::min(r.end, p + kBlock));
      if (nl == std::min(r.end, p + kBlock)) nl = r.end;
      co_await kappa::maybe_checkpoint();
    }
    std::string head = read_at(r.path, r.begin, std::min(nl + 1, r.end) - r.begin);
    if (nl == r.end && cut_right) head += co_await t.from_right.dequeue();
    co_await t.to_left.enqueue(head);
    if (nl == r.end) co_return RangeResult{};  // no line starts here
    first = nl + 1;
    newlines = 1;
  }
  RangeScan scan(r, first, newlines);
  while (!scan.done()) {
    scan.step(t.pattern);
    co_await kappa::maybe_checkpoint();
  }
  if (!scan.tail.empty()) {
    std::string rest;  // empty: the file's last line, without '\n'
    if (cut_right) rest = co_await t.from_right.dequeue();
    scan.finish(t.pattern, rest);
  }
  co_return std::move(scan.result);
}

kappa::Task<nlohmann::json> handler(nlohmann::json event) {
  auto t0 = std::chrono::system_clock::now();  // the handler may resume elsewhere
  Event ev = parse_event(event);
  Matcher(ev.pattern);  // a bad regex fails here, before any task starts (not kept)
  std::vector<std::string> files = kappa_examples::list_files(ev.paths);
  std::vector<FileRange> ranges = kappa_examples::split_ranges(files, ev.chunk_bytes);

  std::vector<ChunkTask> tasks;
  for (size_t i = 0; i < ranges.size(); ++i) {
    ChunkTask t;
    t.range = ranges[i];
    t.pattern = ev.pattern;
    t.has_left = ranges[i].begin > 0;
    t.has_right = i + 1 < ranges.size() && ranges[i + 1].path == ranges[i].path;
    if (t.has_left) t.to_left = tasks.back().from_right;
    if (t.has_right) t.from_right = co_await kappa::make_queue<std::string>(1);
    tasks.push_back(std::move(t));
  }
  auto futures = co_await kappa::map_spawn(scan_chunk, tasks);
  std::string text;
  nlohmann::json out;
  {
    std::vector<RangeResult> results = co_await kappa::wait_all(futures);
    out = merge(ranges, results, ev.max_lines, &text);
  }  // the matches, now in text, are freed: put's checkpoint does not carry them twice
  co_await kappa::put(ev.output, text);
  out["output"] = ev.output;
  out["files"] = files.size();
  out["chunks"] = ranges.size();
  out["seconds"] = std::chrono::duration<double>(std::chrono::system_clock::now() - t0).count();
  co_return out;
}

}  // namespace

KAPPA_MAIN(handler)
