// Replaces the global operator new/delete family and interposes the C malloc
// family, routing every allocation of a thread that has a current task arena
// to that arena (DESIGN.md section 2).
//
// This file must be linked into the executable itself (kappa_add_app does so
// through the kappa_malloc object library): only definitions in the executable
// interpose glibc's malloc for every shared library, including glibc's own
// internal calls (strdup, fopen, ...).
//
// Routing rules:
//   - allocation: the calling thread's current arena if any, else glibc;
//   - free: by address. A pointer in the arena region goes back to its arena
//     (directly on the owner thread, through the arena's lock-free remote-free
//     stack from anywhere else), any other pointer goes to glibc.
//   - outside tasks, behaviour is exactly glibc's, plus one range check on free.
//
// Threads: a thread created while a task arena is current inherits the arena
// (its allocations belong to the task's state) and switches the arena to
// shared (locked) mode. The task must join such threads before its next pause
// point; the runtime checks live_threads() there and refuses to checkpoint.
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime/arena.h"
#include "runtime/fatal.h"

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void* __libc_pvalloc(size_t);
}

namespace kappa::detail {
extern __thread Arena* t_current_arena __attribute__((tls_model("initial-exec")));
}

using kappa::detail::Arena;
using kappa::detail::in_arena_region;
using kappa::detail::t_current_arena;

namespace {

inline void route_free(void* p) {
  if (!in_arena_region(p)) return __libc_free(p);
  Arena* a = Arena::of(p);
  if (a == t_current_arena)
    a->deallocate(p);
  else
    a->deallocate_remote(p);
}

inline void* route_malloc(size_t n) {
  if (Arena* a = t_current_arena) return a->allocate(n);
  return __libc_malloc(n);
}

inline void* route_aligned(size_t align, size_t n) {
  if (Arena* a = t_current_arena) return a->allocate_aligned(n, align);
  return __libc_memalign(align, n);
}

inline bool valid_alignment(size_t align) {
  return align >= sizeof(void*) && (align & (align - 1)) == 0;
}

// operator new semantics: retry through the new_handler, then throw.
template <class Alloc>
inline void* new_or_throw(Alloc alloc) {
  for (;;) {
    if (void* p = alloc()) return p;
    std::new_handler h = std::get_new_handler();
    if (!h) throw std::bad_alloc();
    h();
  }
}

using pthread_create_fn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

struct ThreadStart {
  void* (*fn)(void*);
  void* arg;
  Arena* arena;
};

// Runs a thread started by task code inside the task's arena and accounts for
// it in live_threads() until it ends (also when it ends by pthread_exit, which
// unwinds through this guard).
void* task_thread_main(void* raw) {
  ThreadStart start = *static_cast<ThreadStart*>(raw);
  __libc_free(raw);
  struct Live {
    Arena* arena;
    ~Live() {
      t_current_arena = nullptr;
      arena->live_threads().fetch_sub(1, std::memory_order_acq_rel);
    }
  } live{start.arena};
  t_current_arena = start.arena;
  return start.fn(start.arg);
}

}  // namespace

// ---------------------------------------------------------------- C interface

extern "C" {

void* malloc(size_t n) {
  void* p = route_malloc(n);
  if (!p) errno = ENOMEM;
  return p;
}

void free(void* p) { route_free(p); }

void* calloc(size_t count, size_t size) {
  if (!t_current_arena) return __libc_calloc(count, size);
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = t_current_arena->allocate(total);
  if (!p) {
    errno = ENOMEM;
    return nullptr;
  }
  return std::memset(p, 0, total);
}

void* realloc(void* p, size_t n) {
  if (p && n == 0) {  // glibc semantics: free and return null
    route_free(p);
    return nullptr;
  }
  Arena* cur = t_current_arena;
  if (!in_arena_region(p)) {
    if (!cur || !p) return p ? __libc_realloc(p, n) : route_malloc(n);
    // A glibc block reallocated inside a task moves into the task's arena.
    void* q = cur->allocate(n);
    if (!q) return nullptr;
    size_t old = ::malloc_usable_size(p);
    std::memcpy(q, p, old < n ? old : n);
    __libc_free(p);
    return q;
  }
  Arena* owner = Arena::of(p);
  if (owner == cur) {
    void* q = cur->reallocate(p, n);
    if (!q) errno = ENOMEM;
    return q;
  }
  // An arena block reallocated elsewhere moves to wherever this thread allocates.
  void* q = route_malloc(n);
  if (!q) return nullptr;
  size_t old = owner->usable_size(p);
  std::memcpy(q, p, old < n ? old : n);
  owner->deallocate_remote(p);
  return q;
}

void* reallocarray(void* p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, total);
}

void* aligned_alloc(size_t align, size_t n) {
  if ((align & (align - 1)) != 0 || align == 0) {
    errno = EINVAL;
    return nullptr;
  }
  return route_aligned(align < sizeof(void*) ? sizeof(void*) : align, n);
}

void* memalign(size_t align, size_t n) { return aligned_alloc(align, n); }

int posix_memalign(void** out, size_t align, size_t n) {
  if (!valid_alignment(align)) return EINVAL;
  void* p = route_aligned(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

void* valloc(size_t n) {
  if (!t_current_arena) return __libc_valloc(n);
  return t_current_arena->allocate_aligned(n, kappa::detail::kPageBytes);
}

void* pvalloc(size_t n) {
  if (!t_current_arena) return __libc_pvalloc(n);
  size_t rounded = (n + kappa::detail::kPageBytes - 1) & ~(kappa::detail::kPageBytes - 1);
  return t_current_arena->allocate_aligned(rounded ? rounded : kappa::detail::kPageBytes,
                                           kappa::detail::kPageBytes);
}

size_t malloc_usable_size(void* p) {
  if (!p) return 0;
  if (in_arena_region(p)) return Arena::of(p)->usable_size(p);
  using fn_t = size_t (*)(void*);
  static std::atomic<fn_t> glibc{nullptr};
  fn_t f = glibc.load(std::memory_order_acquire);
  if (!f) {
    f = reinterpret_cast<fn_t>(dlsym(RTLD_NEXT, "malloc_usable_size"));
    if (!f) kappa::detail::fatal("cannot find glibc's malloc_usable_size");
    glibc.store(f, std::memory_order_release);
  }
  return f(p);
}

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*fn)(void*), void* arg) {
  static std::atomic<pthread_create_fn> real{nullptr};
  pthread_create_fn create = real.load(std::memory_order_acquire);
  Arena* arena = t_current_arena;
  // glibc's own bookkeeping for the thread (its TLS vector, cached stacks)
  // outlives the task, so it must never land in the arena.
  t_current_arena = nullptr;
  if (!create) {
    create = reinterpret_cast<pthread_create_fn>(dlsym(RTLD_NEXT, "pthread_create"));
    if (!create) kappa::detail::fatal("cannot find glibc's pthread_create");
    real.store(create, std::memory_order_release);
  }
  if (!arena) return create(thread, attr, fn, arg);
  auto* start = static_cast<ThreadStart*>(__libc_malloc(sizeof(ThreadStart)));
  if (!start) {
    t_current_arena = arena;
    return EAGAIN;
  }
  *start = {fn, arg, arena};
  arena->enter_shared_mode();
  arena->live_threads().fetch_add(1, std::memory_order_acq_rel);
  int rc = create(thread, attr, task_thread_main, start);
  if (rc != 0) {
    arena->live_threads().fetch_sub(1, std::memory_order_acq_rel);
    __libc_free(start);
  }
  t_current_arena = arena;
  return rc;
}

}  // extern "C"

// ---------------------------------------------------------------- operator new/delete

void* operator new(size_t n) {
  return new_or_throw([n] { return route_malloc(n); });
}
void* operator new[](size_t n) {
  return new_or_throw([n] { return route_malloc(n); });
}
void* operator new(size_t n, const std::nothrow_t&) noexcept { return route_malloc(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return route_malloc(n); }
void* operator new(size_t n, std::align_val_t a) {
  return new_or_throw([n, a] { return route_aligned(size_t(a), n); });
}
void* operator new[](size_t n, std::align_val_t a) {
  return new_or_throw([n, a] { return route_aligned(size_t(a), n); });
}
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return route_aligned(size_t(a), n);
}
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return route_aligned(size_t(a), n);
}

void operator delete(void* p) noexcept { route_free(p); }
void operator delete[](void* p) noexcept { route_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { route_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { route_free(p); }
void operator delete(void* p, size_t) noexcept { route_free(p); }
void operator delete[](void* p, size_t) noexcept { route_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { route_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { route_free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { route_free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { route_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { route_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { route_free(p); }
