#include "rpc/tls.h"

#include <arpa/inet.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "kappa/error.h"
#include "util/hex.h"

namespace kappa::detail {
namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Ext = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;

[[noreturn]] void fail(const std::string& what) {
  char buf[256] = "unknown error";
  if (unsigned long e = ERR_get_error()) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  throw Error(what + ": " + buf);
}

std::string drain(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, size_t(n));
}

bool is_ip(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

TlsIdentity make_self_signed(const std::vector<std::string>& names, int days) {
  Key key(EVP_EC_gen("P-256"));
  if (!key) fail("cannot make a TLS key");
  Cert cert(X509_new());
  if (!cert) fail("cannot make a TLS certificate");
  X509_set_version(cert.get(), 2);  // v3: extensions
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) fail("cannot make a TLS certificate");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // clocks of workers may lag
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), long(days) * 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("kappa coordinator"), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), subject);
  std::string alt;
  for (const std::string& n : names) {
    if (n.empty()) continue;
    alt += (alt.empty() ? "" : ",") + std::string(is_ip(n) ? "IP:" : "DNS:") + n;
  }
  if (!alt.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    Ext ext(X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, alt.c_str()));
    if (!ext || !X509_add_ext(cert.get(), ext.get(), -1))
      fail("cannot name the TLS certificate " + alt);
  }
  if (!X509_sign(cert.get(), key.get(), EVP_sha256())) fail("cannot sign the TLS certificate");

  TlsIdentity out;
  Bio c(BIO_new(BIO_s_mem())), k(BIO_new(BIO_s_mem()));
  if (!c || !k || !PEM_write_bio_X509(c.get(), cert.get()) ||
      !PEM_write_bio_PrivateKey(k.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr))
    fail("cannot write the TLS certificate");
  out.cert_pem = drain(c.get());
  out.key_pem = drain(k.get());
  return out;
}

std::string certificate_fingerprint(const std::string& cert_pem) {
  Bio bio(BIO_new_mem_buf(cert_pem.data(), int(cert_pem.size())));
  Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) fail("not a PEM certificate");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!X509_digest(cert.get(), EVP_sha256(), md, &n)) fail("cannot hash the certificate");
  return to_hex(md, n);
}

}  // namespace kappa::detail
