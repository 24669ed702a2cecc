#include "runtime/fatal.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace kappa::detail {

void fatal(const char* format, ...) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, "kappa: fatal: ");
  va_list args;
  va_start(args, format);
  int m = std::vsnprintf(buf + n, sizeof buf - size_t(n) - 1, format, args);
  va_end(args);
  size_t len = size_t(n) + (m < 0 ? 0 : size_t(m));
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, buf, len);
  (void)ignored;
  std::abort();
}

}  // namespace kappa::detail
