// TLS between workers and the coordinator (the gRPC transport).
//
// By default a job makes its own certificate: a self-signed one, with a
// fresh P-256 key, made when `run` starts. Its SHA-256 fingerprint travels
// to workers with their job token (KAPPA_TLS_PIN), and a worker accepts only
// a coordinator presenting that very certificate (pinning): no certificate
// authority, no host name to get right, nothing for the user to set up.
// With certificates of the user's own (--tls-cert, --tls-key, --tls-ca),
// workers verify the coordinator's chain against the given authority and
// its name against the address they dial, as any TLS client does.
#pragma once

#include <string>
#include <vector>

namespace kappa::detail {

/// A server's certificate (chain) and private key, PEM.
struct TlsIdentity {
  std::string cert_pem;
  std::string key_pem;
};

/// A fresh self-signed certificate valid for `names` (host names or IP
/// addresses, in its subjectAltName) for `days`. Throws kappa::Error.
TlsIdentity make_self_signed(const std::vector<std::string>& names, int days = 30);

/// The SHA-256 of the first certificate in `cert_pem` (DER), as 64 hex
/// digits. Throws kappa::Error if there is none.
std::string certificate_fingerprint(const std::string& cert_pem);

/// How a worker checks the coordinator: with a pin (a fingerprint), or
/// with a certificate authority (PEM); neither: no TLS.
struct TlsTrust {
  std::string pin;
  std::string ca_pem;
  bool enabled() const { return !pin.empty() || !ca_pem.empty(); }
};

}  // namespace kappa::detail
