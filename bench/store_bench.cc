// Checkpoint store latency: times put() and get() of values of given sizes
// through any store URL (file://, s3://, ...), one operation at a time, and
// prints every sample as JSON lines for a script to summarize (see
// bench/s3_store_bench.py, which runs it beside raw curl against s3rver).
//
//   kappa_store_bench --store URL [--sizes 4096,1048576] [--reps 10]
//                     [--s3-multipart-threshold BYTES]
//   -> {"size": 4096, "op": "put", "seconds": [0.0011, ...]}
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kappa/error.h"
#include "stores/checkpoint_store.h"
#include "stores/s3_store.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string random_bytes(size_t n) {
  std::mt19937_64 rng(n);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t r = rng();
    std::memcpy(s.data() + i, &r, std::min<size_t>(8, n - i));
  }
  return s;
}

void print(size_t size, const char* op, const std::vector<double>& seconds) {
  std::printf("{\"size\": %zu, \"op\": \"%s\", \"seconds\": [", size, op);
  for (size_t i = 0; i < seconds.size(); ++i) std::printf("%s%.6f", i ? ", " : "", seconds[i]);
  std::printf("]}\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  std::vector<size_t> sizes = {4096, 1 << 20};
  int reps = 10;
  size_t multipart_threshold = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--store") {
      url = value;
    } else if (flag == "--s3-multipart-threshold") {
      multipart_threshold = std::stoull(value);
    } else if (flag == "--reps") {
      reps = std::atoi(value.c_str());
    } else if (flag == "--sizes") {
      sizes.clear();
      std::stringstream ss(value);
      for (std::string s; std::getline(ss, s, ',');) sizes.push_back(std::stoull(s));
    } else {
      std::fprintf(stderr, "unknown option %s\n", flag.c_str());
      return 2;
    }
  }
  if (url.empty() || reps < 1) {
    std::fprintf(stderr,
                 "usage: %s --store URL [--sizes N,N...] [--reps N] "
                 "[--s3-multipart-threshold BYTES]\n",
                 argv[0]);
    return 2;
  }
  try {
    std::unique_ptr<kappa::detail::CheckpointStore> store;
    if (multipart_threshold && url.starts_with("s3://")) {
      kappa::detail::S3Tuning tuning;
      tuning.multipart_threshold = multipart_threshold;
      store = kappa::detail::open_s3_store(url.substr(5), {}, tuning);
    } else {
      store = kappa::detail::open_store(url);
    }
    for (size_t size : sizes) {
      const std::string value = random_bytes(size);
      const std::string key = "bench/value-" + std::to_string(size);
      std::vector<double> put, get;
      for (int r = 0; r < reps; ++r) {
        auto t0 = Clock::now();
        store->put(key, value);
        put.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      for (int r = 0; r < reps; ++r) {
        auto t0 = Clock::now();
        std::optional<std::string> v = store->get(key);
        get.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        if (v != value) throw kappa::Error("get returned another value than put stored");
      }
      store->remove(key);
      print(size, "put", put);
      print(size, "get", get);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kappa_store_bench: %s\n", e.what());
    return 1;
  }
}
