// RedisStore (redis://HOST:PORT[/DB]) against a real redis-server on
// loopback, started by each test: the store's semantics, binary and large
// values, keys with glob characters, databases, passwords, many threads on
// one store, and faults (Redis restarting, down for good, a reply cut short),
// where an operation retries and succeeds, or fails naming what failed, and
// never returns or stores part of a value.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "support/server_process.h"
#include "support/store_checks.h"

namespace kappa::detail {
namespace {

using kappa::testing::offset_pattern;
using kappa::testing::redis_cli;
using kappa::testing::redis_server;
using kappa::testing::RedisOptions;
using kappa::testing::ServerProcess;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

using kappa::testing::error_of;

std::string url_of(const ServerProcess& redis, const std::string& tail = "") {
  return "redis://127.0.0.1:" + std::to_string(redis.port()) + tail;
}

// A data store (StoreOptions::shared): its streams write plain strings.
std::unique_ptr<CheckpointStore> open_data_store(const ServerProcess& redis,
                                                 const std::string& tail = "") {
  return open_store(url_of(redis, tail), {.shared = true});
}

// A field of INFO (e.g. "total_connections_received"), as a number.
long long info_field(int port, const std::string& section, const std::string& field) {
  std::string info = redis_cli(port, {"INFO", section});
  size_t at = info.find(field + ":");
  if (at == std::string::npos) return -1;
  return std::atoll(info.c_str() + at + field.size() + 1);
}

// Every key in the server's database 0, temporary ones too, sorted.
std::vector<std::string> all_keys(int port) {
  std::vector<std::string> keys;
  std::istringstream lines(redis_cli(port, {"KEYS", "*"}));
  for (std::string k; std::getline(lines, k);) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Calls of a command so far (INFO commandstats), 0 if never called.
long long calls_of(int port, const std::string& command) {
  std::string info = redis_cli(port, {"INFO", "commandstats"});
  size_t at = info.find("cmdstat_" + command + ":calls=");
  if (at == std::string::npos) return 0;
  return std::atoll(info.c_str() + at + command.size() + 15);
}

TEST(RedisStore, PutGetListRemove) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  EXPECT_EQ(store->url(), url_of(redis, "/0"));
  kappa::testing::expect_basic_semantics(*store);
  // The keys are plain Redis strings.
  EXPECT_EQ(redis_cli(redis.port(), {"GET", "ckpt-2"}), "two");
}

// A move is a RENAME.
TEST(RedisStore, MoveReplacesRemovesAndIsIdempotent) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  kappa::testing::expect_move_semantics(*store);
}

TEST(RedisStore, RemovePrefixRemovesOnlyWhatIsUnderIt) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  for (int i = 0; i < 2500; ++i) store->put("job/task-" + std::to_string(i), "x");  // pages
  store->put("job2/task-1", "kept");
  store->put("job", "kept");
  EXPECT_NE(error_of([&] { store->remove_prefix("job"); }).find("ending in '/'"),
            std::string::npos);
  EXPECT_EQ(store->list("job/").size(), 2500u);
  store->remove_prefix("job/");
  EXPECT_EQ(store->list(""), (std::vector<std::string>{"job", "job2/task-1"}));
  store->remove_prefix("nothing/");  // nothing to remove: fine
}

TEST(RedisStore, BinaryValuesAndKeys) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  std::string all;
  for (int round = 0; round < 3; ++round)
    for (int b = 0; b < 256; ++b) all += char(b);
  all += "\r\n$-1\r\n-ERR not an error\r\n";  // what replies are made of, as data
  std::string key("bin/\0key\r\n*1", 12);
  store->put(key, all);
  EXPECT_EQ(store->get(key), all);
  EXPECT_EQ(store->list("bin/"), (std::vector<std::string>{key}));
  std::string nul(1000, '\0');
  store->put("nul", nul);
  EXPECT_EQ(store->get("nul"), nul);
  store->remove(key);
  EXPECT_EQ(store->get(key), std::nullopt);
}

TEST(RedisStore, AHundredMebibyteValue) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  std::string big = offset_pattern(100 << 20, 7);
  store->put("big", big);
  std::optional<std::string> got = store->get("big");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), big.size());
  EXPECT_TRUE(*got == big);
  got = store->get_checked("big", 64, [](std::string_view, uint64_t) {});
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got == big);
  EXPECT_EQ(redis_cli(redis.port(), {"STRLEN", "big"}), std::to_string(100 << 20));
}

// Glob characters in a prefix match themselves only.
TEST(RedisStore, KeysWithGlobCharacters) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  const char* keys[] = {"a*b/1", "a*b/2", "axb/1",  "a?c/1", "abc/1",
                        "[x]/1", "x/1",   "a\\b/1", "ab/1",  "[^x]/1"};
  for (const char* k : keys) store->put(k, k);
  EXPECT_EQ(store->list("a*b/"), (std::vector<std::string>{"a*b/1", "a*b/2"}));
  EXPECT_EQ(store->list("a?c/"), (std::vector<std::string>{"a?c/1"}));
  EXPECT_EQ(store->list("[x]/"), (std::vector<std::string>{"[x]/1"}));
  EXPECT_EQ(store->list("[^x]/"), (std::vector<std::string>{"[^x]/1"}));
  EXPECT_EQ(store->list("a\\b/"), (std::vector<std::string>{"a\\b/1"}));
  EXPECT_EQ(store->list("a*"), (std::vector<std::string>{"a*b/1", "a*b/2"}));
  store->remove_prefix("a*b/");
  store->remove_prefix("[x]/");
  store->remove_prefix("a\\b/");
  EXPECT_EQ(store->list(""),
            (std::vector<std::string>{"[^x]/1", "a?c/1", "ab/1", "abc/1", "axb/1", "x/1"}));
}

TEST(RedisStore, DatabasesAreIsolated) {
  ServerProcess redis(redis_server());
  auto one = open_store(url_of(redis, "/1"));
  auto two = open_store(url_of(redis, "/2"));
  EXPECT_EQ(one->url(), url_of(redis, "/1"));
  one->put("job/k", "in one");
  EXPECT_EQ(two->get("job/k"), std::nullopt);
  EXPECT_TRUE(two->list("").empty());
  two->put("job/k", "in two");
  two->remove_prefix("job/");
  EXPECT_EQ(one->get("job/k"), "in one");
  EXPECT_EQ(redis_cli(redis.port(), {"-n", "1", "GET", "job/k"}), "in one");
  EXPECT_EQ(redis_cli(redis.port(), {"DBSIZE"}), "0");  // nothing in db 0
  // A database the server does not have is a clear error, not a retry.
  auto start = Clock::now();
  std::string why = error_of([&] { open_store(url_of(redis, "/99")); });
  EXPECT_NE(why.find("DB index is out of range"), std::string::npos) << why;
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST(RedisStore, GetCheckedJudgesTheHeadBeforeReadingTheValue) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  std::string value = offset_pattern(1 << 20, 3);
  store->put("image", value);
  // One round trip, whatever the size: one GET, nothing else.
  long long gets = calls_of(redis.port(), "get");
  kappa::testing::expect_get_checked_shows_the_head(*store, "image", value, 100);
  EXPECT_EQ(calls_of(redis.port(), "get"), gets + 1);
  EXPECT_EQ(calls_of(redis.port(), "getrange"), 0);
  // Refused from its head: the check's exception, and the store still works.
  EXPECT_THROW(store->get_checked(
                   "image", 100,
                   [](std::string_view, uint64_t) { throw std::invalid_argument("not an image"); }),
               std::invalid_argument);
  kappa::testing::expect_get_checked_shows_the_head(*store, "image", value, 100);
  store->put("short", "tiny");  // shorter than the head: the head is all of it
  kappa::testing::expect_get_checked_shows_the_head(*store, "short", "tiny", 100);
  store->put("empty", "");
  kappa::testing::expect_get_checked_shows_the_head(*store, "empty", "", 100);
  kappa::testing::expect_get_checked_shows_the_head(*store, "image", value, 0);  // no head at all
  bool called = false;
  EXPECT_EQ(store->get_checked("missing", 100, [&](std::string_view, uint64_t) { called = true; }),
            std::nullopt);
  EXPECT_FALSE(called);
}

// A large value refused from its head is not received: its reply is left
// unread and the connection closed, so Redis sends what the sockets' buffers
// hold (4 MiB here) and no more.
TEST(RedisStore, GetCheckedRefusesALargeValueWithoutReceivingIt) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  const size_t size = size_t(128) << 20;
  store->put("huge", offset_pattern(size, 5));
  long long sent = info_field(redis.port(), "stats", "total_net_output_bytes");
  std::string why = error_of([&] {
    store->get_checked("huge", 64, [](std::string_view head, uint64_t s) {
      EXPECT_EQ(head, offset_pattern(64, 5));
      throw Error("refused: " + std::to_string(s) + " bytes");
    });
  });
  EXPECT_EQ(why, "refused: " + std::to_string(size) + " bytes");
  EXPECT_LT(info_field(redis.port(), "stats", "total_net_output_bytes") - sent,
            (long long)(size / 4));
  store->put("after", "still usable");
  EXPECT_EQ(store->get_checked("after", 64, [](std::string_view, uint64_t) {}), "still usable");
}

// Something else's data under a key (a list) is an error, reported at once.
TEST(RedisStore, AKeyThatIsNotAStringIsAnError) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  redis_cli(redis.port(), {"RPUSH", "job/list", "x"});
  std::string why = error_of([&] { store->get("job/list"); });
  EXPECT_NE(why.find("get 'job/list' failed: Redis answered: WRONGTYPE"), std::string::npos) << why;
  why = error_of([&] { store->get_checked("job/list", 10, [](std::string_view, uint64_t) {}); });
  EXPECT_NE(why.find("WRONGTYPE"), std::string::npos) << why;
  why = error_of([&] { store->open_value("job/list"); });
  EXPECT_NE(why.find("open 'job/list' failed: Redis answered: WRONGTYPE"), std::string::npos)
      << why;
  store->put("job/ok", "still usable");
  EXPECT_EQ(store->get("job/ok"), "still usable");
}

TEST(RedisStore, OverRedisStringLimitIsRefusedBeforeSending) {
  ServerProcess redis(redis_server());
  auto store = open_data_store(redis);  // a checkpoint store writes it in pieces (below)
  // 512 MiB + 1 of untouched address space: no memory behind it.
  size_t size = (size_t(512) << 20) + 1;
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::string why =
      error_of([&] { store->put("huge", std::string_view(static_cast<char*>(p), size)); });
  munmap(p, size);
  EXPECT_NE(why.find("cannot put 'huge': its 536870913 bytes exceed Redis's string limit of "
                     "512 MiB"),
            std::string::npos)
      << why;
  EXPECT_EQ(store->get("huge"), std::nullopt);
  EXPECT_EQ(calls_of(redis.port(), "set"), 0);
}

TEST(RedisStore, MalformedUrlsAreClearErrors) {
  auto why = [](const std::string& url) { return error_of([&] { open_store(url); }); };
  EXPECT_NE(why("redis://127.0.0.1:abc")
                .find("the port must be a number from 1 to 65535, not "
                      "'abc'"),
            std::string::npos);
  EXPECT_NE(why("redis://127.0.0.1:0").find("port"), std::string::npos);
  EXPECT_NE(why("redis://127.0.0.1:").find("an empty port"), std::string::npos);
  EXPECT_NE(why("redis://127.0.0.1:6379/x").find("the database must be a number"),
            std::string::npos);
  EXPECT_NE(why("redis://::1:6379").find("in brackets"), std::string::npos);
  EXPECT_NE(why("redis://:6379").find("no host"), std::string::npos);
  EXPECT_NE(why("redis://h:1?retries=3").find("unknown option 'retries'"), std::string::npos);
  EXPECT_NE(why("redis://h:1?retry_timeout=soon").find("retry_timeout must be a number"),
            std::string::npos);
  EXPECT_NE(why("redis://user@h:1").find("a user needs a password"), std::string::npos);
  EXPECT_NE(why("redis://:p%4@h:1").find("%-escape"), std::string::npos);
  // Every message shows the form expected, and never what was given as a password.
  std::string w = why("redis://:hunter2@h:0");
  EXPECT_NE(w.find("expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"), std::string::npos) << w;
  EXPECT_EQ(w.find("hunter2"), std::string::npos) << w;
  std::string scheme = why("rediss://h:1");
  EXPECT_NE(scheme.find("unsupported store URL"), std::string::npos) << scheme;
  EXPECT_NE(scheme.find(" redis://"), std::string::npos) << scheme;  // among the known ones
}

TEST(RedisStore, Passwords) {
  std::string password = "p@ss:w/rd";  // percent-encoded in URLs
  ServerProcess redis(redis_server({.args = {"--requirepass", password}}));
  std::string host = "127.0.0.1:" + std::to_string(redis.port());
  auto store = open_store("redis://:p%40ss%3Aw%2Frd@" + host + "/3");
  store->put("k", "v");
  EXPECT_EQ(store->get("k"), "v");
  EXPECT_EQ(store->url(), "redis://" + host + "/3");  // no password in messages
  // Refusals are reported at once, with a hint, rather than retried.
  auto start = Clock::now();
  std::string none = error_of([&] { open_store("redis://" + host); });
  EXPECT_NE(none.find("NOAUTH"), std::string::npos) << none;
  EXPECT_NE(none.find("REDISCLI_AUTH"), std::string::npos) << none;
  std::string wrong = error_of([&] { open_store("redis://:nope@" + host); });
  EXPECT_NE(wrong.find("WRONGPASS"), std::string::npos) << wrong;
  EXPECT_EQ(wrong.find("nope"), std::string::npos) << wrong;
  EXPECT_LT(Clock::now() - start, 5s);
  // From the environment, as redis-cli takes it (and workers inherit it).
  setenv("REDISCLI_AUTH", password.c_str(), 1);
  std::optional<std::string> from_env;
  std::string env_error =
      error_of([&] { from_env = open_store("redis://" + host + "/3")->get("k"); });
  unsetenv("REDISCLI_AUTH");
  EXPECT_EQ(env_error, "");
  EXPECT_EQ(from_env, "v");
  // A Redis 6 ACL user.
  redis_cli(redis.port(), {"-a", password, "--no-auth-warning", "ACL", "SETUSER", "kappa", "on",
                           ">secret", "~*", "+@all"});
  EXPECT_EQ(open_store("redis://kappa:secret@" + host + "/3")->get("k"), "v");
  EXPECT_NE(error_of([&] { open_store("redis://kappa:wrong@" + host); }).find("WRONGPASS"),
            std::string::npos);
}

// One store, many threads: every value read back whole, and the connections
// reused rather than opened per operation.
TEST(RedisStore, ThreadsShareOneStoreAndItsConnections) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  long long before = info_field(redis.port(), "stats", "total_connections_received");
  constexpr int kThreads = 8, kRounds = 150;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        std::string key = "t" + std::to_string(t) + "/" + std::to_string(i % 10);
        std::string value = offset_pattern(size_t(1000 + 37 * i), uint64_t(t * 1000 + i));
        store->put(key, value);
        if (store->get(key) != value) ++wrong;
        if (i % 10 == 9) store->remove_prefix("t" + std::to_string(t) + "/");
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_TRUE(store->list("").empty());
  long long opened = info_field(redis.port(), "stats", "total_connections_received") - before;
  EXPECT_LE(opened, kThreads + 1 + 3);  // redis-cli's own INFO connections: 3
}

// ---- streams: put_stream and open_value

// A data store's pieces written into a temporary key with SETRANGE, read
// with GETRANGE.
TEST(RedisStore, StreamedValuesAreWrittenAndReadInPieces) {
  ServerProcess redis(redis_server());
  auto store = open_data_store(redis);
  kappa::testing::expect_stream_semantics(
      *store, {1, (3 << 20) + 5, (7 << 20) + 3, 100, 5 << 20, (2 << 20) + 1},
      [&] { EXPECT_EQ(all_keys(redis.port()), std::vector<std::string>{"stream/k"}); });
  EXPECT_EQ(all_keys(redis.port()), (std::vector<std::string>{"stream/empty", "stream/k"}));
}

// The temporary key expires a day after its last piece, so that a killed
// writer's debris goes away; the committed value does not (RENAME carries
// an expiry over: the commit removes it). Only KEY.tmp.<16 hex digits> is
// hidden from list().
TEST(RedisStore, AStreamsTemporaryKeyExpiresButItsValueDoesNot) {
  ServerProcess redis(redis_server());
  auto store = open_data_store(redis);
  store->put("job/x.tmp.1", "an ordinary key");
  auto writer = store->put_stream("job/k");
  writer->write("abc");
  std::string tmp = redis_cli(redis.port(), {"KEYS", "job/k.tmp.*"});
  ASSERT_EQ(tmp.size(), std::string("job/k.tmp.").size() + 16) << tmp;
  long long ttl = std::atoll(redis_cli(redis.port(), {"PTTL", tmp}).c_str());
  EXPECT_GT(ttl, 86400000 - 60000);
  EXPECT_LE(ttl, 86400000);
  EXPECT_EQ(store->list("job/"), std::vector<std::string>{"job/x.tmp.1"});
  writer->write("def");
  writer->commit();
  EXPECT_EQ(store->get("job/k"), "abcdef");
  EXPECT_EQ(redis_cli(redis.port(), {"TTL", "job/k"}), "-1");  // no expiry
  EXPECT_EQ(redis_cli(redis.port(), {"EXISTS", tmp}), "0");
}

// A temporary key removed under a stream (remove_prefix, a restart without
// persistence) fails the stream, which never commits the rest of it (a
// SETRANGE past the end of a missing key would fill the gap with zeros).
// A piece's answer is read when the next piece is sent: the piece after the
// removal fails the stream at the commit.
TEST(RedisStore, AStreamWhoseTemporaryKeyIsRemovedFails) {
  ServerProcess redis(redis_server());
  auto store = open_data_store(redis);
  auto writer = store->put_stream("job/k");
  writer->write(offset_pattern(1 << 20, 1));
  // The first piece, in flight, applied before the removal.
  for (auto deadline = Clock::now() + 10s;
       redis_cli(redis.port(), {"STRLEN", redis_cli(redis.port(), {"KEYS", "job/k.tmp.*"})}) !=
       "1048576";) {
    ASSERT_LT(Clock::now(), deadline) << "the first piece never arrived";
    std::this_thread::sleep_for(10ms);
  }
  store->remove_prefix("job/");
  std::string why = error_of([&] {
    writer->write("more");
    writer->commit();
  });
  EXPECT_NE(why.find("put 'job/k' failed: its temporary key 'job/k.tmp."), std::string::npos)
      << why;
  EXPECT_NE(why.find("holds 0 bytes, not the 1048576 written (removed meanwhile?)"),
            std::string::npos)
      << why;
  EXPECT_NE(error_of([&] { writer->commit(); }).find("its writer has failed already"),
            std::string::npos);
  EXPECT_EQ(store->get("job/k"), std::nullopt);
  EXPECT_TRUE(all_keys(redis.port()).empty());  // the failed piece's key removed

  // Removed just before the commit: the key keeps its value.
  store->put("k", "old value");
  writer = store->put_stream("k");
  writer->write("new value");
  redis_cli(redis.port(), {"DEL", redis_cli(redis.port(), {"KEYS", "k.tmp.*"})});
  why = error_of([&] { writer->commit(); });
  EXPECT_NE(why.find("is gone (removed, or expired, before the commit)"), std::string::npos) << why;
  EXPECT_EQ(store->get("k"), "old value");
}

// Redis cannot pin a version: a value removed, or replaced by a shorter
// one, fails the next read that reaches past its end.
TEST(RedisStore, AReaderFailsWhenItsValueIsRemovedOrShortened) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  const std::string value = offset_pattern(1 << 20, 2);
  store->put("k", value);
  auto reader = store->open_value("k");
  ASSERT_NE(reader, nullptr);
  std::string got(100, '\0');
  reader->read(1000, got.data(), got.size());
  EXPECT_EQ(got, value.substr(1000, 100));
  store->put("k", "short");
  std::string why = error_of([&] { reader->read(1000, got.data(), got.size()); });
  EXPECT_EQ(why, "redis store " + url_of(redis, "/0") +
                     ": read 'k' failed: 0 of the 100 bytes at offset 1000 are there: the value "
                     "was removed or replaced after it was opened (it had 1048576 bytes)");
  store->remove("k");
  EXPECT_NE(error_of([&] { reader->read(0, got.data(), 1); }), "");
}

// 128 MiB streamed in pieces of 4 MiB, then read back in ranges of 4 MiB,
// never hold more than a piece or two in this process's memory (the
// buffering default would hold the whole value, and a copy of it at the
// read).
TEST(RedisStore, StreamedValuesNeverHoldTheWholeValueInMemory) {
  ServerProcess redis(redis_server());
  kappa::testing::expect_streams_in_bounded_memory(*open_store(url_of(redis)), 32,
                                                   uint64_t(32) << 20, 7);
  kappa::testing::expect_streams_in_bounded_memory(*open_data_store(redis), 32, uint64_t(32) << 20,
                                                   8);
}

// ---- a checkpoint store's values in pieces

// The keys of the pieces of the value under `key` (KEY.part.R.N).
std::vector<std::string> pieces_of(int port, const std::string& key) {
  std::vector<std::string> pieces;
  for (const std::string& k : all_keys(port))
    if (k.starts_with(key + ".part.")) pieces.push_back(k);
  return pieces;
}

// A stream of more than 8 MiB: pieces of 8 MiB under keys of their own,
// permanent once committed, and a hash naming them under the key; list()
// shows the key alone, and no abandoned stream leaves a piece behind.
TEST(RedisStore, ACheckpointStoreWritesLongStreamsInPieces) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  const int port = redis.port();
  kappa::testing::expect_stream_semantics(
      *store, {1, (3 << 20) + 5, (7 << 20) + 3, 100, 5 << 20, (2 << 20) + 1}, [&] {
        std::vector<std::string> pieces = pieces_of(port, "stream/k");
        ASSERT_EQ(pieces.size(), 3u);  // 17 MiB and 110 bytes
        std::vector<std::string> keys = pieces;
        keys.insert(keys.begin(), "stream/k");
        EXPECT_EQ(all_keys(port), keys);
        const std::string base = pieces[0].substr(0, pieces[0].size() - 2);
        for (int i = 0; i < 3; ++i) {
          const std::string piece = base + "." + std::to_string(i);
          EXPECT_EQ(redis_cli(port, {"TTL", piece}), "-1") << piece;  // no expiry
          EXPECT_EQ(redis_cli(port, {"STRLEN", piece}), i < 2 ? "8388608" : "1048686");
        }
        EXPECT_EQ(redis_cli(port, {"TYPE", "stream/k"}), "hash");
        EXPECT_EQ(redis_cli(port, {"HMGET", "stream/k", "format", "size", "piece", "base"}),
                  "kappa pieces 1\n17825902\n8388608\n" + base);
      });
  // Short streams are strings, as puts are.
  EXPECT_EQ(redis_cli(port, {"TYPE", "stream/empty"}), "string");
  EXPECT_EQ(all_keys(port).size(), 5u);  // stream/empty, stream/k and its 3 pieces
}

// A piece made while a stream runs expires a day later, as a temporary key
// does: a killed writer's pieces go away.
TEST(RedisStore, APieceExpiresUntilItsStreamCommits) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  auto writer = store->put_stream("job/k");
  const std::string value = kappa::testing::offset_pattern((8 << 20) + 1, 5);
  writer->write(value);
  std::vector<std::string> pieces = pieces_of(redis.port(), "job/k");
  ASSERT_EQ(pieces.size(), 1u);
  long long ttl = std::atoll(redis_cli(redis.port(), {"PTTL", pieces[0]}).c_str());
  EXPECT_GT(ttl, 86400000 - 60000);
  EXPECT_LE(ttl, 86400000);
  EXPECT_TRUE(store->list("job/").empty());
  writer->commit();
  EXPECT_EQ(redis_cli(redis.port(), {"TTL", pieces[0]}), "-1");
  EXPECT_EQ(pieces_of(redis.port(), "job/k").size(), 2u);
  EXPECT_TRUE(kappa::testing::same_bytes(store->get("job/k").value_or(""), value));
}

// A value over Redis's 512 MiB string limit goes into a checkpoint store in
// pieces, and reads back whole, across pieces too.
TEST(RedisStore, ACheckpointStoreHoldsValuesOverRedisStringLimit) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  const size_t size = (size_t(512) << 20) + 1;
  // Zero pages but for a few marks: no memory behind the rest.
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  char* bytes = static_cast<char*>(p);
  const size_t marks[] = {0, (8 << 20) - 1, 8 << 20, (size_t(300) << 20) + 7, size - 1};
  for (size_t i = 0; i < std::size(marks); ++i) bytes[marks[i]] = char('a' + i);
  store->put("huge", std::string_view(bytes, size));
  munmap(p, size);
  EXPECT_EQ(pieces_of(redis.port(), "huge").size(), 65u);
  EXPECT_EQ(store->list(""), std::vector<std::string>{"huge"});
  auto reader = store->open_value("huge");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->size(), size);
  for (size_t i = 0; i < std::size(marks); ++i) {
    char c = 0;
    reader->read(marks[i], &c, 1);
    EXPECT_EQ(c, char('a' + i)) << marks[i];
  }
  std::string across(6, '\0');
  reader->read((8 << 20) - 3, across.data(), across.size());  // the end of one piece, the next
  EXPECT_EQ(across, std::string("\0\0bc\0\0", 6));
  uint64_t seen = 0;
  std::string why = kappa::testing::error_of([&] {
    store->get_checked("huge", 4, [&](std::string_view head, uint64_t n) {
      seen = n;
      EXPECT_EQ(head, std::string("a\0\0\0", 4));
      throw Error("refused");
    });
  });
  EXPECT_EQ(why, "refused");
  EXPECT_EQ(seen, size);
  store->remove("huge");
  EXPECT_TRUE(all_keys(redis.port()).empty());
}

// Replacing or removing a value in pieces removes its pieces; moving one
// copies it. A reader of a value removed meanwhile fails.
TEST(RedisStore, ReplacingOrRemovingAValueInPiecesRemovesItsPieces) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  const int port = redis.port();
  const std::string value = kappa::testing::offset_pattern(20 << 20, 9);
  auto stream = [&](const std::string& key) {
    auto writer = store->put_stream(key);
    writer->write(value);
    writer->commit();
  };
  stream("k");
  std::vector<std::string> first = pieces_of(port, "k");
  ASSERT_EQ(first.size(), 3u);
  stream("k");  // replaced by another in pieces
  std::vector<std::string> second = pieces_of(port, "k");
  ASSERT_EQ(second.size(), 3u);
  EXPECT_NE(first, second);
  store->put("k", "small");  // by a string
  EXPECT_EQ(all_keys(port), std::vector<std::string>{"k"});
  EXPECT_EQ(store->get("k"), "small");

  stream("k");
  auto reader = store->open_value("k");
  ASSERT_NE(reader, nullptr);
  store->move("k", "moved/k");
  EXPECT_EQ(store->list(""), std::vector<std::string>{"moved/k"});
  EXPECT_TRUE(pieces_of(port, "k").empty());
  EXPECT_TRUE(kappa::testing::same_bytes(store->get("moved/k").value_or(""), value));
  std::string got(10, '\0');
  std::string why = kappa::testing::error_of([&] { reader->read(9 << 20, got.data(), 10); });
  EXPECT_NE(why.find("read 'k' failed: its piece 'k.part."), std::string::npos) << why;
  EXPECT_NE(why.find("lacks bytes: 0 of the 10 bytes at offset 1048576 are there: the value was "
                     "removed or replaced after it was opened (it had 20971520 bytes)"),
            std::string::npos)
      << why;
  store->remove("moved/k");
  EXPECT_TRUE(all_keys(port).empty());
}

// A piece removed before the commit (remove_prefix, a restart without
// persistence) fails the commit, which leaves the key as it was and removes
// the other pieces.
TEST(RedisStore, AStreamWhosePieceIsRemovedFails) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  store->put("k", "old value");
  auto writer = store->put_stream("k");
  writer->write(kappa::testing::offset_pattern(20 << 20, 4));
  std::vector<std::string> pieces = pieces_of(redis.port(), "k");
  ASSERT_EQ(pieces.size(), 2u);  // the third is the buffer's
  redis_cli(redis.port(), {"DEL", pieces[1]});
  std::string why = kappa::testing::error_of([&] { writer->commit(); });
  EXPECT_NE(why.find("put 'k' failed: 1 of its 3 pieces ('k.part."), std::string::npos) << why;
  EXPECT_NE(why.find(".N) are gone (removed, or expired, before the commit)"), std::string::npos)
      << why;
  EXPECT_EQ(store->get("k"), "old value");
  EXPECT_EQ(all_keys(redis.port()), std::vector<std::string>{"k"});
}

// A hash the store did not write is no value of its.
TEST(RedisStore, AHashThatIsNotAValueInPiecesIsAnError) {
  ServerProcess redis(redis_server());
  auto store = open_store(url_of(redis));
  redis_cli(redis.port(), {"HSET", "other", "field", "x"});
  std::string why = kappa::testing::error_of([&] { store->open_value("other"); });
  EXPECT_NE(why.find("open 'other' failed: it holds a hash that is not a value in pieces (it has "
                     "no field 'format')"),
            std::string::npos)
      << why;
  redis_cli(redis.port(),
            {"HSET", "newer", "format", "kappa pieces 2", "size", "1", "piece", "1", "base", "b"});
  why = kappa::testing::error_of([&] { store->get("newer"); });
  EXPECT_NE(why.find("get 'newer' failed: it holds a value in pieces of another format, 'kappa "
                     "pieces 2' (this version reads 'kappa pieces 1'): from a newer version?"),
            std::string::npos)
      << why;
}

// ---- faults

// Redis crashes (SIGKILL) and comes back on the same port 1.5 s later: the
// operations started in the gap wait for it and succeed, and a put
// acknowledged before the crash is still there (appendonly, fsync always).
TEST(RedisStoreFaults, OperationsDuringARestartRetryAndSucceed) {
  ServerProcess redis(redis_server({.persistent = true}));
  auto store = open_store(url_of(redis));
  std::string before = offset_pattern(8 << 20, 11);
  store->put("job/before", before);
  redis.stop(SIGKILL);
  auto stopped = Clock::now();
  std::thread restarter([&] {
    std::this_thread::sleep_for(1500ms);
    redis.start();
  });
  std::vector<std::future<std::string>> ops;
  for (int i = 0; i < 4; ++i)
    ops.push_back(std::async(std::launch::async, [&, i]() -> std::string {
      try {
        std::optional<std::string> got = store->get("job/before");
        if (got != before)
          return "get returned " + (got ? std::to_string(got->size()) + " bytes" : "nothing");
        std::string mine = offset_pattern(size_t(1 << 20) + size_t(i), uint64_t(i));
        store->put("job/during-" + std::to_string(i), mine);
        if (store->get("job/during-" + std::to_string(i)) != mine) return "put not read back";
        return "";
      } catch (const Error& e) {
        return e.what();
      }
    }));
  for (auto& op : ops) EXPECT_EQ(op.get(), "");
  EXPECT_GE(Clock::now() - stopped, 1500ms);  // they did wait for the server
  restarter.join();
  EXPECT_EQ(store->list("job/"),
            (std::vector<std::string>{"job/before", "job/during-0", "job/during-1", "job/during-2",
                                      "job/during-3"}));
}

// A large put cut off by a crash of Redis, and retried after it comes back:
// afterwards the key holds the whole value; a get racing it sees all of it
// or nothing.
TEST(RedisStoreFaults, APutCutByACrashIsWholeAfterward) {
  ServerProcess redis(redis_server({.persistent = true}));
  auto store = open_store(url_of(redis));
  std::string big = offset_pattern(64 << 20, 5);
  std::string put_error = "not done";
  std::thread writer([&] { put_error = error_of([&] { store->put("job/big", big); }); });
  std::this_thread::sleep_for(20ms);  // into the transfer, most likely
  redis.stop(SIGKILL);
  std::this_thread::sleep_for(300ms);
  redis.start();
  std::optional<std::string> seen = store->get("job/big");
  EXPECT_TRUE(!seen || *seen == big) << "a value of " << seen->size() << " bytes";
  writer.join();
  EXPECT_EQ(put_error, "");
  std::optional<std::string> after = store->get("job/big");
  ASSERT_TRUE(after);
  EXPECT_TRUE(*after == big) << after->size();
}

// A checkpoint store's stream across a crash of Redis: with persistence the
// pieces written before it survive, the piece in flight is sent again on a
// new connection, and the value commits whole; without, the pieces are gone
// and the commit fails, leaving the key as it was.
TEST(RedisStoreFaults, AStreamInPiecesAcrossACrash) {
  for (bool persistent : {true, false}) {
    SCOPED_TRACE(persistent ? "appendonly" : "no persistence");
    ServerProcess redis(redis_server({.persistent = persistent}));
    auto store = open_store(url_of(redis));
    store->put("k", "old value");
    const std::string value = offset_pattern(40 << 20, 12);
    std::string_view v = value;
    auto writer = store->put_stream("k");
    writer->write(v.substr(0, 20 << 20));  // pieces 0 and 1 sent, 4 MiB in the buffer
    redis.stop(SIGKILL);
    std::thread restarter([&] {
      std::this_thread::sleep_for(500ms);
      redis.start();
    });
    std::string why = error_of([&] {
      writer->write(v.substr(20 << 20));
      writer->commit();
    });
    restarter.join();
    if (persistent) {
      EXPECT_EQ(why, "");
      EXPECT_TRUE(kappa::testing::same_bytes(store->get("k").value_or(""), value));
      EXPECT_EQ(pieces_of(redis.port(), "k").size(), 5u);
    } else {
      EXPECT_NE(why.find("put 'k' failed: "), std::string::npos) << why;
      EXPECT_NE(why.find(" of its 5 pieces ('k.part."), std::string::npos) << why;
      EXPECT_EQ(store->get("k"), std::nullopt);  // the server lost "old value" too
      EXPECT_TRUE(all_keys(redis.port()).empty());
    }
  }
}

// Redis down for longer than the retry timeout: a clear error naming the
// operation, the key, the store and the reason; never a missing value.
TEST(RedisStoreFaults, DownForLongerThanTheRetryTimeoutIsAClearError) {
  ServerProcess redis(redis_server());
  std::string url = url_of(redis, "?retry_timeout=1");
  auto store = open_store(url);
  store->put("job/k", "v");
  redis.stop(SIGKILL);
  auto start = Clock::now();
  std::string why = error_of([&] { store->put("job/k2", "v2"); });
  auto took = Clock::now() - start;
  EXPECT_NE(why.find("redis store " + url_of(redis, "/0") + ": put 'job/k2' failed: "),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("Connection refused"), std::string::npos) << why;
  EXPECT_NE(why.find("still failing after"), std::string::npos) << why;
  EXPECT_GE(took, 1s);
  EXPECT_LT(took, 5s);
  // A get fails too: a server that is gone is not a key that is absent.
  EXPECT_NE(error_of([&] { store->get("job/k"); }).find("get 'job/k' failed"), std::string::npos);
  EXPECT_NE(error_of([&] { store->list("job/"); }).find("list keys under 'job/' failed"),
            std::string::npos);
  EXPECT_NE(error_of([&] { store->remove("job/k"); }).find("remove 'job/k' failed"),
            std::string::npos);
  EXPECT_NE(error_of([&] { open_store(url); }).find("connect failed"), std::string::npos);
}

// A stand-in for Redis that answers PING, and any other command with half of
// a bulk string before it hangs up (on its first `cut` connections; later
// ones get it whole): what a client sees when Redis dies mid-reply.
class CuttingServer {
 public:
  CuttingServer(std::string value, int cut) : value_(std::move(value)), cut_(cut) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 16) != 0)
      throw std::runtime_error("cannot listen");
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~CuttingServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int connections() const { return connections_; }

 private:
  void serve() {
    for (;;) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++connections_;
      char buf[4096];
      ssize_t got;
      while ((got = recv(c, buf, sizeof buf, 0)) > 0) {
        if (std::string_view(buf, size_t(got)).find("PING") != std::string_view::npos) {
          send(c, "+PONG\r\n", 7, MSG_NOSIGNAL);  // the store checks a new connection
          continue;
        }
        std::string reply = "$" + std::to_string(value_.size()) + "\r\n" + value_ + "\r\n";
        size_t n = connections_ <= cut_ ? reply.size() / 2 : reply.size();
        send(c, reply.data(), n, MSG_NOSIGNAL);
        break;
      }
      close(c);
    }
  }
  std::string value_;
  int cut_;
  int fd_ = -1, port_ = 0;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

TEST(RedisStoreFaults, AReplyCutShortIsNeverAValue) {
  std::string value = offset_pattern(1 << 20, 9);
  CuttingServer always(value, 1000);
  auto store =
      open_store("redis://127.0.0.1:" + std::to_string(always.port()) + "?retry_timeout=0.5");
  std::string why = error_of([&] { store->get("job/k"); });
  EXPECT_NE(why.find("get 'job/k' failed: the connection was closed after "), std::string::npos)
      << why;
  EXPECT_NE(why.find("of the value's 1048576 bytes"), std::string::npos) << why;
  EXPECT_GE(always.connections(), 3);  // retried on new connections
}

// get_checked judges the head as soon as it has arrived: a value refused from
// its head is refused at once, even when the rest of the reply would never
// come (no retry on a new connection).
TEST(RedisStoreFaults, GetCheckedRefusesFromTheHeadWithoutWaitingForTheRest) {
  std::string value = offset_pattern(1 << 20, 9);
  CuttingServer always(value, 1000);
  auto store =
      open_store("redis://127.0.0.1:" + std::to_string(always.port()) + "?retry_timeout=0.5");
  std::string why = error_of([&] {
    store->get_checked("job/k", 64, [&](std::string_view head, uint64_t size) {
      EXPECT_EQ(head, value.substr(0, 64));
      throw Error("refused: " + std::to_string(size) + " bytes");
    });
  });
  EXPECT_EQ(why, "refused: 1048576 bytes");
  EXPECT_EQ(always.connections(), 1);
}

TEST(RedisStoreFaults, AReplyCutShortIsRetried) {
  std::string value = offset_pattern(1 << 20, 9);
  CuttingServer thrice(value, 3);  // three GETs cut short, the fourth answered whole
  auto store = open_store("redis://127.0.0.1:" + std::to_string(thrice.port()));
  std::optional<std::string> got = store->get("job/k");
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got == value);
  EXPECT_EQ(thrice.connections(), 4);
}

// Returns once the server on `port` is asleep (DEBUG SLEEP): a PING goes
// unanswered for 50 ms.
void wait_until_asleep(int port) {
  for (bool asleep = false; !asleep;) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(port));
    timeval wait{0, 50000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char reply[16];
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(send(fd, "PING\r\n", 6, MSG_NOSIGNAL), 6);
    asleep = recv(fd, reply, sizeof reply, 0) < 0;
    close(fd);
  }
}

// Redis stalls (DEBUG SLEEP) while pieces are on their way: the client,
// awaiting the answer to one, times out and sends it again on new
// connections, and Redis, once awake, applies every attempt, the abandoned
// ones too, and the piece sent after it on the first connection, in any
// order. Each piece is in the value once: each attempt writes the same bytes
// at the same place (an APPEND would add them once per attempt).
TEST(RedisStoreFaults, APieceRetriedAfterAStallIsWrittenOnce) {
  ServerProcess redis(redis_server({.args = {"--enable-debug-command", "yes"}}));
  auto store = open_data_store(redis, "?timeout=0.2");
  auto writer = store->put_stream("k");
  writer->write("first piece, ");  // awaited, as a first piece always is
  std::thread sleeper([&] { redis_cli(redis.port(), {"DEBUG", "SLEEP", "1"}); });
  wait_until_asleep(redis.port());
  auto started = Clock::now();
  std::string why = error_of([&] {
    writer->write("second piece, ");  // sent, its answer not awaited
    writer->write("third piece");     // awaits the second's
    writer->commit();
  });
  auto waited = Clock::now() - started;
  sleeper.join();
  EXPECT_EQ(why, "");
  EXPECT_GE(waited, 200ms);  // it did wait for Redis
  EXPECT_EQ(store->get("k"), "first piece, second piece, third piece");
  EXPECT_GE(calls_of(redis.port(), "setrange"), 4);  // attempts that Redis applied
}

// The same for a checkpoint store's pieces: each SET of a piece retried
// after the stall writes the same bytes under the same key.
TEST(RedisStoreFaults, PiecesRetriedAfterAStallAreWrittenOnce) {
  ServerProcess redis(redis_server({.args = {"--enable-debug-command", "yes"}}));
  auto store = open_store(url_of(redis, "?timeout=0.2"));
  const std::string value = kappa::testing::offset_pattern(30 << 20, 6);
  auto writer = store->put_stream("k");
  writer->write(std::string_view(value).substr(0, 9 << 20));  // piece 0 sent, unanswered
  std::thread sleeper([&] { redis_cli(redis.port(), {"DEBUG", "SLEEP", "1"}); });
  wait_until_asleep(redis.port());
  auto started = Clock::now();
  std::string why = kappa::testing::error_of([&] {
    writer->write(std::string_view(value).substr(9 << 20));  // pieces 1 and 2 sent
    writer->commit();
  });
  auto waited = Clock::now() - started;
  sleeper.join();
  EXPECT_EQ(why, "");
  EXPECT_GE(waited, 200ms);
  EXPECT_TRUE(kappa::testing::same_bytes(store->get("k").value_or(""), value));
  EXPECT_EQ(pieces_of(redis.port(), "k").size(), 4u);
  for (const std::string& piece : pieces_of(redis.port(), "k"))
    EXPECT_EQ(redis_cli(redis.port(), {"TTL", piece}), "-1") << piece;
}

}  // namespace
}  // namespace kappa::detail
