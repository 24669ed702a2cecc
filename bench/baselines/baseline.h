// What the hand-written baselines of the examples share (bench/run_all.py
// runs each beside its Kappa app and its Dask version):
//
//   APP_baseline --procs 1 --event JSON   one process, no fork: the plain program
//   APP_baseline --procs N --event JSON   N forked workers whose results are
//                                         merged through pipes: the hand-written
//                                         parallel limit
//
// Each prints its result as one JSON line on stdout, with the same answer
// fields as the Kappa app given the same event, and "seconds".
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace kappa_baselines {

/// Runs work(i) for i in [0, n): in this process when n is 1, otherwise in n
/// forked children, each sending the string it returns back through a pipe.
/// Returns the strings in order of i. Throws std::runtime_error when a child
/// fails.
inline std::vector<std::string> run_forked(int n, const std::function<std::string(int)>& work) {
  if (n <= 1) return {work(0)};
  std::vector<int> fds;
  std::vector<pid_t> pids;
  std::fflush(nullptr);
  for (int i = 0; i < n; ++i) {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::close(p[0]);
      int rc = 0;
      try {
        std::string out = work(i);
        for (size_t off = 0; off < out.size();) {
          ssize_t w = ::write(p[1], out.data() + off, out.size() - off);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            rc = 3;
            break;
          }
          off += static_cast<size_t>(w);
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "worker %d: %s\n", i, e.what());
        rc = 2;
      }
      ::_exit(rc);
    }
    ::close(p[1]);
    fds.push_back(p[0]);
    pids.push_back(pid);
  }
  // A child blocked on a full pipe waits until its turn: no deadlock.
  std::vector<std::string> outs(static_cast<size_t>(n));
  char buf[1 << 16];
  for (int i = 0; i < n; ++i) {
    for (;;) {
      ssize_t r = ::read(fds[size_t(i)], buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      outs[size_t(i)].append(buf, size_t(r));
    }
    ::close(fds[size_t(i)]);
  }
  for (int i = 0; i < n; ++i) {
    int status = 0;
    while (::waitpid(pids[size_t(i)], &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw std::runtime_error("worker " + std::to_string(i) + " failed");
  }
  return outs;
}

/// The baselines' main: parses --procs N (default: the number of cores) and
/// --event JSON, times run(event, procs) and prints its result with
/// "seconds" added. Exit status 2 on bad arguments, 1 when run throws.
inline int baseline_main(int argc, char** argv,
                         const std::function<nlohmann::json(const nlohmann::json&, int)>& run) {
  int procs = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  nlohmann::json event = nlohmann::json::object();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--procs" || a == "--event") && i + 1 < argc) {
      std::string v = argv[++i];
      try {
        if (a == "--procs")
          procs = std::stoi(v);
        else
          event = nlohmann::json::parse(v);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: bad %s '%s': %s\n", argv[0], a.c_str(), v.c_str(), e.what());
        return 2;
      }
    } else {
      std::fprintf(stderr,
                   "usage: %s [--procs N] [--event JSON]\n"
                   "  --procs 1 runs in one process; N > 1 forks N workers (default: cores)\n",
                   argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (procs < 1) procs = 1;
  try {
    auto t0 = std::chrono::steady_clock::now();
    nlohmann::json out = run(event, procs);
    out["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out["procs"] = procs;
    std::printf("%s\n", out.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
}

}  // namespace kappa_baselines
