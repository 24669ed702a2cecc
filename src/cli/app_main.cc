// The command line of every Kappa application (KAPPA_MAIN).
//
// Exit codes: 0 success; 1 the job failed (the message says which task and
// why); 2 bad usage or input; 75 (EX_TEMPFAIL) stopped on request after
// --max-checkpoints, resumable.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "cli/job_runner.h"
#include "kappa/main.h"
#include "runtime/checkpoint_image.h"
#include "runtime/key.h"
#include "runtime/layout.h"
#include "runtime/runtime.h"
#include "stores/checkpoint_store.h"
#include "util/log.h"
#include "util/url.h"
#include "worker/solo_driver.h"
#include "worker/worker.h"

namespace kappa {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitStopped = 75;

// The event, from --event JSON, --event - (standard input) or --event-file
// PATH: the kernel refuses command-line arguments over 128 KiB.
nlohmann::json read_event(const std::string& text, const std::string& file) {
  std::string source = "--event";
  std::string json = text;
  if (!file.empty() || text == "-") {
    source = file.empty() ? "--event - (standard input)" : "--event-file " + file;
    std::ifstream in_file;
    if (!file.empty()) {
      in_file.open(file, std::ios::binary);
      if (!in_file) throw CLI::ValidationError(source, "cannot read " + file);
    }
    std::istream& in = file.empty() ? std::cin : in_file;
    json.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  try {
    return nlohmann::json::parse(json);
  } catch (const nlohmann::json::parse_error& e) {
    throw CLI::ValidationError(source, std::string("malformed JSON: ") + e.what());
  }
}

// A count that must be at least `min`, with a message that says so (CLI11's
// range check prints the largest double, 300 digits long).
CLI::Validator at_least(long min) {
  return CLI::Validator(
      [min](std::string& value) -> std::string {
        try {
          size_t used = 0;
          long v = std::stol(value, &used);
          if (used == value.size() && v >= min) return {};
        } catch (const std::exception&) {
        }
        return "must be a whole number of at least " + std::to_string(min) + " (got " + value + ")";
      },
      "N>=" + std::to_string(min));
}

int report(const detail::SoloOutcome& out, const std::string& dir, const char* argv0) {
  switch (out.kind) {
    case detail::SoloOutcome::Kind::kDone:
      std::cout << out.value.dump() << std::endl;
      return 0;
    case detail::SoloOutcome::Kind::kFailed:
      spdlog::error("the task failed: {}", out.error);
      return kExitFailed;
    case detail::SoloOutcome::Kind::kStopped:
      spdlog::info("stopped after {} checkpoint(s); continue with: {} resume {}", out.images, argv0,
                   dir);
      return kExitStopped;
  }
  return kExitFailed;
}

int inspect(const std::string& path) {
  // The path may name anything: only a regular file is read, and only once
  // its header agrees with its size.
  detail::ImageInfo info;
  try {
    std::optional<std::string> image =
        detail::read_regular_file(path, detail::image_header_bytes(), detail::check_image_head);
    if (!image) throw Error("cannot read " + path + ": " + std::strerror(ENOENT));
    info = detail::verify_image(*image, detail::load_key());
  } catch (const detail::CheckpointRejected& e) {
    throw detail::CheckpointRejected(path + ": " + e.what());
  }
  nlohmann::json j = {
      {"file", path},
      {"version", info.version},
      {"codec", detail::codec_name(info.codec)},
      {"build_id", info.build_id},
      {"arena_base", info.arena_base},
      {"seqno", info.seqno},
      {"pending_op", info.pending_op},
      {"extents", info.extents.size()},
      {"raw_bytes", info.raw_bytes},
      {"payload_bytes", info.payload_bytes},
      {"image_bytes", info.image_bytes},
      {"created_unix_ns", info.created_unix_ns},
  };
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int app_main(int argc, char** argv, Handler handler) {
  detail::init_logging("");
  detail::ensure_fixed_layout(argv);
  detail::runtime_init();

  CLI::App app{
      "A Kappa application: runs its handler as a checkpointed task.\n"
      "Checkpoints are signed with the key from KAPPA_KEY, KAPPA_KEY_FILE or "
      "~/.config/kappa/key (created on first use)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kappa " KAPPA_VERSION);

  detail::SoloOptions opts;
  std::string event_text = "{}", event_file, compression = "zstd";
  // Options shared by several commands.
  auto add_interval = [&](CLI::App* cmd, double& into) {
    cmd->add_option("--checkpoint-interval", into,
                    "Seconds between checkpoints taken by maybe_checkpoint() (0: every call)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
  };
  auto add_compression = [&](CLI::App* cmd) {
    cmd->add_option("--compression", compression, "Checkpoint compression: zstd, lz4 or none")
        ->capture_default_str()
        ->check(CLI::IsMember({"lz4", "zstd", "none"}));
  };
  auto add_checkpoint_options = [&](CLI::App* cmd) {
    add_interval(cmd, opts.checkpoint_interval);
    add_compression(cmd);
    cmd->add_option("--max-checkpoints", opts.max_checkpoints,
                    "Stop (exit 75) after persisting N checkpoints, to be resumed later")
        ->check(CLI::NonNegativeNumber);
  };

  CLI::App* solo = app.add_subcommand(
      "solo",
      "Run the job as one task in this process, checkpointing at every pause point "
      "(no coordinator: spawn and queues are unavailable)");
  auto add_event = [&](CLI::App* cmd) {
    cmd->add_option("--event", event_text, "The handler's input, as JSON ('-': read it from stdin)")
        ->capture_default_str();
    cmd->add_option("--event-file", event_file,
                    "Read the handler's input from this JSON file (for events over the "
                    "command line's 128 KiB)")
        ->excludes(cmd->get_option("--event"));
  };
  add_event(solo);
  solo->add_option("--dir", opts.store_url, "Directory for the checkpoints (must hold none)")
      ->required();
  add_checkpoint_options(solo);

  CLI::App* resume = app.add_subcommand(
      "resume", "Continue a `solo` job from the latest checkpoint in DIR, in this process");
  resume->add_option("dir", opts.store_url, "The job's checkpoint directory")->required();
  add_checkpoint_options(resume);

  detail::JobOptions job;
  auto add_job_options = [&](CLI::App* cmd) {
    add_event(cmd);
    std::string backends;
    for (const std::string& b : detail::backend_names())
      backends += (backends.empty() ? "" : ", ") + b;
    cmd->add_option("--backend", job.backend, "Where workers run: " + backends)
        ->capture_default_str();
    cmd->add_option("--workers", job.workers, "Maximum concurrent workers")
        ->capture_default_str()
        ->check(at_least(1));
    cmd->add_option("--time-limit", job.time_limit,
                    "Seconds per worker invocation, like Lambda's timeout (0: none)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--store", job.store,
                    "Checkpoint store: file://DIR (default: a per-job directory in /dev/shm, "
                    "or $TMPDIR without it, removed when the job succeeds; images take memory "
                    "there: give a disk directory for jobs with very large states)");
    cmd->add_option("--state", job.state,
                    "Coordinator journal: sqlite://PATH (default: none, the job lives in memory). "
                    "Running the same command again continues the job where a killed "
                    "coordinator left it");
    cmd->add_option("--data", job.data,
                    "Where kappa::put and kappa::get keep their objects (a key is a file there)")
        ->capture_default_str();
    cmd->add_option("--chaos-kill", job.chaos_kill,
                    "Probability of killing each worker invocation at a random moment")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--seed", job.seed, "Seed for --chaos-kill (0: random)");
    cmd->add_option("--log-dir", job.log_dir, "Directory for worker logs (default: none)");
    cmd->add_option("--trace", job.trace,
                    "Write a Chrome/Perfetto trace of the job (one span per task invocation) "
                    "to FILE; open it in Perfetto or chrome://tracing");
    cmd->add_option("--grace-ms", job.grace_ms,
                    "How long a blocked call keeps its worker before parking")
        ->capture_default_str();
    cmd->add_option("--max-failures", job.max_failures,
                    "Worker deaths in a row without progress before a task fails")
        ->capture_default_str();
    cmd->add_option("--liveness-timeout", job.liveness_timeout,
                    "Seconds without a heartbeat before a worker counts as hung, is killed and "
                    "its task restarted (0: never)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--tls-cert", job.tls_cert,
                    "With --listen host:port: the certificate (chain, PEM) the coordinator "
                    "presents to workers (default: a self-signed one made for the job, which "
                    "workers pin by its fingerprint)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--tls-key", job.tls_key, "The private key (PEM) of --tls-cert")
        ->check(CLI::ExistingFile);
    cmd->add_option("--tls-ca", job.tls_ca,
                    "The authority (PEM) workers check --tls-cert against, with the host name "
                    "they dial (default: they pin --tls-cert itself)")
        ->check(CLI::ExistingFile);
    add_interval(cmd, job.checkpoint_interval);
    add_compression(cmd);
    cmd->add_option("--slurm-partition", job.slurm.partition,
                    "--backend slurm: the partition workers' jobs are submitted to (default: "
                    "the cluster's default)");
    cmd->add_option("--slurm-account", job.slurm.account,
                    "--backend slurm: the account workers' jobs are charged to");
    cmd->add_option("--slurm-opt", job.slurm.options,
                    "--backend slurm: one more sbatch argument for every worker's job, e.g. "
                    "--slurm-opt=--mem=4G (repeatable)")
        ->allow_extra_args(false);
  };
  CLI::App* run = app.add_subcommand(
      "run",
      "Run the job: an embedded coordinator and the local backend; prints the handler's "
      "result as one JSON line");
  add_job_options(run);
  run->add_option("--listen", job.listen,
                  "Serve workers on host:port over gRPC (default: a Unix socket of the job's "
                  "own, several times faster for local workers; required with --backend "
                  "slurm: an address the cluster's nodes can reach)");
  CLI::App* coord = app.add_subcommand(
      "coordinator", "Like run, with the coordinator listening on a given address");
  add_job_options(coord);
  coord
      ->add_option("--listen", job.listen,
                   "Where to serve workers: host:port (gRPC) or unix:PATH, unix:@NAME (a Unix "
                   "socket)")
      ->required();

  detail::WorkerOptions worker;
  CLI::App* wcmd = app.add_subcommand("worker",
                                      "Serve a coordinator as a worker (started by "
                                      "backends; the job token comes from "
                                      "KAPPA_JOB_TOKEN, and over gRPC the coordinator's "
                                      "certificate's SHA-256 from KAPPA_TLS_PIN or its "
                                      "authority from KAPPA_TLS_CA)");
  wcmd->add_option("--coordinator", worker.coordinator,
                   "The coordinator's address: host:port (gRPC), unix:PATH or unix:@NAME")
      ->required();
  wcmd->add_option("--worker-id", worker.worker_id, "This worker's id")->required();
  wcmd->add_option("--store", worker.store_url, "Checkpoint store URL")->required();
  wcmd->add_option("--job", worker.job, "The job's id (its scope in the store)")->required();
  wcmd->add_option("--data", worker.data_url, "The job's data store URL (put and get)")
      ->capture_default_str();
  wcmd->add_option("--watch-parent", worker.watch_parent,
                   "Exit when this process (the one that started the worker) is gone");
  wcmd->add_option("--lifetime", worker.lifetime,
                   "Seconds this process may live (a Slurm job's time): no task runs past it, "
                   "and the worker leaves near it (0: no limit). SIGUSR1 ends it early: the "
                   "running task hands over at its next maybe_checkpoint()")
      ->check(CLI::NonNegativeNumber);
  wcmd->add_option("--chaos-kill", worker.chaos_kill,
                   "Probability of killing itself (SIGKILL) at a random moment of each task "
                   "invocation")
      ->check(CLI::Range(0.0, 1.0));
  wcmd->add_option("--chaos-seed", worker.chaos_seed, "Seed for --chaos-kill (0: random)");
  wcmd->add_option("--chaos-mean", worker.chaos_mean,
                   "Mean invocation length seen so far, in seconds: chaos kills land within "
                   "twice it")
      ->check(CLI::NonNegativeNumber);
  wcmd->add_option("--chaos-marker", worker.chaos_marker,
                   "File created just before a chaos kill, for the backend to tell it from "
                   "another SIGKILL");
  add_compression(wcmd);
  add_interval(wcmd, worker.checkpoint_interval);

  std::string image_path;
  CLI::App* insp =
      app.add_subcommand("inspect", "Verify a checkpoint image and print its header as JSON");
  insp->add_option("file", image_path, "A checkpoint image (.kpk)")
      ->required()
      ->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  try {
    if (*insp) return inspect(image_path);
    opts.codec = job.codec = worker.codec = detail::parse_codec(compression);
    if (*wcmd) {
      const char* token = std::getenv("KAPPA_JOB_TOKEN");
      if (!token || !*token) throw Error("KAPPA_JOB_TOKEN is not set");
      worker.token = token;
      if (const char* pin = std::getenv("KAPPA_TLS_PIN")) worker.tls_pin = pin;
      if (const char* ca = std::getenv("KAPPA_TLS_CA")) worker.tls_ca = ca;
      return detail::run_worker(worker);
    }
    if (*run || *coord) {
      nlohmann::json event = read_event(event_text, event_file);
      job.progress = isatty(STDERR_FILENO);
      auto started = std::chrono::steady_clock::now();
      detail::JobResult r = detail::run_job(handler, event, job);
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (!r.ok) {
        spdlog::error("the job failed: {}", r.error);
        if (!r.kept_store.empty()) spdlog::info("checkpoints kept in {}", r.kept_store);
        return kExitFailed;
      }
      std::cout << r.value.dump() << std::endl;
      spdlog::info("done in {:.3g} s: {} tasks, {} parks, {}", seconds, r.stats.tasks,
                   r.stats.parks, detail::describe_deaths(r.stats));
      return 0;
    }
    if (*solo) {
      nlohmann::json event = read_event(event_text, event_file);
      detail::SoloDriver driver(opts);
      return report(driver.start(handler, event), detail::parse_url(opts.store_url).rest, argv[0]);
    }
    detail::SoloDriver driver(opts);
    return report(driver.resume(), detail::parse_url(opts.store_url).rest, argv[0]);
  } catch (const CLI::ValidationError& e) {
    spdlog::error("{}", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return kExitFailed;
  }
}

}  // namespace kappa
