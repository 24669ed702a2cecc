// The work of parallel grep, shared by the Kappa app (grep.cc) and its
// hand-written baseline (bench/baselines/grep_baseline.cc): the event, the
// matcher, the scan of a byte range line by line, and the merge of the
// ranges' results into grep -n's output. No Kappa dependency.
//
// Lines: a line is the bytes after a '\n' (or the file's start) up to the
// next '\n' (excluded) or the file's end; a file that ends with '\n' has no
// empty last line, as for grep. A line matches when the pattern matches
// within it (RE2 syntax, UTF-8; `fixed`: a literal string). A range's task
// owns the lines that start in it; the last of them may end in a later range.
//
// Line numbers: a range's result counts its lines from its own start (the
// number of '\n' bytes before the line, within the range) and reports the
// number of '\n' bytes in the whole range; the merge adds the counts of the
// file's earlier ranges. So no range waits for another to number its lines.
#pragma once

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/inputs.h"

namespace kappa_examples::grep {

/// Bytes read at a time (doubled while one line is longer).
inline constexpr uint64_t kBlock = uint64_t{4} << 20;

/// What to look for.
struct Pattern {
  std::string pattern;
  bool fixed = false;        // a literal string, not a regex
  bool ignore_case = false;  // ASCII and Unicode simple case folding (RE2's)

  template <class Archive>
  void serialize(Archive& a) {
    a(pattern, fixed, ignore_case);
  }
};

/// The event of the app and the baseline (see grep.cc for the fields).
struct Event {
  std::vector<std::string> paths;
  Pattern pattern;
  uint64_t chunk_bytes = uint64_t{64} << 20;
  size_t max_lines = 100;
  std::string output = "grep/matches.txt";
};

/// Parses the event; throws std::invalid_argument saying which field is bad.
inline Event parse_event(const nlohmann::json& e) {
  Event ev;
  if (!e.is_object()) throw std::invalid_argument("the event is not a JSON object");
  const nlohmann::json& paths = e.value("paths", nlohmann::json());
  if (paths.is_string()) {
    ev.paths.push_back(paths.get<std::string>());
  } else if (paths.is_array() && !paths.empty()) {
    for (const auto& p : paths) ev.paths.push_back(p.get<std::string>());
  } else {
    throw std::invalid_argument("the event needs \"paths\": a file or folder, or a list of them");
  }
  if (!e.contains("pattern") || !e["pattern"].is_string())
    throw std::invalid_argument("the event needs \"pattern\": a string");
  ev.pattern.pattern = e["pattern"].get<std::string>();
  if (ev.pattern.pattern.find('\n') != std::string::npos)
    throw std::invalid_argument("the pattern holds a newline: lines are matched one at a time");
  ev.pattern.fixed = e.value("fixed", false);
  ev.pattern.ignore_case = e.value("ignore_case", false);
  if (e.contains("chunk_bytes"))
    ev.chunk_bytes = e["chunk_bytes"].get<uint64_t>();
  else if (e.contains("chunk_mb"))
    ev.chunk_bytes = static_cast<uint64_t>(e["chunk_mb"].get<double>() * double(1 << 20));
  if (ev.chunk_bytes == 0) throw std::invalid_argument("chunk_mb/chunk_bytes must be positive");
  ev.max_lines = e.value("max_lines", ev.max_lines);
  ev.output = e.value("output", ev.output);
  return ev;
}

/// Finds matching lines. Compiled for one block at a time and never kept
/// across a pause point: an RE2 holds a mutex and lazily built state that a
/// checkpoint should not carry.
class Matcher {
 public:
  /// Throws std::invalid_argument with RE2's message for a bad regex.
  explicit Matcher(const Pattern& p) {
    if (p.fixed && !p.ignore_case) {
      mode_ = Mode::kLiteral;
      literal_ = p.pattern;
      return;
    }
    RE2::Options o;
    o.set_log_errors(false);
    o.set_literal(p.fixed);
    o.set_case_sensitive(!p.ignore_case);
    line_re_ = std::make_unique<RE2>(p.pattern, o);
    if (!line_re_->ok()) throw std::invalid_argument("bad pattern: " + line_re_->error());
    if (p.fixed) {
      mode_ = Mode::kBlock;  // a literal without '\n' cannot match across lines
      return;
    }
    if (!multiline_safe(p.pattern)) {
      mode_ = Mode::kLines;
      return;
    }
    // Searching a whole block, with ^ and $ at line boundaries, finds the
    // first line that matches or a match that starts there and runs into
    // later lines (the line is then checked alone): a match within a line
    // is also a match within the block, at the same place, since ^, $ and
    // \b see a '\n' as they see the text's edge.
    // never_nl: a block match never runs into the next line, so a long
    // search never ends in a line that fails its check alone.
    RE2::Options ob = o;
    ob.set_never_nl(true);
    block_re_ = std::make_unique<RE2>("(?m)" + p.pattern, ob);
    if (!block_re_->ok()) throw std::invalid_argument("bad pattern: " + block_re_->error());
    mode_ = Mode::kBlock;
  }

  /// Whether `line` (without its '\n') matches.
  bool matches(std::string_view line) const {
    if (mode_ == Mode::kLiteral)
      return literal_.empty() ||
             ::memmem(line.data(), line.size(), literal_.data(), literal_.size()) != nullptr;
    return RE2::PartialMatch(re2::StringPiece(line.data(), line.size()), *line_re_);
  }

  /// Calls on_match(index, line) for each matching line of `text`, which
  /// holds whole lines, each ending with '\n'; index counts the lines of
  /// `text` from 0, and line excludes its '\n'. Returns the number of lines.
  template <class F>
  uint64_t scan(std::string_view text, F&& on_match) const {
    const char* d = text.data();
    const size_t n = text.size();
    uint64_t lines = 0;
    size_t pos = 0;
    while (pos < n) {
      size_t hit = mode_ == Mode::kLines ? pos : find(text, pos);
      if (hit >= n) break;
      const void* nl_before = hit > pos ? ::memrchr(d + pos, '\n', hit - pos) : nullptr;
      size_t start = nl_before ? size_t(static_cast<const char*>(nl_before) - d) + 1 : pos;
      lines += count_newlines(text.substr(pos, start - pos));
      size_t end = size_t(static_cast<const char*>(::memchr(d + hit, '\n', n - hit)) - d);
      std::string_view line = text.substr(start, end - start);
      // A literal found in the block is in this line; a regex's block match
      // may start here yet need later lines.
      if (mode_ == Mode::kLiteral || matches(line)) on_match(lines, line);
      ++lines;
      pos = end + 1;
    }
    return lines + count_newlines(text.substr(std::min(pos, n)));
  }

  /// The '\n' bytes in `s`. Counted in byte-wide lanes, 255 rounds at a
  /// time, which compilers vectorize: ten times std::count's speed (whose
  /// 64-bit sum they do not), and most of a scan's time when few lines match.
  static uint64_t count_newlines(std::string_view s) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t n = s.size();
    uint64_t total = 0;
    constexpr size_t kLanes = 32, kRound = 255 * kLanes;
    while (n >= kRound) {
      uint8_t acc[kLanes] = {};
      for (size_t i = 0; i < kRound; i += kLanes)
        for (size_t k = 0; k < kLanes; ++k) acc[k] += p[i + k] == '\n';
      for (size_t k = 0; k < kLanes; ++k) total += acc[k];
      p += kRound;
      n -= kRound;
    }
    for (size_t i = 0; i < n; ++i) total += p[i] == '\n';
    return total;
  }

 private:
  enum class Mode { kLiteral, kBlock, kLines };

  // Where the first match in text[from, end) starts (text.size() if none).
  size_t find(std::string_view text, size_t from) const {
    if (mode_ == Mode::kLiteral) {
      if (literal_.empty()) return from;
      const void* p =
          ::memmem(text.data() + from, text.size() - from, literal_.data(), literal_.size());
      return p ? size_t(static_cast<const char*>(p) - text.data()) : text.size();
    }
    const RE2& re = block_re_ ? *block_re_ : *line_re_;
    re2::StringPiece whole(text.data(), text.size()), m;
    if (!re.Match(whole, from, text.size(), RE2::UNANCHORED, &m, 1)) return text.size();
    return size_t(m.data() - text.data());
  }

  // Whether matching within a block, with (?m), sees every line's matches:
  // not with \A or \z (the text's edges only), nor when the pattern turns
  // the m flag off again, e.g. (?-m) or (?i-m:...). Conservative: such
  // patterns are matched line by line, which is slower, not wrong.
  static bool multiline_safe(const std::string& p) {
    if (p.find("\\A") != std::string::npos || p.find("\\z") != std::string::npos) return false;
    for (size_t i = p.find("(?"); i != std::string::npos; i = p.find("(?", i + 2)) {
      bool minus = false;
      for (size_t j = i + 2; j < p.size() && p[j] != ')' && p[j] != ':'; ++j) {
        if (p[j] == '-') minus = true;
        if (p[j] == 'm' && minus) return false;
      }
    }
    return true;
  }

  Mode mode_ = Mode::kLines;
  std::string literal_;
  std::unique_ptr<RE2> line_re_, block_re_;
};

/// A matching line: its number counted from its range's start (the '\n'
/// bytes of the range before it) and its text without '\n'.
struct Match {
  uint64_t line = 0;
  std::string text;

  template <class Archive>
  void serialize(Archive& a) {
    a(line, text);
  }
};

/// What one range found: its '\n' bytes and its matching lines in order.
struct RangeResult {
  uint64_t newlines = 0;
  std::vector<Match> matches;

  template <class Archive>
  void serialize(Archive& a) {
    a(newlines, matches);
  }
};

/// Where the first '\n' in [from, to) of the file is (`to` if none).
inline uint64_t find_newline(const std::string& path, uint64_t from, uint64_t to) {
  for (uint64_t p = from; p < to; p += kBlock) {
    std::string b = read_at(path, p, std::min(kBlock, to - p));
    if (const void* q = std::memchr(b.data(), '\n', b.size()))
      return p + uint64_t(static_cast<const char*>(q) - b.data());
    if (b.size() < std::min(kBlock, to - p)) break;  // the file ended
  }
  return to;
}

/// Whether a line starts at `offset` of the file.
inline bool line_starts_at(const std::string& path, uint64_t offset) {
  return offset == 0 || read_at(path, offset - 1, 1) == "\n";
}

/// The scan of the lines that start in one range: one block per step(), with
/// nothing held between steps but plain values (so a task can pause there).
struct RangeScan {
  std::string path;
  uint64_t pos = 0;  // where the next unscanned line starts
  uint64_t end = 0;  // the range's end
  uint64_t block = kBlock;
  RangeResult result;  // so far
  std::string tail;    // once done: the start of the last line, if it is cut at `end`

  RangeScan() = default;
  /// Scans the lines that start at `first` or later, before range.end;
  /// `newlines` is the number of '\n' bytes from range.begin to `first`.
  RangeScan(const FileRange& range, uint64_t first, uint64_t newlines)
      : path(range.path), pos(first), end(range.end) {
    result.newlines = newlines;
  }

  bool done() const { return pos >= end; }

  /// Scans the next block's whole lines.
  void step(const Pattern& pattern) {
    uint64_t n = std::min(block, end - pos);
    std::string data = read_at(path, pos, n);
    if (data.size() < n) throw std::runtime_error(path + " shrank while it was read");
    size_t whole = data.rfind('\n');
    whole = whole == std::string::npos ? 0 : whole + 1;
    Matcher m(pattern);
    uint64_t first = result.newlines;
    result.newlines +=
        m.scan(std::string_view(data).substr(0, whole), [&](uint64_t i, std::string_view line) {
          result.matches.push_back({first + i, std::string(line)});
        });
    if (pos + n == end) {  // the last line, if the range ends within it
      tail = data.substr(whole);
      pos = end;
    } else if (whole == 0) {
      block *= 2;  // a line longer than the block: read more of it
    } else {
      pos += whole;
      block = kBlock;
    }
  }

  /// Completes the last line with `rest`, its bytes after the range (up to
  /// and including its '\n', or to the file's end), and checks it.
  void finish(const Pattern& pattern, std::string_view rest) {
    if (tail.empty()) return;
    tail += rest;
    if (!tail.empty() && tail.back() == '\n') tail.pop_back();
    if (Matcher(pattern).matches(tail)) result.matches.push_back({result.newlines, tail});
    tail.clear();
  }
};

/// The line of `path` that continues at `from`: its bytes up to and
/// including its '\n', or to the file's end.
inline std::string rest_of_line(const std::string& path, uint64_t from) {
  std::string rest;
  for (uint64_t p = from;; p += kBlock) {
    std::string b = read_at(path, p, kBlock);
    size_t nl = b.find('\n');
    if (nl != std::string::npos) return rest.append(b, 0, nl + 1);
    rest += b;
    if (b.size() < kBlock) return rest;
  }
}

/// The whole scan of one range by one process, reading past its end to
/// complete its last line (what the baseline does; the app gets those bytes
/// from its neighbour's task instead).
inline RangeResult scan_range(const FileRange& range, const Pattern& pattern) {
  uint64_t first = range.begin;
  uint64_t newlines = 0;
  if (!line_starts_at(range.path, range.begin)) {  // that line is the previous range's
    uint64_t nl = find_newline(range.path, range.begin, range.end);
    if (nl == range.end) return {};
    first = nl + 1;
    newlines = 1;
  }
  RangeScan scan(range, first, newlines);
  while (!scan.done()) scan.step(pattern);
  if (!scan.tail.empty()) scan.finish(pattern, rest_of_line(range.path, range.end));
  return std::move(scan.result);
}

/// CRC-32 (zlib's, as Python's zlib.crc32), to compare whole outputs.
inline uint32_t crc32(std::string_view s, uint32_t crc = 0) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (unsigned char c : s) crc = table[(crc ^ c) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

/// `s` with each invalid UTF-8 sequence replaced by U+FFFD, one per maximal
/// subpart (Unicode's recommended practice, as Python's "replace"): JSON
/// strings must be UTF-8.
inline std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80                 ? 1
                 : c >= 0xC2 && c <= 0xDF ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    size_t good = len == 0 ? 0 : 1;  // bytes of a valid prefix
    for (size_t k = 1; k < len && i + k < s.size(); ++k) {
      unsigned char b = static_cast<unsigned char>(s[i + k]);
      unsigned char lo = 0x80, hi = 0xBF;
      if (k == 1 && c == 0xE0) lo = 0xA0;
      if (k == 1 && c == 0xED) hi = 0x9F;
      if (k == 1 && c == 0xF0) lo = 0x90;
      if (k == 1 && c == 0xF4) hi = 0x8F;
      if (b < lo || b > hi) break;
      ++good;
    }
    if (len != 0 && good == len) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += std::max<size_t>(good, 1);
    }
  }
  return out;
}

/// The merge, in input order: ranges[i]'s result is results[i], the ranges
/// of a file are consecutive and in order. Writes grep -n's output (one
/// "file:line:text\n" per matching line) to *text and returns the answer:
/// "matching_lines", "lines" (the first max_lines of the output, without
/// '\n', invalid UTF-8 replaced) and "crc32" (of the whole output).
inline nlohmann::json merge(const std::vector<FileRange>& ranges,
                            const std::vector<RangeResult>& results, size_t max_lines,
                            std::string* text) {
  if (ranges.size() != results.size()) throw std::logic_error("merge: one result per range");
  size_t bytes = 0;  // the output's size, give or take the line numbers' digits
  for (size_t i = 0; i < ranges.size(); ++i)
    for (const Match& m : results[i].matches) bytes += ranges[i].path.size() + m.text.size() + 24;
  text->clear();
  text->reserve(bytes);
  nlohmann::json lines = nlohmann::json::array();
  uint64_t count = 0, before = 0;  // '\n' bytes in the file before the range
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (i == 0 || ranges[i].path != ranges[i - 1].path) before = 0;
    for (const Match& m : results[i].matches) {
      size_t start = text->size();
      *text += ranges[i].path;
      *text += ':';
      *text += std::to_string(before + m.line + 1);
      *text += ':';
      *text += m.text;
      if (count < max_lines) lines.push_back(valid_utf8(std::string_view(*text).substr(start)));
      *text += '\n';
      ++count;
    }
    before += results[i].newlines;
  }
  return {{"matching_lines", count}, {"lines", lines}, {"crc32", crc32(*text)}};
}

}  // namespace kappa_examples::grep
