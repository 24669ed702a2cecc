// Word count by hand: the baseline of examples/wordcount (bench/baselines/baseline.h).
// The same kernel (wordcount_kernel.h) over the same byte ranges; the ranges
// are dealt to the workers by size, each worker sends its table back through
// its pipe as "word<TAB>count" lines, and the parent merges and ranks them.
//
// Event: "paths" (required here: generate the text with the example first),
// "top", "chunk_mb", and "output_file" (where to write the full counts' TSV;
// none by default). Result: "words", "distinct", "top", "files", "bytes".
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "baseline.h"
#include "wordcount/wordcount_kernel.h"

namespace {

using kappa_examples::FileRange;
using Row = std::pair<std::string, uint64_t>;

nlohmann::json run(const nlohmann::json& event, int procs) {
  std::vector<std::string> files =
      kappa_examples::list_files(event.at("paths").get<std::vector<std::string>>());
  uint64_t chunk = std::max<uint64_t>(1, uint64_t(event.value("chunk_mb", 64.0) * double(1 << 20)));
  std::vector<FileRange> ranges = kappa_examples::split_ranges(files, chunk);

  // Largest first to the least loaded worker.
  std::vector<std::vector<FileRange>> shares(static_cast<size_t>(procs));
  std::vector<uint64_t> load(static_cast<size_t>(procs));
  std::vector<FileRange> by_size = ranges;
  std::stable_sort(by_size.begin(), by_size.end(),
                   [](const FileRange& a, const FileRange& b) { return a.size() > b.size(); });
  for (const FileRange& r : by_size) {
    size_t w = size_t(std::min_element(load.begin(), load.end()) - load.begin());
    shares[w].push_back(r);
    load[w] += r.size();
  }

  auto count = [&](int w) {
    wordcount::WordCounter counter;
    for (const FileRange& r : shares[size_t(w)]) {
      wordcount::RangeScan scan(r, &counter);
      while (scan.step()) {
      }
    }
    std::string out;
    for (const auto& [word, n] : counter.counts()) {
      out += word;
      out += '\t';
      out += std::to_string(n);
      out += '\n';
    }
    return out;
  };
  wordcount::Counts merged;
  for (const std::string& table : kappa_baselines::run_forked(procs, count)) {
    size_t pos = 0;
    while (pos < table.size()) {
      size_t tab = table.find('\t', pos), nl = table.find('\n', tab);
      merged[table.substr(pos, tab - pos)] += std::stoull(table.substr(tab + 1, nl - tab - 1));
      pos = nl + 1;
    }
  }

  uint64_t total = 0, bytes = 0;
  for (const auto& [word, n] : merged) total += n;
  for (const FileRange& r : ranges) bytes += r.size();
  std::vector<Row> all = wordcount::ranked(std::vector<Row>(merged.begin(), merged.end()));
  std::string tsv = wordcount::to_tsv(all);
  if (event.contains("output_file")) {
    std::string path = event["output_file"].get<std::string>();
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(tsv.data(), 1, tsv.size(), f) != tsv.size() || std::fclose(f) != 0)
      throw std::runtime_error("cannot write " + path);
  }

  nlohmann::json out;
  out["words"] = total;
  out["distinct"] = all.size();
  out["top"] = nlohmann::json::array();
  for (size_t i = 0; i < std::min<size_t>(event.value("top", 10), all.size()); ++i)
    out["top"].push_back({all[i].first, all[i].second});
  out["files"] = files.size();
  out["bytes"] = bytes;
  return out;
}

}  // namespace

int main(int argc, char** argv) { return kappa_baselines::baseline_main(argc, argv, run); }
