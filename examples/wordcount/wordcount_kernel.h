// Word count's work itself, shared by the Kappa example (wordcount.cc) and its
// hand-written baseline (bench/baselines/wordcount_baseline.cc): no Kappa
// dependency.
//
// A word is a maximal run of ASCII letters [A-Za-z], lowercased. Every other
// byte separates words: digits, punctuation, whitespace and every non-ASCII
// byte, so "café" counts "caf" and "x86-64" counts "x".
//
// A file cut into byte ranges is counted range by range, each word once: a
// word belongs to the range where it starts, so a range skips the letters
// that continue a word begun before it and reads past its end to finish the
// word it started.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/inputs.h"

namespace wordcount {

inline bool is_letter(unsigned char c) { return static_cast<unsigned char>((c | 0x20) - 'a') < 26; }

// Hash and equality that accept string_views, so counting a word that is
// already in the table allocates nothing.
struct WordHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Counts = std::unordered_map<std::string, uint64_t, WordHash, std::equal_to<>>;

/// Counts the words of a stream fed in pieces; a word may span pieces.
class WordCounter {
 public:
  /// Counts the words in `bytes`; the last one may continue in the next piece.
  void feed(std::string_view bytes) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data());
    const unsigned char* end = p + bytes.size();
    while (p < end) {
      if (!word_.empty()) {  // a word carried over from the previous piece
        while (p < end && is_letter(*p)) word_ += static_cast<char>(*p++ | 0x20);
        if (p == end) return;
        add(word_);
        word_.clear();
      }
      while (p < end && !is_letter(*p)) ++p;
      const unsigned char* start = p;
      while (p < end && is_letter(*p)) ++p;
      if (p == start) break;
      lower_.assign(reinterpret_cast<const char*>(start), size_t(p - start));
      for (char& c : lower_) c = static_cast<char>(c | 0x20);
      if (p == end) {
        word_ = lower_;  // may continue
      } else {
        add(lower_);
      }
    }
  }

  /// Feeds only the letters that continue the current word (the rest of a
  /// word that started before a range's end). Returns how many bytes it took;
  /// fewer than bytes.size() means the word has ended.
  size_t feed_continuation(std::string_view bytes) {
    size_t n = 0;
    while (n < bytes.size() && is_letter(static_cast<unsigned char>(bytes[n]))) ++n;
    if (!word_.empty()) {
      for (size_t i = 0; i < n; ++i) word_ += static_cast<char>(bytes[i] | 0x20);
    }
    return n;
  }

  /// True while a word is open at the end of what was fed.
  bool in_word() const { return !word_.empty(); }

  /// Counts the word still open, if any.
  void finish() {
    if (!word_.empty()) add(word_);
    word_.clear();
  }

  Counts& counts() { return counts_; }
  uint64_t words() const { return words_; }

 private:
  void add(std::string_view w) {
    ++words_;
    auto it = counts_.find(w);
    if (it != counts_.end()) {
      ++it->second;
    } else {
      counts_.emplace(std::string(w), 1);
    }
  }

  Counts counts_;
  std::string word_;   // the open word, lowercased
  std::string lower_;  // scratch
  uint64_t words_ = 0;
};

/// Counts the words that start in one byte range of a file, a block at a
/// time: `while (scan.step()) pause();`. Holds no file descriptor between
/// steps.
class RangeScan {
 public:
  static constexpr uint64_t kBlock = 1 << 20;

  RangeScan(kappa_examples::FileRange range, WordCounter* counter)
      : range_(std::move(range)), counter_(counter), pos_(range_.begin) {}

  /// Reads and counts the next block; false once the range is done.
  bool step() {
    if (done_) return false;
    if (pos_ == range_.begin && range_.begin > 0 && !skipped_) {
      // Letters continuing a word that started before the range are not ours.
      skipped_ = true;
      std::string before = kappa_examples::read_at(range_.path, range_.begin - 1, 1);
      skipping_ = !before.empty() && is_letter(static_cast<unsigned char>(before[0]));
    }
    if (pos_ < range_.end) {
      std::string block =
          kappa_examples::read_at(range_.path, pos_, std::min(kBlock, range_.end - pos_));
      if (block.empty()) return finish();  // the file shrank
      pos_ += block.size();
      std::string_view view = block;
      if (skipping_) {
        size_t n = 0;
        while (n < view.size() && is_letter(static_cast<unsigned char>(view[n]))) ++n;
        view.remove_prefix(n);
        skipping_ = view.empty();
      }
      counter_->feed(view);
      return true;
    }
    // Past the end: only the rest of the word the range started, if open.
    if (!counter_->in_word()) return finish();
    std::string block = kappa_examples::read_at(range_.path, pos_, 4096);
    pos_ += block.size();
    size_t took = counter_->feed_continuation(block);
    if (block.empty() || took < block.size()) return finish();
    return true;
  }

 private:
  bool finish() {
    counter_->finish();
    done_ = true;
    return false;
  }

  kappa_examples::FileRange range_;
  WordCounter* counter_;
  uint64_t pos_;
  bool skipped_ = false, skipping_ = false, done_ = false;
};

/// Packs consecutive ranges into groups of about `target` bytes each (a range
/// is never cut): one group per map task, so many small files do not make
/// many tiny tasks.
inline std::vector<std::vector<kappa_examples::FileRange>> group_ranges(
    const std::vector<kappa_examples::FileRange>& ranges, uint64_t target) {
  std::vector<std::vector<kappa_examples::FileRange>> groups;
  uint64_t bytes = 0;
  for (const auto& r : ranges) {
    if (groups.empty() || bytes + r.size() > target) {
      groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(r);
    bytes += r.size();
  }
  return groups;
}

/// The counts sorted as the results show them: by descending count, then by
/// word (bytewise).
inline std::vector<std::pair<std::string, uint64_t>> ranked(
    std::vector<std::pair<std::string, uint64_t>> rows) {
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  return rows;
}

/// The full counts as TSV: the header "word<TAB>count", then one line per
/// word in ranked order.
inline std::string to_tsv(const std::vector<std::pair<std::string, uint64_t>>& ranked_rows) {
  std::string tsv = "word\tcount\n";
  for (const auto& [word, n] : ranked_rows) {
    tsv += word;
    tsv += '\t';
    tsv += std::to_string(n);
    tsv += '\n';
  }
  return tsv;
}

}  // namespace wordcount
