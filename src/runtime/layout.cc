#include "runtime/layout.h"

#include <elf.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/personality.h>
#include <unistd.h>
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <vector>

#include "kappa/detail/calls.h"
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

// The file name of each object, not its directory: a package unpacked in
// another directory (each Lambda execution environment of the fixture has
// its own task root) loads the same objects at the same addresses, and
// should restore the same images.
int hash_object(dl_phdr_info* info, size_t, void* state) {
  auto* h = static_cast<XXH3_state_t*>(state);
  uint64_t addr = info->dlpi_addr;
  XXH3_64bits_update(h, &addr, sizeof addr);
  if (info->dlpi_name) {
    std::string_view name = info->dlpi_name;
    name = name.substr(name.rfind('/') + 1);  // npos + 1 == 0: the whole name
    XXH3_64bits_update(h, name.data(), name.size());
  }
  return 0;
}

// The arguments the kernel started this process with. Started through the
// loader, they are the loader's own ("ld.so --library-path DIR APP ARGS"),
// where argv, which the loader shifted, starts at APP.
std::vector<std::string> kernel_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t at = 0; at < all.size();) {
    size_t end = all.find('\0', at);
    if (end == std::string::npos) end = all.size();
    args.push_back(all.substr(at, end - at));
    at = end + 1;
  }
  return args;
}
}  // namespace

bool started_through_loader() {
  // The kernel ran no interpreter (AT_BASE is 0) and what it ran is the
  // loader. The rest of the auxiliary vector and the link map do not tell:
  // the loader rewrites AT_PHDR, AT_ENTRY and AT_EXECFN to the program's.
  static const bool through = [] {
    if (getauxval(AT_BASE) != 0) return false;
    std::error_code ec;
    std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).filename();
    return !ec && exe.starts_with("ld-linux");
  }();
  return through;
}

namespace {
int find_load_address(dl_phdr_info* info, size_t, void* out) {
  *static_cast<uint64_t*>(out) = info->dlpi_addr;
  return 1;  // the first object is the program
}

uint64_t program_load_address() {
  static const uint64_t base = [] {
    uint64_t b = 0;
    dl_iterate_phdr(find_load_address, &b);
    return b;
  }();
  return base;
}
}  // namespace

uint64_t code_offset(uint64_t address) { return address - program_load_address(); }
uint64_t code_address(uint64_t offset) { return offset + program_load_address(); }

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
  if (started_through_loader()) {
    // /proc/self/exe is the loader (a Lambda package's bootstrap starts the
    // app with the loader it bundles): run the loader again with the
    // arguments it was given, library path included.
    std::vector<std::string> args = kernel_arguments();
    std::vector<char*> ptrs;
    for (std::string& a : args) ptrs.push_back(a.data());
    ptrs.push_back(nullptr);
    if (args.size() >= 2) execv("/proc/self/exe", ptrs.data());
  } else {
    execv("/proc/self/exe", argv);
  }
  int err = errno;
  unsetenv(kReexecVar);
  spdlog::warn("cannot re-execute /proc/self/exe ({}); ASLR stays on", std::strerror(err));
}

const std::string& build_id() {
  static const std::string id = [] {
    std::string s;
    dl_iterate_phdr(find_build_id, &s);
    if (!s.empty()) return s;
    // The program's file: through the loader, /proc/self/exe is the loader.
    std::string path = "/proc/self/exe";
    if (started_through_loader()) path = reinterpret_cast<const char*>(getauxval(AT_EXECFN));
    std::ifstream exe(path, std::ios::binary);
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
