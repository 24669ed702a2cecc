// Word count as MapReduce on Kappa: the project's main example.
//
//   wordcount run --event '{"files": 8, "mb_per_file": 8}' --workers 2
//   column -t kappa-data/wordcount/counts.tsv | head    # the full counts
//
// 1. An on_coordinator task generates the input (deterministic Zipf-like
//    text) unless it exists already: a side effect that must happen once.
// 2. map_spawn starts one mapper per chunk. A mapper counts the words of its
//    byte range into one partial table per reducer, checkpointing as it goes
//    (its tables live in its arena; the file is reopened for every block, so
//    no descriptor crosses a pause point).
// 3. map_spawn starts the reducers; each receives every mapper's future and
//    merges its own partition.
// 4. The handler merges the reducers' tables, writes the full counts with
//    kappa::put (exactly once, even if its worker dies around the put) and
//    prints a summary: the number of words, of distinct words, the top words.
//
// The full counts are one TSV object in the job's data store, under the key
// "wordcount/counts.tsv" (the event's "output" names another). `--data URL`
// names the store, file://./kappa-data by default, where a key is a file:
// ./kappa-data/wordcount/counts.tsv. Its first line is the header
// "word<TAB>count", then one "word<TAB>count" line per distinct word, by
// descending count, then by word (bytewise). Words are separated by
// whitespace, so none holds a tab or a line break.
//
// Event fields (all optional): "input" (the input's folder, default
// $TMPDIR/kappa-wordcount-input), "files", "mb_per_file", "chunks_per_file",
// "reducers", "top" (how many words the summary lists), "output" (the key).
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
#include <unordered_map>
#include <vector>

namespace {

using kappa::Future;
using kappa::Task;
using Counts = std::map<std::string, uint64_t>;

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

struct Chunk {
  std::string path;
  uint64_t begin = 0, end = 0;
  template <class A>
  void serialize(A& a) {
    a(path, begin, end);
  }
};

// One table per reducer.
using Partitions = std::vector<Counts>;

// Words are separated by ASCII whitespace, as `wc -w` and `std::cin >> word`
// separate them: so no word holds a tab or a line break.
bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

size_t partition_of(const std::string& word, size_t reducers) {
  return std::hash<std::string>{}(word) % reducers;
}

// Counts the words that start in [begin, end) of the file.
Task<Partitions> mapper(Chunk chunk, int reducers) {
  std::unordered_map<std::string, uint64_t> counts;
  constexpr uint64_t kBlock = 1 << 20;
  std::string carry;  // a word cut by the block boundary
  std::string buf;
  uint64_t pos = chunk.begin;
  // A word that starts before `begin` belongs to the previous chunk.
  bool skip_first = chunk.begin > 0;
  if (skip_first) {
    std::ifstream in(chunk.path, std::ios::binary);
    in.seekg(int64_t(chunk.begin - 1));
    char c = 0;
    in.get(c);
    skip_first = !is_space(c);
  }
  for (;;) {
    if (pos >= chunk.end && carry.empty()) break;
    {
      std::ifstream in(chunk.path, std::ios::binary);  // reopened: no fd across a pause
      in.seekg(int64_t(pos));
      buf.resize(kBlock);
      in.read(buf.data(), int64_t(kBlock));
      buf.resize(size_t(in.gcount()));
    }
    if (buf.empty()) break;
    size_t i = 0;
    if (skip_first) {
      while (i < buf.size() && !is_space(buf[i])) ++i;
      skip_first = false;
    }
    // Words starting before this offset of the block are ours.
    const int64_t limit = int64_t(chunk.end) - int64_t(pos);
    for (; i < buf.size(); ++i) {
      char c = buf[i];
      if (is_space(c)) {
        if (!carry.empty()) {
          ++counts[carry];
          carry.clear();
        }
        if (int64_t(i) >= limit) break;
        continue;
      }
      if (carry.empty() && int64_t(i) >= limit) break;
      carry += c;
    }
    pos += buf.size();
    if (i < buf.size()) break;
    co_await kappa::maybe_checkpoint();
  }
  if (!carry.empty()) ++counts[carry];
  Partitions parts(static_cast<size_t>(reducers));
  for (auto& [word, n] : counts) parts[partition_of(word, size_t(reducers))][word] = n;
  co_return parts;
}

// ---------------------------------------------------------------- reduce

Task<Counts> reducer(int r, std::vector<Future<Partitions>> maps) {
  std::vector<Partitions> outputs = co_await kappa::wait_all(maps);
  Counts merged;
  for (const Partitions& p : outputs)
    for (const auto& [word, n] : p[size_t(r)]) merged[word] += n;
  co_return merged;
}

// ---------------------------------------------------------------- handler

Task<nlohmann::json> handler(nlohmann::json event) {
  auto t0 = std::chrono::system_clock::now();  // the handler may resume elsewhere
  const char* tmp = std::getenv("TMPDIR");
  std::string dir =
      event.value("input", std::string(tmp && *tmp ? tmp : "/tmp") + "/kappa-wordcount-input");
  int files = event.value("files", 8), mb = event.value("mb_per_file", 8);
  int chunks_per_file = event.value("chunks_per_file", 2), reducers = event.value("reducers", 4);
  size_t top = event.value("top", 10);
  std::string output = event.value("output", std::string("wordcount/counts.tsv"));

  auto gen =
      co_await kappa::spawn(kappa::SpawnOptions{.name = "generate input", .on_coordinator = true},
                            generate_task, dir, files, mb);
  std::vector<std::string> paths = co_await gen;

  std::vector<Chunk> chunks;
  for (const std::string& p : paths) {
    uint64_t size = std::filesystem::file_size(p);
    for (int c = 0; c < chunks_per_file; ++c)
      chunks.push_back({p, size * uint64_t(c) / uint64_t(chunks_per_file),
                        size * uint64_t(c + 1) / uint64_t(chunks_per_file)});
  }
  std::vector<Future<Partitions>> maps = co_await kappa::map_spawn(mapper, chunks, reducers);
  std::vector<int> ids;
  for (int r = 0; r < reducers; ++r) ids.push_back(r);
  std::vector<Future<Counts>> reduces = co_await kappa::map_spawn(reducer, ids, maps);
  std::vector<Counts> tables = co_await kappa::wait_all(reduces);

  std::vector<std::pair<std::string, uint64_t>> all;
  uint64_t total = 0;
  for (const Counts& t : tables) {
    for (const auto& entry : t) {
      all.emplace_back(entry.first, entry.second);
      total += entry.second;
    }
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });

  // The full counts, exactly once: a worker that dies before the put is
  // recorded leaves nothing visible, and one restarted after it does not
  // write again.
  std::string tsv = "word\tcount\n";
  for (const auto& [word, n] : all) {
    tsv += word;
    tsv += '\t';
    tsv += std::to_string(n);
    tsv += '\n';
  }
  co_await kappa::put(output, tsv);

  nlohmann::json out;
  out["output"] = output;  // the key of the full counts in the data store
  out["words"] = total;
  out["distinct"] = all.size();
  for (size_t i = 0; i < std::min(top, all.size()); ++i)
    out["top"].push_back({all[i].first, all[i].second});
  out["mappers"] = chunks.size();
  out["reducers"] = reducers;
  out["seconds"] = std::chrono::duration<double>(std::chrono::system_clock::now() - t0).count();
  co_return out;
}

}  // namespace

KAPPA_MAIN(handler)
