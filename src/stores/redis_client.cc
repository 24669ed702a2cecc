#include "stores/redis_client.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "kappa/error.h"
#include "util/log.h"
#include "util/string_for_overwrite.h"

namespace kappa::detail {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxIdleConnections = 16;
constexpr milliseconds kFirstDelay{50}, kMaxDelay{2000};

// What is wrong with a URL (parse_redis_url adds the expected form).
struct BadUrl : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void bad_url(const std::string& why) { throw BadUrl(why); }

template <class Int>
bool parse_int(std::string_view s, Int& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char byte = 0;
    if (s[i] == '%') {
      if (i + 2 >= s.size()) bad_url("a truncated %-escape");
      auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, byte, 16);
      if (ec != std::errc() || end != s.data() + i + 3) bad_url("a bad %-escape");
      out += char(byte);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

milliseconds parse_seconds(std::string_view name, std::string_view value, bool zero_ok) {
  std::string text(value);
  char* end = nullptr;
  double s = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(s >= 0) || (!zero_ok && s == 0) || s > 1e6)
    bad_url(std::string(name) + " must be a number of seconds" + (zero_ok ? "" : " above 0") +
            ", not '" + text + "'");
  // At least a millisecond: a socket timeout of 0 would mean none at all.
  return milliseconds(zero_ok ? int64_t(s * 1000) : std::max<int64_t>(1, int64_t(s * 1000)));
}

RedisConfig parse(std::string_view rest, std::vector<std::pair<std::string, std::string>>* extra) {
  RedisConfig c;
  std::string_view query;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) bad_url("a user needs a password (USER:PASSWORD@)");
    c.user = percent_decode(userinfo.substr(0, colon));
    c.password = percent_decode(userinfo.substr(colon + 1));
    if (c.password.empty()) bad_url("an empty password");
  }
  std::string_view hostport = rest, path;
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  std::string_view port;
  if (hostport.starts_with('[')) {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) bad_url("an unclosed '[' in the host");
    c.host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) bad_url("text after ']'");
    if (!after.empty()) port = after.substr(1);
    if (after == ":") bad_url("an empty port");
  } else {
    size_t colon = hostport.find(':');
    if (colon != std::string_view::npos && hostport.find(':', colon + 1) != std::string_view::npos)
      bad_url("an IPv6 address must be written in brackets ([::1]:6379)");
    c.host = hostport.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) bad_url("an empty port");
    }
  }
  if (c.host.empty()) bad_url("no host");
  if (!port.empty() && (!parse_int(port, c.port) || c.port < 1 || c.port > 65535))
    bad_url("the port must be a number from 1 to 65535, not '" + std::string(port) + "'");
  if (path.ends_with('/')) path.remove_suffix(1);
  if (!path.empty() && (!parse_int(path, c.db) || c.db < 0))
    bad_url("the database must be a number (redis://HOST:PORT/DB), not '" + std::string(path) +
            "'");
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = item.find('=');
    std::string_view name = item.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
    if (name == "retry_timeout")
      c.retry_timeout = parse_seconds(name, value, true);
    else if (name == "timeout")
      c.timeout = parse_seconds(name, value, false);
    else if (extra)
      extra->emplace_back(name, percent_decode(value));
    else
      bad_url("unknown option '" + std::string(name) + "'");
  }
  if (c.password.empty())
    if (const char* env = std::getenv("REDISCLI_AUTH"); env && *env) c.password = env;
  return c;
}

std::string seconds_text(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

timeval to_timeval(milliseconds ms) {
  return timeval{time_t(ms.count() / 1000), suseconds_t(ms.count() % 1000 * 1000)};
}

// Moves `iov` (`count` buffers) past the first `n` bytes.
void advance(iovec*& iov, int& count, size_t n) {
  while (count > 0 && n >= iov->iov_len) {
    n -= iov->iov_len;
    ++iov;
    --count;
  }
  if (count > 0) {
    iov->iov_base = static_cast<char*>(iov->iov_base) + n;
    iov->iov_len -= n;
  }
}

}  // namespace

void append_command(std::string& out, std::span<const std::string_view> args,
                    const std::string_view* value_follows) {
  auto length = [&](char kind, size_t n) {
    char digits[24];
    digits[0] = kind;
    char* end = std::to_chars(digits + 1, digits + sizeof digits - 2, n).ptr;
    *end++ = '\r';
    *end++ = '\n';
    out.append(digits, end);
  };
  length('*', args.size() + (value_follows ? 1 : 0));
  for (std::string_view a : args) {
    length('$', a.size());
    out.append(a);
    out += "\r\n";
  }
  if (value_follows) length('$', value_follows->size());
}

RedisConfig parse_redis_url(std::string_view rest, std::string_view form,
                            std::vector<std::pair<std::string, std::string>>* extra) {
  try {
    return parse(rest, extra);
  } catch (const BadUrl& e) {
    throw Error("malformed Redis URL: " + std::string(e.what()) + " (expected " +
                std::string(form) + ")");
  }
}

std::string describe(const RedisConfig& c) {
  bool v6 = c.host.find(':') != std::string::npos;
  return "redis://" + (v6 ? "[" + c.host + "]" : c.host) + ":" + std::to_string(c.port) + "/" +
         std::to_string(c.db);
}

std::string quote_key(std::string_view key) {
  std::string out = "'";
  for (unsigned char ch : key) {
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
      out += char(ch);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", ch);
      out += hex;
    }
  }
  return out + "'";
}

[[noreturn]] void throw_redis_error(std::string_view text) {
  static constexpr std::string_view kTransient[] = {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
                                                    "READONLY"};
  for (std::string_view t : kTransient)
    if (text.starts_with(t)) throw RedisTransient("Redis answered: " + std::string(text));
  std::string hint;
  if (text.starts_with("NOAUTH") || text.starts_with("WRONGPASS"))
    hint = " (give the password as redis://:PASSWORD@HOST:PORT or in REDISCLI_AUTH)";
  throw RedisRefused("Redis answered: " + std::string(text) + hint);
}

RedisConnection::RedisConnection(const RedisConfig& config, milliseconds connect_timeout) {
  static std::atomic<uint64_t> serials{0};
  serial_ = ++serials;
  ctx_.reset(
      redisConnectWithTimeout(config.host.c_str(), config.port, to_timeval(connect_timeout)));
  if (!ctx_) throw RedisTransient("cannot connect: out of memory");
  if (ctx_->err) {
    unusable_ = true;
    throw RedisTransient(std::string("cannot connect: ") + ctx_->errstr);
  }
  if (redisSetTimeout(ctx_.get(), to_timeval(config.timeout)) != REDIS_OK)
    fail("cannot set the socket timeout");
  if (!config.password.empty()) {
    if (config.user.empty())
      command({"AUTH", config.password});
    else
      command({"AUTH", config.user, config.password});
  }
  if (config.db != 0) command({"SELECT", std::to_string(config.db)});
}

std::vector<RedisReply> RedisConnection::pipeline(
    std::initializer_list<std::initializer_list<std::string_view>> cmds) {
  std::string out;
  for (auto cmd : cmds) append_command(out, {cmd.begin(), cmd.size()});
  return pipeline(out, cmds.size());
}

std::vector<RedisReply> RedisConnection::pipeline(std::string_view commands, size_t count) {
  iovec iov{const_cast<char*>(commands.data()), commands.size()};
  send_all(&iov, 1);
  std::vector<RedisReply> replies;
  replies.reserve(count);
  for (size_t i = 0; i < count; ++i) replies.push_back(read_reply());
  pending_ = false;
  return replies;
}

RedisReply RedisConnection::command(std::span<const std::string_view> args) {
  std::string out;
  append_command(out, args);
  iovec iov{out.data(), out.size()};
  send_all(&iov, 1);
  RedisReply r = read_reply();
  pending_ = false;
  if (r->type == REDIS_REPLY_ERROR) refuse({r->str, r->len});
  return r;
}

RedisReply RedisConnection::command(std::initializer_list<std::string_view> args) {
  return command(std::span<const std::string_view>(args.begin(), args.size()));
}

void RedisConnection::set(std::string_view key, std::string_view value) {
  std::string header;
  const std::string_view args[] = {"SET", key};
  append_command(header, args, &value);
  iovec iov[3] = {{header.data(), header.size()},
                  {const_cast<char*>(value.data()), value.size()},
                  {const_cast<char*>("\r\n"), 2}};
  send_all(iov, 3);
  RedisReply r = read_reply();
  pending_ = false;
  if (r->type == REDIS_REPLY_ERROR) refuse({r->str, r->len});
  if (r->type != REDIS_REPLY_STATUS || std::string_view(r->str, r->len) != "OK") unexpected("SET");
}

RedisReply RedisConnection::transaction(
    std::initializer_list<std::initializer_list<std::string_view>> before,
    std::initializer_list<std::string_view> with_value, std::string_view value,
    std::initializer_list<std::initializer_list<std::string_view>> after) {
  return read_transaction(send_transaction(before, with_value, value, after));
}

size_t RedisConnection::send_transaction(
    std::initializer_list<std::initializer_list<std::string_view>> before,
    std::initializer_list<std::string_view> with_value, std::string_view value,
    std::initializer_list<std::initializer_list<std::string_view>> after) {
  const std::string_view multi[] = {"MULTI"}, exec[] = {"EXEC"};
  std::string head, tail = "\r\n";
  append_command(head, multi);
  for (auto cmd : before) append_command(head, {cmd.begin(), cmd.size()});
  append_command(head, {with_value.begin(), with_value.size()}, &value);
  for (auto cmd : after) append_command(tail, {cmd.begin(), cmd.size()});
  append_command(tail, exec);
  iovec iov[3] = {{head.data(), head.size()},
                  {const_cast<char*>(value.data()), value.size()},
                  {tail.data(), tail.size()}};
  send_all(iov, 3);
  pending_ = false;
  ++owed_;
  return before.size() + after.size() + 1;
}

RedisReply RedisConnection::read_transaction(size_t commands) {
  if (owed_ == 0) throw std::logic_error("read_transaction() with no transaction sent");
  pending_ = true;
  // Every reply is read before any is judged: the next command's must be
  // next. MULTI's, each command's QUEUED, EXEC's.
  std::vector<RedisReply> replies;
  for (size_t i = 0; i < commands + 2; ++i) replies.push_back(read_reply());
  pending_ = false;
  --owed_;
  for (RedisReply& r : replies)
    if (r->type == REDIS_REPLY_ERROR) refuse({r->str, r->len});  // refused before EXEC
  if (replies.back()->type != REDIS_REPLY_ARRAY || replies.back()->elements != commands)
    unexpected("EXEC");
  return std::move(replies.back());
}

size_t RedisConnection::getrange(std::string_view key, uint64_t first, uint64_t last, char* dst,
                                 size_t capacity) {
  std::string out;
  std::string from = std::to_string(first), to = std::to_string(last);
  const std::string_view args[] = {"GETRANGE", key, from, to};
  append_command(out, args);
  iovec iov{out.data(), out.size()};
  send_all(&iov, 1);
  char line[1024];
  std::string_view early;
  int64_t len = read_bulk_header(line, early);
  if (len < 0 || uint64_t(len) > capacity)
    fail("protocol error: a GETRANGE reply of " + std::to_string(len) + " bytes, for at most " +
         std::to_string(capacity));
  read_bulk_rest(dst, size_t(len), 0, early);
  return size_t(len);
}

std::optional<std::string> RedisConnection::get(std::string_view key, size_t head_bytes,
                                                const HeadCheck& check) {
  std::string out;
  const std::string_view args[] = {"GET", key};
  append_command(out, args);
  iovec iov{out.data(), out.size()};
  send_all(&iov, 1);
  return read_bulk(head_bytes, check);
}

void RedisConnection::refuse(std::string_view text) {
  if (text.find("Protocol error") != std::string_view::npos) unusable_ = true;
  throw_redis_error(text);
}

void RedisConnection::unexpected(std::string_view what) {
  unusable_ = true;  // who knows what else it will say
  throw RedisTransient("unexpected reply to " + std::string(what));
}

void RedisConnection::fail(const std::string& why) {
  unusable_ = true;
  throw RedisTransient(why);
}

void RedisConnection::fail_errno(int error, const std::string& doing) {
  if (error == EAGAIN || error == EWOULDBLOCK)
    fail("timed out " + doing + " (no progress for the socket timeout)");
  fail("error " + doing + ": " + std::strerror(error));
}

void RedisConnection::send_all(iovec* iov, int count) {
  pending_ = true;
  while (count > 0) {
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = size_t(count);
    ssize_t n = sendmsg(ctx_->fd, &m, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "writing to Redis");
    }
    advance(iov, count, size_t(n));
  }
}

RedisReply RedisConnection::read_reply() {
  void* r = nullptr;
  if (redisGetReply(ctx_.get(), &r) != REDIS_OK || !r) {
    std::string why = ctx_->err == REDIS_ERR_EOF ? "the connection was closed" : ctx_->errstr;
    fail("error reading from Redis: " + why);
  }
  return RedisReply(static_cast<redisReply*>(r));
}

// Receives at least one byte into the `count` buffers of `iov`.
size_t RedisConnection::recv_some(iovec* iov, int count, int flags, const std::string& context) {
  for (;;) {
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = size_t(count);
    ssize_t got = recvmsg(ctx_->fd, &m, flags);
    if (got > 0) return size_t(got);
    if (got == 0) fail("the connection was closed " + context);
    int error = errno;
    if (error == EINTR) continue;
    fail_errno(error, "reading " + context);
  }
}

size_t RedisConnection::recv_some(char* p, size_t n, int flags, const std::string& context) {
  iovec iov{p, n};
  return recv_some(&iov, 1, flags, context);
}

// Reads a bulk string reply ($LEN\r\nBYTES\r\n, or $-1\r\n for none),
// showing `check` (if any) its size and first `head_bytes` bytes before the
// rest is received.
std::optional<std::string> RedisConnection::read_bulk(size_t head_bytes, const HeadCheck& check) {
  char line[1024];
  std::string_view early;  // what came after the header line
  int64_t len = read_bulk_header(line, early);
  if (len == -1) return std::nullopt;
  size_t size = size_t(len);
  // Bytes go to `value` in order: first `head`, then those of `early` that
  // are the value's, then what is received into the rest.
  std::string head;
  if (check) {
    head.assign(early.substr(0, std::min(head_bytes, size)));
    early.remove_prefix(head.size());
    size_t got = head.size();
    head.resize(std::min(head_bytes, size));
    while (got < head.size())
      got += recv_some(head.data() + got, head.size() - got, 0, "in the value's first bytes");
    // A refusal leaves the rest unread, and so the connection unusable: it
    // is closed rather than drained.
    check(head, size);
  }
  std::string value = string_for_overwrite(size);
  std::memcpy(value.data(), head.data(), head.size());
  read_bulk_rest(value.data(), size, head.size(), early);
  return value;
}

int64_t RedisConnection::read_bulk_header(char (&line)[1024], std::string_view& early) {
  // hiredis has read nothing beyond the replies it returned, and there is
  // no other reply in flight: the next bytes are this reply's.
  if (ctx_->reader->pos != ctx_->reader->len) fail("protocol error: unread bytes");
  size_t have = 0, eol = 0;
  for (;;) {
    auto* end = static_cast<const char*>(memmem(line, have, "\r\n", 2));
    if (end) {
      eol = size_t(end - line);
      break;
    }
    if (have == sizeof line) fail("protocol error: a reply line over 1 KiB");
    have += recv_some(line + have, sizeof line - have, 0, "before the reply");
  }
  std::string_view header(line, eol);
  early = std::string_view(line + eol + 2, have - eol - 2);
  if (header.starts_with('-')) {
    if (!early.empty()) fail("protocol error: bytes after an error reply");
    pending_ = false;
    refuse(header.substr(1));
  }
  int64_t len = 0;
  if (!header.starts_with('$') || !parse_int(header.substr(1), len) || len < -1 ||
      (len > 0 && uint64_t(len) > kRedisMaxValueBytes * 2))
    fail("protocol error: unexpected reply '" + std::string(header.substr(0, 40)) + "'");
  if (len == -1) {
    if (!early.empty()) fail("protocol error: bytes after a nil reply");
    pending_ = false;
  }
  return len;
}

void RedisConnection::read_bulk_rest(char* dst, size_t size, size_t got, std::string_view early) {
  size_t from_early = std::min(early.size(), size - got);
  std::memcpy(dst + got, early.data(), from_early);
  early.remove_prefix(from_early);
  got += from_early;
  if (early.size() > 2) fail("protocol error: bytes after a value");
  char tail[2];  // the value's CRLF
  std::memcpy(tail, early.data(), early.size());
  // The rest of the value and its CRLF, with one system call (~4 us here)
  // if they are there, or as they come.
  iovec rest[2] = {{dst + got, size - got}, {tail + early.size(), sizeof tail - early.size()}};
  iovec* iov = rest;
  int count = 2;
  advance(iov, count, 0);  // past what `early` held already
  while (count > 0) {
    size_t n = recv_some(iov, count, MSG_WAITALL,
                         "after " + std::to_string(std::min(got, size)) + " of the value's " +
                             std::to_string(size) + " bytes");
    got += n;
    advance(iov, count, n);
  }
  if (tail[0] != '\r' || tail[1] != '\n') fail("protocol error: a value not ended by CRLF");
  pending_ = false;
}

const redisReply& reply_element(const redisReply& r, size_t i, int type, RedisConnection& c,
                                std::string_view what) {
  if (r.type != REDIS_REPLY_ARRAY || r.elements <= i) c.unexpected(what);
  const redisReply& e = *r.element[i];
  if (e.type == REDIS_REPLY_ERROR) throw_redis_error({e.str, e.len});
  if (e.type != type) c.unexpected(what);
  return e;
}

RedisClient::RedisClient(RedisConfig config, std::string kind)
    : config_(std::move(config)), url_(describe(config_)), kind_(std::move(kind)) {}

void RedisClient::run(std::string_view op, std::string_view key,
                      const std::function<void(RedisConnection&)>& f,
                      std::optional<milliseconds> retry_for) {
  retry(
      op, key, f, retry_for.value_or(config_.retry_timeout),
      [&](Clock::time_point deadline) { return take(deadline); },
      [&](std::unique_ptr<RedisConnection> c) { give_back(std::move(c)); });
}

void RedisClient::run_on(std::unique_ptr<RedisConnection>& pinned, std::string_view op,
                         std::string_view key, const std::function<void(RedisConnection&)>& f) {
  retry(
      op, key, f, config_.retry_timeout,
      [&](Clock::time_point deadline) {
        return pinned && pinned->usable() ? std::move(pinned) : take(deadline);
      },
      [&](std::unique_ptr<RedisConnection> c) { pinned = std::move(c); });
}

void RedisClient::retry(
    std::string_view op, std::string_view key, const std::function<void(RedisConnection&)>& f,
    milliseconds retry_for,
    const std::function<std::unique_ptr<RedisConnection>(Clock::time_point)>& take,
    const std::function<void(std::unique_ptr<RedisConnection>)>& give_back) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + retry_for;
  Clock::duration delay = kFirstDelay;
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<RedisConnection> c;
    try {
      c = take(deadline);
      f(*c);
      give_back(std::move(c));
      return;
    } catch (const RedisTransient& e) {
      c.reset();
      drop_idle();
      Clock::time_point now = Clock::now();
      if (now >= deadline)
        throw Error(what(op, key) + " failed: " + e.what() + " (still failing after " +
                    std::to_string(attempt) + " attempt" + (attempt == 1 ? "" : "s") + " in " +
                    seconds_text(now - start) + ")");
      if (attempt == 1)
        spdlog::warn("{}: {}; retrying for up to {}", what(op, key), e.what(),
                     seconds_text(config_.retry_timeout));
      std::this_thread::sleep_for(std::min(delay, deadline - now));
      delay = std::min<Clock::duration>(delay * 2, kMaxDelay);
    } catch (const RedisRefused& e) {
      give_back(std::move(c));
      throw Error(what(op, key) + " failed: " + e.what());
    } catch (...) {  // from the caller's check: the connection may be reusable
      give_back(std::move(c));
      throw;
    }
  }
}

std::string RedisClient::what(std::string_view op, std::string_view key) const {
  return kind_ + " " + url_ + ": " + std::string(op) +
         (op == "connect" ? std::string() : " " + quote_key(key));
}

std::unique_ptr<RedisConnection> RedisClient::take(Clock::time_point deadline) {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      std::unique_ptr<RedisConnection> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return connect(deadline);
}

std::unique_ptr<RedisConnection> RedisClient::connect(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return std::make_unique<RedisConnection>(
      config_, std::min(std::max(left, milliseconds(100)), config_.timeout));
}

void RedisClient::release(std::unique_ptr<RedisConnection>& pinned) {
  give_back(std::move(pinned));
}

void RedisClient::give_back(std::unique_ptr<RedisConnection> c) {
  if (!c || !c->reusable()) return;
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(c));
}

void RedisClient::drop_idle() {
  std::vector<std::unique_ptr<RedisConnection>> dropped;
  std::lock_guard lock(mu_);
  dropped.swap(idle_);
}
}  // namespace kappa::detail
