// TPC-H Q1 end to end (examples/tpch_q1): the app generates a small lineitem
// table (SF 0.01, about 60,000 rows) and answers Q1 over it, normally, with
// workers killed at random, and by the hand-written baseline; each answer is
// checked against SQLite running Q1's SQL over the rows loaded here (parsed
// with their own code, in integer hundredths, formatted by SQL). The
// generator's output is checked against the TPC-H specification's
// distributions (section 4.2.3).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/subprocess.h"

namespace kappa::testing {
namespace {

// ---------------------------------------------------------------- SQLite

class Db {
 public:
  Db() {
    if (sqlite3_open(":memory:", &db_) != SQLITE_OK) ADD_FAILURE() << "sqlite3_open";
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (error ? error : "?");
      sqlite3_free(error);
    }
  }

  // Every row of a query, each column as text.
  std::vector<std::vector<std::string>> query(const std::string& sql) {
    std::vector<std::vector<std::string>> rows;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return rows;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(st); ++c) {
        const unsigned char* t = sqlite3_column_text(st, c);
        row.push_back(t ? reinterpret_cast<const char*>(t) : "");
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    return rows;
  }

  int64_t scalar(const std::string& sql) {
    auto rows = query(sql);
    return rows.empty() ? -1 : std::stoll(rows[0][0]);
  }

  sqlite3* handle() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// "21168.23" -> 2116823, "17" -> 1700, through a double (not the kernel's way).
int64_t hundredths(const std::string& s) { return std::llround(std::stod(s) * 100); }

// Loads the rows of a .tbl file ('|'-terminated fields) into table lineitem,
// decimals in hundredths.
void load(Db& db, const std::string& path) {
  db.exec(
      "create table lineitem (l_orderkey int, l_partkey int, l_suppkey int, l_linenumber int, "
      "l_quantity int, l_extendedprice int, l_discount int, l_tax int, l_returnflag text, "
      "l_linestatus text, l_shipdate text, l_commitdate text, l_receiptdate text, "
      "l_shipinstruct text, l_shipmode text, l_comment text)");
  db.exec("begin");
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db.handle(),
                               "insert into lineitem values "
                               "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               -1, &st, nullptr),
            SQLITE_OK);
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::string field;
    std::istringstream fields(line);
    while (std::getline(fields, field, '|')) f.push_back(field);
    ASSERT_EQ(f.size(), 16u) << line;
    for (int c = 0; c < 16; ++c) {
      if (c < 4)
        sqlite3_bind_int64(st, c + 1, std::stoll(f[size_t(c)]));
      else if (c < 8)
        sqlite3_bind_int64(st, c + 1, hundredths(f[size_t(c)]));
      else
        sqlite3_bind_text(st, c + 1, f[size_t(c)].c_str(), -1, SQLITE_TRANSIENT);
    }
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  db.exec("commit");
}

// Q1 in SQL over integer hundredths, each value formatted as the app
// promises: sums exact with 2, 2, 4 and 6 decimals, averages rounded half
// up to 6 decimals. Returns the app's "rows" as JSON.
nlohmann::json q1_by_sqlite(Db& db, int delta) {
  // A value in units of 10^-d as a decimal string with d digits.
  auto fixed = [](const std::string& v, int d) {
    std::string unit = std::to_string(static_cast<int64_t>(std::pow(10, d)));
    // (|| binds tighter than / and % in SQLite.)
    return "((" + v + ") / " + unit + ") || '.' || substr('" + std::string(size_t(d), '0') +
           "' || ((" + v + ") % " + unit + "), -" + std::to_string(d) + ")";
  };
  // sum / count rounded half up to 6 decimals, sum in units of 10^-2.
  auto avg = [&](const std::string& sum) {
    return fixed("(2 * (" + sum + ") * 10000 + count(*)) / (2 * count(*))", 6);
  };
  std::string sql =
      "select l_returnflag, l_linestatus, " + fixed("sum(l_quantity)", 2) + ", " +
      fixed("sum(l_extendedprice)", 2) + ", " +
      fixed("sum(l_extendedprice * (100 - l_discount))", 4) + ", " +
      fixed("sum(l_extendedprice * (100 - l_discount) * (100 + l_tax))", 6) + ", " +
      avg("sum(l_quantity)") + ", " + avg("sum(l_extendedprice)") + ", " + avg("sum(l_discount)") +
      ", count(*) from lineitem where l_shipdate <= date('1998-12-01', '-" + std::to_string(delta) +
      " days') group by l_returnflag, l_linestatus order by l_returnflag, l_linestatus";
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : db.query(sql))
    rows.push_back({{"l_returnflag", r[0]},
                    {"l_linestatus", r[1]},
                    {"sum_qty", r[2]},
                    {"sum_base_price", r[3]},
                    {"sum_disc_price", r[4]},
                    {"sum_charge", r[5]},
                    {"avg_qty", r[6]},
                    {"avg_price", r[7]},
                    {"avg_disc", r[8]},
                    {"count_order", std::stoll(r[9])}});
  return rows;
}

// ---------------------------------------------------------------- the app

// Runs the app; its result, or null after a failure. `err` receives its
// standard error (the job's summary line).
nlohmann::json run_app(const TempDir& dir, const nlohmann::json& event,
                       const std::vector<std::string>& options = {}, std::string* err = nullptr) {
  std::vector<std::string> argv = {TPCH_Q1_APP,  "run",    "--event",
                                   event.dump(), "--data", "file://" + dir / "data"};
  argv.insert(argv.end(), options.begin(), options.end());
  ProcessResult r = run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (err) *err = r.err;
  if (r.exit_code != 0) return nullptr;
  return nlohmann::json::parse(r.out);
}

// One table for the suite: generated by the app's first run, loaded into
// SQLite once.
class TpchQ1 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    db_ = new Db;
    first_ = new nlohmann::json(run_app(*dir_, event()));
    load(*db_, table());
  }
  static void TearDownTestSuite() {
    delete first_;
    delete db_;
    delete dir_;
  }
  static std::string table() { return *dir_ / "lineitem.tbl"; }
  // Ranges of 48 KiB: about 150 scanners, and rows cut at every boundary.
  static nlohmann::json event() {
    return {{"paths", {table()}}, {"scale", 0.01}, {"seed", 3}, {"chunk_mb", 0.046875}};
  }
  static void expect_sqlite_answer(const nlohmann::json& out, int delta = 90) {
    ASSERT_TRUE(out.is_object()) << out;
    EXPECT_EQ(out["lineitems"], db_->scalar("select count(*) from lineitem"));
    EXPECT_EQ(out["rows"], q1_by_sqlite(*db_, delta));
  }

  static TempDir* dir_;
  static Db* db_;
  static nlohmann::json* first_;
};
TempDir* TpchQ1::dir_ = nullptr;
Db* TpchQ1::db_ = nullptr;
nlohmann::json* TpchQ1::first_ = nullptr;

TEST_F(TpchQ1, GeneratesTheTableAndMatchesSqlite) {
  expect_sqlite_answer(*first_);
  EXPECT_GT((*first_)["chunks"].get<int>(), 100) << *first_;
}

TEST_F(TpchQ1, MatchesSqliteForAnotherDelta) {
  nlohmann::json e = event();
  e["delta"] = 120;
  expect_sqlite_answer(run_app(*dir_, e), 120);
}

// Scanners killed at random are run again: the same answer, every row
// counted once.
TEST_F(TpchQ1, MatchesSqliteWhenWorkersAreKilled) {
  int deaths = 0;
  for (int seed = 1; seed <= 3; ++seed) {
    std::string err;
    expect_sqlite_answer(
        run_app(*dir_, event(), {"--chaos-kill", "0.3", "--seed", std::to_string(seed)}, &err));
    // "kappa: done in 1.57 s: 139 tasks, 1 parks, 19 worker deaths (...)"
    size_t at = err.find(" worker deaths");
    if (at != std::string::npos) deaths += std::stoi(err.substr(err.rfind(' ', at - 1) + 1));
  }
  EXPECT_GT(deaths, 10) << "--chaos-kill 0.3 killed too few workers to test anything";
}

TEST_F(TpchQ1, BaselineGivesTheSameAnswer) {
  for (const char* procs : {"1", "2"}) {
    ProcessResult r = run_process({TPCH_Q1_BASELINE, "--procs", procs, "--event", event().dump()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json b = nlohmann::json::parse(r.out);
    EXPECT_EQ(b["rows"], (*first_)["rows"]) << "--procs " << procs;
    EXPECT_EQ(b["lineitems"], (*first_)["lineitems"]) << "--procs " << procs;
  }
}

// The generator follows the specification's distributions (4.2.3).
TEST_F(TpchQ1, GeneratorFollowsTheSpecification) {
  Db& db = *db_;
  // About SF * 1,500,000 orders of 1 to 7 lines (4 on average).
  const int64_t rows = db.scalar("select count(*) from lineitem");
  const int64_t orders = db.scalar("select count(distinct l_orderkey) from lineitem");
  EXPECT_EQ(orders, 15000);
  EXPECT_NEAR(double(rows) / double(orders), 4.0, 0.05);
  EXPECT_EQ(db.scalar("select max(l_linenumber) from lineitem"), 7);
  EXPECT_EQ(db.scalar("select count(*) from (select l_orderkey from lineitem group by l_orderkey "
                      "having max(l_linenumber) != count(*))"),
            0);
  // Sparse order keys: the first 8 of every 32.
  EXPECT_EQ(db.scalar("select count(*) from lineitem where (l_orderkey - 1) % 32 >= 8"), 0);
  // Quantity 1..50, discount 0.00..0.10, tax 0.00..0.08, each value used.
  EXPECT_EQ(db.query("select min(l_quantity), max(l_quantity), count(distinct l_quantity), "
                     "min(l_discount), max(l_discount), count(distinct l_discount), "
                     "min(l_tax), max(l_tax), count(distinct l_tax) from lineitem")[0],
            (std::vector<std::string>{"100", "5000", "50", "0", "10", "11", "0", "8", "9"}));
  EXPECT_NEAR(double(db.scalar("select avg(l_quantity) from lineitem")), 2550, 50);
  // L_EXTENDEDPRICE = L_QUANTITY * P_RETAILPRICE, parts 1..SF * 200,000.
  EXPECT_EQ(db.scalar("select count(*) from lineitem where l_extendedprice != l_quantity / 100 * "
                      "(90000 + (l_partkey / 10) % 20001 + 100 * (l_partkey % 1000))"),
            0);
  EXPECT_EQ(db.query("select min(l_partkey) >= 1, max(l_partkey) <= 2000, min(l_suppkey) >= 1, "
                     "max(l_suppkey) <= 100 from lineitem")[0],
            (std::vector<std::string>{"1", "1", "1", "1"}));
  // Dates: ship 1..121 days after the order (so within 1992-01-02 ..
  // 1998-12-01), receipt 1..30 days after shipping.
  EXPECT_EQ(db.query("select min(l_shipdate) >= '1992-01-02', max(l_shipdate) <= '1998-12-01', "
                     "min(julianday(l_receiptdate) - julianday(l_shipdate)), "
                     "max(julianday(l_receiptdate) - julianday(l_shipdate)) from lineitem")[0],
            (std::vector<std::string>{"1", "1", "1.0", "30.0"}));
  // Flags from the dates against CURRENTDATE 1995-06-17.
  EXPECT_EQ(db.scalar("select count(*) from lineitem where l_linestatus != case when "
                      "l_shipdate > '1995-06-17' then 'O' else 'F' end"),
            0);
  EXPECT_EQ(db.scalar("select count(*) from lineitem where (l_receiptdate <= '1995-06-17') != "
                      "(l_returnflag in ('R', 'A'))"),
            0);
  // Q1's four groups in their usual proportions of all rows (about 24.7%
  // A/F and R/F, 0.65% N/F, 49.9% N/O), 1.3% shipped after Q1's cutoff.
  auto share = [&](const char* where) {
    return double(db.scalar(std::string("select count(*) from lineitem where ") + where)) /
           double(rows);
  };
  EXPECT_NEAR(share("l_returnflag = 'A' and l_linestatus = 'F'"), 0.247, 0.01);
  EXPECT_NEAR(share("l_returnflag = 'R' and l_linestatus = 'F'"), 0.247, 0.01);
  EXPECT_NEAR(share("l_returnflag = 'N' and l_linestatus = 'F'"), 0.0065, 0.003);
  EXPECT_NEAR(share("l_returnflag = 'N' and l_linestatus = 'O'"), 0.499, 0.01);
  EXPECT_NEAR(share("l_shipdate > '1998-09-02'"), 0.013, 0.004);
  ASSERT_EQ((*first_)["rows"].size(), 4u);
  // The comment: text of 10 to 43 characters.
  EXPECT_EQ(db.query("select min(length(l_comment)), max(length(l_comment)) from lineitem")[0],
            (std::vector<std::string>{"10", "43"}));
}

// Deterministic in (scale, seed): two missing paths are generated alike (and
// both scanned); another seed gives another table.
TEST_F(TpchQ1, GeneratorIsDeterministicBySeed) {
  TempDir dir;
  nlohmann::json out =
      run_app(dir, {{"paths", {dir / "a.tbl", dir / "b.tbl"}}, {"scale", 0.01}, {"seed", 3}});
  ASSERT_TRUE(out.is_object());
  EXPECT_EQ(out["lineitems"], 2 * (*first_)["lineitems"].get<int64_t>());
  EXPECT_TRUE(read_file(dir / "a.tbl") == read_file(table()));
  EXPECT_TRUE(read_file(dir / "b.tbl") == read_file(table()));
  run_app(dir, {{"paths", {dir / "c.tbl"}}, {"scale", 0.01}, {"seed", 4}});
  EXPECT_FALSE(read_file(dir / "c.tbl") == read_file(table()));
}

// A file of one's own: a header line, rows without the final '|', CRLF line
// ends, a last line without its '\n'; and a malformed row is an error that
// says where it is.
TEST(TpchQ1Input, ReadsAUsersFileAndRejectsABadRow) {
  TempDir dir;
  write_file(dir / "li.csv",
             "l_orderkey|l_partkey|l_suppkey|l_linenumber|l_quantity|l_extendedprice|l_discount|"
             "l_tax|l_returnflag|l_linestatus|l_shipdate|l_commitdate|l_receiptdate|"
             "l_shipinstruct|l_shipmode|l_comment\r\n"
             "1|2|3|1|17.00|100.10|0.10|0.05|N|O|1998-09-02|1998-09-01|1998-09-03|NONE|AIR|x\r\n"
             "1|2|3|2|3|0.5|0.1|0.08|N|O|1998-09-03|1998-09-01|1998-09-04|NONE|AIR|y\r\n"
             "1|2|3|3|2|10.00|0.00|0.00|A|F|1994-01-01|1994-01-01|1994-01-02|NONE|AIR|z");
  nlohmann::json out = run_app(dir, {{"paths", {dir / "li.csv"}}, {"chunk_mb", 0.0001}});
  ASSERT_TRUE(out.is_object());
  EXPECT_EQ(out["lineitems"], 3);
  // 100.10 * 0.90 = 90.0900; * 1.05 = 94.594500.
  EXPECT_EQ(out["rows"], nlohmann::json::parse(R"([
      {"l_returnflag": "A", "l_linestatus": "F", "sum_qty": "2.00", "sum_base_price": "10.00",
       "sum_disc_price": "10.0000", "sum_charge": "10.000000", "avg_qty": "2.000000",
       "avg_price": "10.000000", "avg_disc": "0.000000", "count_order": 1},
      {"l_returnflag": "N", "l_linestatus": "O", "sum_qty": "17.00", "sum_base_price": "100.10",
       "sum_disc_price": "90.0900", "sum_charge": "94.594500", "avg_qty": "17.000000",
       "avg_price": "100.100000", "avg_disc": "0.100000", "count_order": 1}])"));

  write_file(dir / "bad.tbl", "1|2|3|1|17|100.10|0.10|0.05|N|O|1998-09-02|\n1|2|3|2|x|\n");
  ProcessResult r = run_process({TPCH_Q1_APP, "run", "--event",
                                 nlohmann::json{{"paths", {dir / "bad.tbl"}}}.dump(), "--data",
                                 "file://" + dir / "data"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad.tbl: byte 44: bad l_quantity"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kappa::testing
