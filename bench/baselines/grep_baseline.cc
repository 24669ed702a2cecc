// Parallel grep's hand-written baseline (examples/grep): the same event, the
// same kernel, the same answer fields.
//
//   grep_baseline --procs 1 --event '{"paths": ["logs/"], "pattern": "time(out)?"}'
//
// --procs 1 scans each file whole, in this process. --procs N cuts the files
// into chunks of chunk_mb as the app does and forks N workers, worker k
// taking chunks k, k+N, ...; a worker completes a chunk's last line by
// reading past the chunk's end itself (where the app's tasks ask their
// neighbour), and sends its results back through its pipe. Prints the
// answer ("matching_lines", "lines", "crc32"), "files", "chunks" and
// "seconds"; the full output is not written anywhere.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "baseline.h"
#include "grep/grep_kernel.h"

namespace {

using kappa_examples::FileRange;
using namespace kappa_examples::grep;

void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }

uint64_t get_u64(const std::string& in, size_t& at) {
  if (at + 8 > in.size()) throw std::runtime_error("a worker's result is cut short");
  uint64_t v;
  std::memcpy(&v, in.data() + at, 8);
  at += 8;
  return v;
}

// A worker's results, for the pipe: per range its newline count, its number
// of matches, then each match's line and length-prefixed text.
std::string encode(const std::vector<RangeResult>& results) {
  std::string out;
  for (const RangeResult& r : results) {
    put_u64(out, r.newlines);
    put_u64(out, r.matches.size());
    for (const Match& m : r.matches) {
      put_u64(out, m.line);
      put_u64(out, m.text.size());
      out += m.text;
    }
  }
  return out;
}

std::vector<RangeResult> decode(const std::string& in, size_t ranges) {
  std::vector<RangeResult> results(ranges);
  size_t at = 0;
  for (RangeResult& r : results) {
    r.newlines = get_u64(in, at);
    r.matches.resize(get_u64(in, at));
    for (Match& m : r.matches) {
      m.line = get_u64(in, at);
      uint64_t n = get_u64(in, at);
      if (at + n > in.size()) throw std::runtime_error("a worker's result is cut short");
      m.text.assign(in, at, n);
      at += n;
    }
  }
  return results;
}

nlohmann::json run(const nlohmann::json& event, int procs) {
  Event ev = parse_event(event);
  Matcher(ev.pattern);  // a bad regex fails here
  std::vector<std::string> files = kappa_examples::list_files(ev.paths);
  std::vector<FileRange> ranges;
  std::vector<RangeResult> results;
  if (procs == 1) {
    ranges = kappa_examples::split_ranges(files, uint64_t{1} << 62);  // each file whole
    for (const FileRange& r : ranges) results.push_back(scan_range(r, ev.pattern));
  } else {
    ranges = kappa_examples::split_ranges(files, ev.chunk_bytes);
    std::vector<std::string> outs = kappa_baselines::run_forked(procs, [&](int k) {
      std::vector<RangeResult> mine;
      for (size_t i = size_t(k); i < ranges.size(); i += size_t(procs))
        mine.push_back(scan_range(ranges[i], ev.pattern));
      return encode(mine);
    });
    results.resize(ranges.size());
    for (int k = 0; k < procs; ++k) {
      size_t mine =
          ranges.size() > size_t(k) ? (ranges.size() - size_t(k) - 1) / size_t(procs) + 1 : 0;
      std::vector<RangeResult> got = decode(outs[size_t(k)], mine);
      for (size_t j = 0; j < mine; ++j) results[size_t(k) + j * size_t(procs)] = std::move(got[j]);
    }
  }
  std::string text;
  nlohmann::json out = merge(ranges, results, ev.max_lines, &text);
  out["files"] = files.size();
  out["chunks"] = ranges.size();
  return out;
}

}  // namespace

int main(int argc, char** argv) { return kappa_baselines::baseline_main(argc, argv, run); }
