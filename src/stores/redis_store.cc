// RedisStore: checkpoint images as Redis strings, one key per image.
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
// - Atomic. A put is one SET: readers see the old value or the new one, and a
//   SET that Redis did not receive whole stores nothing. A get returns the
//   whole value or throws: a reply cut short is retried or reported, never
//   returned shorter. get_checked is one GET too: the reply's header gives
//   the size, and the check sees it and the head as soon as they have
//   arrived, before room is made for the value and the rest is received. A
//   refused value's reply is left unread and its connection closed: Redis
//   will have sent what the sockets' buffers hold (a few MiB), not the value.
// - Values up to 512 MiB, Redis's string limit (proto-max-bulk-len); a larger
//   put throws kappa::Error without sending anything.
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
// - Readers (open_value) learn the size with STRLEN (and EXISTS), then read
//   each range with one GETRANGE received straight into the caller's
//   buffer. Redis cannot pin a version cheaply: a value removed or made
//   shorter meanwhile fails the read, but one replaced by another at least
//   as long would be read mixed. Checkpoint keys are never replaced.
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

// A stream's temporary key, KEY.tmp.R, which list() does not show. R comes
// from the system's random source at each call (not from a generator's
// state, which a forked process would share with its parent).
std::string temporary_key(const std::string& key) {
  std::random_device random;
  unsigned long long r = (static_cast<unsigned long long>(random()) << 32) ^ random();
  char hex[kRandomDigits + 1];
  std::snprintf(hex, sizeof hex, "%016llx", r);
  return key + ".tmp." + hex;
}

bool is_temporary_key(std::string_view key) {
  constexpr size_t kSuffix = 5 + kRandomDigits;  // ".tmp." and the digits
  if (key.size() <= kSuffix || key.substr(key.size() - kSuffix, 5) != ".tmp.") return false;
  return std::all_of(key.end() - kRandomDigits, key.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// An integer reply, or the connection is unusable.
long long integer_of(const RedisReply& r, RedisConnection& c, std::string_view what) {
  if (r->type != REDIS_REPLY_INTEGER) c.unexpected(what);
  return r->integer;
}

// Appends a value to its temporary key; renames that onto the key at
// commit (see the top of the file).
class RedisWriter final : public ValueWriter {
 public:
  RedisWriter(RedisClient& client, std::string key)
      : client_(client), key_(std::move(key)), tmp_(temporary_key(key_)) {}
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
      ahead_.at = size_ - bytes.size();
      ahead_.bytes.assign(bytes);  // in the buffer the pieces before used
      ahead_.on = conn_->serial();
      ahead_.sent = true;
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
  enum class State { kOpen, kCommitted, kFailed };

  // The last piece written, sent and not yet answered (`sent`): writing a
  // piece after the first does not wait for Redis to apply it, but for the
  // piece before (the wait overlapped with sending the next). `on`: the
  // serial() of its connection. Its bytes are a copy, for a retry on a new
  // connection.
  struct Piece {
    uint64_t at = 0;
    std::string bytes;
    uint64_t on = 0;
    bool sent = false;
  };

  void check_open(const char* doing) const {
    if (state_ != State::kOpen)
      throw Error(client_.what(std::string("cannot ") + doing, key_) + ": its writer has " +
                  (state_ == State::kCommitted ? "committed" : "failed") + " already");
  }

  // One piece: in one MULTI/EXEC, STRLEN (what the key held before),
  // SETRANGE at `at`, PEXPIRE.
  void send_piece(RedisConnection& c, uint64_t at, std::string_view bytes) {
    const std::string offset = std::to_string(at);
    c.send_transaction({{"STRLEN", tmp_}}, {"SETRANGE", tmp_, offset}, bytes,
                       {{"PEXPIRE", tmp_, kTemporaryKeyLifetimeMs}});
    sent_end_ = std::max(sent_end_, at + bytes.size());
  }

  // Reads the replies of the oldest piece sent, of `bytes` at `at`, and
  // checks them.
  void settle(RedisConnection& c, uint64_t at, size_t bytes) {
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

  [[noreturn]] void changed(long long length, long long expected) const {
    throw Error(client_.what("put", key_) + " failed: its temporary key " + quote_key(tmp_) +
                " holds " + std::to_string(length) + " bytes, not the " + std::to_string(expected) +
                " written (removed meanwhile?)");
  }

  void fail() noexcept {
    state_ = State::kFailed;
    discard();
  }

  // One attempt at removing the temporary key: should it fail, the key
  // expires.
  void discard() noexcept {
    conn_.reset();  // it may owe the piece ahead's replies
    ahead_ = {};
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

  RedisClient& client_;
  const std::string key_, tmp_;
  std::unique_ptr<RedisConnection> conn_;  // this stream's own: the piece ahead is owed on it
  Piece ahead_;
  uint64_t size_ = 0;      // sent so far
  uint64_t sent_end_ = 0;  // where the furthest piece sent ends (a retry may resend)
  State state_ = State::kOpen;
};

// Reads ranges of a value with GETRANGE (see the top of the file).
class RedisReader final : public ValueReader {
 public:
  RedisReader(RedisClient& client, std::string key, uint64_t size)
      : client_(client), key_(std::move(key)), size_(size) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, char* dst, size_t bytes) override {
    check_read_range(offset, bytes, size_, client_.url() + " key " + quote_key(key_));
    if (bytes == 0) return;
    size_t got = 0;
    client_.run("read", key_, [&](RedisConnection& c) {
      got = c.getrange(key_, offset, offset + bytes - 1, dst, bytes);
    });
    if (got != bytes)
      throw Error(client_.what("read", key_) + " failed: " + std::to_string(got) + " of the " +
                  std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                  " are there: the value was removed or replaced after it was opened (it had " +
                  std::to_string(size_) + " bytes)");
  }

 private:
  RedisClient& client_;
  const std::string key_;
  const uint64_t size_;
};

class RedisStore final : public CheckpointStore {
 public:
  explicit RedisStore(RedisConfig config) : client_(std::move(config), "redis store") {
    // Fail early (an unreachable server, a wrong password), and keep the connection.
    client_.run("connect", "", [](RedisConnection& c) { c.command({"PING"}); });
  }

  void put(const std::string& key, std::string_view bytes) override {
    if (bytes.size() > kRedisMaxValueBytes)
      throw Error("redis store " + client_.url() + ": cannot put " + quote_key(key) + ": its " +
                  std::to_string(bytes.size()) +
                  " bytes exceed Redis's string limit of 512 MiB (536870912 bytes)");
    client_.run("put", key, [&](RedisConnection& c) { c.set(key, bytes); });
  }

  std::optional<std::string> get(const std::string& key) override {
    std::optional<std::string> value;
    client_.run("get", key, [&](RedisConnection& c) { value = c.get(key); });
    return value;
  }

  std::optional<std::string> get_checked(const std::string& key, size_t head_bytes,
                                         const HeadCheck& check) override {
    std::optional<std::string> value;
    client_.run("get", key, [&](RedisConnection& c) { value = c.get(key, head_bytes, check); });
    return value;
  }

  std::unique_ptr<ValueWriter> put_stream(const std::string& key) override {
    return std::make_unique<RedisWriter>(client_, key);
  }

  std::unique_ptr<ValueReader> open_value(const std::string& key) override {
    bool exists = false;
    uint64_t size = 0;
    client_.run("open", key, [&](RedisConnection& c) {
      std::vector<RedisReply> r = c.pipeline({{"EXISTS", key}, {"STRLEN", key}});
      for (RedisReply& reply : r)
        if (reply->type == REDIS_REPLY_ERROR) c.refuse({reply->str, reply->len});  // WRONGTYPE
      exists = integer_of(r[0], c, "EXISTS") != 0;
      size = uint64_t(integer_of(r[1], c, "STRLEN"));
    });
    if (!exists) return nullptr;
    return std::make_unique<RedisReader>(client_, key, size);
  }

  std::vector<std::string> list(const std::string& prefix) override {
    std::vector<std::string> keys;
    client_.run("list keys under", prefix, [&](RedisConnection& c) {
      keys.clear();
      scan(c, prefix, [&](std::vector<std::string_view>& page) {
        for (std::string_view k : page)
          if (!is_temporary_key(k)) keys.emplace_back(k);
      });
    });
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());  // SCAN may repeat keys
    return keys;
  }

  void remove(const std::string& key) override {
    client_.run("remove", key, [&](RedisConnection& c) { c.command({"UNLINK", key}); });
  }

  // RENAME: atomic on the server, and the bytes never come here. A source
  // that is gone means a move done before (the target is there) or an error.
  void move(const std::string& from, const std::string& to) override {
    client_.run("move", from, [&](RedisConnection& c) {
      if (c.command({"EXISTS", from})->integer == 0) {
        if (c.command({"EXISTS", to})->integer == 0)
          throw Error(client_.what("move", from) + " to " + quote_key(to) +
                      " failed: neither exists");
        return;
      }
      c.command({"RENAME", from, to});
    });
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
};

}  // namespace

std::unique_ptr<CheckpointStore> open_redis_store(const std::string& rest, const StoreOptions&) {
  return std::make_unique<RedisStore>(parse_redis_url(rest, kUrlForm));
}

}  // namespace kappa::detail
