// TPC-H Query 1 by hand, beside examples/tpch_q1 (the same event, the same
// kernel, the same answer fields: "rows" and "lineitems"):
//
//   tpch_q1_baseline --procs 1 --event '{"paths": ["lineitem.tbl"]}'   one process
//   tpch_q1_baseline --procs 2 --event '{"paths": ["lineitem.tbl"]}'   two forked workers
//
// The input is cut into the app's ranges (chunk_mb); worker i scans ranges
// i, i + procs, ... and sends its aggregate back through a pipe as text; the
// parent merges them. Paths that do not exist are generated first, as the
// app does (in the timed run: generate beforehand to time the query alone).
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "baseline.h"
#include "tpch_q1/tpch_q1_kernel.h"

namespace {

using tpch_q1::Group;
using tpch_q1::Partial;

// One line per group: "flag status count qty base disc disc_price charge",
// then "rows N".
std::string encode(const Partial& p) {
  std::string s;
  for (const Group& g : p.groups) {
    s += g.returnflag;
    s += ' ';
    s += g.linestatus;
    for (__int128 v : {__int128(g.count), __int128(g.sum_qty), __int128(g.sum_base_price),
                       __int128(g.sum_disc), g.sum_disc_price, g.sum_charge})
      s += ' ' + tpch_q1::decimal(v, 0);
    s += '\n';
  }
  s += "rows " + std::to_string(p.rows) + "\n";
  return s;
}

__int128 parse_int128(const std::string& s) {
  __int128 v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

Partial decode(const std::string& text) {
  Partial p;
  std::istringstream in(text);
  std::string a, b;
  while (in >> a >> b) {
    if (a == "rows") {
      p.rows = std::stoll(b);
      continue;
    }
    std::string f[6];
    for (std::string& x : f) in >> x;
    Group g;
    g.returnflag = a[0];
    g.linestatus = b[0];
    g.count = int64_t(parse_int128(f[0]));
    g.sum_qty = int64_t(parse_int128(f[1]));
    g.sum_base_price = int64_t(parse_int128(f[2]));
    g.sum_disc = int64_t(parse_int128(f[3]));
    g.sum_disc_price = parse_int128(f[4]);
    g.sum_charge = parse_int128(f[5]);
    p.group(g.returnflag, g.linestatus).add(g);
  }
  return p;
}

nlohmann::json run(const nlohmann::json& event, int procs) {
  const tpch_q1::Options opt = tpch_q1::Options::from_event(event);
  for (const std::string& p : opt.paths)
    if (!std::filesystem::exists(p)) tpch_q1::write_lineitem(p, opt.scale, opt.seed);

  std::vector<std::string> files = kappa_examples::list_files(opt.paths);
  std::vector<kappa_examples::FileRange> ranges =
      kappa_examples::split_ranges(files, opt.chunk_bytes);
  const std::string cutoff = tpch_q1::cutoff_date(opt.delta);
  std::vector<std::string> outs = kappa_baselines::run_forked(procs, [&](int i) {
    Partial part;
    for (size_t r = size_t(i); r < ranges.size(); r += size_t(procs))
      part.merge(tpch_q1::scan_range(ranges[r], cutoff));
    return encode(part);
  });
  Partial total;
  for (const std::string& o : outs) total.merge(decode(o));

  nlohmann::json out = tpch_q1::q1_json(total);
  out["files"] = files.size();
  out["chunks"] = ranges.size();
  return out;
}

}  // namespace

int main(int argc, char** argv) { return kappa_baselines::baseline_main(argc, argv, run); }
