// FunctionNames: the name of a function of this executable from its code
// offset (kappa::detail::code_offset, as SpawnSpec::fn holds it), for tasks
// spawned without SpawnOptions::name. Read from the executable's own symbol
// table (.symtab, which is there unless the binary was stripped; then
// .dynsym), demangled, without its namespace's "(anonymous namespace)::"
// nor its parameters: "fib" for (anonymous namespace)::fib(int, int).
//
// Valid in the process that spawned the tasks or in any process of the same
// binary (code offsets do not depend on where the binary is loaded).
//
// Thread safety: name() may be called from any thread; the table is read on
// the first call.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace kappa::detail {

class FunctionNames {
 public:
  /// Reads the symbols of `executable` (default: this process's).
  explicit FunctionNames(std::string executable = "/proc/self/exe");
  /// The short name of the function at `offset`, or "" if unknown.
  std::string name(uint64_t offset);

 private:
  struct Symbol {
    uint64_t start = 0, size = 0;
    std::string mangled;
  };
  void load();
  std::string executable_;
  std::once_flag loaded_;
  std::vector<Symbol> symbols_;  // by start
};

/// "fib" from "(anonymous namespace)::fib(int, int)".
std::string short_function_name(const std::string& demangled);

}  // namespace kappa::detail
