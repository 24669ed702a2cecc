// The shared rings beside a local worker's socket (util/payload_ring.h):
// payloads come out as they went in, in order, lap after lap; a payload
// never lands on one not yet read; a consumer never reads outside its ring,
// whatever the other side wrote; and the coordinator maps only an area of
// the agreed size, sealed against shrinking.
#include "util/payload_ring.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kappa/error.h"

namespace kappa::detail {
namespace {

// One ring's shared memory, with guard bytes on both sides, and its two
// ends (in two processes, each would have its own PayloadRing over it).
struct Shared {
  static constexpr size_t kSize = 1000, kGuard = 64;
  explicit Shared() : memory(kSize + 2 * kGuard, '#') {}
  char* ring() { return memory.data() + kGuard; }
  bool guards_intact() const {
    for (size_t i = 0; i < kGuard; ++i)
      if (memory[i] != '#' || memory[kGuard + kSize + i] != '#') return false;
    return true;
  }
  std::string memory;
  RingCounters counters;
  PayloadRing producer{ring(), kSize, &counters};
  PayloadRing consumer{ring(), kSize, &counters};
};

// The producer's claim() then write(), the bytes written at once; false
// when the payload does not fit now.
bool put(PayloadRing& producer, std::string_view payload, bool* restart) {
  std::optional<uint64_t> at = producer.claim(payload.size(), restart);
  if (!at) return false;
  producer.write(*at, payload);
  return true;
}

std::string payload(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 gen(seed);
  for (char& c : s) c = char(gen());
  return s;
}

TEST(PayloadRing, PayloadsComeOutInOrderLapAfterLap) {
  Shared sh;
  std::mt19937 gen(7);
  std::deque<std::pair<std::string, bool>> unread;  // payload, restart
  uint32_t seed = 0;
  size_t written = 0, refused = 0;
  for (int step = 0; step < 20000; ++step) {
    if (gen() % 2 == 0) {
      std::string p = payload(1 + gen() % 450, ++seed);
      bool restart = false;
      if (put(sh.producer, p, &restart)) {
        ++written;
        unread.emplace_back(std::move(p), restart);
      } else {
        ++refused;
      }
    } else if (!unread.empty()) {
      auto [want, restart] = std::move(unread.front());
      unread.pop_front();
      std::string got(want.size(), '\0');
      ASSERT_TRUE(sh.consumer.take(got.data(), got.size(), restart));
      ASSERT_EQ(got, want) << "step " << step;
    }
  }
  EXPECT_TRUE(sh.guards_intact());
  EXPECT_GT(written, 5000u);  // many laps of a 1000-byte ring
  EXPECT_GT(refused, 100u);   // and it was full at times
}

TEST(PayloadRing, APayloadIsRefusedRatherThanWrittenOverAnUnreadOne) {
  Shared sh;
  bool restart = false;
  std::string a = payload(600, 1), b = payload(600, 2);
  ASSERT_TRUE(put(sh.producer, a, &restart));
  EXPECT_TRUE(restart);  // an empty ring starts afresh
  EXPECT_FALSE(put(sh.producer, b, &restart)) << "it would wrap onto the unread 600 bytes";
  std::string got(600, '\0');
  ASSERT_TRUE(sh.consumer.take(got.data(), 600, true));
  EXPECT_EQ(got, a);
  ASSERT_TRUE(put(sh.producer, b, &restart));  // read: room again, at the start
  EXPECT_TRUE(restart);
  ASSERT_TRUE(sh.consumer.take(got.data(), 600, restart));
  EXPECT_EQ(got, b);
}

TEST(PayloadRing, AViewedPayloadKeepsItsRoomUntilReleased) {
  Shared sh;
  bool restart = false;
  std::string a = payload(700, 3), b = payload(700, 4);
  ASSERT_TRUE(put(sh.producer, a, &restart));
  const char* at = sh.consumer.view(700, restart);
  ASSERT_NE(at, nullptr);
  EXPECT_FALSE(put(sh.producer, b, &restart));
  EXPECT_EQ(std::string(at, 700), a);  // untouched
  sh.consumer.release();
  ASSERT_TRUE(put(sh.producer, b, &restart));
  EXPECT_EQ(std::string(sh.consumer.view(700, restart), 700), b);
}

TEST(PayloadRing, AnOversizedPayloadIsNeitherPutNorTaken) {
  Shared sh;
  bool restart = false;
  EXPECT_FALSE(put(sh.producer, payload(Shared::kSize + 1, 5), &restart));
  std::string out(Shared::kSize + 1, '\0');
  EXPECT_FALSE(sh.consumer.take(out.data(), out.size(), false));
  EXPECT_EQ(sh.consumer.view(out.size(), false), nullptr);
  EXPECT_TRUE(put(sh.producer, payload(Shared::kSize, 6), &restart));  // a full ring's worth fits
}

// The counter is shared, so the other process may write anything into it:
// neither end ever touches memory outside the ring because of it.
TEST(PayloadRing, AGarbledCounterNeverTakesEitherEndOutsideTheRing) {
  Shared sh;
  std::mt19937_64 gen(11);
  bool restart = false;
  for (int i = 0; i < 5000; ++i) {
    sh.counters.taken = gen();  // the other side's doing
    size_t n = 1 + gen() % Shared::kSize;
    put(sh.producer, payload(n, uint32_t(i)), &restart);
    sh.counters.written = gen() | (uint64_t(1) << 63);  // "written": the consumer reads at once
    const char* at = sh.consumer.view(n, gen() % 2 == 0);
    ASSERT_GE(at, sh.ring());
    ASSERT_LE(at + n, sh.ring() + Shared::kSize);
  }
  EXPECT_TRUE(sh.guards_intact());
}

TEST(PayloadRing, APayloadThatWouldWrapStartsTheNextLap) {
  EXPECT_EQ(PayloadRing::place(0, 10, 100, false), 0u);
  EXPECT_EQ(PayloadRing::place(0, 10, 100, true), 0u);  // at a lap's start already
  EXPECT_EQ(PayloadRing::place(90, 10, 100, false), 90u);
  EXPECT_EQ(PayloadRing::place(91, 10, 100, false), 100u);
  EXPECT_EQ(PayloadRing::place(250, 10, 100, true), 300u);
  EXPECT_EQ(PayloadRing::place(300, 100, 100, false), 300u);
}

// The frames of the socket, between two threads: announced payloads.
struct Frames {
  struct Frame {
    size_t n;
    bool restart;
  };
  void send(Frame f) {
    std::lock_guard lock(mu);
    q.push_back(f);
    cv.notify_one();
  }
  Frame receive() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return !q.empty(); });
    Frame f = q.front();
    q.pop_front();
    return f;
  }
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Frame> q;
};

// As the transport does it: the frame goes before the bytes, so the consumer
// reads a payload while the producer is still writing it, piece by piece.
TEST(PayloadRing, PayloadsAnnouncedBeforeTheyAreWrittenComeOutWhole) {
  constexpr size_t kSize = 1 << 20;
  std::vector<char> memory(kSize);
  RingCounters counters;
  PayloadRing producer{memory.data(), kSize, &counters};
  PayloadRing consumer{memory.data(), kSize, &counters};
  Frames frames;
  constexpr int kPayloads = 300;
  std::thread writer([&] {
    std::mt19937 gen(21);
    for (int i = 0; i < kPayloads; ++i) {
      std::string p = payload(1 + gen() % (300 << 10), uint32_t(i));  // up to ~5 pieces
      bool restart = false;
      std::optional<uint64_t> at;
      while (!(at = producer.claim(p.size(), &restart))) std::this_thread::yield();  // full
      frames.send({p.size(), restart});
      if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past the spin
      producer.write(*at, p);
    }
  });
  std::mt19937 gen(21);
  for (int i = 0; i < kPayloads; ++i) {
    std::string want = payload(1 + gen() % (300 << 10), uint32_t(i));
    Frames::Frame f = frames.receive();
    ASSERT_EQ(f.n, want.size());
    std::string got(f.n, '\0');
    if (i % 2 == 0) {
      ASSERT_TRUE(consumer.take(got.data(), f.n, f.restart)) << i;
    } else {
      const char* at = consumer.view(f.n, f.restart);
      ASSERT_NE(at, nullptr);
      got.assign(at, f.n);
      consumer.release();
    }
    ASSERT_EQ(got, want) << "payload " << i;
  }
  writer.join();
}

// A consumer that has waited long enough sleeps, and is woken by the bytes.
TEST(PayloadRing, ASleepingConsumerIsWokenByTheBytes) {
  Shared sh;
  bool restart = false;
  std::optional<uint64_t> at = sh.producer.claim(500, &restart);
  ASSERT_TRUE(at);
  std::string want = payload(500, 31);
  std::thread writer([&] {
    // Wait until the consumer says it sleeps (past its spin), then write.
    while (std::atomic_ref(sh.counters.sleeping).load() == 0) std::this_thread::yield();
    sh.producer.write(*at, want);
  });
  std::string got(500, '\0');
  ASSERT_TRUE(sh.consumer.take(got.data(), 500, restart));
  EXPECT_EQ(got, want);
  writer.join();
  EXPECT_EQ(sh.counters.sleeping, 0u);
  EXPECT_GE(sh.counters.wake, 1u) << "woken by the producer";
}

// A producer that dies between its frame and its bytes: the consumer gives
// up once told so, rather than waiting for ever.
TEST(PayloadRing, TheWaitForAGoneProducersBytesEnds) {
  Shared sh;
  bool restart = false;
  ASSERT_TRUE(sh.producer.claim(300, &restart));
  int asked = 0;
  PayloadRing::Alive gone = [&] { return ++asked < 3; };  // alive twice, then gone
  std::string out(300, '\0');
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(sh.consumer.take(out.data(), 300, restart, gone));
  EXPECT_EQ(asked, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  Shared other;
  ASSERT_TRUE(other.producer.claim(300, &restart));
  EXPECT_EQ(other.consumer.view(300, restart, [] { return false; }), nullptr);
}

int memfd(size_t size, bool sealed) {
  int fd = memfd_create("payload-ring-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(ftruncate(fd, off_t(size)), 0);
  if (sealed) EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
  return fd;
}

void expect_refused(int fd, const std::string& why) {
  try {
    PayloadArea::map(fd);
    FAIL() << "mapped an area that is not one";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

TEST(PayloadArea, OnlyASealedAreaOfTheAgreedSizeIsMapped) {
  size_t size = 4096 + 2 * PayloadArea::kRingBytes;
  expect_refused(memfd(size, /*sealed=*/false), "not sealed");
  expect_refused(memfd(size - 4096, /*sealed=*/true), "not an area of");
  expect_refused(open("/dev/null", O_RDONLY | O_CLOEXEC), "not an area of");

  std::unique_ptr<PayloadArea> worker = PayloadArea::create();
  ASSERT_NE(worker, nullptr);
  std::unique_ptr<PayloadArea> coordinator = PayloadArea::map(dup(worker->fd()));
  // Two mappings of the same bytes, one ring each way.
  bool restart = false;
  std::string up = payload(1 << 20, 8), down = payload(3 << 20, 9);
  ASSERT_TRUE(put(worker->to_coordinator(), up, &restart));
  std::string got(up.size(), '\0');
  ASSERT_TRUE(coordinator->to_coordinator().take(got.data(), got.size(), restart));
  EXPECT_EQ(got, up);
  ASSERT_TRUE(put(coordinator->to_worker(), down, &restart));
  EXPECT_EQ(std::string_view(worker->to_worker().view(down.size(), restart), down.size()), down);
}

}  // namespace
}  // namespace kappa::detail
