// The command line of every Kappa application (KAPPA_MAIN).
//
// Exit codes: 0 success; 1 the job failed (the message says which task and
// why); 2 bad usage or input; 75 (EX_TEMPFAIL) stopped on request after
// --max-checkpoints, resumable.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "backends/backend.h"
#include "cli/deploy.h"
#include "cli/job_runner.h"
#include "cli/job_status.h"
#include "cli/lambda_runtime.h"
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

// Prints a verified image's header as one line of JSON; `where` names it.
void print_image_info(const std::string& where, const detail::ImageInfo& info) {
  nlohmann::json j = {
      {"file", where},
      {"version", info.version},
      {"codec", detail::codec_name(info.codec)},
      {"build_id", info.build_id},
      {"arena_base", info.arena_base},
      {"seqno", info.seqno},
      // 0: a full image; n: the n-th delta after one (restored only with its chain)
      {"chain_depth", info.chain_depth},
      {"pending_op", info.pending_op},
      {"extents", info.extents.size()},
      {"raw_bytes", info.raw_bytes},
      {"payload_bytes", info.payload_bytes},
      {"image_bytes", info.image_bytes},
      {"created_unix_ns", info.created_unix_ns},
  };
  std::cout << j.dump() << std::endl;
}

// Where `inspect` finds images in a store: the store's URL and a key, or a
// prefix ending in '/' (empty: the whole store). s3://BUCKET/KEY,
// redis://[...]HOST[:PORT]/DB/KEY, or a directory (file://DIR or DIR).
std::pair<std::string, std::string> image_location(const detail::Url& url,
                                                   const std::string& text) {
  if (url.scheme == "file") return {"file://" + url.rest, ""};
  if (url.scheme == "s3") {
    size_t slash = url.rest.find('/');
    if (slash == std::string::npos) return {"s3://" + url.rest, ""};
    return {"s3://" + url.rest.substr(0, slash), url.rest.substr(slash + 1)};
  }
  if (url.scheme == "redis") {
    size_t db = url.rest.find('/');
    size_t end = db == std::string::npos ? db : url.rest.find('/', db + 1);
    std::string_view digits =
        db == std::string::npos ? "" : std::string_view(url.rest).substr(db + 1, end - db - 1);
    if (digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw Error("inspect " + text +
                  ": name the database, redis://HOST:PORT/DB/KEY (as `run` says where it kept "
                  "checkpoints)");
    if (end == std::string::npos) return {"redis://" + url.rest, ""};
    return {"redis://" + url.rest.substr(0, end), url.rest.substr(end + 1)};
  }
  throw Error("inspect " + text + ": not a file or directory, nor an s3:// or redis:// URL");
}

// `inspect` of an image in a store, or of every image (*.kpk) under a prefix
// or in a directory: what `run` names when it keeps a failed job's
// checkpoints. Each image is read by ranges (a large one never whole) and
// verified.
int inspect_in_store(const std::string& store_url, const std::string& key,
                     const std::string& text) {
  std::unique_ptr<detail::CheckpointStore> store = detail::open_store(store_url, {.create = false});
  std::vector<std::string> keys;
  if (key.empty() || key.ends_with('/')) {
    for (std::string& k : store->list(key))
      if (k.ends_with(".kpk")) keys.push_back(std::move(k));
    if (keys.empty()) throw Error("inspect " + text + ": no checkpoint image (*.kpk) there");
  } else {
    keys.push_back(key);
  }
  const std::string secret = detail::load_key();
  for (const std::string& k : keys) {
    const std::string where = store_url + (store_url.ends_with('/') ? "" : "/") + k;
    std::unique_ptr<detail::ValueReader> image = store->open_value(k);
    if (!image) throw Error("inspect " + where + ": there is no such image");
    detail::ImageInfo info;
    try {
      info = detail::verify_image(*image, secret);
    } catch (const detail::CheckpointRejected& e) {
      throw detail::CheckpointRejected(where + ": " + e.what());
    }
    print_image_info(where, info);
  }
  return 0;
}

int inspect(const std::string& text) {
  detail::Url url = detail::parse_url(text);
  if (url.scheme != "file" || std::filesystem::is_directory(url.rest)) {
    auto [store_url, key] = image_location(url, text);
    return inspect_in_store(store_url, key, text);
  }
  // The path may name anything: only a regular file is read, and only once
  // its header agrees with its size.
  const std::string& path = url.rest;
  detail::ImageInfo info;
  try {
    std::optional<std::string> image =
        detail::read_regular_file(path, detail::image_header_bytes(), detail::check_image_head);
    if (!image) throw Error("cannot read " + path + ": " + std::strerror(ENOENT));
    info = detail::verify_image(*image, detail::load_key());
  } catch (const detail::CheckpointRejected& e) {
    throw detail::CheckpointRejected(path + ": " + e.what());
  }
  print_image_info(text, info);
  return 0;
}

// The options of `APP worker` (also those a Lambda invocation's payload
// carries, parsed the same way).
void add_worker_options(CLI::App* cmd, detail::WorkerOptions& worker) {
  cmd->add_option("--coordinator", worker.coordinator,
                  "The coordinator's address: host:port (gRPC), unix:PATH or unix:@NAME")
      ->required();
  cmd->add_option("--worker-id", worker.worker_id, "This worker's id")->required();
  cmd->add_option("--store", worker.store_url, "Checkpoint store URL")->required();
  cmd->add_option("--job", worker.job, "The job's id (its scope in the store)")->required();
  cmd->add_option("--data", worker.data_url, "The job's data store URL (put and get)")
      ->capture_default_str();
  cmd->add_option("--watch-parent", worker.watch_parent,
                  "Exit when this process (the one that started the worker) is gone");
  cmd->add_option("--checkpoint-interval", worker.checkpoint_interval,
                  "Seconds between checkpoints taken by maybe_checkpoint() (0: every call)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--incremental,!--no-incremental", worker.incremental,
                "Incremental checkpoints: once a task's image goes to the store, later ones "
                "carry only the pages changed since (default on)");
  cmd->add_option("--lifetime", worker.lifetime,
                  "Seconds this process may live (a Slurm job's time): no task runs past it, "
                  "and the worker leaves near it (0: no limit). SIGUSR1 ends it early: the "
                  "running task hands over at its next maybe_checkpoint()")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--chaos-kill", worker.chaos_kill,
                  "Probability of killing itself (SIGKILL) at a random moment of each task "
                  "invocation")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--chaos-seed", worker.chaos_seed, "Seed for --chaos-kill (0: random)");
  cmd->add_option("--chaos-mean", worker.chaos_mean,
                  "Mean invocation length seen so far, in seconds: chaos kills land within "
                  "twice it")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--chaos-marker", worker.chaos_marker,
                  "File created just before a chaos kill, for the backend to tell it from "
                  "another SIGKILL");
}

// One Lambda invocation: a worker, as the payload the aws backend sent
// describes it, until its invocation is over.
std::string lambda_invocation(const detail::LambdaInvocation& inv) {
  nlohmann::json p = nlohmann::json::parse(inv.payload, nullptr, false);
  // {"ping": true}: a check that the function starts and answers (docs/aws.md),
  // and the runtime loop's own cost (bench/lambda_bench.py).
  if (p.is_object() && p.value("ping", false))
    return nlohmann::json{{"pong", true}, {"build_id", detail::build_id()}}.dump();
  if (!p.is_object() || !p.contains("worker_id") || !p["args"].is_array())
    throw detail::LambdaError("Kappa.BadPayload",
                              "not a payload of the aws backend: " + inv.payload.substr(0, 200));
  detail::WorkerOptions worker;
  std::vector<std::string> args = p["args"].get<std::vector<std::string>>();
  args.insert(args.begin(), {"--worker-id", std::to_string(p["worker_id"].get<uint64_t>())});
  if (const char* store = std::getenv("KAPPA_STORE");
      store && *store && std::find(args.begin(), args.end(), "--store") == args.end())
    args.insert(args.end(), {"--store", store});
  CLI::App parser{"worker"};
  std::string compression = "zstd";
  add_worker_options(&parser, worker);
  parser.add_option("--compression", compression);
  try {
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first
    parser.parse(args);
  } catch (const CLI::ParseError& e) {
    throw detail::LambdaError("Kappa.BadPayload", std::string("bad worker arguments: ") + e.what());
  }
  worker.codec = detail::parse_codec(compression);
  nlohmann::json env = p.value("env", nlohmann::json::object());
  worker.token = env.value("KAPPA_JOB_TOKEN", "");
  worker.tls_pin = env.value("KAPPA_TLS_PIN", "");
  worker.tls_ca = env.value("KAPPA_TLS_CA", "");
  if (worker.token.empty()) throw detail::LambdaError("Kappa.BadPayload", "no job token");
  // The invocation's timeout is the worker's lifetime (counted from now: the
  // worker starts at once).
  worker.lifetime = std::max(
      0.001,
      std::chrono::duration<double>(inv.deadline - std::chrono::system_clock::now()).count());
  worker.one_invocation = true;
  if (p.contains("chaos_kill_after")) worker.chaos_kill_after = p["chaos_kill_after"].get<double>();
  int rc = detail::run_worker(worker);
  if (rc != 0)
    throw detail::LambdaError("Kappa.WorkerFailed", "worker " + std::to_string(worker.worker_id) +
                                                        " failed (its log says why): exit status " +
                                                        std::to_string(rc));
  return nlohmann::json{{"worker_id", worker.worker_id}, {"status", "done"}}.dump();
}

// The binary as a Lambda function's bootstrap.
int lambda_main(const std::string& api) {
  return detail::run_lambda_runtime(
      api,
      [] {
        // The signing key must be the deployer's: one made up here would
        // reject every image another environment wrote.
        const char* key = std::getenv("KAPPA_KEY");
        const char* file = std::getenv("KAPPA_KEY_FILE");
        if ((!key || !*key) && (!file || !*file))
          throw Error(
              "the function has no KAPPA_KEY in its configuration: deploy it with "
              "`APP deploy`");
        (void)detail::load_key();
        if (!detail::layout_is_fixed())
          spdlog::warn(
              "ASLR is on in this environment: images restore only where the layout "
              "happens to match");
      },
      lambda_invocation);
}

// Whether this process may run a task itself and so needs the fixed address
// layout (layout.h). run and coordinator run none: their local workers get the
// layout from the local backend, which starts them from a thread that has it.
// Skipping the re-execution saves a second load of the program and its
// hundred shared libraries, which every job paid at its start (measured: 45 ms
// on a quiet 2-core machine, `--help` 0.06 s against `inspect` 0.10 s).
bool may_run_tasks_here(int argc, char** argv) {
  if (argc < 2) return true;  // Lambda's bootstrap
  const std::string_view command = argv[1];
  for (std::string_view none :
       {"run", "coordinator", "deploy", "status", "--help", "-h", "--version"})
    if (command == none) return false;
  return true;
}

}  // namespace

int app_main(int argc, char** argv, Handler handler) {
  detail::init_logging("");
  if (may_run_tasks_here(argc, argv)) detail::ensure_fixed_layout(argv);
  detail::runtime_init();
  // Started by Lambda as the function's bootstrap (no command): the runtime.
  if (const char* api = std::getenv("AWS_LAMBDA_RUNTIME_API"); api && *api && argc == 1) {
    detail::init_logging("lambda");
    return lambda_main(api);
  }

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
  bool quiet = false;
  double lambda_memory = detail::kDefaultLambdaMemoryMb;
  detail::LambdaPrices prices;
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
                    "Checkpoint store: file://DIR, s3://BUCKET/PREFIX or redis://HOST:PORT "
                    "(default: a per-job directory in /dev/shm, "
                    "or $TMPDIR without it, removed when the job succeeds; images take memory "
                    "there: give a disk directory for jobs with very large states)");
    cmd->add_option("--state", job.state,
                    "Coordinator journal: sqlite://PATH or redis://HOST:PORT (default: none, "
                    "the job lives in memory). "
                    "Running the same command again continues the job where a killed "
                    "coordinator left it");
    cmd->add_option("--data", job.data,
                    "Where kappa::put and kappa::get keep their objects: a store URL (with "
                    "file://DIR, a key is a file there)")
        ->capture_default_str();
    cmd->add_option("--chaos-kill", job.chaos_kill,
                    "Probability of killing each worker invocation at a random moment")
        ->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--seed", job.seed, "Seed for --chaos-kill (0: random)");
    cmd->add_option("--log-dir", job.log_dir, "Directory for worker logs (default: none)");
    cmd->add_option("--trace", job.trace,
                    "Write a Chrome/Perfetto trace of the job to FILE: a span per task "
                    "invocation on its worker's track, with its checkpoints' capture and write "
                    "(sizes in their args), park and relaunch marks, arrows from each spawn "
                    "to the child's first invocation and from each finish to the waiter it "
                    "wakes, and queue waits; open it in Perfetto or chrome://tracing");
    cmd->add_option("--ui", job.ui,
                    "Serve a live view of the job (a page and JSON at /api/job) on [HOST:]PORT "
                    "while it runs (HOST defaults to 127.0.0.1; PORT 0 picks a free one; the "
                    "URL is printed on stderr)");
    cmd->add_option("--ui-linger", job.ui_linger,
                    "Seconds the live view stays up after the job ended, showing its final "
                    "state")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
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
    cmd->add_flag("--incremental,!--no-incremental", job.incremental,
                  "Incremental checkpoints: once a task's image is too large to travel inline, "
                  "later images carry only the pages changed since the one before (a chain "
                  "of at most 8 images; default on)");
    cmd->add_flag("--quiet", quiet,
                  "No progress line (it is shown only when stderr is a terminal anyway)");
    cmd->add_option("--lambda-memory", lambda_memory,
                    "MB of memory the cost estimate assumes each Lambda worker has")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    auto price = [&](const char* name, double& into, const char* what) {
      cmd->add_option(name, into,
                      std::string("The cost estimate's price in USD ") + what +
                          " (default: us-east-1, x86_64, as of 2026-12-02)")
          ->capture_default_str()
          ->check(CLI::NonNegativeNumber);
    };
    price("--price-gb-s", prices.per_gb_second, "per GB-second of Lambda duration");
    price("--price-request", prices.per_request, "per Lambda request (invocation)");
    price("--price-s3-put", prices.s3_put_per_1000, "per 1000 S3 PUTs (images written)");
    price("--price-s3-get", prices.s3_get_per_1000, "per 1000 S3 GETs (images read back)");
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
      "Run the job: an embedded coordinator and a backend (--backend: local processes, Slurm "
      "jobs or AWS Lambda); prints the handler's result as one JSON line");
  add_job_options(run);
  run->add_option("--listen", job.listen,
                  "Serve workers on host:port over gRPC (default: a Unix socket of the job's "
                  "own, several times faster for local workers; required with --backend "
                  "slurm: an address the cluster's nodes can reach)");
  auto add_remote_options = [&](CLI::App* cmd) {
    cmd->add_option("--advertise", job.advertise,
                    "The host:port workers are told to reach the coordinator at (default: "
                    "--listen); with --backend aws, an address Lambda can reach");
    cmd->add_option("--function", job.function,
                    "--backend aws: the Lambda function to invoke (made by `deploy`)");
    cmd->add_option("--invocation-type", job.invocation_type,
                    "--backend aws: Event (asynchronous, the default) or RequestResponse (an "
                    "open request per worker, whose answer tells timeouts from crashes exactly)")
        ->capture_default_str()
        ->check(CLI::IsMember({"Event", "RequestResponse"}));
  };
  add_remote_options(run);
  CLI::App* coord = app.add_subcommand(
      "coordinator", "Like run, with the coordinator listening on a given address");
  add_job_options(coord);
  coord
      ->add_option("--listen", job.listen,
                   "Where to serve workers: host:port (gRPC) or unix:PATH, unix:@NAME (a Unix "
                   "socket)")
      ->required();

  add_remote_options(coord);

  detail::DeployOptions deploy;
  CLI::App* dcmd = app.add_subcommand(
      "deploy",
      "Package this application as an AWS Lambda function (custom runtime, provided.al2023) "
      "and create or update it; credentials, region and endpoint come from the standard AWS "
      "environment variables (AWS_ENDPOINT_URL_LAMBDA for another server)");
  dcmd->add_option("--function", deploy.function, "The function's name")->required();
  dcmd->add_option("--role", deploy.role,
                   "The ARN of the function's execution role (it needs S3 access to the store "
                   "and CloudWatch Logs: see docs/aws.md)")
      ->required();
  dcmd->add_option("--timeout", deploy.timeout,
                   "Seconds an invocation may run (Lambda: 1 to 900); the default --time-limit "
                   "of `run --backend aws`")
      ->capture_default_str()
      ->check(CLI::Range(1, 900));
  dcmd->add_option("--memory", deploy.memory, "Memory in MB (Lambda: 128 to 10240)")
      ->capture_default_str()
      ->check(CLI::Range(128, 10240));
  dcmd->add_option("--store", deploy.store,
                   "Checkpoint store URL recorded in the function (KAPPA_STORE), for workers "
                   "whose payload names none");
  dcmd->add_option("--env", deploy.env,
                   "NAME=VALUE: one more environment variable of the function "
                   "(e.g. AWS_ENDPOINT_URL_S3, KAPPA_LOG_LEVEL); repeatable");
  dcmd->add_option("--package", deploy.package_out, "Also write the zip package to this file");

  detail::WorkerOptions worker;
  CLI::App* wcmd = app.add_subcommand("worker",
                                      "Serve a coordinator as a worker (started by "
                                      "backends; the job token comes from "
                                      "KAPPA_JOB_TOKEN, and over gRPC the coordinator's "
                                      "certificate's SHA-256 from KAPPA_TLS_PIN or its "
                                      "authority from KAPPA_TLS_CA)");
  add_worker_options(wcmd, worker);
  add_compression(wcmd);

  detail::StatusOptions status;
  CLI::App* stat = app.add_subcommand(
      "status",
      "Print a job's progress from its journal (tasks by state, outcome), or serve the live "
      "view of it with --ui (read-only)");
  stat->add_option("--state", status.state, "The job's journal: sqlite://PATH or redis://...")
      ->required();
  stat->add_option("--ui", status.ui,
                   "Serve the live view of what the journal holds on [HOST:]PORT (until "
                   "interrupted, or for --ui-linger seconds)");
  stat->add_option("--ui-linger", status.ui_linger,
                   "With --ui: seconds to serve, then exit (default: until SIGINT or SIGTERM)")
      ->check(CLI::NonNegativeNumber);

  std::string image_path;
  CLI::App* insp = app.add_subcommand(
      "inspect", "Verify checkpoint images and print the header of each as a line of JSON");
  insp->add_option("image", image_path,
                   "A checkpoint image (.kpk): a file, or one in a store, s3://BUCKET/KEY or "
                   "redis://HOST:PORT/DB/KEY. A directory, or a store URL ending in '/', "
                   "inspects every image under it (where `run` kept a failed job's checkpoints)")
      ->required()
      ->check([](const std::string& text) -> std::string {
        if (text.find("://") != std::string::npos && !text.starts_with("file://")) return "";
        return CLI::ExistingPath(text.starts_with("file://") ? text.substr(7) : text);
      });

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
    if (*dcmd) {
      detail::deploy(deploy);
      return 0;
    }
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
      job.time_limit_given = (*run ? run : coord)->count("--time-limit") > 0;
      nlohmann::json event = read_event(event_text, event_file);
      job.progress = !quiet;  // and only on a terminal (ProgressLine)
      auto started = std::chrono::steady_clock::now();
      // Told as soon as the result is known (a live view may linger after).
      bool told = false;
      auto tell = [&](const detail::JobResult& r) {
        told = true;
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (!r.ok) {
          spdlog::error("the job failed: {}", r.error);
          spdlog::info("{}", detail::describe_job(r.stats, lambda_memory, prices));
          if (!r.backend_summary.empty()) spdlog::info("{}", r.backend_summary);
          if (!r.kept_store.empty()) spdlog::info("checkpoints kept in {}", r.kept_store);
          return;
        }
        std::cout << r.value.dump() << std::endl;
        spdlog::info("done in {:.3g} s: {}", seconds,
                     detail::describe_job(r.stats, lambda_memory, prices));
        if (!r.backend_summary.empty()) spdlog::info("{}", r.backend_summary);
      };
      // The live view's cost estimate assumes what the summary's does.
      job.lambda_memory_mb = lambda_memory;
      job.prices = prices;
      detail::JobResult r = detail::run_job(handler, event, job, tell);
      if (!told) tell(r);
      return r.ok ? 0 : kExitFailed;
    }
    if (*stat) return detail::job_status(status);
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
