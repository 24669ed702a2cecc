// RedisStore: checkpoint images as Redis strings, one key per image (an
// image streamed in pieces as a hash naming strings of its own).
//
// URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?retry_timeout=S&timeout=S]
//   HOST is a name, an IPv4 address or an [IPv6] address; PORT is 6379 and
//   DB 0 (chosen with SELECT) unless given. The password (percent-encoded in
//   the URL) may instead come from REDISCLI_AUTH, the variable redis-cli
//   reads; prefer it, since a URL reaches workers on their command line. USER
//   is for Redis 6 ACLs (AUTH USER PASSWORD). retry_timeout is how long an
//   operation keeps retrying (default 30 s); timeout bounds one connect, and
//   one read or write that makes no progress (default 30 s).
//
// The contract:
// - Atomic. A put is one SET (in a checkpoint store, in one MULTI/EXEC with
//   an HMGET of the value it replaces, for that value's pieces): readers see
//   the old value or the new one, and a SET that Redis did not receive whole
//   stores nothing. A get returns the
//   whole value or throws: a reply cut short is retried or reported, never
//   returned shorter. get_checked is one GET too: the reply's header gives
//   the size, and the check sees it and the head as soon as they have
//   arrived, before room is made for the value and the rest is received. A
//   refused value's reply is left unread and its connection closed: Redis
//   will have sent what the sockets' buffers hold (a few MiB), not the value.
// - Values up to 512 MiB, Redis's string limit (proto-max-bulk-len), in a
//   data store: a larger put throws kappa::Error without sending anything. A
//   checkpoint store writes a larger value in pieces (below).
// - Retries. A lost connection (Redis restarting), a timeout, or a server not
//   ready (LOADING, BUSY, ...) is retried on a new connection, with backoff
//   from 50 ms doubling to 2 s, until retry_timeout has passed since the
//   operation began; then kappa::Error names the store, the operation, the
//   key and the last failure. Every operation is idempotent (SET of the same
//   bytes, GET, UNLINK, SCAN, a stream's SETRANGE and GETRANGE; a stream's
//   commit, a RENAME, checks on a retry whether the lost attempt did it), so
//   retrying after an ambiguous failure is safe. What Redis refuses (a wrong
//   password, WRONGTYPE, OOM) is reported at once.
// - Threads. Any number of threads may share a store: each operation takes
//   a connection from a mutex-protected pool and gives it back afterwards
//   (connections are reused). A connection failure empties the pool: its
//   other connections are likely gone too.
// - Durability is Redis's own configuration: an acknowledged put outlives a
//   Redis restart only with persistence on (appendonly yes; with appendfsync
//   always, also a crash of the machine).
// - Keys are binary-safe. list and remove_prefix use SCAN MATCH with the
//   prefix's glob characters escaped; removals use UNLINK.
// - Streams (put_stream) write each piece, sent from where it is, into a
//   temporary key of their own, KEY.tmp.R (R: 16 random hex digits, so that
//   writers anywhere never meet; list() does not show such keys), which
//   expires a day after the last piece: a killed writer's debris goes away.
//   A piece is SETRANGE at the length written so far rather than APPEND,
//   so that a retry after a lost answer, or a stalled attempt that Redis
//   applies after its retry, writes the same bytes at the same place and
//   never twice; with it, in one MULTI/EXEC, STRLEN shows that the key
//   still holds what came before (a temporary key removed meanwhile, by
//   remove_prefix or a restart without persistence, fails the stream
//   instead of committing zeros) and PEXPIRE renews the expiry. A piece is
//   sent before the answer to the one before it is read (one piece in
//   flight, on the stream's own connection, and a copy of it kept: a retry
//   on a new connection sends it again), so that Redis never waits for the
//   writer between pieces. The commit renames the key onto KEY and removes
//   the expiry that came with it, in one MULTI/EXEC. An abandoned or failed
//   stream UNLINKs its temporary key (one attempt: the expiry is the
//   fallback).
//   That is a data store's stream (StoreOptions::shared), whose values stay
//   plain strings for other tools; a checkpoint store's is in pieces:
// - Pieces. A checkpoint store's stream of more than one piece (8 MiB,
//   kPieceBytes) writes each piece as a string of its own, KEY.part.R.N
//   (N = 0, 1, ...; list() does not show such keys), with one SET: Redis
//   keeps the string it received, where a SETRANGE copies it into a string
//   it grows, which made a 100 MiB stream take 1.3-1.5x a SET of the whole.
//   Nor is such a value bounded by Redis's 512 MiB. The key itself becomes
//   a hash naming the pieces (fields format "kappa pieces 1", size, piece,
//   base "KEY.part.R"), set at the commit in one MULTI/EXEC that also makes
//   the pieces permanent, under WATCH on the pieces (so that a piece removed
//   meanwhile fails the commit, which leaves the key as it was). Until then
//   each piece expires a day after it was written, as a temporary key does.
//   Pieces are written ahead as above: each SET is sent before the answer
//   to the one before it is read, and the piece in flight is kept for a
//   retry (the stream's buffers: 2 pieces in memory). A shorter stream is
//   one SET of the key at the commit. Removing or replacing a value in
//   pieces removes its pieces after its key; should that fail (the process
//   killed, the server gone past the retry timeout), they stay until their
//   prefix is removed (remove_prefix finds them: they start with the key).
//   Every store reads both layouts, whatever it writes.
// - Readers (open_value) learn the layout and the size with TYPE, STRLEN and
//   HMGET in one round trip, then read each range with one GETRANGE (per
//   piece it touches) received straight into the caller's buffer. Redis
//   cannot pin a version cheaply: a value removed or made shorter meanwhile
//   fails the read, but one replaced by another at least as long would be
//   read mixed. Checkpoint keys are never replaced.
//
// Connections, retries and the URL are redis_client.h's, shared with the
// redis:// journal. Large values are not copied: a SET (or a stream's
// SETRANGE) goes out as one sendmsg of a small header, the caller's bytes
// and CRLF, and a GET's bulk reply is received straight into the string
// returned (a GETRANGE's into the reader's buffer). (hiredis's own command path copies a
// value twice, into the formatted command and into its output buffer.)
// hiredis connects and parses the replies of every other command; all writes
// use MSG_NOSIGNAL, so a dead connection is an error, not a SIGPIPE.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "stores/redis_client.h"
#include "util/log.h"
#include "util/string_for_overwrite.h"

namespace kappa::detail {
namespace {

constexpr const char* kUrlForm =
    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?retry_timeout=SECONDS&timeout=SECONDS]";

// A SCAN MATCH pattern for the keys starting with `prefix`.
std::string glob_for_prefix(std::string_view prefix) {
  std::string out;
  for (char ch : prefix) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "*";
}

// Temporary keys (KEY.tmp.R) live this long after their stream began.
constexpr const char* kTemporaryKeyLifetimeMs = "86400000";  // a day
constexpr size_t kRandomDigits = 16;

// 16 hex digits from the system's random source at each call (not from a
// generator's state, which a forked process would share with its parent).
std::string random_hex() {
  std::random_device random;
  unsigned long long r = (static_cast<unsigned long long>(random()) << 32) ^ random();
  char hex[kRandomDigits + 1];
  std::snprintf(hex, sizeof hex, "%016llx", r);
  return hex;
}

bool all_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A stream's temporary key, KEY.tmp.R, which list() does not show.
std::string temporary_key(const std::string& key) { return key + ".tmp." + random_hex(); }

bool is_temporary_key(std::string_view key) {
  constexpr size_t kSuffix = 5 + kRandomDigits;  // ".tmp." and the digits
  return key.size() > kSuffix && key.substr(key.size() - kSuffix, 5) == ".tmp." &&
         all_hex(key.substr(key.size() - kRandomDigits));
}

// ---- values in pieces (see the top of the file)

constexpr size_t kPieceBytes = 8 << 20;
constexpr std::string_view kPiecesFormat = "kappa pieces 1";
// The hash's fields; an HMGET asks for them in this order (pieces_of()).
constexpr std::string_view kFormatField = "format", kSizeField = "size", kPieceField = "piece",
                           kBaseField = "base";
constexpr uint64_t kMaxPieces = uint64_t(1) << 24;  // 128 TiB of 8 MiB pieces

// A piece's key: KEY.part.R.N, N in decimal.
bool is_piece_key(std::string_view key) {
  size_t dot = key.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == key.size() ||
      !std::all_of(key.begin() + dot + 1, key.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  constexpr size_t kSuffix = 6 + kRandomDigits;  // ".part." and the digits
  std::string_view base = key.substr(0, dot);
  return base.size() > kSuffix && base.substr(base.size() - kSuffix, 6) == ".part." &&
         all_hex(base.substr(base.size() - kRandomDigits));
}

// What the hash under a value's key says of its pieces.
struct Pieces {
  uint64_t size = 0;   // the value's
  uint64_t piece = 0;  // each piece's but the last's
  std::string base;    // pieces are BASE.0, BASE.1, ...
  uint64_t count() const { return size / piece + (size % piece != 0); }
  std::string key(uint64_t i) const { return base + "." + std::to_string(i); }
};

// Appends HMGET KEY of the hash's fields, which pieces_of() reads.
void append_hmget_pieces(std::string& out, std::string_view key) {
  const std::string_view args[] = {"HMGET", key, kFormatField, kSizeField, kPieceField, kBaseField};
  append_command(out, args);
}

bool parse_count(const redisReply& r, uint64_t& out) {
  if (r.type != REDIS_REPLY_STRING || r.len == 0 || r.len > 19) return false;
  out = 0;
  for (size_t i = 0; i < r.len; ++i) {
    if (r.str[i] < '0' || r.str[i] > '9') return false;
    out = out * 10 + uint64_t(r.str[i] - '0');
  }
  return true;
}

// The pieces an HMGET of append_hmget_pieces() describes; nullopt for anything
// else (an error reply, as for a string; a hash of other fields), with what
// is wrong in `why`.
std::optional<Pieces> pieces_of(const redisReply& r, std::string* why = nullptr) {
  auto no = [&](std::string reason) -> std::optional<Pieces> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  if (r.type != REDIS_REPLY_ARRAY || r.elements != 4) return no("not a hash");
  const redisReply& format = *r.element[0];
  if (format.type != REDIS_REPLY_STRING)
    return no("a hash that is not a value in pieces (it has no field 'format')");
  if (std::string_view(format.str, format.len) != kPiecesFormat)
    return no("a value in pieces of another format, '" +
              std::string(format.str, std::min<size_t>(format.len, 40)) +
              "' (this version reads '" + std::string(kPiecesFormat) + "'): from a newer version?");
  Pieces p;
  const redisReply& base = *r.element[3];
  if (!parse_count(*r.element[1], p.size) || !parse_count(*r.element[2], p.piece) || p.piece == 0 ||
      p.count() > kMaxPieces || base.type != REDIS_REPLY_STRING || base.len == 0)
    return no("a value in pieces whose fields size, piece and base are not all valid");
  p.base.assign(base.str, base.len);
  return p;
}

// Removes the pieces of a value whose key is gone: one attempt, which may
// leave them to remove_prefix (see the top of the file).
void remove_pieces(RedisClient& client, const std::string& key, const Pieces& p) noexcept {
  try {
    client.run(
        "remove the pieces of", key,
        [&](RedisConnection& c) {
          constexpr uint64_t kBatch = 1000;
          for (uint64_t i = 0; i < p.count(); i += kBatch) {
            std::vector<std::string> keys;
            for (uint64_t j = i; j < std::min(p.count(), i + kBatch); ++j) keys.push_back(p.key(j));
            std::vector<std::string_view> args{"UNLINK"};
            args.insert(args.end(), keys.begin(), keys.end());
            c.command(args);
          }
        },
        std::chrono::milliseconds(0));
  } catch (const std::exception& e) {
    spdlog::warn("{}; they stay until their prefix is removed", e.what());
  }
}

// A status reply's text (TYPE's), or the connection is unusable.
std::string status_of(const RedisReply& r, RedisConnection& c, std::string_view what) {
  if (r->type != REDIS_REPLY_STATUS) c.unexpected(what);
  return std::string(r->str, r->len);
}

// An integer reply, or the connection is unusable.
long long integer_of(const RedisReply& r, RedisConnection& c, std::string_view what) {
  if (r->type != REDIS_REPLY_INTEGER) c.unexpected(what);
  return r->integer;
}

// What the two kinds of stream share (see the top of the file): the writer's
// state, its connection, and the piece sent ahead of its answer.
class RedisStreamWriter : public ValueWriter {
 protected:
  enum class State { kOpen, kCommitted, kFailed };

  // The last piece sent and not yet answered (`sent`): writing a piece does
  // not wait for Redis to apply it, but for the piece before (the wait
  // overlapped with sending the next). `at`: where it goes (an offset, or a
  // piece's number); `on`: the serial() of its connection. Its bytes are a
  // copy, for a retry on a new connection.
  struct Piece {
    uint64_t at = 0;
    std::string bytes;
    uint64_t on = 0;
    bool sent = false;
  };

  RedisStreamWriter(RedisClient& client, std::string key) : client_(client), key_(std::move(key)) {}

  // Sends `bytes` for `at` on `c`, the answer left to settle().
  virtual void send_piece(RedisConnection& c, uint64_t at, std::string_view bytes) = 0;
  // Reads the answer to the oldest piece sent on `c`, of `bytes` for `at`,
  // and checks it.
  virtual void settle(RedisConnection& c, uint64_t at, size_t bytes) = 0;

  void check_open(const char* doing) const {
    if (state_ != State::kOpen)
      throw Error(client_.what(std::string("cannot ") + doing, key_) + ": its writer has " +
                  (state_ == State::kCommitted ? "committed" : "failed") + " already");
  }

  void settle_ahead(RedisConnection& c) {
    settle(c, ahead_.at, ahead_.bytes.size());
    ahead_.sent = false;
  }

  // The piece ahead was sent on a connection since lost (`c` is a new one):
  // sent again, and its answer awaited, before anything that follows it.
  void resend_if_lost(RedisConnection& c) {
    if (!ahead_.sent || ahead_.on == c.serial()) return;
    send_piece(c, ahead_.at, ahead_.bytes);
    ahead_.on = c.serial();
    settle_ahead(c);
  }

  // Removes what the stream wrote, in one attempt: should that fail, it
  // expires.
  virtual void remove_written() noexcept = 0;

  void fail() noexcept {
    state_ = State::kFailed;
    discard();
  }

  void discard() noexcept {
    conn_.reset();  // it may owe the piece ahead's replies
    ahead_ = {};
    remove_written();
  }

  // The piece just sent on conn_, for `at`, is the one ahead now (its bytes
  // already in ahead_.bytes).
  void keep_ahead(uint64_t at) {
    ahead_.at = at;
    ahead_.on = conn_->serial();
    ahead_.sent = true;
  }

  RedisClient& client_;
  const std::string key_;
  std::unique_ptr<RedisConnection> conn_;  // this stream's own: the piece ahead is owed on it
  Piece ahead_;
  State state_ = State::kOpen;
};

// Appends a value to its temporary key; renames that onto the key at
// commit (see the top of the file).
class RedisWriter final : public RedisStreamWriter {
 public:
  RedisWriter(RedisClient& client, std::string key)
      : RedisStreamWriter(client, std::move(key)), tmp_(temporary_key(key_)) {}
  ~RedisWriter() override {
    if (state_ == State::kOpen) discard();
  }

  void write(std::string_view bytes) override {
    check_open("write to");
    if (bytes.empty()) return;
    try {
      if (bytes.size() > kRedisMaxValueBytes - size_)
        throw Error(client_.what("put", key_) + " failed: the " +
                    std::to_string(size_ + bytes.size()) +
                    " bytes written exceed Redis's string limit of 512 MiB (536870912 bytes)");
      const bool first = size_ == 0;
      client_.run_on(conn_, "put", key_, [&](RedisConnection& c) {
        resend_if_lost(c);
        send_piece(c, size_, bytes);
        if (ahead_.sent) settle_ahead(c);  // its replies come before this piece's
        // The first piece is awaited: a stream of one piece (a small value)
        // copies nothing, and has no wait to hide.
        if (first) settle(c, 0, bytes.size());
      });
      size_ += bytes.size();
      if (first) return;
      // This piece stays in flight until the next call: kept for a retry on
      // a new connection, which must send it again.
      ahead_.bytes.assign(bytes);  // in the buffer the pieces before used
      keep_ahead(size_ - bytes.size());
    } catch (...) {
      fail();
      throw;
    }
  }

  void commit() override {
    check_open("commit");
    try {
      bool attempted = false;
      client_.run_on(conn_, "put", key_, [&](RedisConnection& c) {
        resend_if_lost(c);
        if (ahead_.sent) settle_ahead(c);
        if (size_ == 0) return c.set(key_, "");  // nothing was written: no temporary key
        bool retry = std::exchange(attempted, true);
        std::vector<RedisReply> r =
            c.pipeline({{"MULTI"}, {"RENAME", tmp_, key_}, {"PERSIST", key_}, {"EXEC"}});
        for (RedisReply& reply : r)
          if (reply->type == REDIS_REPLY_ERROR) c.refuse({reply->str, reply->len});
        const redisReply& exec = *r[3];
        if (exec.type != REDIS_REPLY_ARRAY || exec.elements != 2) c.unexpected("EXEC");
        const redisReply& renamed = *exec.element[0];
        if (renamed.type == REDIS_REPLY_ERROR) {
          // A retry: the attempt whose answer was lost may have renamed it.
          if (retry && integer_of(c.command({"STRLEN", key_}), c, "STRLEN") == (long long)size_)
            return;
          throw Error(client_.what("put", key_) + " failed: its temporary key " + quote_key(tmp_) +
                      " is gone (removed, or expired, before the commit): Redis answered " +
                      std::string(renamed.str, renamed.len));
        }
        reply_element(exec, 1, REDIS_REPLY_INTEGER, c, "PERSIST");
      });
    } catch (...) {
      fail();
      throw;
    }
    client_.release(conn_);
    ahead_ = {};
    state_ = State::kCommitted;
  }

 private:
  // One piece: in one MULTI/EXEC, STRLEN (what the key held before),
  // SETRANGE at `at`, PEXPIRE.
  void send_piece(RedisConnection& c, uint64_t at, std::string_view bytes) override {
    const std::string offset = std::to_string(at);
    c.send_transaction({{"STRLEN", tmp_}}, {"SETRANGE", tmp_, offset}, bytes,
                       {{"PEXPIRE", tmp_, kTemporaryKeyLifetimeMs}});
    sent_end_ = std::max(sent_end_, at + bytes.size());
  }

  // STRLEN's and SETRANGE's replies: the key held what came before, and
  // holds this piece after it.
  void settle(RedisConnection& c, uint64_t at, size_t bytes) override {
    RedisReply r = c.read_transaction(3);
    const long long before = (long long)at, after = before + (long long)bytes;
    long long had = reply_element(*r, 0, REDIS_REPLY_INTEGER, c, "STRLEN").integer;
    long long length = reply_element(*r, 1, REDIS_REPLY_INTEGER, c, "SETRANGE").integer;
    // More than `before`: a retry of a piece whose first attempt was applied,
    // and perhaps the piece sent after it on the connection lost too.
    const long long end = (long long)sent_end_;
    if (had < before || had > end) changed(had, before);
    if (length < after || length > end) changed(length, after);
  }

  [[noreturn]] void changed(long long length, long long expected) const {
    throw Error(client_.what("put", key_) + " failed: its temporary key " + quote_key(tmp_) +
                " holds " + std::to_string(length) + " bytes, not the " + std::to_string(expected) +
                " written (removed meanwhile?)");
  }

  // The temporary key.
  void remove_written() noexcept override {
    if (size_ == 0) return;
    try {
      client_.run(
          "remove the temporary key of", key_,
          [&](RedisConnection& c) {
            c.command({"UNLINK", tmp_});
          },
          std::chrono::milliseconds(0));
    } catch (const std::exception& e) {
      spdlog::warn("{}; it expires within a day", e.what());
    }
  }

  const std::string tmp_;
  uint64_t size_ = 0;      // sent so far
  uint64_t sent_end_ = 0;  // where the furthest piece sent ends (a retry may resend)
};

// In one MULTI/EXEC: HMGET of what `key` held (a value in pieces, whose
// pieces the caller then removes) and SET of `value`.
std::optional<Pieces> set_replacing(RedisConnection& c, const std::string& key,
                                    std::string_view value) {
  RedisReply r = c.transaction({{"HMGET", key, kFormatField, kSizeField, kPieceField, kBaseField}},
                               {"SET", key}, value, {});
  reply_element(*r, 1, REDIS_REPLY_STATUS, c, "SET");
  return pieces_of(*r->element[0]);
}

// A checkpoint store's stream: pieces under keys of their own, and a hash
// that names them under the key (see the top of the file).
class RedisPieceWriter final : public RedisStreamWriter {
 public:
  RedisPieceWriter(RedisClient& client, std::string key)
      : RedisStreamWriter(client, std::move(key)) {
    pieces_.piece = kPieceBytes;
    pieces_.base = key_ + ".part." + random_hex();
  }
  ~RedisPieceWriter() override {
    if (state_ == State::kOpen) discard();
  }

  void write(std::string_view bytes) override {
    check_open("write to");
    try {
      while (!bytes.empty()) {
        size_t take = std::min(bytes.size(), kPieceBytes - fill_.size());
        fill_.append(bytes.substr(0, take));
        bytes.remove_prefix(take);
        if (fill_.size() == kPieceBytes) send_fill();
      }
    } catch (...) {
      fail();
      throw;
    }
  }

  void commit() override {
    check_open("commit");
    std::optional<Pieces> old;
    try {
      if (pieces_.size == 0) {
        // Not over one piece: the value is a string, as a put's.
        client_.run_on(conn_, "put", key_,
                       [&](RedisConnection& c) { old = set_replacing(c, key_, fill_); });
      } else {
        if (!fill_.empty()) send_fill();
        old = commit_pieces();
      }
    } catch (...) {
      fail();
      throw;
    }
    client_.release(conn_);
    ahead_ = {};
    fill_ = {};
    state_ = State::kCommitted;
    if (old && old->base != pieces_.base) remove_pieces(client_, key_, *old);
  }

 private:
  // Sends the buffer as the next piece; the piece before, in flight until
  // now, is answered, and its buffer takes the next one.
  void send_fill() {
    const uint64_t i = pieces_.count();
    client_.run_on(conn_, "put", key_, [&](RedisConnection& c) {
      resend_if_lost(c);
      send_piece(c, i, fill_);
      if (ahead_.sent) settle_ahead(c);
    });
    std::swap(ahead_.bytes, fill_);
    fill_.clear();
    keep_ahead(i);
    pieces_.size += ahead_.bytes.size();
  }

  // SET of piece `i`, expiring, in one MULTI/EXEC.
  void send_piece(RedisConnection& c, uint64_t i, std::string_view bytes) override {
    const std::string k = pieces_.key(i);
    c.send_transaction({}, {"SET", k}, bytes, {{"PEXPIRE", k, kTemporaryKeyLifetimeMs}});
  }

  void settle(RedisConnection& c, uint64_t, size_t) override {
    RedisReply r = c.read_transaction(2);
    reply_element(*r, 0, REDIS_REPLY_STATUS, c, "SET");
    reply_element(*r, 1, REDIS_REPLY_INTEGER, c, "PEXPIRE");
  }

  // With every piece written: under WATCH on the pieces, checks that they
  // are all there, then sets the hash and makes them permanent. What the
  // key held before, for its pieces' removal.
  std::optional<Pieces> commit_pieces() {
    const uint64_t n = pieces_.count();
    std::vector<std::string> keys;
    for (uint64_t i = 0; i < n; ++i) keys.push_back(pieces_.key(i));
    auto command = [&](std::string& out, std::initializer_list<std::string_view> head,
                       bool with_keys) {
      std::vector<std::string_view> args(head);
      if (with_keys) args.insert(args.end(), keys.begin(), keys.end());
      append_command(out, args);
    };
    std::string check, apply;
    command(check, {"WATCH"}, true);
    command(check, {"EXISTS"}, true);
    command(apply, {"MULTI"}, false);
    append_hmget_pieces(apply, key_);
    command(apply, {"UNLINK", key_}, false);
    const std::string size = std::to_string(pieces_.size), piece = std::to_string(pieces_.piece);
    command(apply,
            {"HSET", key_, kFormatField, kPiecesFormat, kSizeField, size, kPieceField, piece,
             kBaseField, pieces_.base},
            false);
    for (const std::string& k : keys) command(apply, {"PERSIST", k}, false);
    command(apply, {"EXEC"}, false);

    std::optional<Pieces> old;
    bool attempted = false;
    client_.run_on(conn_, "put", key_, [&](RedisConnection& c) {
      resend_if_lost(c);
      if (ahead_.sent) settle_ahead(c);
      if (std::exchange(attempted, true) && committed(c)) return;
      // A piece removed between the check and the EXEC aborts the EXEC:
      // checked again, it is missing.
      for (;;) {
        std::vector<RedisReply> r = c.pipeline(check, 2);
        for (RedisReply& reply : r)
          if (reply->type == REDIS_REPLY_ERROR) c.refuse({reply->str, reply->len});
        long long there = integer_of(r[1], c, "EXISTS");
        if (there != (long long)n) {
          c.command({"UNWATCH"});
          throw Error(client_.what("put", key_) + " failed: " + std::to_string(n - there) +
                      " of its " + std::to_string(n) + " pieces (" + quote_key(pieces_.base) +
                      ".N) are gone (removed, or expired, before the commit)");
        }
        r = c.pipeline(apply, n + 5);
        for (RedisReply& reply : r)
          if (reply->type == REDIS_REPLY_ERROR) c.refuse({reply->str, reply->len});
        const redisReply& exec = *r.back();
        if (exec.type == REDIS_REPLY_NIL) continue;
        if (exec.type != REDIS_REPLY_ARRAY || exec.elements != n + 3) c.unexpected("EXEC");
        old = pieces_of(*exec.element[0]);
        reply_element(exec, 2, REDIS_REPLY_INTEGER, c, "HSET");
        return;
      }
    });
    return old;
  }

  // After an attempt whose answer was lost: whether it committed.
  bool committed(RedisConnection& c) {
    if (status_of(c.command({"TYPE", key_}), c, "TYPE") != "hash") return false;
    RedisReply r = c.command({"HGET", key_, kBaseField});
    return r->type == REDIS_REPLY_STRING && std::string_view(r->str, r->len) == pieces_.base;
  }

  // The pieces sent (all but one being sent when the stream failed).
  void remove_written() noexcept override {
    if (pieces_.size > 0) remove_pieces(client_, key_, pieces_);
  }

  Pieces pieces_;     // the pieces sent so far
  std::string fill_;  // the piece being filled (ahead_.bytes: the buffer of the one before)
};

// Reads ranges of a value with GETRANGE, of its pieces if it is in pieces
// (see the top of the file).
class RedisReader final : public ValueReader {
 public:
  RedisReader(RedisClient& client, std::string key, uint64_t size, std::optional<Pieces> pieces)
      : client_(client), key_(std::move(key)), size_(size), pieces_(std::move(pieces)) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, char* dst, size_t bytes) override {
    check_read_range(offset, bytes, size_, client_.url() + " key " + quote_key(key_));
    if (!pieces_) return read_range(key_, offset, dst, bytes);
    for (uint64_t at = offset; bytes > 0;) {
      const uint64_t i = at / pieces_->piece, within = at % pieces_->piece;
      const size_t n = size_t(std::min<uint64_t>(bytes, pieces_->piece - within));
      read_range(pieces_->key(i), within, dst, n);
      at += n, dst += n, bytes -= n;
    }
  }

 private:
  // `bytes` at `at` of `key`: the value's key, or one of its pieces'.
  void read_range(const std::string& key, uint64_t at, char* dst, size_t bytes) {
    if (bytes == 0) return;
    size_t got = 0;
    client_.run("read", key_,
                [&](RedisConnection& c) { got = c.getrange(key, at, at + bytes - 1, dst, bytes); });
    if (got != bytes)
      throw Error(client_.what("read", key_) + " failed: " +
                  (pieces_ ? "its piece " + quote_key(key) + " lacks bytes: " : std::string()) +
                  std::to_string(got) + " of the " + std::to_string(bytes) + " bytes at offset " +
                  std::to_string(at) +
                  " are there: the value was removed or replaced after it was opened (it had " +
                  std::to_string(size_) + " bytes)");
  }

  RedisClient& client_;
  const std::string key_;
  const uint64_t size_;
  const std::optional<Pieces> pieces_;
};

class RedisStore final : public CheckpointStore {
 public:
  // `pieces`: a checkpoint store, whose streams write in pieces.
  RedisStore(RedisConfig config, bool pieces)
      : client_(std::move(config), "redis store"), pieces_(pieces) {
    // Fail early (an unreachable server, a wrong password), and keep the connection.
    client_.run("connect", "", [](RedisConnection& c) { c.command({"PING"}); });
  }

  void put(const std::string& key, std::string_view bytes) override {
    if (!pieces_) {
      if (bytes.size() > kRedisMaxValueBytes)
        throw Error("redis store " + client_.url() + ": cannot put " + quote_key(key) + ": its " +
                    std::to_string(bytes.size()) +
                    " bytes exceed Redis's string limit of 512 MiB (536870912 bytes)");
      return client_.run("put", key, [&](RedisConnection& c) { c.set(key, bytes); });
    }
    if (bytes.size() > kRedisMaxValueBytes) {
      RedisPieceWriter writer(client_, key);
      writer.write(bytes);
      return writer.commit();
    }
    std::optional<Pieces> old;
    client_.run("put", key, [&](RedisConnection& c) { old = set_replacing(c, key, bytes); });
    if (old) remove_pieces(client_, key, *old);
  }

  std::optional<std::string> get(const std::string& key) override {
    return get_checked(key, 0, {});
  }

  // One GET; a value in pieces (a hash: GET answers WRONGTYPE) is read
  // through a reader, its head first.
  std::optional<std::string> get_checked(const std::string& key, size_t head_bytes,
                                         const HeadCheck& check) override {
    std::optional<std::string> value;
    bool hash = false;
    client_.run("get", key, [&](RedisConnection& c) {
      try {
        value = c.get(key, head_bytes, check);
      } catch (const RedisRefused& e) {
        if (!std::string_view(e.what()).starts_with("Redis answered: WRONGTYPE")) throw;
        hash = true;
      }
    });
    if (!hash) return value;
    std::unique_ptr<ValueReader> reader = open_reader("get", key);
    if (!reader) return std::nullopt;
    const uint64_t size = reader->size();
    std::string out = string_for_overwrite(size);
    const size_t head = size_t(std::min<uint64_t>(head_bytes, size));
    reader->read(0, out.data(), head);
    if (check) check(std::string_view(out.data(), head), size);
    reader->read(head, out.data() + head, size - head);
    return out;
  }

  std::unique_ptr<ValueWriter> put_stream(const std::string& key) override {
    if (pieces_) return std::make_unique<RedisPieceWriter>(client_, key);
    return std::make_unique<RedisWriter>(client_, key);
  }

  std::unique_ptr<ValueReader> open_value(const std::string& key) override {
    return open_reader("open", key);
  }

  std::vector<std::string> list(const std::string& prefix) override {
    std::vector<std::string> keys;
    client_.run("list keys under", prefix, [&](RedisConnection& c) {
      keys.clear();
      scan(c, prefix, [&](std::vector<std::string_view>& page) {
        for (std::string_view k : page)
          if (!is_temporary_key(k) && !is_piece_key(k)) keys.emplace_back(k);
      });
    });
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());  // SCAN may repeat keys
    return keys;
  }

  // The key, then its pieces if it had any.
  void remove(const std::string& key) override {
    std::optional<Pieces> old;
    client_.run("remove", key, [&](RedisConnection& c) {
      std::string cmds;
      const std::string_view multi[] = {"MULTI"}, unlink[] = {"UNLINK", key}, exec[] = {"EXEC"};
      append_command(cmds, multi);
      append_hmget_pieces(cmds, key);
      append_command(cmds, unlink);
      append_command(cmds, exec);
      std::vector<RedisReply> r = c.pipeline(cmds, 4);
      for (RedisReply& reply : r)
        if (reply->type == REDIS_REPLY_ERROR) c.refuse({reply->str, reply->len});
      const redisReply& done = *r[3];
      if (done.type != REDIS_REPLY_ARRAY || done.elements != 2) c.unexpected("EXEC");
      old = pieces_of(*done.element[0]);
    });
    if (old) remove_pieces(client_, key, *old);
  }

  // RENAME: atomic on the server, and the bytes never come here. A source
  // that is gone means a move done before (the target is there) or an error.
  // A value in pieces is copied instead (its pieces' keys start with its
  // key: renamed, they would no longer be under the new key's prefix); no
  // caller moves one.
  void move(const std::string& from, const std::string& to) override {
    bool copy = false;
    client_.run("move", from, [&](RedisConnection& c) {
      std::string type = status_of(c.command({"TYPE", from}), c, "TYPE");
      if (type == "none") {
        if (c.command({"EXISTS", to})->integer == 0)
          throw Error(client_.what("move", from) + " to " + quote_key(to) +
                      " failed: neither exists");
        return;
      }
      if (type == "hash") {
        copy = true;
        return;
      }
      c.command({"RENAME", from, to});
    });
    if (copy) CheckpointStore::move(from, to);
  }

  void remove_prefix(const std::string& prefix) override {
    if (prefix.empty() || prefix.back() != '/')
      throw Error("remove_prefix needs a prefix ending in '/', not " + quote_key(prefix));
    client_.run("remove keys under", prefix, [&](RedisConnection& c) {
      std::vector<std::string_view> args;
      scan(c, prefix, [&](std::vector<std::string_view>& page) {
        if (page.empty()) return;
        args.assign({"UNLINK"});
        args.insert(args.end(), page.begin(), page.end());
        c.command(args);
      });
    });
  }

  std::string url() const override { return client_.url(); }

 private:
  // A reader of the value under `key` (nullptr if there is none), after one
  // round trip: TYPE, STRLEN (a string's size) and HMGET (a hash's fields).
  std::unique_ptr<ValueReader> open_reader(std::string_view op, const std::string& key) {
    std::string type;
    uint64_t size = 0;
    std::optional<Pieces> pieces;
    client_.run(op, key, [&](RedisConnection& c) {
      std::string cmds;
      const std::string_view type_of[] = {"TYPE", key}, strlen[] = {"STRLEN", key};
      append_command(cmds, type_of);
      append_command(cmds, strlen);
      append_hmget_pieces(cmds, key);
      std::vector<RedisReply> r = c.pipeline(cmds, 3);
      if (r[0]->type == REDIS_REPLY_ERROR) c.refuse({r[0]->str, r[0]->len});
      type = status_of(r[0], c, "TYPE");
      pieces.reset();
      if (type == "string") {
        size = uint64_t(integer_of(r[1], c, "STRLEN"));
      } else if (type == "hash") {
        std::string why;
        pieces = pieces_of(*r[2], &why);
        if (!pieces) throw Error(client_.what(op, key) + " failed: it holds " + why);
        size = pieces->size;
      } else if (type != "none") {
        c.refuse({r[1]->str, r[1]->len});  // STRLEN's WRONGTYPE
      }
    });
    if (type == "none") return nullptr;
    return std::make_unique<RedisReader>(client_, key, size, std::move(pieces));
  }

  // Calls `page` with each page of the keys under `prefix` (SCAN MATCH).
  template <class F>
  void scan(RedisConnection& c, const std::string& prefix, F&& page) {
    std::string pattern = glob_for_prefix(prefix);
    std::string cursor = "0";
    std::vector<std::string_view> keys;
    do {
      RedisReply r = c.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      const redisReply& next = reply_element(*r, 0, REDIS_REPLY_STRING, c, "SCAN");
      const redisReply& found = reply_element(*r, 1, REDIS_REPLY_ARRAY, c, "SCAN");
      keys.clear();
      for (size_t i = 0; i < found.elements; ++i) {
        const redisReply& k = *found.element[i];
        if (k.type != REDIS_REPLY_STRING) c.unexpected("SCAN");
        std::string_view key(k.str, k.len);
        if (key.starts_with(prefix)) keys.push_back(key);
      }
      page(keys);
      cursor.assign(next.str, next.len);
    } while (cursor != "0");
  }

  RedisClient client_;
  const bool pieces_;
};

}  // namespace

std::unique_ptr<CheckpointStore> open_redis_store(const std::string& rest,
                                                  const StoreOptions& options) {
  return std::make_unique<RedisStore>(parse_redis_url(rest, kUrlForm), !options.shared);
}

}  // namespace kappa::detail
