// Redis connections, shared by the redis:// checkpoint store
// (stores/redis_store.cc) and the redis:// journal (journals/redis_journal.cc):
// the URL, one connection speaking RESP, and a client that pools connections
// and retries what is worth retrying.
//
// - URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?retry_timeout=S&timeout=S]
//   (the password may come from REDISCLI_AUTH instead; see redis_store.cc).
// - A connection: hiredis connects and parses replies; large values are sent
//   with one sendmsg and received straight into the string returned. Any I/O
//   failure throws RedisTransient and leaves it unusable; an error reply
//   leaves it usable.
// - RedisClient::run: a connection from the pool (mutex-protected: any
//   number of threads), retried on a new connection with backoff from 50 ms
//   to 2 s while failures are transient (a lost connection, a timeout,
//   LOADING/BUSY...), until retry_timeout has passed; then kappa::Error names
//   the server, the operation, the key and the last failure. What Redis
//   refuses is reported at once.
#pragma once

#include <hiredis/hiredis.h>
#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stores/checkpoint_store.h"

namespace kappa::detail {

struct RedisConfig {
  std::string host;
  int port = 6379;
  long db = 0;
  std::string user, password;
  std::chrono::milliseconds retry_timeout{30000};
  std::chrono::milliseconds timeout{30000};
};

/// Parses a redis:// URL (`rest`: what follows "redis://"); `form` is the
/// expected form, for messages. Options other than retry_timeout and timeout
/// go to `extra` if given (an error otherwise). Throws kappa::Error.
RedisConfig parse_redis_url(std::string_view rest, std::string_view form,
                            std::vector<std::pair<std::string, std::string>>* extra = nullptr);

/// The URL without credentials or options: what messages show.
std::string describe(const RedisConfig& c);

/// A key as messages show it: quoted, bytes other than printable ASCII escaped.
std::string quote_key(std::string_view key);

/// Redis's string limit (proto-max-bulk-len).
constexpr uint64_t kRedisMaxValueBytes = uint64_t(512) << 20;

/// A failure worth retrying on a new connection: the connection is gone,
/// timed out, or the server is not ready.
struct RedisTransient : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// An error Redis answered: retrying would not help. The connection is fine.
struct RedisRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Throws for an error reply: RedisTransient for the errors of a server that
/// is starting or busy, RedisRefused for the others.
[[noreturn]] void throw_redis_error(std::string_view text);

struct RedisReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyDeleter>;

class RedisConnection {
  struct ContextDeleter {
    void operator()(redisContext* c) const { redisFree(c); }
  };

 public:
  /// Connects, authenticates and selects the database; throws
  /// RedisTransient if it cannot reach the server.
  RedisConnection(const RedisConfig& config, std::chrono::milliseconds connect_timeout);

  /// False once the connection is broken or a reply is left unread (a
  /// transaction sent with send_transaction() counts until it is read).
  bool reusable() const { return !unusable_ && !pending_ && owed_ == 0; }
  /// False once the connection is broken or a reply was left unread by a
  /// failure; transactions sent deliberately ahead of their replies are fine.
  bool usable() const { return !unusable_ && !pending_; }

  /// Sends the commands at once and reads every reply. Error replies are
  /// returned, not thrown.
  std::vector<RedisReply> pipeline(
      std::initializer_list<std::initializer_list<std::string_view>> cmds);
  /// The same for `count` commands already encoded (append_command) in
  /// `commands`.
  std::vector<RedisReply> pipeline(std::string_view commands, size_t count);

  /// This connection's number, unique in the process: state a caller keeps
  /// about a connection (a WATCH) is tied to it, not to its address.
  uint64_t serial() const { return serial_; }

  /// One command; an error reply throws.
  RedisReply command(std::span<const std::string_view> args);
  RedisReply command(std::initializer_list<std::string_view> args);

  /// SET key value, the value sent from where it is.
  void set(std::string_view key, std::string_view value);

  /// MULTI, the commands `before`, `with_value` with `value` (sent from
  /// where it is) as its last argument, the commands `after`, EXEC, all sent
  /// at once: EXEC's reply, the array of the commands' replies (error
  /// replies in it are returned, not thrown). A command refused before EXEC
  /// throws.
  RedisReply transaction(std::initializer_list<std::initializer_list<std::string_view>> before,
                         std::initializer_list<std::string_view> with_value, std::string_view value,
                         std::initializer_list<std::initializer_list<std::string_view>> after);
  /// transaction() in two halves, so that the next can be sent before this
  /// one's replies are read (they wait in the socket's buffer): sends it, and
  /// returns how many commands it holds, for read_transaction(). Replies are
  /// read in the order the transactions were sent.
  size_t send_transaction(std::initializer_list<std::initializer_list<std::string_view>> before,
                          std::initializer_list<std::string_view> with_value,
                          std::string_view value,
                          std::initializer_list<std::initializer_list<std::string_view>> after);
  /// The replies of the oldest transaction sent and not read, of `commands`
  /// commands: as transaction() returns them.
  RedisReply read_transaction(size_t commands);

  /// GETRANGE key first last, the reply received straight into `dst`, which
  /// has room for `capacity` bytes: the reply's size (Redis cuts a range at
  /// the value's end). A reply larger than `capacity` is a protocol error.
  size_t getrange(std::string_view key, uint64_t first, uint64_t last, char* dst, size_t capacity);

  /// GET key: the whole value, or nullopt if there is none. The bulk reply
  /// is received into the returned string directly. With a `check`, the
  /// value's size and first `head_bytes` bytes go to it as soon as they have
  /// arrived, before the string is made and the rest received; if it throws,
  /// the reply is left unread and the connection is not reused.
  std::optional<std::string> get(std::string_view key, size_t head_bytes = 0,
                                 const HeadCheck& check = {});

  /// Throws for an error reply. Redis closes the connection after a protocol
  /// error: that one is not reused.
  [[noreturn]] void refuse(std::string_view text);

  [[noreturn]] void unexpected(std::string_view what);

 private:
  [[noreturn]] void fail(const std::string& why);

  [[noreturn]] void fail_errno(int error, const std::string& doing);

  void send_all(iovec* iov, int count);

  RedisReply read_reply();

  // Receives at least one byte into the `count` buffers of `iov`, or into
  // [p, p + n).
  size_t recv_some(iovec* iov, int count, int flags, const std::string& context);
  size_t recv_some(char* p, size_t n, int flags, const std::string& context);

  // Reads a bulk string reply ($LEN\r\nBYTES\r\n, or $-1\r\n for none),
  // showing `check` (if any) its size and first `head_bytes` bytes before
  // the rest is received.
  std::optional<std::string> read_bulk(size_t head_bytes, const HeadCheck& check);

  // The first line of a bulk reply, read into `line`: its length, or -1 for
  // none; an error reply throws. `early` gets what came after the line in
  // the same reads (the value's first bytes).
  int64_t read_bulk_header(char (&line)[1024], std::string_view& early);

  // Receives the rest of a bulk reply of `size` bytes into `dst`, whose
  // first `got` bytes are there: first those of `early`, then what comes,
  // then the CRLF that ends it.
  void read_bulk_rest(char* dst, size_t size, size_t got, std::string_view early);

  std::unique_ptr<redisContext, ContextDeleter> ctx_;
  uint64_t serial_;
  bool unusable_ = false;
  bool pending_ = false;  // a command was sent and its reply not read whole
  size_t owed_ = 0;       // transactions sent by send_transaction() and not read
};

/// Appends the RESP encoding of a command to `out`; if `value_follows`, all
/// but that last argument, which the caller sends itself, then "\r\n".
void append_command(std::string& out, std::span<const std::string_view> args,
                    const std::string_view* value_follows = nullptr);

/// Element `i` of an array reply, of type `type`; an error element throws
/// what Redis said, anything else unexpected makes the connection unusable.
const redisReply& reply_element(const redisReply& r, size_t i, int type, RedisConnection& c,
                                std::string_view what);

class RedisClient {
 public:
  /// `kind` names the client's user in messages ("redis store").
  RedisClient(RedisConfig config, std::string kind);
  const RedisConfig& config() const { return config_; }
  /// describe(config()).
  const std::string& url() const { return url_; }
  /// Runs `f` on a pooled connection, retrying transient failures on new
  /// connections until the retry timeout. Throws kappa::Error naming the
  /// server, `op` and `key`. `f` may run more than once: it must be
  /// idempotent, and reset what it fills in.
  /// `retry_for`, if given, replaces the retry timeout (zero: one attempt).
  void run(std::string_view op, std::string_view key,
           const std::function<void(RedisConnection&)>& f,
           std::optional<std::chrono::milliseconds> retry_for = std::nullopt);
  /// The same on `pinned`, a connection the caller keeps for state it holds
  /// on the server (a WATCH): taken from the pool if empty, replaced by a new
  /// one (with a new serial()) after a transient failure. The caller
  /// serializes its use.
  /// Transactions `f` sends ahead of their replies (send_transaction) stay
  /// owed on `pinned`: the caller reads them on a later call, or drops it.
  void run_on(std::unique_ptr<RedisConnection>& pinned, std::string_view op, std::string_view key,
              const std::function<void(RedisConnection&)>& f);
  /// Hands a connection kept with run_on back to the pool (if nothing is
  /// owed on it; else it is closed), and empties `pinned`.
  void release(std::unique_ptr<RedisConnection>& pinned);
  /// "KIND redis://HOST:PORT/DB: OP 'KEY'", for messages.
  std::string what(std::string_view op, std::string_view key) const;

 private:
  // Runs `f` on connections from `take` (given the deadline), handing each
  // to `give_back` after use, as run() describes.
  void retry(
      std::string_view op, std::string_view key, const std::function<void(RedisConnection&)>& f,
      std::chrono::milliseconds retry_for,
      const std::function<std::unique_ptr<RedisConnection>(std::chrono::steady_clock::time_point)>&
          take,
      const std::function<void(std::unique_ptr<RedisConnection>)>& give_back);
  std::unique_ptr<RedisConnection> take(std::chrono::steady_clock::time_point deadline);
  std::unique_ptr<RedisConnection> connect(std::chrono::steady_clock::time_point deadline);
  void give_back(std::unique_ptr<RedisConnection> c);
  void drop_idle();

  const RedisConfig config_;
  const std::string url_, kind_;
  std::mutex mu_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;
};

}  // namespace kappa::detail
