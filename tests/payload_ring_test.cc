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

#include <deque>
#include <random>
#include <string>
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
  alignas(8) uint64_t taken = 0;
  PayloadRing producer{ring(), kSize, &taken};
  PayloadRing consumer{ring(), kSize, &taken};
};

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
  size_t put = 0, refused = 0;
  for (int step = 0; step < 20000; ++step) {
    if (gen() % 2 == 0) {
      std::string p = payload(1 + gen() % 450, ++seed);
      bool restart = false;
      if (sh.producer.put(p, &restart)) {
        ++put;
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
  EXPECT_GT(put, 5000u);     // many laps of a 1000-byte ring
  EXPECT_GT(refused, 100u);  // and it was full at times
}

TEST(PayloadRing, APayloadIsRefusedRatherThanWrittenOverAnUnreadOne) {
  Shared sh;
  bool restart = false;
  std::string a = payload(600, 1), b = payload(600, 2);
  ASSERT_TRUE(sh.producer.put(a, &restart));
  EXPECT_TRUE(restart);  // an empty ring starts afresh
  EXPECT_FALSE(sh.producer.put(b, &restart)) << "it would wrap onto the unread 600 bytes";
  std::string got(600, '\0');
  ASSERT_TRUE(sh.consumer.take(got.data(), 600, true));
  EXPECT_EQ(got, a);
  ASSERT_TRUE(sh.producer.put(b, &restart));  // read: room again, at the start
  EXPECT_TRUE(restart);
  ASSERT_TRUE(sh.consumer.take(got.data(), 600, restart));
  EXPECT_EQ(got, b);
}

TEST(PayloadRing, AViewedPayloadKeepsItsRoomUntilReleased) {
  Shared sh;
  bool restart = false;
  std::string a = payload(700, 3), b = payload(700, 4);
  ASSERT_TRUE(sh.producer.put(a, &restart));
  const char* at = sh.consumer.view(700, restart);
  ASSERT_NE(at, nullptr);
  EXPECT_FALSE(sh.producer.put(b, &restart));
  EXPECT_EQ(std::string(at, 700), a);  // untouched
  sh.consumer.release();
  ASSERT_TRUE(sh.producer.put(b, &restart));
  EXPECT_EQ(std::string(sh.consumer.view(700, restart), 700), b);
}

TEST(PayloadRing, AnOversizedPayloadIsNeitherPutNorTaken) {
  Shared sh;
  bool restart = false;
  EXPECT_FALSE(sh.producer.put(payload(Shared::kSize + 1, 5), &restart));
  std::string out(Shared::kSize + 1, '\0');
  EXPECT_FALSE(sh.consumer.take(out.data(), out.size(), false));
  EXPECT_EQ(sh.consumer.view(out.size(), false), nullptr);
  EXPECT_TRUE(sh.producer.put(payload(Shared::kSize, 6), &restart));  // a full ring's worth fits
}

// The counter is shared, so the other process may write anything into it:
// neither end ever touches memory outside the ring because of it.
TEST(PayloadRing, AGarbledCounterNeverTakesEitherEndOutsideTheRing) {
  Shared sh;
  std::mt19937_64 gen(11);
  bool restart = false;
  for (int i = 0; i < 5000; ++i) {
    sh.taken = gen();  // the other side's doing
    size_t n = 1 + gen() % Shared::kSize;
    sh.producer.put(payload(n, uint32_t(i)), &restart);
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
  ASSERT_TRUE(worker->to_coordinator().put(up, &restart));
  std::string got(up.size(), '\0');
  ASSERT_TRUE(coordinator->to_coordinator().take(got.data(), got.size(), restart));
  EXPECT_EQ(got, up);
  ASSERT_TRUE(coordinator->to_worker().put(down, &restart));
  EXPECT_EQ(std::string_view(worker->to_worker().view(down.size(), restart), down.size()), down);
}

}  // namespace
}  // namespace kappa::detail
