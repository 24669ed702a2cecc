// The work of the hashtags example, shared by the Kappa app
// (examples/hashtags/hashtags.cc) and its hand-written baseline
// (bench/baselines/hashtags_baseline.cc): generating posts, parsing JSON
// lines, counting hashtags per event-time window, merging and ranking. No
// Kappa dependency.
//
// A post is one JSON object per line:
//   {"id": 7, "ts": 1767225600, "user": "u12", "text": "so #Kapa and #lo_2026"}
//   {"id": 8, "ts": 1767225601, "user": "u3", "text": "...", "hashtags": ["kapa", "Lo"]}
// Its hashtags are the "hashtags" array when the post has one (each string,
// ASCII-lowercased, one leading '#' dropped, empty ones ignored), otherwise
// every '#' in "text" followed by a maximal run of [A-Za-z0-9_], lowercased
// (a '#' followed by nothing of the kind is no tag). Every occurrence counts.
// Its window is floor(ts / window_s) ("ts": seconds, an integer or not).
// Blank lines are skipped; any other line that is not such an object is an
// error naming the line.
//
// The input must be ordered by window (windows nondecreasing from line to
// line; the order within a window is free): this is what lets a window be
// reported as soon as the stream has moved past it. Counts check it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/inputs.h"

namespace hashtags_kernel {

// ---------------------------------------------------------------- generator

inline uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// What generated posts look like. Post i has ts = t0 + i / rate (so the
/// stream is ordered by time) and up to three hashtags drawn from a
/// Zipf-like popularity whose ranking drifts every `drift_s` seconds, so
/// successive windows have different top tags. Post i depends only on i and
/// the options: any range of posts can be generated on its own.
struct GenOptions {
  uint64_t posts = 200000;
  uint64_t rate = 2000;     // posts per second of event time
  int64_t t0 = 1767225600;  // 2026-01-01T00:00:00Z
  uint64_t drift_s = 7;

  static GenOptions from_event(const nlohmann::json& event) {
    GenOptions o;
    o.posts = event.value("posts", o.posts);
    o.rate = std::max<uint64_t>(1, event.value("rate", o.rate));
    return o;
  }
};

class Generator {
 public:
  explicit Generator(const GenOptions& o) : o_(o) {
    static const char* syllables[] = {"ka", "pa", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de",
                                      "ba", "gu", "fe", "ri", "no", "ze", "ha", "ly", "qu", "or"};
    for (uint64_t i = 0; i < kTags; ++i) {
      std::string t;
      for (uint64_t d = i + 20; d > 0; d /= 20) t += syllables[d % 20];
      if (i % 13 == 5) t += "_2026";
      tags_.push_back(t);
    }
    double total = 0;
    for (uint64_t i = 0; i < kTags; ++i) cdf_.push_back(total += 1.0 / double(i + 1));
  }

  /// Appends posts [begin, end) as JSON lines.
  void append(std::string& out, uint64_t begin, uint64_t end) const {
    static const char* words[] = {"the",    "stream", "is",   "late",  "again", "caf\xc3\xa9",
                                  "\"so\"", "good",   "C#",   "today", "with",  "# no",
                                  "news",   "from",   "here", "and",   "now",   "we"};
    for (uint64_t i = begin; i < end; ++i) {
      uint64_t s = 0x5eed0000 + i * 7919;
      int64_t ts = o_.t0 + int64_t(i / o_.rate);
      uint64_t shift = uint64_t(ts - o_.t0) / o_.drift_s * 3;
      nlohmann::ordered_json post;
      post["id"] = i;
      post["ts"] = ts;
      post["user"] = "u" + std::to_string(splitmix(s) % 5000);
      uint64_t r = splitmix(s) % 10;
      size_t ntags = r < 2 ? 0 : r < 6 ? 1 : r < 9 ? 2 : 3;
      std::vector<std::string> tags;
      for (size_t k = 0; k < ntags; ++k) {
        double u = double(splitmix(s) >> 11) / double(uint64_t{1} << 53) * cdf_.back();
        size_t rank = size_t(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
        std::string t = tags_[(std::min<size_t>(rank, kTags - 1) + shift) % kTags];
        if (splitmix(s) % 4 == 0) t[0] = char(t[0] - 'a' + 'A');
        tags.push_back(std::move(t));
      }
      bool as_array = splitmix(s) % 4 == 0;
      std::string text;
      size_t nwords = 3 + splitmix(s) % 8;
      for (size_t w = 0, k = 0; w < nwords || (!as_array && k < tags.size()); ++w) {
        if (!text.empty()) text += ' ';
        if (!as_array && k < tags.size() && (w >= nwords || splitmix(s) % 3 == 0))
          text += "#" + tags[k++];
        else
          text += words[splitmix(s) % (sizeof words / sizeof *words)];
      }
      post["text"] = text;
      if (as_array) post["hashtags"] = tags;
      out += post.dump();
      out += '\n';
    }
  }

  /// Writes all the posts to `path` (through a temporary file, renamed).
  void write(const std::string& path) const {
    std::string tmp = path + ".tmp";
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + tmp);
    std::string buf;
    for (uint64_t i = 0; i < o_.posts; i += 10000) {
      buf.clear();
      append(buf, i, std::min(o_.posts, i + 10000));
      f.write(buf.data(), int64_t(buf.size()));
    }
    f.close();
    if (!f) throw std::runtime_error("cannot write " + tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw std::runtime_error("cannot rename " + tmp + " to " + path);
  }

  const GenOptions& options() const { return o_; }

 private:
  static constexpr uint64_t kTags = 5000;
  GenOptions o_;
  std::vector<std::string> tags_;
  std::vector<double> cdf_;
};

// ---------------------------------------------------------------- reading

/// Whole lines of `path` from `offset`: about max_bytes of them (more when
/// one line is longer), ending after a '\n' or at the end of the file. Sets
/// `next` to the offset after them; returns "" at the end of the file.
inline std::string read_lines(const std::string& path, uint64_t offset, uint64_t max_bytes,
                              uint64_t* next) {
  std::string out = kappa_examples::read_at(path, offset, max_bytes);
  if (out.size() == max_bytes) {  // not at the end of the file: end after a line break
    size_t nl = out.rfind('\n');
    if (nl != std::string::npos) {
      out.resize(nl + 1);
    } else {  // one line longer than max_bytes: read on to its end
      for (;;) {
        std::string more = kappa_examples::read_at(path, offset + out.size(), max_bytes);
        size_t m = more.find('\n');
        if (m != std::string::npos) {
          out.append(more, 0, m + 1);
          break;
        }
        out += more;
        if (more.size() < max_bytes) break;
      }
    }
  }
  *next = offset + out.size();
  return out;
}

/// The offset just after the first line break at or after `at` - 1 in a
/// file of `size` bytes (`at` itself when it is 0 or at a line start; `size`
/// when no line break follows): where a range of whole lines cut near `at`
/// ends.
inline uint64_t line_end_after(const std::string& path, uint64_t size, uint64_t at) {
  while (at > 0 && at < size) {
    std::string b = kappa_examples::read_at(path, at - 1, 1 << 16);
    size_t nl = b.find('\n');
    if (nl != std::string::npos) return at - 1 + nl + 1;
    if (b.empty()) return size;
    at += b.size();
  }
  return std::min(at, size);
}

/// Cuts a file into `parts` ranges of whole lines, of about equal size.
inline std::vector<kappa_examples::FileRange> line_ranges(const std::string& path, int parts) {
  uint64_t size = std::filesystem::file_size(path);
  std::vector<uint64_t> cuts = {0};
  for (int p = 1; p < parts; ++p)
    cuts.push_back(
        line_end_after(path, size, std::max(cuts.back(), size * uint64_t(p) / uint64_t(parts))));
  cuts.push_back(size);
  std::vector<kappa_examples::FileRange> ranges;
  for (int p = 0; p < parts; ++p) ranges.push_back({path, cuts[size_t(p)], cuts[size_t(p) + 1]});
  return ranges;
}

// ---------------------------------------------------------------- counting

using TagCounts = std::unordered_map<std::string, uint64_t>;

struct WindowCount {
  uint64_t posts = 0;
  TagCounts tags;

  template <class A>
  void serialize(A& a) {
    a(posts, tags);
  }
};

/// The counts of a run of lines, in stream order: its windows, and whether
/// its windows were nondecreasing (first and last: of the posts it holds).
struct Counts {
  uint64_t posts = 0;
  int64_t first_window = 0, last_window = 0;
  bool ordered = true;
  std::map<int64_t, WindowCount> windows;

  template <class A>
  void serialize(A& a) {  // cereal (the app's queue items)
    a(posts, first_window, last_window, ordered, windows);
  }

  /// As JSON (the baseline's pipes), and back.
  nlohmann::json to_json() const {
    nlohmann::json ws = nlohmann::json::array();
    for (const auto& [w, c] : windows) ws.push_back({w, c.posts, c.tags});
    return {{"posts", posts},
            {"first", first_window},
            {"last", last_window},
            {"ordered", ordered},
            {"windows", ws}};
  }
  static Counts from_json(const nlohmann::json& j) {
    Counts c;
    c.posts = j.at("posts").get<uint64_t>();
    c.first_window = j.at("first").get<int64_t>();
    c.last_window = j.at("last").get<int64_t>();
    c.ordered = j.at("ordered").get<bool>();
    for (const auto& w : j.at("windows")) {
      WindowCount& wc = c.windows[w[0].get<int64_t>()];
      wc.posts = w[1].get<uint64_t>();
      wc.tags = w[2].get<TagCounts>();
    }
    return c;
  }

  /// Adds the counts of lines that follow these in the stream.
  void append(Counts&& next) {
    if (next.posts == 0) return;
    if (posts == 0) {
      *this = std::move(next);
      return;
    }
    ordered = ordered && next.ordered && next.first_window >= last_window;
    last_window = next.last_window;
    posts += next.posts;
    for (auto& [w, c] : next.windows) {
      WindowCount& mine = windows[w];
      mine.posts += c.posts;
      if (mine.tags.empty()) {
        mine.tags = std::move(c.tags);
      } else {
        for (auto& [tag, n] : c.tags) mine.tags[tag] += n;
      }
    }
  }
};

inline void add_tag(TagCounts& counts, std::string tag) {
  for (char& c : tag)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  ++counts[std::move(tag)];
}

inline bool is_tag_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

inline int64_t window_of(const nlohmann::json& ts, int64_t window_s) {
  if (ts.is_number_integer()) {
    int64_t t = ts.get<int64_t>();
    return t / window_s - (t % window_s < 0 ? 1 : 0);  // floor
  }
  return int64_t(std::floor(ts.get<double>() / double(window_s)));
}

/// Parses one post and counts it into `c`. Throws std::runtime_error for a
/// line that is not a post.
inline void count_post(std::string_view line, int64_t window_s, Counts& c) {
  nlohmann::json post = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  auto ts = post.is_object() ? post.find("ts") : post.end();
  if (post.is_discarded() || !post.is_object() || ts == post.end() || !ts->is_number())
    throw std::runtime_error("not a post with a numeric \"ts\": " +
                             std::string(line.substr(0, 120)));
  int64_t w = window_of(*ts, window_s);
  if (c.posts == 0) {
    c.first_window = w;
  } else if (w < c.last_window) {
    c.ordered = false;
  }
  c.last_window = w;
  ++c.posts;
  WindowCount& wc = c.windows[w];
  ++wc.posts;
  auto array = post.find("hashtags");
  if (array != post.end() && array->is_array()) {
    for (const auto& t : *array) {
      if (!t.is_string()) continue;
      std::string tag = t.get<std::string>();
      if (!tag.empty() && tag[0] == '#') tag.erase(0, 1);
      if (!tag.empty()) add_tag(wc.tags, std::move(tag));
    }
    return;
  }
  auto text = post.find("text");
  if (text == post.end() || !text->is_string()) return;
  const std::string& s = text->get_ref<const std::string&>();
  for (size_t i = s.find('#'); i != std::string::npos; i = s.find('#', i)) {
    size_t j = ++i;
    while (j < s.size() && is_tag_char(s[j])) ++j;
    if (j > i) add_tag(wc.tags, s.substr(i, j - i));
    i = j;
  }
}

/// Counts the posts of some JSON lines.
inline Counts count_lines(std::string_view lines, int64_t window_s) {
  Counts c;
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t nl = lines.find('\n', pos);
    if (nl == std::string_view::npos) nl = lines.size();
    std::string_view line = lines.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    count_post(line, window_s, c);
  }
  return c;
}

// ---------------------------------------------------------------- results

using Ranked = std::vector<std::pair<std::string, uint64_t>>;

/// The k most frequent tags, most frequent first, ties by tag (bytewise).
inline Ranked top_k(const TagCounts& counts, size_t k) {
  Ranked all(counts.begin(), counts.end());
  auto by_count = [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  };
  size_t n = std::min(k, all.size());
  std::partial_sort(all.begin(), all.begin() + int64_t(n), all.end(), by_count);
  all.resize(n);
  return all;
}

/// One window of the result: {"window": w, "start": w * window_s, "posts",
/// "hashtags" (occurrences), "distinct" (tags), "top": [[tag, count], ...]}.
inline nlohmann::json window_json(int64_t w, int64_t window_s, const WindowCount& c, size_t k) {
  uint64_t occurrences = 0;
  for (const auto& [tag, n] : c.tags) occurrences += n;
  nlohmann::json top = nlohmann::json::array();
  for (const auto& [tag, n] : top_k(c.tags, k)) top.push_back({tag, n});
  return {{"window", w},
          {"start", w * window_s},
          {"posts", c.posts},
          {"hashtags", occurrences},
          {"distinct", c.tags.size()},
          {"top", top}};
}

/// The line printed when a window is reported: "window W [START +Ns): P
/// posts, #a 340, #b 200, ...".
inline std::string report_line(const nlohmann::json& window, int64_t window_s) {
  std::string line = "window " + window["window"].dump() + " [" + window["start"].dump() + " +" +
                     std::to_string(window_s) + "s): " + window["posts"].dump() + " posts";
  for (const auto& e : window["top"])
    line += ", #" + e[0].get<std::string>() + " " + std::to_string(e[1].get<uint64_t>());
  return line;
}

/// The error for input that is not ordered by window.
inline std::runtime_error unordered_input() {
  return std::runtime_error(
      "the input is not ordered by window: a post's window (floor(ts / window_s)) is before "
      "that of a post above it");
}

/// The whole result from the counts of the whole stream (what the baseline
/// prints; the app builds the same fields window by window).
inline nlohmann::json result_json(const Counts& all, int64_t window_s, size_t k) {
  if (!all.ordered) throw unordered_input();
  nlohmann::json windows = nlohmann::json::array();
  std::unordered_set<std::string> distinct;
  uint64_t occurrences = 0;
  for (const auto& [w, c] : all.windows) {
    windows.push_back(window_json(w, window_s, c, k));
    occurrences += windows.back()["hashtags"].get<uint64_t>();
    for (const auto& [tag, n] : c.tags) distinct.insert(tag);
  }
  return {{"posts", all.posts},
          {"hashtags", occurrences},
          {"distinct", distinct.size()},
          {"windows", windows}};
}

}  // namespace hashtags_kernel
