// FileStore (file://DIR): keys as files, atomic puts, and every failure of
// the file system reported as a kappa::Error that names the file and the
// reason. Tests run as root, where permission bits are ignored, so the
// failures here are ones root meets too (a directory or a FIFO where a file is
// expected, a file size limit).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "support/store_checks.h"
#include "support/subprocess.h"

namespace kappa::detail {
namespace {

using kappa::testing::TempDir;

using kappa::testing::error_of;

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(FileStore, PutGetListRemove) {
  TempDir dir;
  auto store = open_store("file://" + dir.path());
  EXPECT_EQ(store->url(), "file://" + dir.path());
  kappa::testing::expect_basic_semantics(*store);
  EXPECT_NE(error_of([&] { store->get("../escape"); }), "");
}

// A move is a rename(2).
TEST(FileStore, MoveReplacesRemovesAndIsIdempotent) {
  TempDir dir;
  auto store = open_store("file://" + dir.path());
  kappa::testing::expect_move_semantics(*store);
}

// Images are the owner's alone; a data store's objects, a job's output, are
// readable by others as the umask allows.
TEST(FileStore, ImagesArePrivateDataObjectsFollowTheUmask) {
  TempDir dir;
  mode_t umask_was = umask(022);
  auto images = open_store("file://" + dir / "images");
  auto data = open_store("file://" + dir / "data", {.shared = true});
  images->put("a/image", "bytes");
  data->put("a/object", "bytes");
  data->put("staged", "bytes");
  data->move("staged", "out/moved");
  umask(umask_was);
  auto mode = [&](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  };
  EXPECT_EQ(mode(dir / "images/a/image"), 0600u);
  EXPECT_EQ(mode(dir / "data/a/object"), 0644u);
  EXPECT_EQ(mode(dir / "data/out/moved"), 0644u);
}

// A store to resume from must exist: opening it creates nothing.
TEST(FileStore, OpeningWithoutCreateNeedsTheDirectory) {
  TempDir dir;
  std::string why = error_of([&] { open_store(dir / "missing", {.create = false}); });
  EXPECT_NE(why.find("checkpoint directory " + dir / "missing" + " does not exist"),
            std::string::npos)
      << why;
  EXPECT_FALSE(std::filesystem::exists(dir / "missing"));
  EXPECT_NE(open_store(dir.path(), {.create = false}), nullptr);
  open_store(dir / "made");
  EXPECT_TRUE(std::filesystem::is_directory(dir / "made"));
}

// A reader sees the whole old value or the whole new one, never a part.
TEST(FileStore, PutIsAtomicForConcurrentReaders) {
  TempDir dir;
  auto writer = open_store(dir.path());
  auto reader = open_store(dir.path());
  const std::string a(4 << 20, 'a'), b(3 << 20, 'b');
  writer->put("k", a);
  std::atomic<bool> stop{false};
  std::thread t([&] {
    for (int i = 0; !stop; ++i) writer->put("k", i % 2 ? a : b);
  });
  int reads = 0, partial = 0;
  try {  // (an exception must reach the test's report, not end the process at ~thread)
    for (auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
         std::chrono::steady_clock::now() < until; ++reads) {
      std::optional<std::string> v = reader->get("k");
      if (!v || (*v != a && *v != b)) ++partial;
      EXPECT_EQ(reader->list("k"), std::vector<std::string>{"k"}) << "a temporary file is listed";
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "read " << reads << ": " << e.what();
  }
  stop = true;
  t.join();
  EXPECT_GT(reads, 0);
  EXPECT_EQ(partial, 0) << "of " << reads << " reads";
}

// A put that fails midway leaves the previous value, and no file behind.
TEST(FileStore, FailedPutLeavesThePreviousValue) {
  TempDir dir;
  auto store = open_store(dir.path());
  store->put("k", "old value");
  std::string why;
  {
    kappa::testing::ScopedFileSizeLimit limit(1 << 20);
    why = error_of([&] { store->put("k", std::string(2 << 20, 'n')); });
  }
  EXPECT_NE(why.find("cannot write " + dir.path() + "/k.tmp."), std::string::npos) << why;
  EXPECT_NE(why.find(std::strerror(EFBIG)), std::string::npos) << why;
  EXPECT_EQ(store->get("k"), "old value");
  EXPECT_EQ(files_in(dir.path()), std::vector<std::string>{"k"});
}

TEST(FileStore, GetOfADirectoryIsAnErrorNamingIt) {
  TempDir dir;
  auto store = open_store(dir.path());
  std::filesystem::create_directory(dir / "k");
  std::string why = error_of([&] { store->get("k"); });
  EXPECT_NE(why.find(dir / "k"), std::string::npos) << why;
  EXPECT_NE(why.find(std::strerror(EISDIR)), std::string::npos) << why;
}

// A FIFO under a key is refused at once, by get and by open_value: opening
// it must not wait for a writer. (Should either block anyway, a helper
// thread opens the FIFO for writing after a while and closes it, so that the
// test fails rather than hangs.)
TEST(FileStore, GetOfAFifoIsRefusedWithoutBlocking) {
  TempDir dir;
  auto store = open_store(dir.path());
  std::string fifo = dir / "k";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto refused_at_once = [&](const std::function<void()>& read) {
    std::atomic<bool> returned{false};
    std::thread unblock([&] {
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!returned && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      while (!returned) {
        int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // ENXIO until a reader waits
        if (fd >= 0) close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    auto started = std::chrono::steady_clock::now();
    std::string why = error_of(read);
    returned = true;
    unblock.join();
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
    EXPECT_NE(why.find(fifo + ": not a regular file (a FIFO)"), std::string::npos) << why;
  };
  refused_at_once([&] { store->get("k"); });
  refused_at_once([&] { store->open_value("k"); });
}

TEST(FileStore, RemoveFailuresOtherThanAbsenceAreErrors) {
  TempDir dir;
  auto store = open_store(dir.path());
  // A non-empty directory where the key's file would be: unlink() fails.
  std::filesystem::create_directories(dir / "k/inside");
  std::string why = error_of([&] { store->remove("k"); });
  EXPECT_NE(why.find("cannot remove " + dir / "k"), std::string::npos) << why;
  EXPECT_NE(why.find(std::strerror(EISDIR)), std::string::npos) << why;
  EXPECT_TRUE(std::filesystem::exists(dir / "k/inside"));
  EXPECT_EQ(error_of([&] { store->remove("absent"); }), "");
}

// get_checked shows the check a value's first bytes and its size, before the
// rest is read for a value over 16 MiB, so that a refused huge one is never
// read in whole.
TEST(FileStore, GetCheckedJudgesTheHeadBeforeReadingTheRest) {
  TempDir dir;
  auto store = open_store(dir.path());
  store->put("small", "abc");
  kappa::testing::expect_get_checked_shows_the_head(*store, "small", "abc", 2);
  kappa::testing::expect_get_checked_shows_the_head(*store, "small", "abc", 10);
  EXPECT_EQ(store->get_checked("absent", 2, [](std::string_view, uint64_t) {}), std::nullopt);
  // A small value is read whole before the check, but never returned if refused.
  auto refuse_all = [](std::string_view head, uint64_t size) {
    throw Error("refused " + std::string(head) + " of " + std::to_string(size));
  };
  EXPECT_EQ(error_of([&] { store->get_checked("small", 2, refuse_all); }), "refused ab of 3");

  int fd = open((dir / "huge").c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, off_t{10} << 30), 0);  // 10 GiB, sparse
  close(fd);
  auto refuse = [](std::string_view, uint64_t size) {
    if (size > 1000) throw Error("too big: " + std::to_string(size));
  };
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of([&] { store->get_checked("huge", 16, refuse); }), "too big: 10737418240");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

// Entries that cannot be stat'ed (symlink loops, dangling links) are not
// keys, and do not hide the keys beside them.
TEST(FileStore, ListSkipsEntriesThatCannotBeStated) {
  TempDir dir;
  auto store = open_store(dir.path());
  store->put("ckpt-1", "one");
  std::filesystem::create_symlink("ckpt-loop2", dir / "ckpt-loop1");
  std::filesystem::create_symlink("ckpt-loop1", dir / "ckpt-loop2");
  std::filesystem::create_symlink("ckpt-self", dir / "ckpt-self");
  std::filesystem::create_symlink("nowhere", dir / "ckpt-dangling");
  std::vector<std::string> keys;
  EXPECT_EQ(error_of([&] { keys = store->list("ckpt-"); }), "");
  EXPECT_EQ(keys, std::vector<std::string>{"ckpt-1"});
}

// put_stream writes each piece straight to the temporary file, and
// open_value reads ranges of the file with pread.
TEST(FileStore, StreamedValuesAreWrittenAndReadInPieces) {
  TempDir dir;
  auto store = open_store(dir.path());
  kappa::testing::expect_stream_semantics(
      *store, {1, (3 << 20) + 5, (7 << 20) + 3, 100, 5 << 20, (2 << 20) + 1},
      [&] { EXPECT_EQ(files_in(dir / "stream"), std::vector<std::string>{"k"}); });
}

// A writer's temporary file is created as put's are: private for images.
TEST(FileStore, StreamedValuesHaveTheModeOfPuts) {
  TempDir dir;
  mode_t umask_was = umask(022);
  auto images = open_store("file://" + dir / "images");
  auto data = open_store("file://" + dir / "data", {.shared = true});
  images->put_stream("image")->commit();
  data->put_stream("object")->commit();
  umask(umask_was);
  struct stat st {};
  ASSERT_EQ(stat((dir / "images/image").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir / "data/object").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

// A write that fails leaves the previous value and no temporary file, and
// the writer refuses to go on.
TEST(FileStore, AFailedStreamedWriteLeavesThePreviousValue) {
  TempDir dir;
  auto store = open_store(dir.path());
  store->put("k", "old value");
  auto writer = store->put_stream("k");
  writer->write(std::string(512 << 10, 'n'));
  std::string why;
  {
    kappa::testing::ScopedFileSizeLimit limit(1 << 20);
    why = error_of([&] { writer->write(std::string(1 << 20, 'n')); });
  }
  EXPECT_NE(why.find("cannot write " + dir.path() + "/k.tmp."), std::string::npos) << why;
  EXPECT_NE(why.find(std::strerror(EFBIG)), std::string::npos) << why;
  EXPECT_EQ(files_in(dir.path()), std::vector<std::string>{"k"});
  why = error_of([&] { writer->commit(); });
  EXPECT_EQ(why, "cannot commit " + dir / "k" + ": its writer has failed already");
  writer.reset();
  EXPECT_TRUE(store->get("k") == "old value");
}

// A reader keeps the file it opened: replacing or removing the key does not
// change what it reads.
TEST(FileStore, AReaderKeepsTheVersionItOpened) {
  TempDir dir;
  auto store = open_store(dir.path());
  const std::string old_value = kappa::testing::offset_pattern(1 << 20, 1);
  store->put("k", old_value);
  auto reader = store->open_value("k");
  ASSERT_NE(reader, nullptr);
  store->put("k", "new");
  std::string got(old_value.size(), '\0');
  reader->read(0, got.data(), got.size());
  EXPECT_TRUE(kappa::testing::same_bytes(got, old_value));
  store->remove("k");
  reader->read(1000, got.data(), 8);
  EXPECT_EQ(got.substr(0, 8), old_value.substr(1000, 8));
  std::string why = error_of([&] { reader->read(1 << 20, got.data(), 1); });
  EXPECT_EQ(why, "cannot read 1 bytes at offset 1048576 of " + dir / "k" +
                     ": past the end of its 1048576 bytes");
}

// 256 MiB written in pieces of 4 MiB, then read back in ranges of 4 MiB,
// never hold more than a few pieces in memory (the buffering default would
// hold the whole value, and a second copy of it at the read).
TEST(FileStore, StreamedValuesNeverHoldTheWholeValueInMemory) {
  TempDir dir;
  auto store = open_store(dir.path());
  kappa::testing::expect_streams_in_bounded_memory(*store, 64, uint64_t(32) << 20, 5);
}

}  // namespace
}  // namespace kappa::detail
