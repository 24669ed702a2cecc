#include "ui/function_names.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace kappa::detail {

FunctionNames::FunctionNames(std::string executable) : executable_(std::move(executable)) {}

void FunctionNames::load() {
  int fd = open(executable_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  if (fstat(fd, &st) != 0 || size_t(st.st_size) < sizeof(Elf64_Ehdr)) {
    close(fd);
    return;
  }
  size_t size = size_t(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  auto in_file = [&](uint64_t off, uint64_t n) { return off <= size && n <= size - off; };
  if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
      !in_file(eh->e_shoff, uint64_t(eh->e_shnum) * sizeof(Elf64_Shdr))) {
    munmap(map, size);
    return;
  }
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
  // .symtab has every function (static ones too); .dynsym only exported ones.
  for (uint32_t want : {uint32_t(SHT_SYMTAB), uint32_t(SHT_DYNSYM)}) {
    for (size_t i = 0; i < eh->e_shnum; ++i) {
      const Elf64_Shdr& sh = sections[i];
      if (sh.sh_type != want || sh.sh_link >= eh->e_shnum) continue;
      const Elf64_Shdr& strtab = sections[sh.sh_link];
      if (!in_file(sh.sh_offset, sh.sh_size) || !in_file(strtab.sh_offset, strtab.sh_size))
        continue;
      const auto* syms = reinterpret_cast<const Elf64_Sym*>(base + sh.sh_offset);
      size_t n = sh.sh_size / sizeof(Elf64_Sym);
      const char* names = reinterpret_cast<const char*>(base + strtab.sh_offset);
      for (size_t k = 0; k < n; ++k) {
        const Elf64_Sym& s = syms[k];
        if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || s.st_value == 0 || s.st_name >= strtab.sh_size)
          continue;
        const char* name = names + s.st_name;
        size_t len = strnlen(name, strtab.sh_size - s.st_name);
        symbols_.push_back({s.st_value, s.st_size, std::string(name, len)});
      }
    }
    if (!symbols_.empty()) break;
  }
  munmap(map, size);
  std::sort(symbols_.begin(), symbols_.end(),
            [](const Symbol& a, const Symbol& b) { return a.start < b.start; });
}

std::string FunctionNames::name(uint64_t offset) {
  std::call_once(loaded_, [this] { load(); });
  if (offset == 0) return {};
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), offset,
                             [](uint64_t o, const Symbol& s) { return o < s.start; });
  if (it == symbols_.begin()) return {};
  --it;
  if (offset != it->start && offset >= it->start + std::max<uint64_t>(it->size, 1)) return {};
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(it->mangled.c_str(), nullptr, nullptr, &status), std::free);
  return short_function_name(status == 0 && demangled ? demangled.get() : it->mangled);
}

std::string short_function_name(const std::string& demangled) {
  std::string s = demangled;
  static const std::string anon = "(anonymous namespace)::";
  for (size_t at; (at = s.find(anon)) != std::string::npos;) s.erase(at, anon.size());
  // The parameters: from the '(' that opens them, at template depth 0.
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    if (s[i] == '>') --depth;
    if (s[i] == '(' && depth == 0 && i > 0) {
      s.resize(i);
      break;
    }
  }
  // A template's return type precedes its name: "kappa::Task<int> f<int>".
  depth = 0;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == '>') ++depth;
    if (s[i] == '<') --depth;
    if (s[i] == ' ' && depth == 0) {
      s.erase(0, i + 1);
      break;
    }
  }
  return s;
}

}  // namespace kappa::detail
