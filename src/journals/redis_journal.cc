// RedisJournal: the coordinator's journal in Redis
// (--state redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?name=NAME]).
//
// Rows live in one hash per kind of row, kappa:journal:NAME:{tasks,
// progress,futures,queues,meta}, the field being the row's id in decimal
// (NAME defaults to "default": jobs that share a Redis need names of their
// own). Each group of events (RowJournal) is one Lua script, which Redis runs
// atomically: it checks that this coordinator still holds the journal's lock, applies
// every HSET and HDEL of the group, and renews the lock. A group that fails
// on the way (Redis restarting) is sent again: HSET and HDEL of the same rows
// are idempotent.
//
// The lock (kappa:journal:NAME:lock) holds "HOST PID NONCE" and expires
// unless renewed: by each group, and every kLease / 3 by a thread of its
// own. A second coordinator is refused while the lock is held, except when
// the holder is a process of this host that is gone (a coordinator killed
// with kill -9 and run again at once): the lock is then taken over. The
// lock of a coordinator that died on another host expires after kLease.
// Since every group checks the lock, a coordinator that lost it (stopped
// for longer than kLease while another took over) cannot write any more.
//
// A reader (open_journal_reader: `APP status`) takes no lock and writes
// nothing: it reads the job while its coordinator may be running. Its hashes
// are read one after the other, so a job that moves meanwhile may show a
// task both live and resolved (JournalView keeps the resolved one).
//
// Durability is Redis's own: an event is durable when Redis has it in
// memory, which survives the coordinator's death. Surviving Redis's death
// as well takes Redis persistence (appendonly yes; appendfsync always for a
// power loss): without it, opening the journal logs a warning.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <thread>

#include "coordinator/journal.h"
#include "kappa/error.h"
#include "stores/redis_client.h"
#include "util/hex.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

using namespace std::chrono_literals;

constexpr const char* kUrlForm =
    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?name=NAME&retry_timeout=SECONDS&timeout=SECONDS]";
constexpr std::chrono::milliseconds kLease = 15s;

// KEYS[1]: the lock; ARGV[1]: our lock value, ARGV[2]: the lease in ms, then
// the group: "p" HASH FIELD VALUE (HSET) or "e" HASH FIELD (HDEL).
constexpr const char* kBatchScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('KAPPA_LOCK_LOST this coordinator no longer holds the journal: another one took it over, or Redis lost it (restarted without persistence?)')
end
local i = 3
while i <= #ARGV do
  if ARGV[i] == 'p' then
    redis.call('HSET', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  else
    redis.call('HDEL', ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua";

// Renews the lock if it is still ours: 1, or 0 if it is not.
constexpr const char* kRenewScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua";

// Replaces the lock's value ARGV[1] (a dead holder's) with ARGV[2].
constexpr const char* kTakeOverScript = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
)lua";

// Releases the lock if it is ours.
constexpr const char* kReleaseScript = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

const char* table_name(int t) {
  static const char* names[] = {"tasks", "progress", "futures", "queues", "meta"};
  return names[t];
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

class RedisJournal final : public RowJournal {
 public:
  RedisJournal(RedisConfig config, std::string name, bool reader)
      : client_(std::move(config), "redis journal"),
        name_(std::move(name)),
        prefix_("kappa:journal:" + name_ + ":"),
        lock_key_(prefix_ + "lock"),
        lease_ms_(std::to_string(kLease.count())),
        reader_(reader) {
    for (int t = 0; t < kTableCount; ++t) hash_[t] = prefix_ + table_name(t);
    if (reader_) return;
    lock_value_ = host_name() + " " + std::to_string(getpid()) + " " + random_hex(8);
    lock();
    warn_without_persistence();
    renewer_ = std::thread([this] { renew_loop(); });
  }

  ~RedisJournal() override {
    if (reader_) return;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    renewer_.join();
    try {
      client_.run("unlock", lock_key_, [&](RedisConnection& c) {
        c.command({"EVAL", kReleaseScript, "1", lock_key_, lock_value_});
      });
    } catch (const std::exception& e) {
      spdlog::warn("{} (it expires by itself within {} s)", e.what(), kLease.count() / 1000);
    }
  }

  std::string url() const override {
    return client_.url() + (name_ == "default" ? "" : "?name=" + name_);
  }

 protected:
  void write(const Group& group) override {
    if (reader_) throw Error("the journal " + url() + " is open for reading only");
    ids_.clear();
    for (const Group::Op& op : group.ops) {
      char digits[20];
      ids_.append(digits, std::to_chars(digits, digits + sizeof digits, op.id).ptr);
      ids_.push_back(' ');
    }
    args_.assign({"EVAL", kBatchScript, "1", lock_key_, lock_value_, lease_ms_});
    size_t at = 0;
    for (const Group::Op& op : group.ops) {
      size_t end = ids_.find(' ', at);
      args_.push_back(op.erased ? "e" : "p");
      args_.push_back(hash_[int(op.table)]);
      args_.emplace_back(ids_.data() + at, end - at);
      if (!op.erased) args_.push_back(op.body(group.bytes));
      at = end + 1;
    }
    client_.run("write", name_, [&](RedisConnection& c) { c.command(args_); });
  }

  std::vector<std::pair<uint64_t, std::string>> rows(Table table) override {
    std::vector<std::pair<uint64_t, std::string>> out;
    client_.run("read", hash_[int(table)], [&](RedisConnection& c) {
      out.clear();
      RedisReply r = c.command({"HGETALL", hash_[int(table)]});
      if (r->type != REDIS_REPLY_ARRAY) c.unexpected("HGETALL");
      for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply& field = reply_element(*r, i, REDIS_REPLY_STRING, c, "HGETALL");
        const redisReply& value = reply_element(*r, i + 1, REDIS_REPLY_STRING, c, "HGETALL");
        out.emplace_back(parse_id({field.str, field.len}), std::string(value.str, value.len));
      }
    });
    std::sort(out.begin(), out.end());
    return out;
  }

  std::optional<std::string> row(Table table, uint64_t id) override {
    std::optional<std::string> out;
    client_.run("read", hash_[int(table)], [&](RedisConnection& c) {
      RedisReply r = c.command({"HGET", hash_[int(table)], std::to_string(id)});
      if (r->type == REDIS_REPLY_NIL) {
        out.reset();
        return;
      }
      if (r->type != REDIS_REPLY_STRING) c.unexpected("HGET");
      out.emplace(r->str, r->len);
    });
    return out;
  }

 private:
  uint64_t parse_id(std::string_view s) const {
    uint64_t id = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
    if (ec != std::errc() || end != s.data() + s.size())
      throw Error(url() + " is not a Kappa journal, or is corrupt (a row named '" +
                  std::string(s.substr(0, 40)) + "')");
    return id;
  }

  void lock() {
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::string holder;
      client_.run("lock", lock_key_, [&](RedisConnection& c) {
        holder.clear();
        RedisReply r = c.command({"SET", lock_key_, lock_value_, "NX", "PX", lease_ms_});
        if (r->type == REDIS_REPLY_STATUS) return;  // ours
        RedisReply h = c.command({"GET", lock_key_});
        holder = h->type == REDIS_REPLY_STRING ? std::string(h->str, h->len) : std::string(" ");
      });
      if (holder.empty()) return;
      if (holder == " ") continue;  // it expired in between
      if (!holder_is_gone(holder)) {
        std::string who = holder.substr(0, holder.rfind(' '));
        size_t space = who.find(' ');
        throw Error("the journal " + url() + " is in use by another coordinator (pid " +
                    who.substr(space + 1) + " on host " + who.substr(0, space) +
                    "; is a `run` of this job still alive? The lock of one that died on "
                    "another host expires " +
                    std::to_string(kLease.count() / 1000) + " s after its last renewal)");
      }
      bool taken = false;
      client_.run("lock", lock_key_, [&](RedisConnection& c) {
        RedisReply r =
            c.command({"EVAL", kTakeOverScript, "1", lock_key_, holder, lock_value_, lease_ms_});
        taken = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
      });
      if (taken) {
        spdlog::info("took over the journal {} from a coordinator that is gone ({})", url(),
                     holder);
        return;
      }
    }
    throw Error("cannot lock the journal " + url() + ": its lock keeps changing hands");
  }

  // A holder of this host whose process is gone.
  static bool holder_is_gone(const std::string& holder) {
    size_t a = holder.find(' '), b = holder.rfind(' ');
    if (a == std::string::npos || a == b || holder.substr(0, a) != host_name()) return false;
    int pid = 0;
    std::string_view p(holder.data() + a + 1, b - a - 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), pid);
    if (ec != std::errc() || pid <= 0) return false;
    return kill(pid, 0) != 0 && errno == ESRCH;
  }

  void warn_without_persistence() {
    std::string appendonly;
    try {
      client_.run("check the persistence of", "", [&](RedisConnection& c) {
        RedisReply r = c.command({"CONFIG", "GET", "appendonly"});
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
          appendonly.assign(r->element[1]->str, r->element[1]->len);
      });
    } catch (const Error&) {
      return;  // CONFIG may be disabled: nothing to tell
    }
    if (appendonly == "no")
      spdlog::warn(
          "the journal {} survives the coordinator's death, not Redis's: Redis runs without "
          "persistence (appendonly no)",
          url());
  }

  void renew_loop() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, kLease / 3, [&] { return stopping_; })) {
      lock.unlock();
      try {
        bool ours = true;
        client_.run("renew the lock of", lock_key_, [&](RedisConnection& c) {
          RedisReply r = c.command({"EVAL", kRenewScript, "1", lock_key_, lock_value_, lease_ms_});
          ours = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        });
        if (!ours)
          spdlog::error(
              "the journal {} was taken over by another coordinator: this one can "
              "record nothing more",
              url());
      } catch (const std::exception& e) {
        spdlog::warn("{}", e.what());  // the next group will say whether it matters
      }
      lock.lock();
    }
  }

  RedisClient client_;
  std::string name_, prefix_, lock_key_, lease_ms_, lock_value_;
  std::string hash_[kTableCount];
  // The group being written: its rows' ids in decimal, each followed by a
  // space (one buffer: no allocation per row once it has grown), and the
  // script's arguments.
  std::string ids_;
  std::vector<std::string_view> args_;
  bool reader_ = false;  // reads only: no lock, no renewer, no writes
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread renewer_;
};

std::unique_ptr<Journal> open_redis_journal_as(const std::string& rest, bool reader) {
  std::vector<std::pair<std::string, std::string>> extra;
  RedisConfig config = parse_redis_url(rest, kUrlForm, &extra);
  std::string name = "default";
  for (const auto& [option, value] : extra) {
    if (option != "name")
      throw Error("malformed Redis journal URL: unknown option '" + option + "' (expected " +
                  kUrlForm + ")");
    bool plain = !value.empty() && std::all_of(value.begin(), value.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
    });
    if (!plain)
      throw Error("a Redis journal's name is letters, digits, '-', '_' and '.', not '" + value +
                  "'");
    name = value;
  }
  return std::make_unique<RedisJournal>(std::move(config), std::move(name), reader);
}

}  // namespace

std::unique_ptr<Journal> open_redis_journal(const std::string& rest) {
  return open_redis_journal_as(rest, false);
}

std::unique_ptr<Journal> open_redis_journal_reader(const std::string& rest) {
  return open_redis_journal_as(rest, true);
}

}  // namespace kappa::detail
