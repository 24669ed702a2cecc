// The hashtags example (examples/hashtags/hashtags.cc) without Kappa: the
// same kernel, the same event and the same answer fields.
//
//   hashtags_baseline --procs 1 --event '{"input": "posts.jsonl", "window_s": 60}'
//   hashtags_baseline --procs 2 --event '{"input": "posts.jsonl", "window_s": 60}'
//   hashtags_baseline --event '{"posts": 3000000, "write": "posts.jsonl"}'
//
// --procs 1 reads the input in one process. --procs N cuts the file into N
// ranges of whole lines (the generated stream into N ranges of posts); a
// forked worker counts each and sends its counts per window back through a
// pipe, as JSON; the parent merges them in stream order (checking that the
// input is ordered by window, as the app does) and ranks each window.
//
// With "write": FILE in the event, it writes the posts the app would
// generate for the same "posts" and "rate" to FILE (JSON lines) and prints
// {"written": FILE, "posts": N, "bytes": B}: the benchmark's input.
#include "baseline.h"
#include "hashtags/hashtags_kernel.h"

namespace {

using hashtags_kernel::Counts;

constexpr uint64_t kBlock = 4 << 20;

Counts count_part(const nlohmann::json& event, int part, int parts) {
  int64_t window_s = std::max<int64_t>(1, event.value("window_s", int64_t{10}));
  std::string input = event.value("input", std::string());
  Counts all;
  if (!input.empty()) {
    kappa_examples::FileRange r = hashtags_kernel::line_ranges(input, parts)[size_t(part)];
    for (uint64_t at = r.begin; at < r.end;) {
      std::string lines = hashtags_kernel::read_lines(input, at, std::min(kBlock, r.end - at), &at);
      if (lines.empty()) break;
      all.append(hashtags_kernel::count_lines(lines, window_s));
    }
  } else {
    hashtags_kernel::Generator gen(hashtags_kernel::GenOptions::from_event(event));
    uint64_t n = gen.options().posts;
    uint64_t begin = n * uint64_t(part) / uint64_t(parts),
             end = n * uint64_t(part + 1) / uint64_t(parts);
    std::string lines;
    for (uint64_t i = begin; i < end; i += 20000) {
      lines.clear();
      gen.append(lines, i, std::min(end, i + 20000));
      all.append(hashtags_kernel::count_lines(lines, window_s));
    }
  }
  return all;
}

nlohmann::json run(const nlohmann::json& event, int procs) {
  if (event.contains("write")) {
    std::string path = event["write"].get<std::string>();
    hashtags_kernel::Generator gen(hashtags_kernel::GenOptions::from_event(event));
    gen.write(path);
    return {{"written", path},
            {"posts", gen.options().posts},
            {"bytes", std::filesystem::file_size(path)}};
  }
  int64_t window_s = std::max<int64_t>(1, event.value("window_s", int64_t{10}));
  size_t top = size_t(std::max<int64_t>(0, event.value("top", int64_t{5})));
  Counts all;
  if (procs <= 1) {
    all = count_part(event, 0, 1);
  } else {
    std::vector<std::string> outs = kappa_baselines::run_forked(
        procs, [&](int i) { return count_part(event, i, procs).to_json().dump(); });
    for (const std::string& out : outs) all.append(Counts::from_json(nlohmann::json::parse(out)));
  }
  return hashtags_kernel::result_json(all, window_s, top);
}

}  // namespace

int main(int argc, char** argv) { return kappa_baselines::baseline_main(argc, argv, run); }
