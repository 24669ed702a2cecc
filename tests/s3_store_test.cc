// The s3://BUCKET/PREFIX store against a real S3 server on loopback (s3rver,
// started by these tests): the CheckpointStore promises, its signatures
// recomputed by an independent SigV4 implementation (botocore, in
// tests/fixtures/s3/s3_proxy.py), and faults injected by the same proxy:
// errors and resets are retried, lasting ones fail with a message naming the
// operation, the object and S3's reason, and a failed put leaves nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "stores/s3_store.h"
#include "support/s3_server.h"
#include "support/store_checks.h"

namespace kappa::detail {
namespace {

using kappa::testing::S3Proxy;
using kappa::testing::S3Server;
using kappa::testing::ScopedEnv;
using nlohmann::json;

using kappa::testing::error_of;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 4) {
    uint32_t r = rng();
    std::memcpy(s.data() + i, &r, std::min<size_t>(4, n - i));
  }
  return s;
}

// Quick retries, so that lasting faults fail within a second.
S3Tuning fast() {
  S3Tuning t;
  t.max_attempts = 4;
  t.base_delay = std::chrono::milliseconds(5);
  t.max_delay = std::chrono::milliseconds(40);
  return t;
}

// Small parts, so that multipart uploads stay quick.
S3Tuning small_parts() {
  S3Tuning t = fast();
  t.multipart_threshold = 6 << 20;
  t.part_size = 5 << 20;
  return t;
}

// The requests of `log` (a proxy's) with this method and a query containing `query`.
std::vector<json> requests(const json& log, const std::string& method,
                           const std::string& query = "") {
  std::vector<json> out;
  for (const json& r : log)
    if (r["method"] == method && contains(r["query"].get<std::string>(), query)) out.push_back(r);
  return out;
}

// One s3rver for all the tests here (node takes a second to start); each
// test works under a prefix of its own.
class S3StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new S3Server("kappa"); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  std::string prefix() const {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  std::string url() const { return "s3://kappa/" + prefix(); }

  // A store on `endpoint` (s3rver itself by default).
  std::unique_ptr<CheckpointStore> open(const S3Tuning& tuning = fast(), std::string endpoint = "",
                                        const std::string& secret = kappa::testing::kS3SecretKey) {
    if (endpoint.empty()) endpoint = server_->endpoint();
    ScopedEnv env(kappa::testing::s3_environment(endpoint, secret));
    return open_s3_store("kappa/" + prefix(), {}, tuning);
  }

  static S3Server* server_;
};

S3Server* S3StoreTest::server_ = nullptr;

TEST_F(S3StoreTest, PutGetListRemove) {
  auto store = open();
  EXPECT_EQ(store->url(), url());
  kappa::testing::expect_basic_semantics(*store);

  // The prefix is the store's: another prefix sees none of it, the bucket
  // sees it all under the prefix.
  ScopedEnv env(kappa::testing::s3_environment(server_->endpoint()));
  auto sibling = open_store(url() + "-sibling");
  EXPECT_TRUE(sibling->list("").empty());
  EXPECT_EQ(sibling->get("ckpt-2"), std::nullopt);
  auto bucket = open_store("s3://kappa");
  EXPECT_EQ(bucket->url(), "s3://kappa");
  EXPECT_EQ(bucket->get(prefix() + "/ckpt-2"), "two");
  EXPECT_EQ(bucket->list(prefix() + "/job/"), (std::vector<std::string>{prefix() + "/job/ckpt-3"}));
}

// A move is a server-side copy, then a delete.
TEST_F(S3StoreTest, MoveReplacesRemovesAndIsIdempotent) {
  auto store = open();
  kappa::testing::expect_move_semantics(*store);
}

TEST_F(S3StoreTest, ListFollowsContinuationTokens) {
  S3Proxy proxy(server_->endpoint());
  S3Tuning tuning = fast();
  tuning.list_page_size = 3;
  auto store = open(tuning, proxy.endpoint());
  std::vector<std::string> keys;
  for (int i = 0; i < 10; ++i) keys.push_back("p/key-" + std::to_string(i));
  for (const std::string& k : keys) store->put(k, k);
  store->put("q/outside", "x");
  proxy.set_faults(json::array());
  EXPECT_EQ(store->list("p/"), keys);
  std::vector<json> pages = requests(proxy.log(), "GET", "list-type=2");
  ASSERT_EQ(pages.size(), 4u);  // 3 + 3 + 3 + 1
  EXPECT_FALSE(contains(pages[0]["query"], "continuation-token"));
  for (size_t i = 1; i < pages.size(); ++i)
    EXPECT_TRUE(contains(pages[i]["query"], "continuation-token=")) << pages[i];
}

// A page of a thousand long keys is a large document: read whole.
TEST_F(S3StoreTest, ListReadsLargePages) {
  auto store = open();
  std::vector<std::string> keys;  // 400-byte keys (s3rver makes each level a file name: < 256)
  for (int i = 0; i < 150; ++i) {
    std::string k = "dir";
    for (int level = 0; level < 6; ++level)
      k += "/" + std::string(60, char('a' + (i + level) % 26));
    keys.push_back(k + "/" + std::to_string(1000 + i));
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t)
    writers.emplace_back([&, t] {
      for (size_t i = size_t(t); i < keys.size(); i += 3) store->put(keys[i], "v");
    });
  for (auto& w : writers) w.join();
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(store->list("dir/"), keys);  // one page of over 64 KiB
}

TEST_F(S3StoreTest, RemovePrefixRemovesThatPrefixOnly) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(fast(), proxy.endpoint());
  for (const char* k : {"job1/a", "job1/b/c", "job1/d&<e>", "job10/x", "job2/y"}) store->put(k, k);
  proxy.set_faults(json::array());
  store->remove_prefix("job1/");
  EXPECT_EQ(store->list(""), (std::vector<std::string>{"job10/x", "job2/y"}));
  // DeleteObjects, not one DELETE per key (s3rver sometimes fails its
  // first one with a 500, a race of its own: retried).
  json log = proxy.log();
  EXPECT_FALSE(requests(log, "POST", "delete=").empty()) << log;
  EXPECT_TRUE(requests(log, "DELETE").empty()) << log;
  store->remove_prefix("nothing/");  // nothing there: fine
  EXPECT_TRUE(contains(error_of([&] { store->remove_prefix("job"); }), "ending in '/'"));
  EXPECT_EQ(store->list("").size(), 2u);
}

TEST_F(S3StoreTest, GetCheckedJudgesTheHeadBeforeReadingTheRest) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(fast(), proxy.endpoint());
  const std::string value = random_bytes(300 << 10, 1);
  store->put("image", value);
  store->put("short", "0123456789");
  store->put("empty", "");

  proxy.set_faults(json::array());
  std::string head;
  uint64_t size = 0;
  auto remember = [&](std::string_view h, uint64_t s) {
    head = h;
    size = s;
  };
  EXPECT_EQ(store->get_checked("image", 64, remember), value);
  EXPECT_EQ(head, value.substr(0, 64));
  EXPECT_EQ(size, value.size());
  json log = proxy.log();
  ASSERT_EQ(log.size(), 1u) << log;  // one GET, of the whole object
  EXPECT_EQ(log[0]["range"], nullptr);

  // A refusal is the check's own exception, not retried.
  auto refuse = [](std::string_view, uint64_t s) {
    throw Error("refused: " + std::to_string(s) + " bytes");
  };
  proxy.set_faults(json::array());
  EXPECT_EQ(error_of([&] { store->get_checked("image", 64, refuse); }),
            "refused: " + std::to_string(value.size()) + " bytes");
  EXPECT_EQ(proxy.log().size(), 1u);
  // It comes as soon as the head has: an answer cut after half of the
  // value, which would be retried, is refused at once.
  proxy.set_faults({{{"method", "GET"}, {"action", "truncate"}, {"times", -1}}});
  EXPECT_EQ(error_of([&] { store->get_checked("image", 64, refuse); }),
            "refused: " + std::to_string(value.size()) + " bytes");
  EXPECT_EQ(proxy.log().size(), 1u);
  proxy.set_faults(json::array());
  EXPECT_EQ(store->get_checked("image", 64, remember), value);  // the store still works

  EXPECT_EQ(store->get_checked("short", 64, remember), "0123456789");
  EXPECT_EQ(head, "0123456789");
  EXPECT_EQ(size, 10u);
  EXPECT_EQ(store->get_checked("empty", 64, remember), "");
  EXPECT_EQ(head, "");
  EXPECT_EQ(size, 0u);
  EXPECT_EQ(store->get_checked("image", 0, remember), value);  // no head at all
  EXPECT_EQ(head, "");
  EXPECT_EQ(size, value.size());
  size = 99;
  EXPECT_EQ(store->get_checked("absent", 64, remember), std::nullopt);
  EXPECT_EQ(size, 99u);  // not called
}

TEST_F(S3StoreTest, LargeValuesGoUpAsMultipartUploads) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(S3Tuning{}, proxy.endpoint());  // the defaults: 16 MiB, parts of 8 MiB
  const std::string big = random_bytes(20 << 20, 2);
  proxy.set_faults(json::array());
  store->put("big", big);
  json log = proxy.log();
  EXPECT_EQ(requests(log, "POST", "uploads").size(), 1u) << log;
  std::vector<json> parts = requests(log, "PUT", "partNumber=");
  ASSERT_EQ(parts.size(), 3u) << log;  // 8 + 8 + 4 MiB
  EXPECT_EQ(requests(log, "POST", "uploadId=").size(), 1u) << log;
  EXPECT_EQ(store->get("big"), big);

  proxy.set_faults(json::array());
  store->put("below", std::string((16 << 20) - 1, 'b'));
  log = proxy.log();
  ASSERT_EQ(log.size(), 1u);  // one PutObject
  EXPECT_EQ(log[0]["query"], "");
}

// The store serves several threads at once (a worker's main and uplink
// threads, the coordinator's removal thread).
TEST_F(S3StoreTest, ThreadsShareAStore) {
  auto store = open();
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 15; ++i) {
        std::string key = "t" + std::to_string(t) + "/k" + std::to_string(i);
        std::string value = random_bytes(size_t(1000 + 20000 * i), uint32_t(t * 100 + i));
        store->put(key, value);
        if (store->get(key) != value) ++wrong;
        std::vector<std::string> keys = store->list("t" + std::to_string(t) + "/");
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) ++wrong;
        if (i % 2) store->remove(key);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(store->list("").size(), 4u * 8);  // the even-numbered keys remain
}

// Every request of every operation, signed by curl, is recomputed with
// botocore's SigV4 from what reached the server.
TEST_F(S3StoreTest, BotocoreAgreesWithEverySignature) {
  S3Proxy checker(server_->endpoint(), /*check_sigv4=*/true);
  S3Tuning tuning = small_parts();
  tuning.list_page_size = 2;
  auto store = open(tuning, checker.endpoint());
  // Keys with every kind of character that needs encoding in a path.
  const std::vector<std::string> keys = {
      "a b/c+d=e&f?g#h%i",    "semi;colon,comma:at@dollar$",
      "quote\"'<x>[y]{z}|^`", "u\xcc\x88ml\xc3\xa4ut/\xe2\x82\xac",
      "plain-_.~/x",          "dots/.hidden..x"};
  for (size_t i = 0; i < keys.size(); ++i) store->put(keys[i], "value " + std::to_string(i));
  for (size_t i = 0; i < keys.size(); ++i)
    EXPECT_EQ(store->get(keys[i]), "value " + std::to_string(i)) << keys[i];
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(store->list(""), sorted);  // paged by 2: continuation tokens signed too
  const std::string big = random_bytes(11 << 20, 3);
  store->put("dir with space/big", big);  // multipart
  EXPECT_EQ(store->get_checked("dir with space/big", 100, {}), big);
  auto writer = store->put_stream("streamed value");  // multipart too
  writer->write(std::string_view(big).substr(0, 7 << 20));
  writer->write(std::string_view(big).substr(7 << 20));
  writer->commit();
  auto reader = store->open_value("streamed value");  // GET of its first MiB, with Range
  ASSERT_NE(reader, nullptr);
  std::string range(1000, '\0');
  reader->read(6 << 20, range.data(), range.size());
  EXPECT_EQ(range, big.substr(6 << 20, 1000));
  {  // opened with a HEAD
    S3Tuning heads = tuning;
    heads.open_bytes = 0;
    reader = open(heads, checker.endpoint())->open_value(keys[1]);
    ASSERT_NE(reader, nullptr);
    EXPECT_EQ(reader->size(), std::string("value 1").size());
  }
  store->remove(keys[0]);
  EXPECT_EQ(store->get(keys[0]), std::nullopt);
  store->remove_prefix("dots/");
  EXPECT_EQ(store->get("dots/.hidden..x"), std::nullopt);
  {  // temporary credentials: the session token is signed too
    ScopedEnv token({"AWS_SESSION_TOKEN=FwoGZXIvYXdzEJr//////////token+with/signs="});
    auto with_token = open(tuning, checker.endpoint());
    with_token->put("token", "t");
    EXPECT_EQ(with_token->get("token"), "t");
  }

  json log = checker.log();
  std::set<std::string> methods;
  for (const json& r : log) {
    EXPECT_EQ(r["signature"], "ok") << r;
    methods.insert(r["method"]);
  }
  EXPECT_EQ(methods, (std::set<std::string>{"DELETE", "GET", "HEAD", "POST", "PUT"}));
  EXPECT_GE(log.size(), 25u);

  // The check can fail: a wrong secret key is refused, at the first attempt.
  checker.set_faults(json::array());
  auto wrong = open(tuning, checker.endpoint(), "not the secret");
  std::string why = error_of([&] { wrong->put("x", "y"); });
  EXPECT_TRUE(contains(why, "put of s3://kappa/" + prefix() +
                                "/x failed: HTTP 403 "
                                "SignatureDoesNotMatch"))
      << why;
  log = checker.log();
  ASSERT_EQ(log.size(), 1u) << log;
  EXPECT_EQ(log[0]["signature"], "mismatch");
}

// ---- faults ----

TEST_F(S3StoreTest, ServerErrorsAndThrottlingAreRetried) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(fast(), proxy.endpoint());
  proxy.set_faults({{{"method", "PUT"},
                     {"action", "error"},
                     {"status", 503},
                     {"code", "SlowDown"},
                     {"message", "Please reduce your request rate."},
                     {"times", 2}},
                    {{"method", "GET"},
                     {"action", "error"},
                     {"status", 500},
                     {"code", "InternalError"},
                     {"times", 2}}});
  const std::string value = random_bytes(200 << 10, 4);
  store->put("k", value);
  EXPECT_EQ(store->get("k"), value);
  json log = proxy.log();
  EXPECT_EQ(requests(log, "PUT").size(), 3u) << log;
  EXPECT_EQ(requests(log, "GET").size(), 3u) << log;
}

TEST_F(S3StoreTest, ResetConnectionsAndCutAnswersAreRetried) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(fast(), proxy.endpoint());
  const std::string value = random_bytes(300 << 10, 5);
  proxy.set_faults({{{"method", "PUT"}, {"action", "reset"}, {"times", 2}},
                    {{"method", "GET"}, {"action", "truncate"}, {"times", 1}},
                    {{"method", "GET"}, {"action", "reset"}, {"times", 1}}});
  store->put("k", value);
  EXPECT_EQ(store->get("k"), value);  // whole, never the half the proxy sent first
  json log = proxy.log();
  EXPECT_EQ(requests(log, "PUT").size(), 3u) << log;
  EXPECT_EQ(requests(log, "GET").size(), 3u) << log;
}

// The request applied but its answer was lost: doing it again is harmless,
// and a multipart upload completed by the lost attempt is recognized.
TEST_F(S3StoreTest, LostAnswersAreRetried) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(small_parts(), proxy.endpoint());
  proxy.set_faults({{{"method", "PUT"}, {"action", "reset_after"}, {"times", 1}}});
  store->put("small", "value");
  EXPECT_EQ(store->get("small"), "value");
  EXPECT_EQ(requests(proxy.log(), "PUT").size(), 2u);

  // S3 answers a second CompleteMultipartUpload with 404 NoSuchUpload (s3rver
  // with a 500: the proxy plays S3 here).
  const std::string big = random_bytes(12 << 20, 6);
  proxy.set_faults(
      {{{"method", "POST"}, {"query", "uploadId="}, {"action", "reset_after"}, {"times", 1}},
       {{"method", "POST"},
        {"query", "uploadId="},
        {"action", "error"},
        {"status", 404},
        {"code", "NoSuchUpload"},
        {"times", 1}}});
  store->put("big", big);
  EXPECT_EQ(requests(proxy.log(), "POST", "uploadId=").size(), 2u);
  EXPECT_EQ(requests(proxy.log(), "HEAD").size(), 1u);  // the check that it is there
  EXPECT_EQ(store->get("big"), big);
}

TEST_F(S3StoreTest, LastingFaultsFailNamingTheOperationTheObjectAndTheReason) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(fast(), proxy.endpoint());
  store->put("k", "old");
  std::string object = "s3://kappa/" + prefix() + "/k";

  proxy.set_faults({{{"method", "PUT"},
                     {"action", "error"},
                     {"status", 503},
                     {"code", "SlowDown"},
                     {"message", "Please reduce your request rate."},
                     {"times", -1}}});
  std::string why = error_of([&] { store->put("k", "new"); });
  EXPECT_TRUE(contains(why, "s3 store: put of " + object + " failed after 4 attempts in ")) << why;
  EXPECT_TRUE(contains(why, ": HTTP 503 SlowDown: Please reduce your request rate.")) << why;
  EXPECT_EQ(requests(proxy.log(), "PUT").size(), 4u);

  proxy.set_faults({{{"method", "GET"}, {"action", "reset"}, {"times", -1}}});
  why = error_of([&] { store->get("k"); });
  EXPECT_TRUE(contains(why, "get of " + object + " failed after 4 attempts")) << why;

  // Not worth retrying: fails at once.
  proxy.set_faults({{{"method", "DELETE"},
                     {"action", "error"},
                     {"status", 403},
                     {"code", "AccessDenied"},
                     {"message", "Access Denied"},
                     {"times", -1}}});
  why = error_of([&] { store->remove("k"); });
  EXPECT_EQ(why, "s3 store: remove of " + object + " failed: HTTP 403 AccessDenied: Access Denied");
  EXPECT_EQ(requests(proxy.log(), "DELETE").size(), 1u);

  proxy.set_faults(json::array());
  EXPECT_EQ(store->get("k"), "old");  // the failed put changed nothing

  // Nobody there.
  int closed = kappa::testing::free_loopback_port();
  auto nowhere = open(fast(), "http://127.0.0.1:" + std::to_string(closed));
  why = error_of([&] { nowhere->get("k"); });
  EXPECT_TRUE(contains(why, "get of " + object + " failed after 4 attempts")) << why;
  EXPECT_TRUE(contains(why, "Couldn't connect to server")) << why;
}

TEST_F(S3StoreTest, AFailedMultipartPutLeavesNothingAndAbortsTheUpload) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(small_parts(), proxy.endpoint());
  store->put("kept", "old value");
  const std::string big = random_bytes(12 << 20, 7);

  // A part that keeps failing.
  proxy.set_faults({{{"method", "PUT"},
                     {"query", "partNumber=2"},
                     {"action", "error"},
                     {"status", 500},
                     {"code", "InternalError"},
                     {"message", "We encountered an internal error. Please try again."},
                     {"times", -1}}});
  std::string why = error_of([&] { store->put("big", big); });
  EXPECT_TRUE(
      contains(why, "put (part 2) of s3://kappa/" + prefix() + "/big failed after 4 attempts"))
      << why;
  EXPECT_TRUE(contains(why, "HTTP 500 InternalError: We encountered an internal error.")) << why;
  json log = proxy.log();
  std::vector<json> aborts = requests(log, "DELETE", "uploadId=");
  ASSERT_EQ(aborts.size(), 1u) << log;  // s3rver has no AbortMultipartUpload: tried once
  EXPECT_TRUE(requests(log, "POST", "uploadId=").empty()) << "completed anyway: " << log;

  // A completion that keeps failing, over an older value.
  proxy.set_faults({{{"method", "POST"},
                     {"query", "uploadId="},
                     {"action", "error"},
                     {"status", 503},
                     {"code", "ServiceUnavailable"},
                     {"times", -1}}});
  why = error_of([&] { store->put("kept", big); });
  EXPECT_TRUE(contains(why, "put (completing a multipart upload) of s3://kappa/" + prefix() +
                                "/kept failed after 4 attempts"))
      << why;
  EXPECT_EQ(requests(proxy.log(), "DELETE", "uploadId=").size(), 1u);

  proxy.set_faults(json::array());
  EXPECT_EQ(store->get("big"), std::nullopt);
  EXPECT_EQ(store->get("kept"), "old value");
  EXPECT_EQ(store->list(""), std::vector<std::string>{"kept"});
}

// ---- streams: put_stream and open_value ----

// Pieces larger and smaller than the parts (5 MiB here) of a multipart upload.
TEST_F(S3StoreTest, StreamedValuesAreWrittenAndReadInPieces) {
  auto store = open(small_parts());
  kappa::testing::expect_stream_semantics(
      *store, {1, (3 << 20) + 5, (7 << 20) + 3, 100, 5 << 20, (2 << 20) + 1});
}

// A stream goes up as put() would send its value: one PutObject under the
// multipart threshold; above it, parts uploaded as they fill, before the
// commit completes the upload.
TEST_F(S3StoreTest, AStreamIsOnePutUnderTheThresholdAndAMultipartUploadAbove) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(small_parts(), proxy.endpoint());  // over 6 MiB, parts of 5 MiB
  const std::string value = random_bytes(17 << 20, 8);
  std::string_view v = value;
  proxy.set_faults(json::array());
  auto writer = store->put_stream("small");
  for (size_t at = 0; at < (6 << 20) - 1; at += 1 << 20)
    writer->write(v.substr(at, std::min<size_t>(1 << 20, (6 << 20) - 1 - at)));
  EXPECT_TRUE(proxy.log().empty());
  writer->commit();
  json log = proxy.log();
  ASSERT_EQ(log.size(), 1u) << log;
  EXPECT_EQ(log[0]["method"], "PUT");
  EXPECT_EQ(log[0]["query"], "");
  EXPECT_TRUE(store->get("small") == value.substr(0, (6 << 20) - 1));

  proxy.set_faults(json::array());
  writer = store->put_stream("big");
  const size_t piece = (3 << 20) + 1;
  for (int i = 0; i < 5; ++i) writer->write(v.substr(i * piece, piece));
  // Three parts sent by now, the first of them done (at most two in flight).
  log = proxy.log();
  EXPECT_EQ(requests(log, "POST", "uploads").size(), 1u) << log;
  EXPECT_GE(requests(log, "PUT", "partNumber=").size(), 1u) << log;
  EXPECT_TRUE(requests(log, "POST", "uploadId=").empty()) << log;
  EXPECT_EQ(store->get("big"), std::nullopt);
  writer->write(v.substr(5 * piece));
  writer->commit();
  log = proxy.log();
  std::vector<json> parts = requests(log, "PUT", "partNumber=");
  ASSERT_EQ(parts.size(), 4u) << log;  // 5 + 5 + 5 + 2 MiB
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(contains(requests(log, "PUT", "partNumber=" + std::to_string(i + 1)).at(0)["query"],
                         "uploadId="));
  EXPECT_EQ(requests(log, "POST", "uploadId=").size(), 1u) << log;
  EXPECT_TRUE(requests(log, "DELETE").empty()) << log;
  std::optional<std::string> got = store->get("big");
  ASSERT_TRUE(got);
  EXPECT_TRUE(kappa::testing::same_bytes(*got, value));
}

// A stream destroyed uncommitted, or whose part fails for good, aborts its
// multipart upload and leaves the key as it was. (s3rver implements neither
// AbortMultipartUpload, which it refuses with 405, nor ListMultipartUploads:
// that the abort is sent is what can be checked here.)
TEST_F(S3StoreTest, AStreamAbandonedOrFailedAbortsItsUpload) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(small_parts(), proxy.endpoint());
  store->put("k", "old value");
  const std::string value = random_bytes(12 << 20, 9);

  proxy.set_faults(json::array());
  {
    auto writer = store->put_stream("k");
    writer->write(value);  // over the threshold: two parts sent, 2 MiB kept
  }
  json log = proxy.log();
  EXPECT_EQ(requests(log, "PUT", "partNumber=").size(), 2u) << log;
  EXPECT_EQ(requests(log, "DELETE", "uploadId=").size(), 1u) << log;
  EXPECT_TRUE(requests(log, "POST", "uploadId=").empty()) << log;
  EXPECT_EQ(store->get("k"), "old value");

  proxy.set_faults({{{"method", "PUT"},
                     {"query", "partNumber=2"},
                     {"action", "error"},
                     {"status", 500},
                     {"code", "InternalError"},
                     {"times", -1}}});
  auto writer = store->put_stream("k");
  std::string why = error_of([&] {
    for (size_t at = 0; at < value.size(); at += 1 << 20)
      writer->write(std::string_view(value).substr(at, 1 << 20));
    writer->commit();
  });
  EXPECT_TRUE(
      contains(why, "put (part 2) of s3://kappa/" + prefix() + "/k failed after 4 attempts"))
      << why;
  log = proxy.log();
  EXPECT_EQ(requests(log, "DELETE", "uploadId=").size(), 1u) << log;
  EXPECT_TRUE(requests(log, "POST", "uploadId=").empty()) << log;
  EXPECT_TRUE(contains(error_of([&] { writer->commit(); }), "its writer has failed already"));
  writer.reset();
  EXPECT_EQ(requests(proxy.log(), "DELETE", "uploadId=").size(), 1u);  // not aborted twice
  proxy.set_faults(json::array());
  EXPECT_EQ(store->get("k"), "old value");
  EXPECT_EQ(store->list(""), std::vector<std::string>{"k"});
}

// A reader pins the version it opened: each ranged GET carries If-Match with
// its ETag, and a replaced or removed object fails the next read, naming
// why, rather than mixing two values. s3rver ignores If-Match (it honours
// only If-None-Match and If-Modified-Since): the reader's own comparison of
// each answer's ETag catches the replacement there; the proxy plays S3's
// 412 Precondition Failed. (Opened with a HEAD, so that every read asks the
// store: see AValueIsOpenedWithItsFirstBytes for the default.)
TEST_F(S3StoreTest, AReaderFailsOnceItsObjectIsReplacedOrRemoved) {
  S3Proxy proxy(server_->endpoint());
  S3Tuning t = fast();
  t.open_bytes = 0;
  auto store = open(t, proxy.endpoint());
  const std::string first = random_bytes(1 << 20, 10), second = random_bytes(1 << 20, 11);
  std::string object = "s3://kappa/" + prefix() + "/k";
  store->put("k", first);
  proxy.set_faults(json::array());
  auto reader = store->open_value("k");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->size(), first.size());
  std::string got(4096, '\0');
  reader->read(1000, got.data(), got.size());
  EXPECT_EQ(got, first.substr(1000, 4096));
  json log = proxy.log();
  ASSERT_EQ(log.size(), 2u) << log;
  EXPECT_EQ(log[0]["method"], "HEAD");
  EXPECT_EQ(log[1]["range"], "bytes=1000-5095");
  ASSERT_TRUE(log[1]["if_match"].is_string()) << log;
  EXPECT_EQ(log[1]["if_match"].get<std::string>().size(), 34u) << log;  // "MD5 in hex"

  store->put("k", second);  // same size, other bytes
  std::string why = error_of([&] { reader->read(0, got.data(), got.size()); });
  EXPECT_TRUE(contains(
      why, "read of bytes 0-4095 of " + object + " failed: it was replaced after it was opened"))
      << why;

  reader = store->open_value("k");
  proxy.set_faults({{{"method", "GET"},
                     {"action", "error"},
                     {"status", 412},
                     {"code", "PreconditionFailed"},
                     {"times", -1}}});
  why = error_of([&] { reader->read(0, got.data(), got.size()); });
  EXPECT_TRUE(contains(why, "failed: it was replaced after it was opened")) << why;
  EXPECT_EQ(proxy.log().size(), 1u);  // not retried

  proxy.set_faults(json::array());
  reader->read(0, got.data(), got.size());
  EXPECT_EQ(got, second.substr(0, 4096));
  store->remove("k");
  why = error_of([&] { reader->read(0, got.data(), got.size()); });
  EXPECT_TRUE(contains(why, "failed: it was removed after it was opened")) << why;
}

// open_value fetches the first open_bytes with the size and the ETag, in one
// GET (no HEAD), and serves the reads within them: a value that small is
// opened and read with one request. They are the version opened, also once
// the object is replaced; a read beyond them asks the store and fails as
// replaced. A missing value is one GET (404). An empty one has no range to
// give: S3 answers 416, and s3rver 206 "bytes 0-0/0" with a body of one byte
// it never sends (its proxy here waits for it, and fails); then a HEAD says
// what it is.
TEST_F(S3StoreTest, AValueIsOpenedWithItsFirstBytes) {
  S3Proxy proxy(server_->endpoint());
  S3Tuning t = fast();
  t.open_bytes = 1 << 20;
  auto store = open(t, proxy.endpoint());
  const std::string small = random_bytes(300 << 10, 16), large = random_bytes(3 << 20, 17);
  store->put("small", small);
  store->put("large", large);
  store->put("empty", "");

  proxy.set_faults(json::array());
  auto reader = store->open_value("small");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->size(), small.size());
  std::string got(small.size(), '\0');
  reader->read(0, got.data(), 100);
  reader->read(100, got.data() + 100, got.size() - 100);
  EXPECT_TRUE(kappa::testing::same_bytes(got, small));
  json log = proxy.log();
  ASSERT_EQ(log.size(), 1u) << log;
  EXPECT_EQ(log[0]["method"], "GET");
  EXPECT_EQ(log[0]["range"], "bytes=0-1048575");

  proxy.set_faults(json::array());
  reader = store->open_value("large");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->size(), large.size());
  got.assign(4096, '\0');
  reader->read((1 << 20) - 4096, got.data(), got.size());  // within the first MiB
  EXPECT_EQ(got, large.substr((1 << 20) - 4096, 4096));
  EXPECT_EQ(proxy.log().size(), 1u);
  // Replaced (same size, other bytes): the reader still has the first MiB
  // of the version it opened, and refuses to read the rest from another.
  store->put("large", random_bytes(large.size(), 18));
  reader->read(5, got.data(), got.size());
  EXPECT_EQ(got, large.substr(5, 4096));
  std::string why = error_of([&] { reader->read(2 << 20, got.data(), got.size()); });
  EXPECT_TRUE(contains(why, "failed: it was replaced after it was opened")) << why;

  proxy.set_faults(json::array());
  EXPECT_EQ(store->open_value("missing"), nullptr);
  EXPECT_EQ(proxy.log().size(), 1u);

  reader = open(t)->open_value("empty");  // s3rver itself (else: the partial body, retried, fails)
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->size(), 0u);
}

// Ranged reads are retried like whole ones, and land whole.
TEST_F(S3StoreTest, RangedReadsAreRetried) {
  S3Proxy proxy(server_->endpoint());
  auto store = open(fast(), proxy.endpoint());
  const std::string value = random_bytes(3 << 20, 12);
  store->put("k", value);
  auto reader = store->open_value("k");
  ASSERT_NE(reader, nullptr);
  proxy.set_faults({{{"method", "GET"}, {"action", "truncate"}, {"times", 1}},
                    {{"method", "GET"}, {"action", "error"}, {"status", 503}, {"times", 1}}});
  std::string got(2 << 20, '\0');
  reader->read(1 << 20, got.data(), got.size());
  EXPECT_TRUE(kappa::testing::same_bytes(got, value.substr(1 << 20)));
  EXPECT_EQ(requests(proxy.log(), "GET").size(), 3u);
}

// After a large read, the reads that follow are served from ranges fetched
// ahead (fewer, larger requests, several at once); a read elsewhere drops
// them and is read as asked. Every byte comes back as it was put.
TEST_F(S3StoreTest, ReadsThatFollowALargeOneAreServedFromRangesFetchedAhead) {
  S3Proxy proxy(server_->endpoint());
  S3Tuning t = fast();
  t.read_ahead_bytes = 512 << 10;
  t.read_ahead_ranges = 2;
  t.open_bytes = 0;  // every read asks the store
  auto store = open(t, proxy.endpoint());
  const std::string value = random_bytes(3 << 20, 14);
  store->put("k", value);
  auto reader = store->open_value("k");
  ASSERT_NE(reader, nullptr);
  proxy.set_faults(json::array());
  auto expect_read = [&](uint64_t offset, size_t bytes) {
    std::string got(bytes, '\0');
    reader->read(offset, got.data(), bytes);
    ASSERT_TRUE(kappa::testing::same_bytes(got, value.substr(offset, bytes)))
        << bytes << " bytes at " << offset;
  };
  expect_read(0, 64);         // small: no read-ahead
  expect_read(100, 1 << 20);  // large: the rest is fetched ahead from here
  for (uint64_t at = 100 + (1 << 20); at < value.size(); at += 100 << 10)
    expect_read(at, std::min<uint64_t>(100 << 10, value.size() - at));
  // 2 reads as asked, and the remaining 2 MiB (less 100 bytes) in 4 ranges
  // of 512 KiB, where 100 KiB reads would have taken 21 requests.
  std::vector<json> gets = requests(proxy.log(), "GET");
  EXPECT_EQ(gets.size(), 6u);
  std::set<std::string> ranges;  // (those under way at once arrive in any order)
  for (const json& get : gets) ranges.insert(get["range"]);
  EXPECT_EQ(ranges, (std::set<std::string>{"bytes=0-63", "bytes=100-1048675",
                                           "bytes=1048676-1572963", "bytes=1572964-2097251",
                                           "bytes=2097252-2621539", "bytes=2621540-3145727"}))
      << proxy.log();

  proxy.set_faults(json::array());
  expect_read(5, 1 << 20);  // elsewhere: read as asked, then ahead again
  expect_read(7, 1000);     // elsewhere again: what was fetched ahead is dropped
  expect_read(7 + 1000, 2 << 20);
  expect_read((1 << 20) + 3, 1 << 20);  // a jump back into what was read
}

// A range fetched ahead that fails fails the read that needs it, naming the
// range; the reader reads on once the store answers again.
TEST_F(S3StoreTest, AFailedReadAheadFailsTheReadThatNeedsIt) {
  S3Proxy proxy(server_->endpoint());
  S3Tuning t = fast();
  t.read_ahead_bytes = 512 << 10;
  auto store = open(t, proxy.endpoint());
  const std::string value = random_bytes(3 << 20, 15);
  store->put("k", value);
  auto reader = store->open_value("k");
  ASSERT_NE(reader, nullptr);
  proxy.set_faults({{{"method", "GET"},  // the second range ahead, every time
                     {"range", "bytes=1572864-2097151"},
                     {"action", "error"},
                     {"status", 503},
                     {"code", "SlowDown"},
                     {"times", -1}}});
  std::string got(1 << 20, '\0');
  reader->read(0, got.data(), got.size());
  reader->read(1 << 20, got.data(), 512 << 10);  // the first range ahead
  EXPECT_TRUE(
      kappa::testing::same_bytes(got.substr(0, 512 << 10), value.substr(1 << 20, 512 << 10)));
  std::string why = error_of([&] { reader->read(3 << 19, got.data(), 256 << 10); });
  EXPECT_TRUE(contains(why, "read of bytes 1572864-2097151 of s3://kappa/" + prefix() +
                                "/k failed after 4 attempts"))
      << why;
  EXPECT_TRUE(contains(why, "HTTP 503 SlowDown")) << why;
  proxy.set_faults(json::array());
  reader->read(3 << 19, got.data(), got.size());
  EXPECT_TRUE(kappa::testing::same_bytes(got, value.substr(3 << 19, 1 << 20)));
}

// An answer that is not the range asked for is refused, not cut to size.
// s3rver (3.7.1, pinned) makes one: it takes the end of "bytes=0-0" for no
// end, and answers with the whole object.
TEST_F(S3StoreTest, AnAnswerBeyondTheRangeIsRefused) {
  S3Tuning t = fast();
  t.open_bytes = 0;  // else the reads are served from the bytes fetched at the open
  auto store = open(t);
  store->put("k", "0123456789");
  auto reader = store->open_value("k");
  ASSERT_NE(reader, nullptr);
  char byte = 0;
  reader->read(5, &byte, 1);
  EXPECT_EQ(byte, '5');
  std::string why = error_of([&] { reader->read(0, &byte, 1); });
  EXPECT_EQ(why, "s3 store: read of bytes 0-0 of s3://kappa/" + prefix() +
                     "/k failed: the answer holds more than the 1 bytes asked for (Content-Range "
                     "'bytes 0-9/10')");
}

// 64 MiB streamed in pieces of 4 MiB, then read back in ranges of 4 MiB,
// hold a few parts in memory at most (the buffering default would hold the
// whole value, and a copy of it at the read), and the reader the ranges it
// fetches ahead (here 2 of 4 MiB; by default 4 of 8 MiB).
TEST_F(S3StoreTest, StreamedValuesHoldAFewPartsInMemory) {
  S3Tuning t = small_parts();
  t.read_ahead_bytes = 4 << 20;
  t.read_ahead_ranges = 2;
  auto store = open(t);
  kappa::testing::expect_streams_in_bounded_memory(*store, 16, uint64_t(40) << 20, 6);
}

// ---- configuration ----

TEST_F(S3StoreTest, MissingCredentialsAreAClearError) {
  ScopedEnv env(
      {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3=" + server_->endpoint()});
  std::string why = error_of([] { open_store("s3://kappa/x"); });
  EXPECT_EQ(why,
            "s3 store: no AWS credentials for s3://kappa/x: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in the environment (and AWS_SESSION_TOKEN for temporary "
            "credentials)");
  ScopedEnv half({"AWS_ACCESS_KEY_ID=S3RVER"});
  why = error_of([] { open_store("s3://kappa/x"); });
  EXPECT_TRUE(contains(why, "set AWS_SECRET_ACCESS_KEY in the environment")) << why;
}

TEST_F(S3StoreTest, BadURLsAndEndpointsAreClearErrors) {
  ScopedEnv env(kappa::testing::s3_environment(server_->endpoint()));
  EXPECT_TRUE(contains(error_of([] { open_store("s3:///prefix"); }), "invalid bucket name ''"));
  EXPECT_TRUE(contains(error_of([] { open_store("s3://bad bucket/p"); }),
                       "invalid bucket name 'bad bucket'"));
  ScopedEnv endpoint({"AWS_ENDPOINT_URL_S3=127.0.0.1:9000"});
  EXPECT_EQ(error_of([] { open_store("s3://kappa/p"); }),
            "s3 store: AWS_ENDPOINT_URL_S3='127.0.0.1:9000' is not an http:// or https:// URL");
}

// AWS_ENDPOINT_URL serves when AWS_ENDPOINT_URL_S3 is not set.
TEST_F(S3StoreTest, TheGeneralEndpointVariableServesToo) {
  ScopedEnv env({"AWS_ACCESS_KEY_ID=S3RVER", "AWS_SECRET_ACCESS_KEY=S3RVER", "AWS_REGION",
                 "AWS_DEFAULT_REGION=us-east-1", "AWS_ENDPOINT_URL_S3",
                 "AWS_ENDPOINT_URL=" + server_->endpoint() + "/"});
  auto store = open_store(url());
  store->put("k", "v");
  EXPECT_EQ(store->get("k"), "v");
}

// A store to resume from must be there: opening it asks the bucket.
TEST_F(S3StoreTest, OpeningWithoutCreateNeedsTheBucket) {
  ScopedEnv env(kappa::testing::s3_environment(server_->endpoint()));
  std::string why = error_of([] { open_store("s3://no-such-bucket/p", {.create = false}); });
  EXPECT_TRUE(contains(why, "list of s3://no-such-bucket/p/ failed: HTTP 404 NoSuchBucket")) << why;
  EXPECT_NE(open_store(url(), {.create = false}), nullptr);
}

}  // namespace
}  // namespace kappa::detail
