#include "rpc/server.h"

#include "rpc/transport.h"

namespace kappa::detail {

CoordinatorServer::CoordinatorServer(WorkerService* service, const ServerOptions& options) {
  ServerConfig config;
  config.service = service;
  config.token = options.token;
  config.report_closed_sessions = options.report_closed_sessions;
  config.max_sessions = options.max_sessions;
  config.max_unauthenticated = options.max_unauthenticated;
  config.auth_timeout = options.auth_timeout;
  config.tls = options.tls;
  listener_ = is_socket_address(options.listen) ? listen_socket(options.listen, config)
                                                : listen_grpc(options.listen, config);
}

CoordinatorServer::~CoordinatorServer() { stop(); }

const std::string& CoordinatorServer::address() const { return listener_->address(); }

void CoordinatorServer::stop() { listener_->stop(); }

}  // namespace kappa::detail
