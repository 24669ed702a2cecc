// TPC-H Query 1 over the lineitem table: the work shared by the Kappa app
// (tpch_q1.cc) and its hand-written baseline (bench/baselines/tpch_q1_baseline.cc),
// so that the two differ only in the framework around it. No Kappa include.
//
//   write_lineitem("lineitem.tbl", 1.0, 1);               // SF 1: 6M rows, ~750 MB
//   RangeScanner s({"lineitem.tbl", 0, size}, cutoff_date(90));
//   std::string buf;
//   while (s.step(buf)) {}
//   std::vector<Q1Row> rows = q1_rows(s.partial());
//
// The table is in dbgen's format (what TPC-H users have): one row per line,
// every field followed by '|', the 16 columns of lineitem in their order
// (TPC-H specification 1.4.1), decimals with two digits, dates as YYYY-MM-DD.
// The generator follows the specification's value distributions (section
// 4.2.3) but is not dbgen: same columns, types and distributions, other
// random numbers. It is deterministic in (scale, seed).
//
// Q1 (specification 2.4.1):
//   select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty,
//          sum(l_extendedprice) as sum_base_price,
//          sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
//          sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
//          avg(l_quantity) as avg_qty, avg(l_extendedprice) as avg_price,
//          avg(l_discount) as avg_disc, count(*) as count_order
//   from lineitem where l_shipdate <= date '1998-12-01' - interval '[DELTA]' day
//   group by l_returnflag, l_linestatus order by l_returnflag, l_linestatus
// DELTA is 90 in the validation run.
//
// Exact arithmetic, so that every implementation prints the same digits: a
// decimal column is read as an integer in hundredths (cents for a price,
// percent for a discount), and each sum is kept exactly in the units of its
// product, as SQL's DECIMAL arithmetic does: sum_qty and sum_base_price in
// 1/100, sum_disc_price = sum(price_cents * (100 - discount_percent)) in
// 1/10^4, sum_charge = sum(price_cents * (100 - discount_percent) *
// (100 + tax_percent)) in 1/10^6. They print with 2, 2, 4 and 6 decimals,
// nothing rounded. An average is the exact quotient sum / count rounded half
// up to 6 decimals. count_order is an integer.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "../common/inputs.h"

namespace tpch_q1 {

// ---------------------------------------------------------------- dates

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// days_from_civil).
constexpr int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

/// "YYYY-MM-DD" of a day number (the inverse of days_from_civil).
inline std::string civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
  return buf;
}

// Specification 4.2.3: STARTDATE, CURRENTDATE, ENDDATE.
constexpr int64_t kStartDate = days_from_civil(1992, 1, 1);
constexpr int64_t kCurrentDate = days_from_civil(1995, 6, 17);
constexpr int64_t kEndDate = days_from_civil(1998, 12, 31);

/// Q1's cutoff, date '1998-12-01' - interval 'delta' day, as "YYYY-MM-DD".
/// Dates of that form compare as strings as they do as dates.
inline std::string cutoff_date(int delta_days) {
  return civil_from_days(days_from_civil(1998, 12, 1) - delta_days);
}

// ---------------------------------------------------------------- generator

/// SplitMix64: a small, good generator, seeded per order so that the table
/// does not depend on how its generation is split.
struct Random {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [lo, hi] (multiply-shift: the bias is below 2^-40 here).
  int64_t uniform(int64_t lo, int64_t hi) {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * uint64_t(hi - lo + 1);
    return lo + static_cast<int64_t>(m >> 64);
  }
};

/// P_RETAILPRICE of a part in cents (specification 4.2.3):
/// (90000 + ((P_PARTKEY / 10) modulo 20001) + 100 * (P_PARTKEY modulo 1000)) / 100.
constexpr int64_t retail_price_cents(int64_t partkey) {
  return 90000 + (partkey / 10) % 20001 + 100 * (partkey % 1000);
}

/// The specification's text pool (4.2.2.10), simplified: sentences drawn
/// from its word lists (a noun phrase, a verb phrase, a terminator), from
/// which a text string [min, max] is a substring at a random offset.
inline std::string text_pool(size_t size) {
  static const char* const nouns[] = {
      "foxes",     "ideas",     "theodolites", "pinto beans", "instructions", "dependencies",
      "excuses",   "platelets", "asymptotes",  "courts",      "dolphins",     "multipliers",
      "sauternes", "warthogs",  "frets",       "dinos",       "attainments",  "somas",
      "patterns",  "forges",    "braids",      "frays",       "warhorses",    "dugouts",
      "epitaphs",  "pearls",    "tithes",      "waters",      "orbits",       "gifts",
      "sheaves",   "depths",    "sentiments",  "decoys",      "realms",       "pains",
      "grouches",  "escapades", "accounts",    "packages",    "requests",     "deposits"};
  static const char* const verbs[] = {
      "sleep",  "wake",   "are",       "cajole",   "haggle", "nag",   "use",     "boost",
      "affix",  "detect", "integrate", "maintain", "nod",    "was",   "lose",    "sublate",
      "solve",  "thrash", "promise",   "engage",   "hinder", "print", "x-ray",   "breach",
      "eat",    "grow",   "impress",   "mold",     "poach",  "serve", "run",     "dazzle",
      "snooze", "doze",   "unwind",    "kindle",   "play",   "hang",  "believe", "doubt"};
  static const char* const adjectives[] = {
      "furious",  "sly",       "careful",  "blithe", "quick",   "fluffy",  "slow",
      "quiet",    "ruthless",  "thin",     "close",  "dogged",  "daring",  "brave",
      "stealthy", "permanent", "enticing", "idle",   "busy",    "regular", "final",
      "ironic",   "even",      "bold",     "silent", "express", "unusual", "special"};
  static const char* const adverbs[] = {
      "sometimes", "always",    "never",   "furiously",  "slyly",       "carefully",  "blithely",
      "quickly",   "fluffily",  "slowly",  "quietly",    "ruthlessly",  "thinly",     "closely",
      "doggedly",  "daringly",  "bravely", "stealthily", "permanently", "enticingly", "idly",
      "busily",    "regularly", "finally", "ironically", "evenly",      "boldly",     "silently"};
  static const char* const prepositions[] = {
      "about",  "above",   "according to", "across", "after",      "against", "along",
      "among",  "around",  "at",           "atop",   "before",     "behind",  "beneath",
      "beside", "between", "beyond",       "by",     "despite",    "during",  "except",
      "for",    "from",    "in place of",  "inside", "instead of", "into",    "near",
      "of",     "on",      "outside",      "over",   "past",       "since",   "through",
      "to",     "toward",  "under",        "until",  "up",         "upon",    "without",
      "with",   "within"};
  static const char* const terminators[] = {".", ";", ":", "?", "!", "--"};
  auto pick = [](Random& r, const auto& list) {
    return list[r.uniform(0, int64_t(std::size(list)) - 1)];
  };
  Random r{0x7e47a1u};
  std::string pool;
  while (pool.size() < size) {
    pool += pick(r, adjectives);
    pool += ' ';
    pool += pick(r, nouns);
    pool += ' ';
    if (r.uniform(0, 1)) {
      pool += pick(r, adverbs);
      pool += ' ';
    }
    pool += pick(r, verbs);
    pool += ' ';
    pool += pick(r, prepositions);
    pool += " the ";
    pool += pick(r, adjectives);
    pool += ' ';
    pool += pick(r, nouns);
    pool += pick(r, terminators);
    pool += ' ';
  }
  pool.resize(size);
  return pool;
}

/// Writes the lineitem table of scale factor `scale` (SF * 1,500,000 orders
/// of 1 to 7 lines: about SF * 6,000,000 rows) to `path`, in dbgen's format.
/// Writes a temporary file beside it and renames it, so `path` appears whole
/// or not at all. Throws std::runtime_error when the file cannot be written.
inline void write_lineitem(const std::string& path, double scale, uint64_t seed) {
  if (!(scale > 0)) throw std::invalid_argument("scale factor must be positive");
  // Table sizes (specification 4.2.5.1): ORDERS SF * 1,500,000, PART
  // SF * 200,000, SUPPLIER SF * 10,000.
  const int64_t orders = std::max<int64_t>(1, int64_t(scale * 1'500'000 + 0.5));
  const int64_t parts = std::max<int64_t>(1, int64_t(scale * 200'000 + 0.5));
  const int64_t suppliers = std::max<int64_t>(4, int64_t(scale * 10'000 + 0.5));
  static const char* const instructs[] = {"DELIVER IN PERSON", "COLLECT COD", "NONE",
                                          "TAKE BACK RETURN"};
  static const char* const modes[] = {"REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"};
  const std::string pool = text_pool(1 << 20);
  // Every date a row can hold, formatted once.
  const int64_t first_day = kStartDate, last_day = kEndDate + 31;
  std::vector<char> dates(size_t(last_day - first_day + 1) * 10);
  for (int64_t d = first_day; d <= last_day; ++d)
    std::memcpy(&dates[size_t(d - first_day) * 10], civil_from_days(d).data(), 10);

  std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  if (!out) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  std::string buf;
  buf.reserve(8 << 20);
  char* p = nullptr;
  auto put_int = [&](int64_t v) { p = std::to_chars(p, p + 24, v).ptr; };
  auto put_decimal = [&](int64_t hundredths) {  // "123.45"
    put_int(hundredths / 100);
    *p++ = '.';
    *p++ = char('0' + hundredths % 100 / 10);
    *p++ = char('0' + hundredths % 10);
  };
  auto put_str = [&](const char* s, size_t n) {
    std::memcpy(p, s, n);
    p += n;
  };
  auto put_date = [&](int64_t day) { put_str(&dates[size_t(day - first_day) * 10], 10); };
  char line[512];
  bool failed = false;
  for (int64_t o = 0; o < orders && !failed; ++o) {
    Random r{seed * 0x9e3779b97f4a7c15ull ^ (uint64_t(o) * 0xd1b54a32d192ed03ull)};
    // O_ORDERKEY is sparse: the first 8 of every 32 keys (4.2.3).
    const int64_t orderkey = (o / 8) * 32 + o % 8 + 1;
    // O_ORDERDATE uniform in [STARTDATE, ENDDATE - 151 days] (4.2.3).
    const int64_t orderdate = r.uniform(kStartDate, kEndDate - 151);
    const int64_t lines = r.uniform(1, 7);
    for (int64_t l = 1; l <= lines; ++l) {
      const int64_t partkey = r.uniform(1, parts);
      // L_SUPPKEY: one of the part's four suppliers (PS_SUPPKEY, 4.2.3).
      const int64_t i = r.uniform(0, 3);
      const int64_t suppkey =
          (partkey + i * (suppliers / 4 + (partkey - 1) / suppliers)) % suppliers + 1;
      const int64_t quantity = r.uniform(1, 50);
      const int64_t price = quantity * retail_price_cents(partkey);
      const int64_t discount = r.uniform(0, 10);  // 0.00 .. 0.10
      const int64_t tax = r.uniform(0, 8);        // 0.00 .. 0.08
      const int64_t shipdate = orderdate + r.uniform(1, 121);
      const int64_t commitdate = orderdate + r.uniform(30, 90);
      const int64_t receiptdate = shipdate + r.uniform(1, 30);
      const char returnflag = receiptdate <= kCurrentDate ? (r.uniform(0, 1) ? 'R' : 'A') : 'N';
      const char linestatus = shipdate > kCurrentDate ? 'O' : 'F';
      const char* instruct = instructs[r.uniform(0, 3)];
      const char* mode = modes[r.uniform(0, 6)];
      const int64_t comment_len = r.uniform(10, 43);
      const int64_t comment_at = r.uniform(0, int64_t(pool.size()) - comment_len);

      p = line;
      put_int(orderkey), *p++ = '|';
      put_int(partkey), *p++ = '|';
      put_int(suppkey), *p++ = '|';
      put_int(l), *p++ = '|';
      put_int(quantity), *p++ = '|';  // dbgen writes L_QUANTITY without decimals
      put_decimal(price), *p++ = '|';
      put_decimal(discount), *p++ = '|';
      put_decimal(tax), *p++ = '|';
      *p++ = returnflag, *p++ = '|';
      *p++ = linestatus, *p++ = '|';
      put_date(shipdate), *p++ = '|';
      put_date(commitdate), *p++ = '|';
      put_date(receiptdate), *p++ = '|';
      put_str(instruct, std::strlen(instruct)), *p++ = '|';
      put_str(mode, std::strlen(mode)), *p++ = '|';
      put_str(pool.data() + comment_at, size_t(comment_len)), *p++ = '|';
      *p++ = '\n';
      buf.append(line, size_t(p - line));
    }
    if (buf.size() >= (8u << 20) - 4096 || o + 1 == orders) {
      failed = std::fwrite(buf.data(), 1, buf.size(), out) != buf.size();
      buf.clear();
    }
  }
  failed |= std::fclose(out) != 0;
  if (failed) {
    std::filesystem::remove(tmp);
    throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

// ---------------------------------------------------------------- aggregate

/// The running aggregate of one (l_returnflag, l_linestatus) group, in the
/// exact units of the header comment.
struct Group {
  char returnflag = 0;
  char linestatus = 0;
  int64_t count = 0;
  int64_t sum_qty = 0;          // 1/100
  int64_t sum_base_price = 0;   // 1/100
  int64_t sum_disc = 0;         // 1/100
  __int128 sum_disc_price = 0;  // 1/10^4
  __int128 sum_charge = 0;      // 1/10^6

  void add(const Group& g) {
    count += g.count;
    sum_qty += g.sum_qty;
    sum_base_price += g.sum_base_price;
    sum_disc += g.sum_disc;
    sum_disc_price += g.sum_disc_price;
    sum_charge += g.sum_charge;
  }

  // cereal has no __int128: each crosses as two 64-bit halves. One function
  // for both directions: saving reads the halves, loading writes them and
  // then the value.
  template <class Archive>
  void serialize(Archive& a) {
    uint64_t dp_lo = uint64_t(sum_disc_price), dp_hi = uint64_t(sum_disc_price >> 64);
    uint64_t ch_lo = uint64_t(sum_charge), ch_hi = uint64_t(sum_charge >> 64);
    a(returnflag, linestatus, count, sum_qty, sum_base_price, sum_disc, dp_lo, dp_hi, ch_lo, ch_hi);
    sum_disc_price = __int128((unsigned __int128)dp_hi << 64 | dp_lo);
    sum_charge = __int128((unsigned __int128)ch_hi << 64 | ch_lo);
  }
};

/// What a scan of some rows returns: its groups, ordered by (returnflag,
/// linestatus), and how many rows it read (those the filter dropped too).
struct Partial {
  std::vector<Group> groups;
  int64_t rows = 0;

  /// The group of a key, made on first use (a handful of groups: a linear
  /// search finds them).
  Group& group(char returnflag, char linestatus) {
    for (Group& g : groups)
      if (g.returnflag == returnflag && g.linestatus == linestatus) return g;
    Group g;
    g.returnflag = returnflag;
    g.linestatus = linestatus;
    auto at = groups.begin();
    while (at != groups.end() && (at->returnflag < returnflag ||
                                  (at->returnflag == returnflag && at->linestatus < linestatus)))
      ++at;
    return *groups.insert(at, g);
  }

  void merge(const Partial& other) {
    rows += other.rows;
    for (const Group& g : other.groups) group(g.returnflag, g.linestatus).add(g);
  }

  template <class Archive>
  void serialize(Archive& a) {
    a(groups, rows);
  }
};

// ---------------------------------------------------------------- scan

/// Thrown for a line that is not a lineitem row; says where it is.
inline std::runtime_error bad_row(const std::string& path, uint64_t offset, const char* what) {
  return std::runtime_error(path + ": byte " + std::to_string(offset) + ": " + what);
}

/// Parses an unsigned decimal with at most two fraction digits ("17",
/// "17.5", "17.00") into hundredths; advances p past it. False if malformed.
inline bool parse_hundredths(const char*& p, const char* end, int64_t& out) {
  int64_t whole = 0;
  auto [q, ec] = std::from_chars(p, end, whole);
  if (ec != std::errc() || q == p || *p == '-') return false;
  int64_t frac = 0;
  if (q < end && *q == '.') {
    ++q;
    if (q < end && unsigned(*q - '0') < 10) frac += 10 * (*q++ - '0');
    if (q < end && unsigned(*q - '0') < 10) frac += *q++ - '0';
  }
  out = whole * 100 + frac;
  p = q;
  return true;
}

/// Aggregates one row (the bytes of a line, without its '\n') into `part`.
/// Returns nullptr on success, else what is wrong.
inline const char* scan_row(const char* p, const char* end, const char* cutoff, Partial& part,
                            Group*& last) {
  // Skip l_orderkey, l_partkey, l_suppkey, l_linenumber.
  // (A loop: these fields are a few bytes, shorter than a call to memchr.)
  for (int f = 0; f < 4; ++f) {
    while (p < end && *p != '|') ++p;
    if (p == end) return "fewer than 16 fields";
    ++p;
  }
  int64_t qty, price, disc, tax;
  if (!parse_hundredths(p, end, qty) || p == end || *p++ != '|') return "bad l_quantity";
  if (!parse_hundredths(p, end, price) || p == end || *p++ != '|') return "bad l_extendedprice";
  if (!parse_hundredths(p, end, disc) || p == end || *p++ != '|') return "bad l_discount";
  if (!parse_hundredths(p, end, tax) || p == end || *p++ != '|') return "bad l_tax";
  if (end - p < 14 || p[1] != '|' || p[3] != '|') return "bad l_returnflag or l_linestatus";
  const char returnflag = p[0], linestatus = p[2];
  const char* shipdate = p + 4;
  if (shipdate[4] != '-' || shipdate[7] != '-' || (end - shipdate > 10 && shipdate[10] != '|'))
    return "bad l_shipdate";
  if (std::memcmp(shipdate, cutoff, 10) > 0) return nullptr;
  Group* g = last;
  if (!g || g->returnflag != returnflag || g->linestatus != linestatus)
    last = g = &part.group(returnflag, linestatus);
  const int64_t disc_price = price * (100 - disc);
  g->count += 1;
  g->sum_qty += qty;
  g->sum_base_price += price;
  g->sum_disc += disc;
  g->sum_disc_price += disc_price;
  g->sum_charge += disc_price * (100 + tax);
  return nullptr;
}

/// Scans the rows that start in a byte range of a lineitem file, a block at a
/// time: a row that crosses the range's end is read to its end, one that
/// starts before the range belongs to the range before. A first line that
/// does not start with a digit (a header) is skipped, as are empty lines.
/// Between two steps the scanner holds no file descriptor and no pointer into
/// its buffer: the caller may pause (checkpoint) there.
class RangeScanner {
 public:
  static constexpr uint64_t kBlock = 4 << 20;

  RangeScanner(kappa_examples::FileRange range, std::string cutoff)
      : range_(std::move(range)), cutoff_(std::move(cutoff)) {
    if (cutoff_.size() != 10) throw std::invalid_argument("cutoff must be YYYY-MM-DD");
    // From the byte before the range: the first row of ours starts after
    // the first '\n' there (right at `begin` when that byte is one).
    pos_ = range_.begin == 0 ? 0 : range_.begin - 1;
    skip_to_newline_ = range_.begin > 0;
  }

  /// Reads and aggregates the next block into `buf` (a buffer the caller
  /// keeps to spare allocations). Returns false once the range is done.
  bool step(std::string& buf) {
    if (done_) return false;
    uint64_t want = kBlock;
    for (;;) {
      kappa_examples::read_at_into(range_.path, pos_, want, buf);
      if (buf.size() < want || buf.find('\n') != std::string::npos) break;
      want *= 2;  // a line longer than a block
    }
    const bool eof = buf.size() < want;
    const char* data = buf.data();
    const char* end = data + buf.size();
    const char* p = data;
    if (skip_to_newline_) {
      const void* nl = std::memchr(p, '\n', buf.size());
      if (!nl) return finish();  // the range holds no row start
      p = static_cast<const char*>(nl) + 1;
      skip_to_newline_ = false;
    }
    Group* last = nullptr;
    const char* cutoff = cutoff_.data();
    for (;;) {
      const uint64_t offset = pos_ + uint64_t(p - data);
      if (offset >= range_.end || p == end) {
        if (offset >= range_.end || eof) return finish();
        break;
      }
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', size_t(end - p)));
      if (!nl && !eof) break;  // the row continues in the next block
      const char* line_end = nl ? nl : end;
      if (line_end > p && !(offset == 0 && unsigned(*p - '0') >= 10)) {
        if (const char* error = scan_row(p, line_end, cutoff, part_, last))
          throw bad_row(range_.path, offset, error);
        ++part_.rows;
      }
      p = nl ? nl + 1 : end;
    }
    pos_ += uint64_t(p - data);
    return true;
  }

  const Partial& partial() const { return part_; }

 private:
  bool finish() {
    done_ = true;
    return false;
  }

  kappa_examples::FileRange range_;
  std::string cutoff_;
  uint64_t pos_ = 0;  // file offset of buf's first byte at the next step
  bool skip_to_newline_ = false;
  bool done_ = false;
  Partial part_;
};

/// The whole scan of one range.
inline Partial scan_range(const kappa_examples::FileRange& range, const std::string& cutoff) {
  RangeScanner s(range, cutoff);
  std::string buf;
  while (s.step(buf)) {
  }
  return s.partial();
}

// ---------------------------------------------------------------- result

/// A non-negative integer in units of 10^-scale as a decimal with `scale`
/// fraction digits: decimal(12345, 2) == "123.45".
inline std::string decimal(__int128 v, int scale) {
  const bool negative = v < 0;
  unsigned __int128 u = negative ? -(unsigned __int128)v : (unsigned __int128)v;
  std::string digits;
  do {
    digits.insert(digits.begin(), char('0' + int(u % 10)));
    u /= 10;
  } while (u);
  while (int(digits.size()) <= scale) digits.insert(digits.begin(), '0');
  if (scale > 0) digits.insert(digits.end() - scale, '.');
  return negative ? "-" + digits : digits;
}

/// sum / count, where sum is in units of 10^-scale, rounded half up to 6
/// decimals (sum and count non-negative).
inline std::string average(__int128 sum, int scale, int64_t count) {
  if (count == 0) return "";
  __int128 scaled = sum;
  for (int s = scale; s < 6; ++s) scaled *= 10;
  return decimal((2 * scaled + count) / (2 * __int128(count)), 6);
}

/// One row of Q1's result, its values as printed.
struct Q1Row {
  std::string returnflag, linestatus;
  std::string sum_qty, sum_base_price, sum_disc_price, sum_charge;
  std::string avg_qty, avg_price, avg_disc;
  int64_t count_order = 0;
};

/// Q1's result rows from the merged aggregate, in (returnflag, linestatus)
/// order.
inline std::vector<Q1Row> q1_rows(const Partial& part) {
  std::vector<Q1Row> rows;
  for (const Group& g : part.groups) {
    Q1Row r;
    r.returnflag = std::string(1, g.returnflag);
    r.linestatus = std::string(1, g.linestatus);
    r.sum_qty = decimal(g.sum_qty, 2);
    r.sum_base_price = decimal(g.sum_base_price, 2);
    r.sum_disc_price = decimal(g.sum_disc_price, 4);
    r.sum_charge = decimal(g.sum_charge, 6);
    r.avg_qty = average(g.sum_qty, 2, g.count);
    r.avg_price = average(g.sum_base_price, 2, g.count);
    r.avg_disc = average(g.sum_disc, 2, g.count);
    r.count_order = g.count;
    rows.push_back(std::move(r));
  }
  return rows;
}

/// Q1's result as the app and the baseline print it: {"rows": [{"l_returnflag":
/// "A", "l_linestatus": "F", "sum_qty": "37734107.00", ..., "count_order":
/// 1478493}, ...], "lineitems": rows read}.
inline nlohmann::json q1_json(const Partial& part) {
  nlohmann::json out;
  out["rows"] = nlohmann::json::array();
  for (const Q1Row& r : q1_rows(part))
    out["rows"].push_back({{"l_returnflag", r.returnflag},
                           {"l_linestatus", r.linestatus},
                           {"sum_qty", r.sum_qty},
                           {"sum_base_price", r.sum_base_price},
                           {"sum_disc_price", r.sum_disc_price},
                           {"sum_charge", r.sum_charge},
                           {"avg_qty", r.avg_qty},
                           {"avg_price", r.avg_price},
                           {"avg_disc", r.avg_disc},
                           {"count_order", r.count_order}});
  out["lineitems"] = part.rows;
  return out;
}

/// The event's fields, with their defaults (tpch_q1.cc documents them).
struct Options {
  std::vector<std::string> paths;  // default: $TMPDIR/kappa-tpch-q1/lineitem-sf1-seed1.tbl
  double scale = 1;
  uint64_t seed = 1;
  uint64_t chunk_bytes = 64 << 20;
  int delta = 90;

  static Options from_event(const nlohmann::json& event) {
    Options o;
    o.scale = event.value("scale", 1.0);
    o.seed = event.value("seed", uint64_t{1});
    o.chunk_bytes = std::max<uint64_t>(1, uint64_t(event.value("chunk_mb", 64.0) * (1 << 20)));
    o.delta = event.value("delta", 90);
    if (event.contains("paths")) {
      o.paths = event["paths"].get<std::vector<std::string>>();
    } else {
      const char* tmp = std::getenv("TMPDIR");
      char name[64];
      std::snprintf(name, sizeof name, "lineitem-sf%g-seed%llu.tbl", o.scale,
                    static_cast<unsigned long long>(o.seed));
      o.paths = {std::string(tmp && *tmp ? tmp : "/tmp") + "/kappa-tpch-q1/" + name};
    }
    return o;
  }
};

}  // namespace tpch_q1
