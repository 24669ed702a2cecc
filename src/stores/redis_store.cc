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
//   bytes, GET, UNLINK, SCAN), so retrying after an ambiguous failure is
//   safe. What Redis refuses (a wrong password, WRONGTYPE, OOM) is reported
//   at once.
// - Threads. Any number of threads may share a store: each operation takes
//   a connection from a mutex-protected pool and gives it back afterwards
//   (connections are reused). A connection failure empties the pool: its
//   other connections are likely gone too.
// - Durability is Redis's own configuration: an acknowledged put outlives a
//   Redis restart only with persistence on (appendonly yes; with appendfsync
//   always, also a crash of the machine).
// - Keys are binary-safe. list and remove_prefix use SCAN MATCH with the
//   prefix's glob characters escaped; removals use UNLINK.
//
// Connections, retries and the URL are redis_client.h's, shared with the
// redis:// journal. Large values are not copied: a SET goes out as one sendmsg of a small
// header, the caller's bytes and CRLF, and a GET's bulk reply is received
// straight into the string returned. (hiredis's own command path copies a
// value twice, into the formatted command and into its output buffer.)
// hiredis connects and parses the replies of every other command; all writes
// use MSG_NOSIGNAL, so a dead connection is an error, not a SIGPIPE.
#include <algorithm>
#include <string>
#include <vector>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "stores/redis_client.h"

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

  std::vector<std::string> list(const std::string& prefix) override {
    std::vector<std::string> keys;
    client_.run("list keys under", prefix, [&](RedisConnection& c) {
      keys.clear();
      scan(c, prefix, [&](std::vector<std::string_view>& page) {
        for (std::string_view k : page) keys.emplace_back(k);
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
