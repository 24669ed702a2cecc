// RedisJournal: the coordinator's journal in Redis
// (--state redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?name=NAME]).
//
// Rows live in one hash per kind of row, kappa:journal:NAME:{tasks,
// progress,futures,queues,meta}, the field being the row's id in decimal
// (NAME defaults to "default": jobs that share a Redis need names of their
// own). Each group of events (RowJournal) is one MULTI/EXEC transaction,
// which Redis applies atomically: every HSET and HDEL of the group, and a
// PEXPIRE that renews the lock. The transaction runs only if this
// coordinator still holds the journal's lock: the connection WATCHes the
// lock, and has seen it hold our value since the WATCH began, so that EXEC
// fails if anything touched the lock meanwhile (another coordinator taking
// it over, its expiry). Each transaction is sent with a new WATCH and GET
// of the lock behind it, for the next one: one round trip per group. (A Lua
// script that checked the lock itself cost Redis ~25 us more per group of
// a few KB: the rows go through Lua strings.) A group that fails on the way
// (Redis restarting) is sent again: HSET and HDEL of the same rows are
// idempotent.
//
// The lock (kappa:journal:NAME:lock) holds "HOST PID NONCE" and expires
// unless renewed: by each group, and every kLease / 3 by a thread of its
// own (an empty transaction, on the same connection). A second coordinator
// is refused while the lock is held, except when the holder is a process of
// this host that is gone (a coordinator killed with kill -9 and run again
// at once): the lock is then taken over. The lock of a coordinator that
// died on another host expires after kLease.
// Since every group is fenced by the lock, a coordinator that lost it
// (stopped for longer than kLease while another took over) cannot write
// any more.
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
#include <array>
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

// The journal's lock is another coordinator's now, or gone.
struct LockLost : Error {
  using Error::Error;
};

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
    std::lock_guard lock(writer_mu_);
    transact(&group);
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

  // Applies `group` (none: only renews the lock) in one transaction, on the
  // connection that watches the lock. writer_mu_ held.
  void transact(const Group* group) {
    client_.run_on(writer_, "write", name_, [&](RedisConnection& c) {
      if (watching_ != c.serial()) watch(c);
      for (int attempt = 0;; ++attempt) {
        size_t count = format(group);
        std::vector<RedisReply> replies = c.pipeline(commands_, count);
        watching_ = 0;
        for (size_t i = 0; i + 3 < count; ++i)  // MULTI and the queued commands
          if (replies[i]->type == REDIS_REPLY_ERROR) c.refuse({replies[i]->str, replies[i]->len});
        const redisReply& exec = *replies[count - 3];
        if (exec.type == REDIS_REPLY_ERROR) c.refuse({exec.str, exec.len});
        bool ours = is_ours(*replies[count - 1]);
        if (ours) watching_ = c.serial();
        if (exec.type == REDIS_REPLY_ARRAY) {
          for (size_t i = 0; i < exec.elements; ++i)
            if (exec.element[i]->type == REDIS_REPLY_ERROR)
              c.refuse({exec.element[i]->str, exec.element[i]->len});
          return;
        }
        if (exec.type != REDIS_REPLY_NIL) c.unexpected("EXEC");
        // The lock was touched since the WATCH: if it is still ours (renewed
        // by hand, say), the new WATCH lets the group through.
        if (!ours) throw lock_lost();
        if (attempt == 2) throw Error("the journal " + url() + ": its lock keeps changing");
      }
    });
  }

  // Starts watching the lock on `c`, if it is ours.
  void watch(RedisConnection& c) {
    commands_.clear();
    append_command(commands_, std::array<std::string_view, 2>{"WATCH", lock_key_});
    append_command(commands_, std::array<std::string_view, 2>{"GET", lock_key_});
    std::vector<RedisReply> replies = c.pipeline(commands_, 2);
    if (replies[0]->type == REDIS_REPLY_ERROR) c.refuse({replies[0]->str, replies[0]->len});
    if (!is_ours(*replies[1])) throw lock_lost();
    watching_ = c.serial();
  }

  // Encodes MULTI, the group's writes, the lock's renewal, EXEC, and the
  // WATCH and GET for the next transaction into commands_: their count.
  size_t format(const Group* group) {
    commands_.clear();
    append_command(commands_, std::array<std::string_view, 1>{"MULTI"});
    size_t count = 1;
    if (group) {
      char digits[20];
      for (const Group::Op& op : group->ops) {
        std::string_view id(digits, std::to_chars(digits, digits + sizeof digits, op.id).ptr);
        std::string_view table = hash_[int(op.table)];
        if (op.erased)
          append_command(commands_, std::array<std::string_view, 3>{"HDEL", table, id});
        else
          append_command(commands_,
                         std::array<std::string_view, 4>{"HSET", table, id, op.body(group->bytes)});
        ++count;
      }
    }
    append_command(commands_, std::array<std::string_view, 3>{"PEXPIRE", lock_key_, lease_ms_});
    append_command(commands_, std::array<std::string_view, 1>{"EXEC"});
    append_command(commands_, std::array<std::string_view, 2>{"WATCH", lock_key_});
    append_command(commands_, std::array<std::string_view, 2>{"GET", lock_key_});
    return count + 4;
  }

  bool is_ours(const redisReply& r) const {
    return r.type == REDIS_REPLY_STRING && std::string_view(r.str, r.len) == lock_value_;
  }

  LockLost lock_lost() const {
    return LockLost("the journal " + url() +
                    ": this coordinator no longer holds it: another one took it over, or Redis "
                    "lost it (restarted without persistence?)");
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
        std::lock_guard writing(writer_mu_);
        transact(nullptr);
      } catch (const LockLost& e) {
        spdlog::error("{}: this coordinator can record nothing more", e.what());
      } catch (const std::exception& e) {
        spdlog::warn("{}", e.what());  // the next group will say whether it matters
      }
      lock.lock();
    }
  }

  RedisClient client_;
  std::string name_, prefix_, lock_key_, lease_ms_, lock_value_;
  std::string hash_[kTableCount];
  // Writes: the connection that watches the lock (watching_: its serial,
  // 0 if none does), and the commands of a transaction (one buffer: no
  // allocation once it has grown).
  std::mutex writer_mu_;
  std::unique_ptr<RedisConnection> writer_;
  uint64_t watching_ = 0;
  std::string commands_;
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
