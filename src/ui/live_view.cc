#include "ui/live_view.h"

#include <httplib.h>

#include <charconv>
#include <thread>

#include "kappa/error.h"
#include "ui/assets.h"
#include "util/log.h"

namespace kappa::detail {

std::pair<std::string, int> parse_view_address(const std::string& address) {
  std::string host = "127.0.0.1", port = address;
  size_t colon = address.rfind(':');
  if (colon != std::string::npos) {
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "127.0.0.1";
  }
  int p = -1;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 0 || p > 65535)
    throw Error("--ui wants [HOST:]PORT (PORT 0: any free port), not '" + address + "'");
  return {host, p};
}

struct LiveView::Impl {
  const JobViewSource& source;
  LiveViewOptions options;
  FunctionNames names;
  httplib::Server server;
  std::string host;
  int port = 0;
  std::thread thread;
  std::once_flag stopped;

  Impl(const JobViewSource& s, LiveViewOptions o) : source(s), options(std::move(o)) {}

  static void send_json(httplib::Response& res, const nlohmann::json& j) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(j.dump(), "application/json");
  }

  static void bad_request(httplib::Response& res, const std::string& why) {
    res.status = 400;
    send_json(res, {{"error", why}});
  }

  static uint64_t number(const httplib::Request& req, const char* key, uint64_t fallback) {
    if (!req.has_param(key)) return fallback;
    std::string v = req.get_param_value(key);
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size())
      throw Error(std::string("'") + key + "' must be a whole number, not '" + v + "'");
    return n;
  }

  void routes() {
    server.Get("/api/job", [this](const httplib::Request& req, httplib::Response& res) {
      size_t recent = 20;
      try {
        recent = std::min<uint64_t>(number(req, "recent", 20), 256);
      } catch (const Error& e) {
        return bad_request(res, e.what());
      }
      JobView v = source.job_view(recent);
      nlohmann::json j = job_json(v, names, options.json);
      j["title"] = options.title;
      send_json(res, j);
    });
    server.Get("/api/tasks", [this](const httplib::Request& req, httplib::Response& res) {
      TaskQuery q;
      try {
        q.offset = number(req, "offset", 0);
        q.limit = std::min<uint64_t>(number(req, "limit", 50), 1000);
      } catch (const Error& e) {
        return bad_request(res, e.what());
      }
      if (req.has_param("state")) {
        std::string state = req.get_param_value("state");
        if (state == "retrying") {
          q.retrying = true;
        } else if (!state.empty() && state != "all") {
          q.phase = parse_phase(state);
          if (!q.phase)
            return bad_request(res, "unknown state '" + state +
                                        "' (waiting, ready, running, blocked, parked, finished, "
                                        "failed, retrying)");
        }
      }
      send_json(res, task_page_json(source.task_page(q), q, names));
    });
    server.Get(R"(/api/tasks/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      uint64_t id = 0;
      const std::string& s = req.matches[1].str();
      std::from_chars(s.data(), s.data() + s.size(), id);
      std::optional<TaskView> t = source.task_view(id);
      if (!t) {
        res.status = 404;
        return send_json(res, {{"error", "no task " + s}});
      }
      send_json(res, task_json(*t, names, true));
    });
    server.Get("/api/queues", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, queues_json(source.queue_views()));
    });
    for (size_t i = 0; i < kUiAssetCount; ++i) {
      const UiAsset& a = kUiAssets[i];
      auto serve = [a](const httplib::Request&, httplib::Response& res) {
        res.set_content(a.body.data(), a.body.size(), std::string(a.content_type).c_str());
      };
      server.Get(std::string(a.path), serve);
      if (a.path == "/index.html") server.Get("/", serve);
    }
  }
};

LiveView::LiveView(const JobViewSource& source, LiveViewOptions options)
    : impl_(std::make_unique<Impl>(source, std::move(options))) {
  auto [host, port] = parse_view_address(impl_->options.address);
  impl_->host = host;
  impl_->routes();
  // A browser keeps its connection open between polls: short, so that
  // stop() (which waits for open connections) is not held up for long.
  impl_->server.set_keep_alive_timeout(2);
  if (port == 0)
    impl_->port = impl_->server.bind_to_any_port(host);
  else
    impl_->port = impl_->server.bind_to_port(host, port) ? port : -1;
  if (impl_->port <= 0)
    throw Error("cannot serve the live view on " + host + ":" + std::to_string(port) +
                " (in use, or not an address of this machine)");
  impl_->thread = std::thread([impl = impl_.get()] { impl->server.listen_after_bind(); });
  // stop() is a no-op before the server runs: wait for it, so that a stop
  // right after the start is not lost.
  for (int i = 0; i < 2000 && !impl_->server.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

LiveView::~LiveView() { stop(); }

std::string LiveView::url() const {
  std::string host =
      impl_->host.find(':') != std::string::npos ? "[" + impl_->host + "]" : impl_->host;
  return "http://" + host + ":" + std::to_string(impl_->port) + "/";
}

void LiveView::stop() {
  std::call_once(impl_->stopped, [this] {
    impl_->server.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
  });
}

}  // namespace kappa::detail
