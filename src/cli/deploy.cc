#include "cli/deploy.h"

#include <sys/stat.h>
#include <zip.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>

#include "backends/lambda_client.h"
#include "kappa/error.h"
#include "runtime/key.h"
#include "util/log.h"

namespace kappa::detail {
namespace {

namespace fs = std::filesystem;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The shared objects `executable` needs, as the loader here resolves them:
// {name in the package, file here}. The loader itself is among them.
std::map<std::string, std::string> shared_libraries(const std::string& executable) {
  std::string command = "ldd " + shell_quote(executable) + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) throw Error("deploy: cannot run ldd");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe.get())) out.append(buf, n);
  // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)", or the loader:
  // "/lib64/ld-linux-x86-64.so.2 (0x...)"; "linux-vdso.so.1 (0x...)" is
  // the kernel's.
  static const std::regex kResolved(R"(^\s*(\S+)\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)\s*$)");
  static const std::regex kDirect(R"(^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$)");
  static const std::regex kMissing(R"(^\s*(\S+)\s+=>\s+not found\s*$)");
  std::map<std::string, std::string> libs;
  std::istringstream lines(out);
  std::string line;
  bool loader = false;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kResolved)) {
      libs[fs::path(m[1].str()).filename()] = m[2];
    } else if (std::regex_match(line, m, kDirect)) {
      std::string name = fs::path(m[1].str()).filename();
      libs[name] = m[1];
      loader = loader || name.starts_with("ld-linux");
    } else if (std::regex_match(line, m, kMissing)) {
      throw Error("deploy: " + executable + " needs " + m[1].str() + ", which ldd cannot find");
    }
  }
  int status = pclose(pipe.release());
  if (status != 0 || !loader)
    throw Error("deploy: ldd " + executable +
                " failed or found no loader (is it dynamically "
                "linked?): " +
                out.substr(0, 300));
  return libs;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw Error("deploy: cannot read " + path);
  return bytes;
}

// A zip archive in memory (libzip).
class ZipWriter {
 public:
  ZipWriter() {
    zip_error_t error;
    zip_error_init(&error);
    source_ = zip_source_buffer_create(nullptr, 0, 0, &error);
    if (source_) zip_ = zip_open_from_source(source_, ZIP_TRUNCATE, &error);
    if (!zip_) {
      std::string why = zip_error_strerror(&error);
      zip_error_fini(&error);
      if (source_) zip_source_free(source_);
      throw Error("deploy: cannot create a zip archive: " + why);
    }
    zip_error_fini(&error);
    zip_source_keep(source_);  // read back after zip_close
  }
  ~ZipWriter() {
    if (zip_) zip_discard(zip_);
    zip_source_free(source_);
  }

  // Adds `bytes` as `name` with Unix mode `mode`. The bytes must outlive
  // finish(): libzip reads them then.
  void add(const std::string& name, const std::string& bytes, mode_t mode) {
    zip_source_t* s = zip_source_buffer(zip_, bytes.data(), bytes.size(), 0);
    zip_int64_t index = s ? zip_file_add(zip_, name.c_str(), s, ZIP_FL_ENC_UTF_8) : -1;
    if (index < 0) {
      if (s) zip_source_free(s);
      throw Error("deploy: cannot add " + name + " to the package: " + zip_strerror(zip_));
    }
    // Deflate at level 1: libzip's default is level 9, which took 12 s of
    // CPU for the test app's 75 MB (app and 99 libraries); zlib compresses
    // the same bytes about 7x faster at level 1, into a package 9% larger.
    if (zip_set_file_compression(zip_, zip_uint64_t(index), ZIP_CM_DEFLATE, 1) != 0)
      throw Error("deploy: cannot set the compression of " + name + ": " + zip_strerror(zip_));
    // Lambda keeps the Unix mode of each entry: bootstrap must be executable.
    zip_file_set_external_attributes(zip_, zip_uint64_t(index), 0, ZIP_OPSYS_UNIX,
                                     zip_uint32_t(S_IFREG | mode) << 16);
    unzipped_ += bytes.size();
    ++files_;
  }

  Package finish() {
    if (zip_close(zip_) != 0)
      throw Error(std::string("deploy: cannot write the package: ") + zip_strerror(zip_));
    zip_ = nullptr;
    Package p;
    p.unzipped_bytes = unzipped_;
    p.files = files_;
    zip_stat_t st;
    if (zip_source_stat(source_, &st) != 0 || zip_source_open(source_) != 0)
      throw Error("deploy: cannot read the package back");
    p.zip.resize(st.size);
    zip_int64_t n = zip_source_read(source_, p.zip.data(), st.size);
    zip_source_close(source_);
    if (n < 0 || zip_uint64_t(n) != st.size) throw Error("deploy: cannot read the package back");
    return p;
  }

 private:
  zip_source_t* source_ = nullptr;
  zip_t* zip_ = nullptr;
  uint64_t unzipped_ = 0;
  size_t files_ = 0;
};

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
  return buf;
}

}  // namespace

Package build_package(const std::string& executable) {
  std::string app = fs::path(executable).filename();
  std::map<std::string, std::string> libs = shared_libraries(executable);
  std::string loader;
  for (const auto& [name, path] : libs)
    if (name.starts_with("ld-linux")) loader = name;
  // The loader runs the app with the package's libraries first: the ones of
  // Amazon Linux 2023 (glibc 2.34) are too old for a binary built here.
  std::string bootstrap =
      "#!/bin/sh\n"
      "# Made by `" +
      app +
      " deploy`: starts the app through the loader and glibc packaged\n"
      "# with it (Amazon Linux 2023's are older than the ones it was built against).\n"
      "exec \"$LAMBDA_TASK_ROOT/lib/" +
      loader +
      "\" --library-path \"$LAMBDA_TASK_ROOT/lib\" "
      "\"$LAMBDA_TASK_ROOT/bin/" +
      app + "\" \"$@\"\n";
  std::vector<std::string> contents;  // kept until finish()
  contents.reserve(libs.size() + 1);
  ZipWriter zip;
  zip.add("bootstrap", bootstrap, 0755);
  contents.push_back(read_file(executable));
  zip.add("bin/" + app, contents.back(), 0755);
  for (const auto& [name, path] : libs) {
    contents.push_back(read_file(path));  // the file a symbolic link names
    zip.add("lib/" + name, contents.back(), 0755);
  }
  return zip.finish();
}

void check_package(const Package& p, const DeployOptions& o) {
  // Lambda's quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html),
  // checked before an upload that would be refused.
  if (p.unzipped_bytes >= o.max_unzipped_bytes)
    throw Error("deploy: the package is " + megabytes(p.unzipped_bytes) +
                " unzipped; Lambda takes at most " + megabytes(o.max_unzipped_bytes) +
                " (strip the binary's debug information, or link fewer libraries)");
  if (p.zip.size() > o.max_zip_bytes)
    throw Error("deploy: the package is " + megabytes(p.zip.size()) +
                " zipped; Lambda takes at most " + megabytes(o.max_zip_bytes) +
                " in a direct upload (strip the binary's debug information)");
}

void deploy(const DeployOptions& o) {
  std::error_code ec;
  std::string exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("deploy: cannot find this executable: " + ec.message());

  LambdaFunctionSpec spec;
  spec.name = o.function;
  spec.role = o.role;
  spec.timeout = o.timeout;
  spec.memory = o.memory;
  // What workers need, in the function's configuration: they read nothing
  // from this machine.
  spec.environment["KAPPA_KEY"] = load_key();
  if (!o.store.empty()) spec.environment["KAPPA_STORE"] = o.store;
  for (const std::string& kv : o.env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("deploy: --env " + kv + " is not NAME=VALUE");
    spec.environment[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  LambdaClient client;  // fails now when there are no credentials

  auto started = std::chrono::steady_clock::now();
  Package p = build_package(exe);
  spdlog::info("deploy: package of {} files, {} unzipped, {} zipped ({:.1f} s)", p.files,
               megabytes(p.unzipped_bytes), megabytes(p.zip.size()),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (!o.package_out.empty()) {
    std::ofstream out(o.package_out, std::ios::binary);
    out.write(p.zip.data(), std::streamsize(p.zip.size()));
    if (!out) throw Error("deploy: cannot write " + o.package_out);
  }
  check_package(p, o);
  spec.zip = std::move(p.zip);
  nlohmann::json config = client.deploy(spec);
  std::printf("%s\n", config.value("FunctionArn", o.function).c_str());
  spdlog::info("deploy: function {} ready at {} (runtime {}, timeout {} s, {} MB)", o.function,
               client.endpoint(), config.value("Runtime", "?"), config.value("Timeout", 0),
               config.value("MemorySize", 0));
}

}  // namespace kappa::detail
