// Word count as MapReduce on Kappa: the project's main example.
//
//   wordcount run --event '{"paths": ["books/", "notes.txt"], "top": 10}'
//   wordcount run --event '{"files": 8, "mb_per_file": 8}'   # generated text
//   column -t kappa-data/wordcount/counts.tsv | head          # the full counts
//
// A word is a maximal run of ASCII letters [A-Za-z], lowercased; every other
// byte separates words (digits, punctuation, every non-ASCII byte: "café"
// counts "caf"). See wordcount_kernel.h, which the hand-written baseline
// (bench/baselines/wordcount_baseline.cc) shares.
//
// 1. The input: the files the event's "paths" name (a directory means every
//    regular file beneath it), or, without "paths", generated text (a
//    deterministic Zipf-like vocabulary) that an on_coordinator task writes
//    once unless it exists already: a side effect that must happen once.
// 2. Files are cut into byte ranges of at most "chunk_mb" MiB, and
//    consecutive ranges packed into map tasks of about that size. map_spawn
//    starts one mapper per group; it counts the words that start in its
//    ranges (a word crossing a range boundary is counted once, by the range
//    where it starts) into one partial table per reducer, checkpointing as it
//    goes (its tables live in its arena; files are reopened for every block,
//    so no descriptor crosses a pause point).
// 3. map_spawn starts the reducers; each receives every mapper's future and
//    merges its own partition.
// 4. The handler ranks the words, writes the full counts with kappa::put
//    (exactly once, even if its worker dies around the put) and returns a
//    summary.
//
// The full counts are one TSV object in the job's data store, under the key
// "wordcount/counts.tsv" (the event's "output" names another). `--data URL`
// names the store, file://./kappa-data by default, where a key is a file:
// ./kappa-data/wordcount/counts.tsv. Its first line is the header
// "word<TAB>count", then one "word<TAB>count" line per distinct word, by
// descending count, then by word (bytewise).
//
// Event fields (all optional):
//   "paths"        files and directories to count (default: generated text)
//   "top"          how many words the result lists (10)
//   "chunk_mb"     the largest byte range, and a map task's size, in MiB (64)
//   "reducers"     reduce tasks (4)
//   "output"       the key of the full counts ("wordcount/counts.tsv")
//   generated text only: "input" (its folder, default
//   $TMPDIR/kappa-wordcount-input), "files" (8), "mb_per_file" (8).
// Result: "words" (total), "distinct", "top" ([word, count] pairs, most
// frequent first, ties by word), "output", "files", "bytes", "mappers",
// "reducers", "seconds".
#include <kappa/kappa.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "wordcount_kernel.h"

namespace {

using kappa::Future;
using kappa::Task;

// ---------------------------------------------------------------- input

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A vocabulary of pronounceable words, ranked for a Zipf-like frequency.
std::vector<std::string> vocabulary(size_t n) {
  static const char* syllables[] = {"ka", "pa", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de",
                                    "ba", "gu", "fe", "ri", "no", "ze", "ha", "ly", "qu", "or"};
  std::vector<std::string> words;
  uint64_t s = 7;
  while (words.size() < n) {
    std::string w;
    for (uint64_t k = 2 + splitmix(s) % 3; k > 0; --k) w += syllables[splitmix(s) % 20];
    words.push_back(w);
  }
  return words;
}

// Writes `files` files of about `mb` MiB each; returns their paths.
std::vector<std::string> generate(std::string dir, int files, int mb) {
  std::filesystem::create_directories(dir);
  std::vector<std::string> words = vocabulary(20000);
  std::vector<double> cdf(words.size());
  double total = 0;
  for (size_t i = 0; i < words.size(); ++i) cdf[i] = total += 1.0 / double(i + 1);
  std::vector<std::string> paths;
  for (int f = 0; f < files; ++f) {
    std::string path = dir + "/part-" + std::to_string(f) + ".txt";
    paths.push_back(path);
    if (std::filesystem::exists(path) && std::filesystem::file_size(path) >= uint64_t(mb) << 20)
      continue;  // already generated (deterministic, so identical)
    std::string tmp = path + ".tmp";
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    uint64_t s = 1000 + uint64_t(f);
    size_t written = 0, target = size_t(mb) << 20;
    std::string line;
    while (written < target) {
      line.clear();
      for (int w = 0; w < 12; ++w) {
        double u = double(splitmix(s) >> 11) / double(uint64_t{1} << 53) * total;
        size_t i = size_t(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
        line += words[std::min(i, words.size() - 1)];
        line += w == 11 ? '\n' : ' ';
      }
      out << line;
      written += line.size();
    }
    out.close();
    std::filesystem::rename(tmp, path);
  }
  return paths;
}

Task<std::vector<std::string>> generate_task(std::string dir, int files, int mb) {
  co_return generate(dir, files, mb);
}

// ---------------------------------------------------------------- map

using kappa_examples::FileRange;
using wordcount::WordCounter;
using Row = std::pair<std::string, uint64_t>;
using Partitions = std::vector<std::vector<Row>>;  // one table per reducer

size_t partition_of(std::string_view word, size_t reducers) {
  return std::hash<std::string_view>{}(word) % reducers;
}

// Counts the words that start in the ranges.
Task<Partitions> mapper(std::vector<FileRange> ranges, int reducers) {
  WordCounter counter;
  for (const FileRange& range : ranges) {
    wordcount::RangeScan scan(range, &counter);
    while (scan.step()) co_await kappa::maybe_checkpoint();
  }
  Partitions parts(static_cast<size_t>(reducers));
  for (auto& [word, n] : counter.counts())
    parts[partition_of(word, size_t(reducers))].emplace_back(word, n);
  co_return parts;
}

// ---------------------------------------------------------------- reduce

Task<std::vector<Row>> reducer(int r, std::vector<Future<Partitions>> maps) {
  std::vector<Partitions> outputs = co_await kappa::wait_all(maps);
  wordcount::Counts merged;
  for (const Partitions& p : outputs)
    for (const auto& [word, n] : p[size_t(r)]) merged[word] += n;
  co_return std::vector<Row>(merged.begin(), merged.end());
}

// ---------------------------------------------------------------- handler

std::vector<std::string> input_paths(const nlohmann::json& event) {
  const nlohmann::json& paths = event["paths"];
  std::vector<std::string> out;
  if (paths.is_array())
    for (const auto& p : paths)
      if (p.is_string()) out.push_back(p.get<std::string>());
  if (!paths.is_array() || out.size() != paths.size() || out.empty())
    throw kappa::Error("event: \"paths\" must be a non-empty list of files and directories, not " +
                       paths.dump());
  return out;
}

Task<nlohmann::json> handler(nlohmann::json event) {
  auto t0 = std::chrono::system_clock::now();  // the handler may resume elsewhere
  size_t top = event.value("top", 10);
  int reducers = std::max(1, event.value("reducers", 4));
  double chunk_mb = event.value("chunk_mb", 64.0);
  uint64_t chunk = std::max<uint64_t>(1, uint64_t(chunk_mb * double(1 << 20)));
  std::string output = event.value("output", std::string("wordcount/counts.tsv"));

  std::vector<std::string> files;
  if (event.contains("paths")) {
    files = kappa_examples::list_files(input_paths(event));
  } else {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir =
        event.value("input", std::string(tmp && *tmp ? tmp : "/tmp") + "/kappa-wordcount-input");
    auto gen = co_await kappa::spawn(
        kappa::SpawnOptions{.name = "generate input", .on_coordinator = true}, generate_task, dir,
        event.value("files", 8), event.value("mb_per_file", 8));
    files = co_await gen;
  }

  std::vector<FileRange> ranges = kappa_examples::split_ranges(files, chunk);
  uint64_t bytes = 0;
  for (const FileRange& r : ranges) bytes += r.size();
  auto groups = wordcount::group_ranges(ranges, chunk);
  std::vector<Future<Partitions>> maps = co_await kappa::map_spawn(mapper, groups, reducers);
  std::vector<int> ids;
  for (int r = 0; r < reducers; ++r) ids.push_back(r);
  std::vector<Future<std::vector<Row>>> reduces = co_await kappa::map_spawn(reducer, ids, maps);
  std::vector<std::vector<Row>> tables = co_await kappa::wait_all(reduces);

  std::vector<Row> all;
  uint64_t total = 0;
  for (std::vector<Row>& t : tables) {
    for (Row& row : t) {
      total += row.second;
      all.push_back(std::move(row));
    }
  }
  all = wordcount::ranked(std::move(all));

  // The full counts, exactly once: a worker that dies before the put is
  // recorded leaves nothing visible, and one restarted after it does not
  // write again.
  co_await kappa::put(output, wordcount::to_tsv(all));

  nlohmann::json out;
  out["output"] = output;  // the key of the full counts in the data store
  out["words"] = total;
  out["distinct"] = all.size();
  out["top"] = nlohmann::json::array();
  for (size_t i = 0; i < std::min(top, all.size()); ++i)
    out["top"].push_back({all[i].first, all[i].second});
  out["files"] = files.size();
  out["bytes"] = bytes;
  out["mappers"] = groups.size();
  out["reducers"] = reducers;
  out["seconds"] = std::chrono::duration<double>(std::chrono::system_clock::now() - t0).count();
  co_return out;
}

}  // namespace

KAPPA_MAIN(handler)
