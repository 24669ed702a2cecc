// The floor under the coordinator's round trips: two processes bouncing a
// message over a Unix stream socket, nothing else. bench/run_all.py reports
// Kappa's sequential spawn+wait and queue round trips as ratios to it.
//
//   kappa_pingpong [--bytes N] [--rounds N]
//
// Prints one JSON line: "bytes", "rounds", "median_us" and "p90_us" of the
// round trip (parent writes N bytes, child reads them and writes them back).
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool read_all(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  size_t bytes = 64;
  int rounds = 20000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--bytes") {
      bytes = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (a == "--rounds") {
      rounds = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: %s [--bytes N] [--rounds N]\n", argv[0]);
      return 2;
    }
  }
  if (bytes == 0) bytes = 1;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    std::perror("socketpair");
    return 1;
  }
  std::vector<char> buf(bytes, 'x');
  pid_t child = ::fork();
  if (child == 0) {
    ::close(sv[0]);
    while (read_all(sv[1], buf.data(), bytes) && write_all(sv[1], buf.data(), bytes)) {
    }
    ::_exit(0);
  }
  ::close(sv[1]);
  const int warmup = std::max(100, rounds / 10);
  std::vector<double> us;
  us.reserve(size_t(rounds));
  for (int i = 0; i < warmup + rounds; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    if (!write_all(sv[0], buf.data(), bytes) || !read_all(sv[0], buf.data(), bytes)) {
      std::fprintf(stderr, "the echo process went away\n");
      return 1;
    }
    if (i >= warmup)
      us.push_back(
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  ::close(sv[0]);
  ::waitpid(child, nullptr, 0);
  std::sort(us.begin(), us.end());
  std::printf("{\"bytes\": %zu, \"rounds\": %d, \"median_us\": %.3f, \"p90_us\": %.3f}\n", bytes,
              rounds, us[us.size() / 2], us[us.size() * 9 / 10]);
  return 0;
}
