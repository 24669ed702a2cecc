#include "runtime/layout.h"

#include <elf.h>
#include <link.h>
#include <sys/personality.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "runtime/arena.h"
#include "util/hex.h"
#include "util/log.h"

namespace kappa::detail {

extern __thread Arena* t_current_arena __attribute__((tls_model("initial-exec")));

namespace {
constexpr const char* kReexecVar = "KAPPA_REEXECED";

int find_build_id(dl_phdr_info* info, size_t, void* out) {
  auto* id = static_cast<std::string*>(out);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    const unsigned char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const unsigned char* name = p + sizeof(ElfW(Nhdr));
      const unsigned char* desc = name + ((note->n_namesz + 3) & ~3u);
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
          std::memcmp(name, "GNU", 4) == 0) {
        *id = to_hex(desc, note->n_descsz);
        return 1;
      }
      p = desc + ((note->n_descsz + 3) & ~3u);
    }
  }
  return 1;  // only the first object (the executable) is of interest
}

int hash_object(dl_phdr_info* info, size_t, void* state) {
  auto* h = static_cast<XXH3_state_t*>(state);
  uint64_t addr = info->dlpi_addr;
  XXH3_64bits_update(h, &addr, sizeof addr);
  if (info->dlpi_name) XXH3_64bits_update(h, info->dlpi_name, std::strlen(info->dlpi_name));
  return 0;
}
}  // namespace

bool layout_is_fixed() {
  int p = personality(0xffffffff);
  return p != -1 && (p & ADDR_NO_RANDOMIZE);
}

void ensure_fixed_layout(char** argv) {
  bool reexeced = std::getenv(kReexecVar) != nullptr;
  unsetenv(kReexecVar);
  if (layout_is_fixed()) return;
  const char* allow = std::getenv("KAPPA_ALLOW_ASLR");
  if (allow && *allow && std::strcmp(allow, "0") != 0) return;
  if (reexeced) {
    spdlog::warn(
        "ASLR is still on after re-executing with ADDR_NO_RANDOMIZE; checkpoints will only "
        "restore into processes with the same address layout");
    return;
  }
  int cur = personality(0xffffffff);
  if (cur == -1 || personality(unsigned(cur) | ADDR_NO_RANDOMIZE) == -1) {
    spdlog::warn(
        "cannot disable ASLR (personality: {}); checkpoints will only restore into processes "
        "with the same address layout",
        std::strerror(errno));
    return;
  }
  setenv(kReexecVar, "1", 1);
  execv("/proc/self/exe", argv);
  int err = errno;
  unsetenv(kReexecVar);
  spdlog::warn("cannot re-execute /proc/self/exe ({}); ASLR stays on", std::strerror(err));
}

const std::string& build_id() {
  static const std::string id = [] {
    std::string s;
    dl_iterate_phdr(find_build_id, &s);
    if (!s.empty()) return s;
    std::ifstream exe("/proc/self/exe", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(exe)), std::istreambuf_iterator<char>());
    XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
    return "xxh128:" + to_hex(&h, sizeof h);
  }();
  return id;
}

uint64_t layout_fingerprint() {
  static const uint64_t fp = [] {
    XXH3_state_t* h = XXH3_createState();
    XXH3_64bits_reset(h);
    dl_iterate_phdr(hash_object, h);
    // The TLS block of the task thread: compiled code may keep addresses of
    // thread-locals (errno's, for one) in a coroutine frame across a pause.
    uintptr_t tls = reinterpret_cast<uintptr_t>(&t_current_arena);
    XXH3_64bits_update(h, &tls, sizeof tls);
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return v;
  }();
  return fp;
}

}  // namespace kappa::detail
