// The command line of every Kappa application (KAPPA_MAIN).
//
// Exit codes: 0 success; 1 the job failed (the message says which task and
// why); 2 bad usage or input; 75 (EX_TEMPFAIL) stopped on request after
// --max-checkpoints, resumable.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kappa/main.h"
#include "runtime/checkpoint_image.h"
#include "runtime/key.h"
#include "runtime/layout.h"
#include "runtime/runtime.h"
#include "runtime/solo_driver.h"

namespace kappa {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitStopped = 75;

nlohmann::json parse_event(const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw CLI::ValidationError("--event", std::string("malformed JSON: ") + e.what());
  }
}

int report(const detail::SoloOutcome& out, const std::string& dir, const char* argv0) {
  switch (out.kind) {
    case detail::SoloOutcome::Kind::kDone:
      std::cout << out.value.dump() << std::endl;
      return 0;
    case detail::SoloOutcome::Kind::kFailed:
      std::cerr << "kappa: the task failed: " << out.error << "\n";
      return kExitFailed;
    case detail::SoloOutcome::Kind::kStopped:
      std::cerr << "kappa: stopped after " << out.images
                << " checkpoint(s); continue with: " << argv0 << " resume " << dir << "\n";
      return kExitStopped;
  }
  return kExitFailed;
}

std::string dir_of(const std::string& store) {
  return store.rfind("file://", 0) == 0 ? store.substr(7) : store;
}

int inspect(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  detail::ImageInfo info = detail::verify_image(image, detail::load_key());
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
  detail::ensure_fixed_layout(argv);
  detail::runtime_init();

  CLI::App app{
      "A Kappa application: runs its handler as a checkpointed task.\n"
      "Checkpoints are signed with the key from KAPPA_KEY, KAPPA_KEY_FILE or "
      "~/.config/kappa/key (created on first use)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kappa " KAPPA_VERSION);

  detail::SoloOptions opts;
  std::string event_text = "{}", compression = "zstd";
  auto add_checkpoint_options = [&](CLI::App* cmd) {
    cmd->add_option("--checkpoint-interval", opts.checkpoint_interval,
                    "Seconds between checkpoints taken by maybe_checkpoint() (0: every call)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--compression", compression, "Checkpoint compression: lz4, zstd or none")
        ->capture_default_str()
        ->check(CLI::IsMember({"lz4", "zstd", "none"}));
    cmd->add_option("--max-checkpoints", opts.max_checkpoints,
                    "Stop (exit 75) after persisting N checkpoints, to be resumed later")
        ->check(CLI::NonNegativeNumber);
  };

  CLI::App* solo = app.add_subcommand(
      "solo",
      "Run the job as one task in this process, checkpointing at every pause point "
      "(no coordinator: spawn and queues are unavailable)");
  solo->add_option("--event", event_text, "The handler's input, as JSON")->capture_default_str();
  solo->add_option("--dir", opts.store_url, "Directory for the checkpoints (must hold none)")
      ->required();
  add_checkpoint_options(solo);

  CLI::App* resume = app.add_subcommand(
      "resume", "Continue a `solo` job from the latest checkpoint in DIR, in this process");
  resume->add_option("dir", opts.store_url, "The job's checkpoint directory")->required();
  add_checkpoint_options(resume);

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
    opts.codec = detail::parse_codec(compression);
    if (*solo) {
      nlohmann::json event = parse_event(event_text);
      detail::SoloDriver driver(opts);
      return report(driver.start(handler, event), dir_of(opts.store_url), argv[0]);
    }
    detail::SoloDriver driver(opts);
    return report(driver.resume(), dir_of(opts.store_url), argv[0]);
  } catch (const CLI::ValidationError& e) {
    std::cerr << "kappa: " << e.what() << "\n";
    return kExitUsage;
  } catch (const detail::CheckpointRejected& e) {
    std::cerr << "kappa: " << e.what() << "\n";
    return kExitFailed;
  } catch (const std::exception& e) {
    std::cerr << "kappa: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace kappa
