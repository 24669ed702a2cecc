#include "cli/job_runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "backends/backend.h"
#include "cli/progress_line.h"
#include "coordinator/coordinator.h"
#include "journals/journal_factory.h"
#include "kappa/spawn.h"
#include "rpc/server.h"
#include "rpc/tls.h"
#include "runtime/layout.h"
#include "stores/checkpoint_store.h"
#include "ui/live_view.h"
#include "util/hex.h"
#include "util/log.h"
#include "util/url.h"

namespace kappa::detail {
namespace {

std::string self_executable() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this executable: " + ec.message());
  return p.string();
}

void check_supported(const JobOptions& o) {
  if (o.workers == 0) throw Error("--workers must be at least 1");
  if (o.backend == "aws") {
    // Lambda workers share nothing with this machine but the network.
    if (o.listen.empty())
      throw Error(
          "--backend aws needs --listen HOST:PORT (and --advertise HOST:PORT if "
          "Lambda reaches this machine at another address)");
    if (o.store.empty() || parse_url(o.store).scheme == "file")
      throw Error(
          "--backend aws needs --store s3://BUCKET/PREFIX: Lambda workers cannot read "
          "this machine's files");
    if (parse_url(o.data).scheme == "file")
      spdlog::warn(
          "--data {} is on this machine: Lambda workers cannot put or get there "
          "(give --data s3://...)",
          o.data);
  } else if (!o.function.empty()) {
    throw Error("--function is for --backend aws");
  }
  if (!o.advertise.empty() && o.listen.empty()) throw Error("--advertise needs --listen");
  // Slurm's workers run on other machines: a Unix socket cannot reach them.
  if (o.backend == "slurm" && (o.listen.empty() || o.listen.starts_with("unix:")))
    throw Error(
        "--backend slurm needs --listen HOST:PORT, an address where workers on the cluster's "
        "nodes reach the coordinator");
}

// A directory of checkpoints for a job that was not given one: memory-backed
// when possible. The job's coordinator keeps its state in memory, so its
// checkpoints need to outlive workers, not the machine, and tmpfs writes an
// image in ~22 us against ~56 us on ext4 here.
std::string default_store(const std::string& job) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp && *tmp ? tmp : "/tmp";
  return "file://" + base + "/kappa-job-" + job;
}

// A journal's job must be this one: the same binary, event and store.
// `store` and `data` are the URLs given, made absolute.
JobIdentity check_same_job(const JobIdentity& held, const nlohmann::json& event,
                           const std::string& store, const std::string& data,
                           const std::string& journal) {
  if (held.build_id != build_id())
    throw Error("the journal " + journal + " holds job " + held.job +
                " of another binary (build id " + held.build_id + ", this one " + build_id() +
                "): run it with that binary, or give another --state");
  if (held.event != event.dump())
    throw Error("the journal " + journal + " holds job " + held.job + " of another event (" +
                held.event.substr(0, 200) +
                "): give the same --event to continue it, or another --state");
  if (!store.empty() && store != held.store)
    throw Error("the journal " + journal + " holds job " + held.job +
                ", whose checkpoints are in " + held.store + ", not " + store);
  if (data != held.data)
    throw Error("the journal " + journal + " holds job " + held.job + ", whose data store is " +
                held.data + ", not " + data);
  return held;
}

// Removes a job's checkpoint images: its own default directory, or its
// prefix in a store it shares (`store`: its scoped view).
void remove_images(const JobIdentity& id, CheckpointStore& store) {
  if (id.store == default_store(id.job))
    std::filesystem::remove_all(parse_url(id.store).rest);
  else
    store.remove_prefix("");
}

// After a successful job: its images go, and so do puts staged by attempts
// that never got recorded.
void clean_up_success(const JobIdentity& id, CheckpointStore& store, CheckpointStore& data) {
  remove_images(id, store);
  data.remove_prefix(put_staging_prefix(id.job));
}

// The result of a job that had finished before this run, from its journal.
JobResult finished_result(const JobOutcome& outcome) {
  JobResult r;
  if (outcome.failed) {
    r.error = outcome.error;
    return r;
  }
  try {
    r.value = decode<nlohmann::json>(outcome.result);
    r.ok = true;
  } catch (const std::exception& e) {
    r.error = std::string("cannot decode the handler's result: ") + e.what();
  }
  return r;
}

// A PEM file named by an option, whole.
std::string read_text_file(const std::string& path, const char* option) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw Error(std::string("cannot read ") + option + " " + path);
  if (text.empty()) throw Error(std::string(option) + " " + path + " is missing or empty");
  return text;
}

// TLS for workers reached over gRPC (rpc/tls.h): the user's certificate, or
// a self-signed one made now. How workers check it (a pin, or the user's
// authority) goes to them through the environment, as the token does.
std::optional<TlsIdentity> serve_tls(const JobOptions& o, const std::string& listen,
                                     const std::string& advertise) {
  unsetenv("KAPPA_TLS_PIN");
  unsetenv("KAPPA_TLS_CA");
  if (listen.rfind("unix:", 0) == 0) {  // never leaves the machine
    if (!o.tls_cert.empty()) spdlog::warn("--tls-cert is ignored: workers use a Unix socket");
    return std::nullopt;
  }
  TlsIdentity id;
  if (o.tls_cert.empty() != o.tls_key.empty()) throw Error("--tls-cert and --tls-key go together");
  if (o.tls_cert.empty()) {
    if (!o.tls_ca.empty()) throw Error("--tls-ca needs --tls-cert and --tls-key");
    std::vector<std::string> names = {listen.substr(0, listen.rfind(':')), "localhost"};
    if (!advertise.empty()) names.push_back(advertise.substr(0, advertise.rfind(':')));
    id = make_self_signed(names);
  } else {
    id.cert_pem = read_text_file(o.tls_cert, "--tls-cert");
    id.key_pem = read_text_file(o.tls_key, "--tls-key");
  }
  if (o.tls_ca.empty())
    setenv("KAPPA_TLS_PIN", certificate_fingerprint(id.cert_pem).c_str(), 1);
  else
    setenv("KAPPA_TLS_CA", read_text_file(o.tls_ca, "--tls-ca").c_str(), 1);
  return id;
}

}  // namespace

std::string describe_deaths(const JobStats& s) {
  static const char* how[JobStats::kCauses] = {
      "exited", "crashed", "by --chaos-kill", "at the time limit", "hung", "lost"};
  uint64_t total = s.total_deaths();
  std::string out = total ? std::to_string(total) + " worker death" + (total == 1 ? "" : "s")
                          : std::string("no worker deaths");
  std::string parts;
  for (size_t c = 0; c < JobStats::kCauses; ++c)
    if (s.deaths[c])
      parts += (parts.empty() ? "" : ", ") + std::to_string(s.deaths[c]) + " " + how[c];
  if (!parts.empty()) out += " (" + parts + ")";
  uint64_t idle_chaos = s.idle_exits[size_t(WorkerExit::Cause::kChaosKill)];
  if (idle_chaos)
    out += "; " + std::to_string(idle_chaos) + " more chaos kill" + (idle_chaos == 1 ? "" : "s") +
           " hit workers between tasks";
  return out;
}

namespace {
// "1.5 MB": decimal units, as S3 and Lambda count.
std::string bytes_text(uint64_t n) {
  if (n < 1000) return std::to_string(n) + " B";
  static const char* units[] = {"kB", "MB", "GB", "TB"};
  double v = double(n);
  size_t u = 0;
  for (v /= 1000; v >= 1000 && u + 1 < std::size(units); ++u) v /= 1000;
  return fmt::format("{:.3g} {}", v, units[u]);
}
}  // namespace

std::string describe_job(const JobStats& s, double lambda_memory_mb, const LambdaPrices& prices) {
  return fmt::format("{} tasks, {} parks, {}; {} checkpoints ({}), {} invocations; {}", s.tasks,
                     s.parks, describe_deaths(s), s.checkpoints, bytes_text(s.checkpoint_bytes),
                     s.invocations,
                     describe_cost(estimate_cost(s, lambda_memory_mb, prices), lambda_memory_mb));
}

JobResult run_job(Handler handler, const nlohmann::json& event, const JobOptions& o,
                  const std::function<void(const JobResult&)>& on_result) {
  check_supported(o);
  // With a journal (--state), the job may have run before: then it must be
  // the same job (binary, event, store), and it continues.
  std::unique_ptr<Journal> journal;
  std::optional<JobIdentity> held;
  if (!o.state.empty()) {
    journal = open_journal(o.state);
    held = journal->identity();
  }
  // Workers may run elsewhere than here: relative paths are made absolute.
  const std::string given_store = o.store.empty() ? "" : absolute_url(o.store);
  const std::string given_data = absolute_url(o.data);
  JobIdentity identity;
  if (held) {
    identity = check_same_job(*held, event, given_store, given_data, journal->url());
  } else {
    identity.job = random_hex(6);
    identity.build_id = build_id();
    identity.event = event.dump();
    identity.store = given_store.empty() ? default_store(identity.job) : given_store;
    identity.data = given_data;
  }
  const std::string& job = identity.job;
  const std::string& store_url = identity.store;
  spdlog::debug("job {}: checkpoints in {}, data in {}", job, store_url, identity.data);
  // A job that finished before: its recorded outcome, again. One whose
  // coordinator died before its root task was recorded starts over.
  std::optional<DurableJob> previous;
  if (held) {
    previous = journal->load();
    if (previous->outcome.done) {
      // Finished before: its result again, and the clean-up its coordinator
      // may have died before doing.
      spdlog::info("job {} finished before: its recorded result", job);
      JobResult r = finished_result(previous->outcome);
      if (r.ok) {
        clean_up_success(identity, *scope_store(open_store(identity.store), job),
                         *open_store(identity.data, {.shared = true}));
      }
      return r;
    }
    if (previous->tasks.empty() && previous->futures.empty()) previous.reset();
    if (previous)
      spdlog::info("continuing job {} from {}: {} tasks live, {} resolved", job, journal->url(),
                   previous->tasks.size(), previous->futures.size());
  } else if (journal) {
    journal->begin(identity);
  }
  // The job's images live under its own scope: jobs may share a store.
  std::unique_ptr<CheckpointStore> store = scope_store(open_store(store_url), job);
  // A run that cannot start (a backend that refuses its options, a port in
  // use) leaves no empty store behind; from here on, the end of run_job
  // decides what to keep.
  struct LeaveNoEmptyStore {
    const JobIdentity& id;
    CheckpointStore& store;
    bool armed = true;
    ~LeaveNoEmptyStore() {
      if (!armed) return;
      try {
        if (store.list("").empty()) remove_images(id, store);
      } catch (const std::exception&) {
      }
    }
  } guard{identity, *store};
  if (!o.log_dir.empty()) std::filesystem::create_directories(o.log_dir);
  // Workers inherit the token through the environment (not argv: visible in
  // ps); set before any thread starts. A token given in the environment is
  // kept: workers started elsewhere need to know it.
  const char* given = std::getenv("KAPPA_JOB_TOKEN");
  std::string token = given && *given ? given : random_hex(16);
  setenv("KAPPA_JOB_TOKEN", token.c_str(), 1);
  const std::string listen = o.listen.empty() ? "unix:@kappa-job-" + job : o.listen;
  std::optional<TlsIdentity> tls = serve_tls(o, listen, o.advertise);  // sets the environment too

  JobStateOptions jo;
  jo.max_workers = o.workers;
  jo.grace = std::chrono::milliseconds(o.grace_ms);
  jo.max_failures = o.max_failures;
  jo.liveness_timeout =
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(o.liveness_timeout));
  jo.tracing = !o.trace.empty();
  jo.observe = !o.ui.empty();
  BackendConfig bc;
  bc.executable = self_executable();
  bc.time_limit = o.time_limit;
  bc.chaos_kill = o.chaos_kill;
  bc.seed = o.seed;
  bc.log_dir = o.log_dir;
  bc.function = o.function;
  bc.request_response = o.invocation_type == "RequestResponse";
  bc.time_limit_given = o.time_limit_given;
  bc.job = job;
  bc.slurm = o.slurm;

  // The data store: puts are staged under a prefix of the job's own, and
  // made visible by the coordinator.
  std::unique_ptr<CheckpointStore> data = open_store(identity.data, {.shared = true});

  Coordinator coordinator(jo, store.get(), Clock::steady(), journal.get());
  coordinator.set_data_store(data.get());
  // The live view reads the coordinator: it stops before the coordinator
  // goes (declared after it), once it has lingered.
  std::optional<LiveView> view;
  if (!o.ui.empty()) {
    LiveViewOptions lo{.address = o.ui, .title = "job " + job};
    lo.json.memory_mb = o.lambda_memory_mb;
    lo.json.prices = o.prices;
    view.emplace(coordinator, std::move(lo));
    std::fprintf(stderr, "kappa: live view at %s\n", view->url().c_str());
  }
  // The result, told at once; then the view stays up for --ui-linger.
  auto finish = [&](JobResult r) {
    if (on_result) on_result(r);
    if (view && o.ui_linger > 0) {
      spdlog::info("the live view stays at {} for {} s", view->url(), o.ui_linger);
      std::this_thread::sleep_for(std::chrono::duration<double>(o.ui_linger));
    }
    if (view) view->stop();
    return r;
  };
  ServerOptions so;
  so.listen = listen;
  so.token = token;
  so.tls = tls;
  CoordinatorServer server(&coordinator, so);
  if (!o.listen.empty())
    spdlog::info(
        "serving workers on {}{}", server.address(),
        so.tls ? " over TLS (certificate SHA-256 " + certificate_fingerprint(so.tls->cert_pem) + ")"
               : "");
  bc.worker_args = {"--coordinator",
                    o.advertise.empty() ? server.address() : o.advertise,
                    "--store",
                    store_url,
                    "--job",
                    job,
                    "--data",
                    identity.data,
                    "--compression",
                    codec_name(o.codec),
                    "--checkpoint-interval",
                    std::to_string(o.checkpoint_interval)};
  if (!o.incremental) bc.worker_args.push_back("--no-incremental");
  std::unique_ptr<Backend> backend = make_backend(o.backend, bc, &coordinator);
  coordinator.set_backend(backend.get());

  if (previous) {
    coordinator.restore(std::move(*previous));
  } else {
    SpawnSpec root;
    root.fn = code_offset(reinterpret_cast<uint64_t>(handler));
    root.trampoline = code_offset(
        reinterpret_cast<uint64_t>(static_cast<Trampoline>(&trampoline<Handler, nlohmann::json>)));
    root.args.push_back({0, encode(event)});
    root.name = "handler";
    coordinator.spawn_root(std::move(root));
  }

  JobOutcome outcome;
  {
    // Redrawn about four times a second; erased before anything else is
    // printed about the job.
    ProgressLine progress(stderr, STDERR_FILENO, o.progress);
    for (;;) {
      outcome = coordinator.wait_job(std::chrono::milliseconds(progress.active() ? 250 : 1000));
      if (outcome.done) break;
      progress.update(coordinator.stats());
    }
  }
  guard.armed = false;
  coordinator.shutdown();
  backend->shutdown();
  server.stop();
  coordinator.set_backend(nullptr);  // sessions closed: nothing more for it
  coordinator.drain_store();         // before the job's directory may be removed

  if (!o.trace.empty()) coordinator.write_trace(o.trace);
  JobResult r;
  r.stats = coordinator.stats();
  r.backend_summary = backend->summary();
  if (!outcome.failed) {
    try {
      r.value = decode<nlohmann::json>(outcome.result);
      r.ok = true;
      clean_up_success(identity, *store, *data);
      return finish(std::move(r));
    } catch (const std::exception& e) {
      outcome.error = std::string("cannot decode the handler's result: ") + e.what();
    }
  }
  r.error = outcome.error;
  // A failed job keeps its checkpoints, and says where; a job that failed
  // before any image reached the store leaves nothing behind.
  if (store->list("").empty()) {
    remove_images(identity, *store);
  } else {
    r.kept_store = store->url();
  }
  return finish(std::move(r));
}

}  // namespace kappa::detail
