// Input files for the examples, shared with their hand-written baselines
// (bench/baselines/): no Kappa dependency.
//
//   std::vector<std::string> files = list_files({"logs/", "extra.txt"});
//   std::vector<FileRange> ranges = split_ranges(files, 64 << 20);
//   std::string bytes = read_range(ranges[0]);
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace kappa_examples {

/// The bytes [begin, end) of one file: a unit of work that can cross tasks.
struct FileRange {
  std::string path;
  uint64_t begin = 0;
  uint64_t end = 0;

  uint64_t size() const { return end - begin; }

  template <class Archive>
  void serialize(Archive& a) {
    a(path, begin, end);
  }
};

/// Every regular file the paths name: a file itself, a directory every
/// regular file beneath it (recursively, in path order). The result keeps the
/// order of `paths` and has no duplicates. Throws std::runtime_error naming a
/// path that does not exist or is neither a file nor a directory.
inline std::vector<std::string> list_files(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  auto add = [&](const fs::path& p) {
    std::string s = p.lexically_normal().string();
    if (std::find(files.begin(), files.end(), s) == files.end()) files.push_back(s);
  };
  for (const std::string& path : paths) {
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) throw std::runtime_error("no such file or directory: " + path);
    if (fs::is_regular_file(st)) {
      add(path);
    } else if (fs::is_directory(st)) {
      std::vector<fs::path> inside;
      for (const auto& e : fs::recursive_directory_iterator(path))
        if (e.is_regular_file()) inside.push_back(e.path());
      std::sort(inside.begin(), inside.end());
      for (const fs::path& p : inside) add(p);
    } else {
      throw std::runtime_error("not a regular file or a directory: " + path);
    }
  }
  return files;
}

/// Cuts each file into ranges of at most max_bytes (a file into equal parts,
/// an empty file into none), in file order.
inline std::vector<FileRange> split_ranges(const std::vector<std::string>& files,
                                           uint64_t max_bytes) {
  if (max_bytes == 0) throw std::invalid_argument("split_ranges: max_bytes is 0");
  std::vector<FileRange> ranges;
  for (const std::string& f : files) {
    uint64_t size = std::filesystem::file_size(f);
    uint64_t parts = (size + max_bytes - 1) / max_bytes;
    for (uint64_t i = 0; i < parts; ++i)
      ranges.push_back({f, size * i / parts, size * (i + 1) / parts});
  }
  return ranges;
}

/// Reads up to `length` bytes of `path` from `offset` into `out`, resized to
/// the bytes read (fewer at the end of the file), reusing its storage: a
/// scan that reads block after block into one buffer allocates once. The
/// file is opened and closed here: no descriptor outlives the call, so the
/// caller may pause between two reads. Throws std::runtime_error naming the
/// file on an error.
inline void read_at_into(const std::string& path, uint64_t offset, uint64_t length,
                         std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  out.resize(length);
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out.data() + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error("cannot read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
}

/// Reads up to `length` bytes of `path` from `offset` (fewer at the end of the
/// file), as read_at_into does.
inline std::string read_at(const std::string& path, uint64_t offset, uint64_t length) {
  std::string out;
  read_at_into(path, offset, length, out);
  return out;
}

/// The bytes of a range (fewer if the file shrank).
inline std::string read_range(const FileRange& r) { return read_at(r.path, r.begin, r.size()); }

}  // namespace kappa_examples
