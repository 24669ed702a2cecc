// A deterministic workload that holds every kind of state the checkpoint
// tests care about, in two forms that must agree:
//   - run_plain():  ordinary functions, no Kappa involved (the reference);
//   - run_task():   the same computation as nested kappa::Task coroutines with
//                   pause points between the mutations.
// The test app (state_app.cc) runs run_task() under the runtime, restored in a
// new process at every pause point; the tests compare its digest with the
// reference computed in the test process.
#pragma once

#include <kappa/kappa.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace workload {

// ---- a class hierarchy with virtual functions
struct Shape {
  virtual ~Shape() = default;
  virtual int64_t area() const = 0;
  virtual std::string name() const = 0;
};
struct Rect : Shape {
  Rect(int64_t w, int64_t h) : w(w), h(h) {}
  int64_t area() const override { return w * h; }
  std::string name() const override { return "rect"; }
  int64_t w, h;
};
struct Square : Rect {
  explicit Square(int64_t s) : Rect(s, s) {}
  std::string name() const override { return "square"; }
};
struct Tri : Shape {
  Tri(int64_t b, int64_t h) : b(b), h(h) {}
  int64_t area() const override { return b * h / 2; }
  std::string name() const override { return "tri"; }
  int64_t b, h;
};

// ---- a parent/child graph whose cycles are broken by weak_ptr
struct TreeNode {
  int64_t value = 0;
  std::vector<std::shared_ptr<TreeNode>> children;
  std::weak_ptr<TreeNode> parent;
};

struct State {
  std::vector<int64_t> vec;
  std::string str;
  std::map<int, std::string> map;
  std::unordered_map<std::string, int64_t> umap;
  std::set<int64_t> set;
  std::deque<int> deq;
  std::list<std::string> lst;
  std::optional<std::string> opt;
  std::variant<int64_t, std::string, std::vector<int>> var;
  std::unique_ptr<std::vector<int64_t>> uptr = std::make_unique<std::vector<int64_t>>();
  std::shared_ptr<TreeNode> root = std::make_shared<TreeNode>();
  std::function<int64_t(int64_t)> fn = [](int64_t x) { return x; };
  std::vector<std::unique_ptr<Shape>> shapes;
  char* cbuf = nullptr;  // from strdup/malloc/realloc
  std::vector<uint8_t> big;
  int64_t caught = 0;

  State() = default;
  State(const State&) = delete;
  ~State() { std::free(cbuf); }
};

inline uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

// Level-1 mutation: containers.
inline void mutate_containers(State& s, int step) {
  uint64_t r = mix(uint64_t(step) + 1);
  s.vec.push_back(int64_t(r % 1000));
  if (s.vec.size() > 50) s.vec.erase(s.vec.begin());
  s.str += char('a' + r % 26);
  s.map[int(r % 17)] += std::to_string(step);
  s.umap["k" + std::to_string(r % 23)] += int64_t(step);
  s.set.insert(int64_t(r % 101));
  if (s.set.size() > 40) s.set.erase(s.set.begin());
  s.deq.push_front(step);
  if (s.deq.size() > 30) s.deq.pop_back();
  s.lst.push_back(std::string(r % 40, char('A' + step % 26)));
  if (s.lst.size() > 12) s.lst.pop_front();
  if (step % 3 == 0)
    s.opt.reset();
  else
    s.opt = "opt" + std::to_string(step);
  switch (step % 3) {
    case 0:
      s.var = int64_t(step);
      break;
    case 1:
      s.var = std::string(size_t(step % 7 + 20), 'v');  // beyond the SSO buffer
      break;
    default:
      s.var = std::vector<int>(size_t(step % 5 + 1), step);
  }
  s.uptr->push_back(int64_t(r % 77));
}

// Level-2 mutation: graphs, closures and virtual objects.
inline void mutate_objects(State& s, int step) {
  auto child = std::make_shared<TreeNode>();
  child->value = step;
  std::shared_ptr<TreeNode> parent = s.root;
  while (!parent->children.empty() && (mix(uint64_t(step)) >> (parent->children.size() % 8)) & 1)
    parent = parent->children.back();
  child->parent = parent;
  parent->children.push_back(child);
  std::vector<int64_t> captured(size_t(step % 4 + 1), step);
  std::string tag = "t" + std::to_string(step);
  s.fn = [prev = std::move(s.fn), captured, tag](int64_t x) {
    uint64_t acc = uint64_t(prev(x));  // unsigned: wraps instead of overflowing
    for (int64_t c : captured) acc = acc * 31 + uint64_t(c);
    return int64_t(acc + tag.size());
  };
  switch (step % 3) {
    case 0:
      s.shapes.push_back(std::make_unique<Rect>(step + 1, step % 5 + 1));
      break;
    case 1:
      s.shapes.push_back(std::make_unique<Square>(step % 9 + 1));
      break;
    default:
      s.shapes.push_back(std::make_unique<Tri>(step + 2, step % 3 + 2));
  }
}

// Level-3 mutation: C buffers and exceptions.
inline void mutate_c(State& s, int step) {
  if (!s.cbuf) {
    s.cbuf = strdup("c:");
  } else {
    size_t len = std::strlen(s.cbuf);
    char* grown = static_cast<char*>(std::realloc(s.cbuf, len + 8));
    std::snprintf(grown + len, 8, "%d,", step % 1000);
    s.cbuf = grown;
  }
  try {
    if (step % 4 == 1) throw std::runtime_error("boom" + std::to_string(step));
  } catch (const std::runtime_error& e) {
    s.str += e.what();
    ++s.caught;
  }
}

inline void mutate_big(State& s, int step) {
  for (size_t i = size_t(step) % 4096; i < s.big.size(); i += 4096) s.big[i] += uint8_t(step);
}

inline void init_big(State& s, size_t mb) {
  s.big.resize(mb << 20);
  uint64_t x = 42;
  for (size_t i = 0; i < s.big.size(); i += 8) {
    x = mix(x + i);
    // Half the bytes random, half zero: compressible, but not trivially.
    std::memcpy(s.big.data() + i, &x, 4);
  }
}

// Rethrown after a pause: the exception object must survive the checkpoint.
inline std::exception_ptr make_pending_error(int step) {
  try {
    throw std::out_of_range("pending" + std::to_string(step));
  } catch (...) {
    return std::current_exception();
  }
}

inline uint64_t fnv(uint64_t h, const void* p, size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}
inline uint64_t fnv(uint64_t h, const std::string& s) { return fnv(h, s.data(), s.size()); }
inline uint64_t fnv(uint64_t h, int64_t v) { return fnv(h, &v, sizeof v); }

inline int64_t tree_sum(const std::shared_ptr<TreeNode>& n, int depth) {
  int64_t sum = n->value * (depth + 1);
  for (auto& c : n->children) {
    if (c->parent.lock() != n) return -1000000;  // a broken weak_ptr shows up here
    sum += tree_sum(c, depth + 1);
  }
  return sum;
}

/// Canonical digest of everything in the state (order-independent where the
/// container is unordered).
inline std::string digest(const State& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int64_t v : s.vec) h = fnv(h, v);
  h = fnv(h, s.str);
  for (auto& [k, v] : s.map) h = fnv(fnv(h, int64_t(k)), v);
  std::map<std::string, int64_t> sorted(s.umap.begin(), s.umap.end());
  for (auto& [k, v] : sorted) h = fnv(fnv(h, k), v);
  for (int64_t v : s.set) h = fnv(h, v);
  for (int v : s.deq) h = fnv(h, int64_t(v));
  for (auto& v : s.lst) h = fnv(h, v);
  h = fnv(h, s.opt.value_or("<none>"));
  h = fnv(h, int64_t(s.var.index()));
  if (auto* i = std::get_if<int64_t>(&s.var)) h = fnv(h, *i);
  if (auto* str = std::get_if<std::string>(&s.var)) h = fnv(h, *str);
  if (auto* v = std::get_if<std::vector<int>>(&s.var))
    for (int x : *v) h = fnv(h, int64_t(x));
  for (int64_t v : *s.uptr) h = fnv(h, v);
  h = fnv(h, tree_sum(s.root, 0));
  h = fnv(h, s.fn(7));
  for (auto& sh : s.shapes) h = fnv(fnv(h, sh->name()), sh->area());
  h = fnv(h, std::string(s.cbuf ? s.cbuf : ""));
  h = fnv(h, s.big.data(), s.big.size());
  h = fnv(h, s.caught);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

// ---------------------------------------------------------------- reference

inline std::string run_plain(int steps, size_t big_mb) {
  State s;
  init_big(s, big_mb);
  for (int step = 0; step < steps; ++step) {
    mutate_containers(s, step);
    mutate_objects(s, step);
    mutate_c(s, step);
    if (step % 5 == 2) {
      try {
        std::rethrow_exception(make_pending_error(step));
      } catch (const std::out_of_range& e) {
        s.str += e.what();
      }
    }
    if (step % 6 == 5) s.caught += 100;  // the exception thrown through co_await
    mutate_big(s, step);
  }
  return digest(s);
}

// ---------------------------------------------------------------- as tasks

inline kappa::Task<int> level3(State& s, int step) {
  mutate_c(s, step);
  co_await kappa::checkpoint();
  if (step % 6 == 5) throw std::logic_error("thrown through co_await");
  co_return step;
}

inline kappa::Task<void> level2(State& s, int step) {
  mutate_objects(s, step);
  std::exception_ptr pending;
  if (step % 5 == 2) pending = make_pending_error(step);
  co_await kappa::checkpoint();  // the exception object is in the checkpoint
  try {
    co_await level3(s, step);
  } catch (const std::logic_error&) {
    s.caught += 100;
  }
  if (pending) {
    try {
      std::rethrow_exception(pending);
    } catch (const std::out_of_range& e) {
      s.str += e.what();
    }
  }
}

inline kappa::Task<void> level1(State& s, int step) {
  mutate_containers(s, step);
  co_await kappa::checkpoint();
  co_await level2(s, step);
}

inline kappa::Task<std::string> run_task(int steps, size_t big_mb) {
  State s;
  init_big(s, big_mb);
  co_await kappa::checkpoint();
  for (int step = 0; step < steps; ++step) {
    co_await level1(s, step);
    mutate_big(s, step);
  }
  co_return digest(s);
}

}  // namespace workload

namespace workload {

// ---------------------------------------------------------------- spin
// A long loop for the kill tests: it pauses with maybe_checkpoint() only.

struct SpinState {
  std::vector<uint64_t> acc = std::vector<uint64_t>(64);
  std::map<uint64_t, uint64_t> counts;
};

inline void spin_step(SpinState& s, uint64_t i) {
  uint64_t x = mix(i);
  s.acc[x % 64] += x >> 7;
  if (x % 1000 == 0) ++s.counts[x % 97];
}

inline std::string spin_digest(const SpinState& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t v : s.acc) h = fnv(h, int64_t(v));
  for (auto& [k, v] : s.counts) h = fnv(fnv(h, int64_t(k)), int64_t(v));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

inline std::string spin_plain(uint64_t n) {
  SpinState s;
  for (uint64_t i = 0; i < n; ++i) spin_step(s, i);
  return spin_digest(s);
}

inline kappa::Task<std::string> spin_task(uint64_t n) {
  SpinState s;
  for (uint64_t i = 0; i < n; ++i) {
    spin_step(s, i);
    if (i % 256 == 0) co_await kappa::maybe_checkpoint();
  }
  co_return spin_digest(s);
}

}  // namespace workload
