// S3Store: checkpoints as objects of an S3 bucket (s3://BUCKET/PREFIX; key K
// is the object PREFIX/K), over S3's REST API with libcurl, every request
// signed with AWS Signature Version 4 (CURLOPT_AWS_SIGV4, plus the
// x-amz-content-sha256 header curl leaves to us).
//
// The contract:
// - A put is atomic, as S3 makes it: a value under 16 MiB is one PutObject; a
//   larger one is a multipart upload (parts of 8 MiB, four in flight at
//   once), whose parts are never visible as an object until
//   CompleteMultipartUpload, and which is aborted when a step fails for
//   good. A failed put leaves the key as it was.
// - A stream (put_stream) is kept in memory until it reaches the multipart
//   threshold (then the same multipart upload as a put's, each part
//   uploaded as it fills, two at most in flight on threads of their own
//   while the next fills: its memory is the threshold, then three parts),
//   or, if it stays below, is one PutObject at the commit. A stream that
//   fails or is abandoned aborts its upload. A value over 10,000 parts
//   (80 GB at 8 MiB) is refused.
// - A reader (open_value) learns the size and ETag with a GET of the
//   value's first MiB (S3Tuning::open_bytes; Content-Range tells the size),
//   whose bytes serve the reads within them: a small value is opened and read
//   with one request. It reads each other range with a GET (Range:
//   bytes=FIRST-LAST, answered 206) straight into the caller's buffer; after
//   a read of 1 MiB or more, it fetches the ranges that follow ahead
//   (S3Tuning::read_ahead_bytes, four at once). Its GETs carry If-Match:
//   ETAG, and the ETag of each answer is compared too (s3rver ignores
//   If-Match): a replaced or removed object fails the read, naming why; two
//   versions are never mixed.
// - A get returns the whole value or throws: a body cut short is retried,
//   never returned. get_checked is one GET too: the check sees the head and
//   the size (Content-Length) as soon as the head has arrived, before room
//   is made for the rest, and a refusal aborts the transfer.
// - Retries: 5xx (500 InternalError, 503 SlowDown, ...), 429, S3's throttling
//   and RequestTimeout codes, and transport failures (refused, reset or
//   stalled connections, a response cut short) are retried, up to 8 attempts
//   with exponential backoff (100 ms doubling to 5 s, half of it random).
//   Then, or at once for any other failure (403, 404 NoSuchBucket, ...), a
//   kappa::Error says which operation on which object failed and why: S3's
//   error code and message from the response body, or curl's reason.
// - Thread safety: any number of threads may use one store at once. Each
//   request borrows a curl easy handle from a small pool; a handle keeps its
//   connections open for the next request. A multipart put uploads its parts
//   from threads of its own, joined before it returns.
// - Large values are not copied needlessly: a put's body is read by curl from
//   the caller's buffer; a get's lands in one string sized from
//   Content-Length.
// - Configuration comes from the standard AWS environment, read when the
//   store is opened: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
//   AWS_SESSION_TOKEN; AWS_REGION or AWS_DEFAULT_REGION (default us-east-1);
//   AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for an S3-compatible server
//   (addressed path-style: ENDPOINT/BUCKET/KEY; against AWS itself,
//   virtual-hosted style: BUCKET.s3.REGION.amazonaws.com/KEY); AWS_CA_BUNDLE.
// - Every payload's SHA-256 is signed (x-amz-content-sha256), so S3 refuses
//   a body damaged on the way, over http too (SHA-NI: ~1.5 GB/s here).
#include "stores/s3_store.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <pugixml.hpp>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "kappa/error.h"
#include "util/aws_http.h"
#include "util/huge_pages.h"
#include "util/log.h"
#include "util/string_for_overwrite.h"

namespace kappa::detail {
namespace {

using Clock = std::chrono::steady_clock;
using Params = std::vector<std::pair<std::string, std::string>>;

// S3 takes at most this many parts in a multipart upload.
constexpr size_t kMaxParts = 10000;
// Parts a stream (put_stream) uploads while it fills the next: its memory
// is this many parts and the one it fills.
constexpr size_t kStreamPartsInFlight = 2;

// ---- encodings ----

// The canonical query string: parameters sorted, names and values encoded.
// curl signs the query as it is in the URL, so the URL carries this one.
std::string query_string(Params params) {
  std::sort(params.begin(), params.end());
  std::string q;
  for (const auto& [name, value] : params)
    q += (q.empty() ? "" : "&") + uri_encode(name, false) + "=" + uri_encode(value, false);
  return q;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string seconds_text(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

// ---- one HTTP exchange ----

struct Request {
  const char* method = "GET";
  std::string key;                   // the object's whole key; "" for the bucket itself
  Params params;                     // the query
  std::string_view body;             // what a PUT or POST sends (not copied)
  std::vector<std::string> headers;  // more headers, all signed ("Content-Type: ...")
  std::string* sink = nullptr;       // where a 2xx body goes (appended), else Response::body
  // Or where a 2xx body goes that must fit in `into_size` bytes (a range).
  char* into = nullptr;
  size_t into_size = 0;
  // If set, sees the first head_bytes bytes of a 2xx body that goes to the
  // sink, and its Content-Length, before room is made for the rest; what it
  // throws ends the transfer and comes out of perform unchanged.
  const HeadCheck* check = nullptr;
  size_t head_bytes = 0;
};

struct Response {
  CURLcode curl = CURLE_OK;
  std::string curl_error;  // curl's reason when curl != CURLE_OK
  std::string invalid;     // why a callback refused the answer (then curl != CURLE_OK): final
  long status = 0;
  std::string body;  // an error document or a small XML answer (never a value)
  std::string etag;
  std::string content_range;  // of a 206 answer: "bytes FIRST-LAST/SIZE"
  curl_off_t content_length = -1;
  size_t into_bytes = 0;      // how much of Request::into a 2xx body filled
  std::string code, message;  // S3's error code and message, parsed from body
  bool head_checked = false;  // Request::check has seen the sink's head (else it is shorter)
  // A 206 announced a range of an empty value (Content-Range "bytes 0-0/0"),
  // and the transfer was stopped at its headers: S3 answers such a request
  // 416, and s3rver (3.7.1) 206 with a body of one byte it never sends.
  bool empty_range = false;
};

// Fills code and message from an <Error> document in r.body (S3 sends one
// with every error, and with some 200s: CompleteMultipartUpload).
void parse_error(Response& r) {
  pugi::xml_document doc;
  if (r.body.empty() || !doc.load_buffer(r.body.data(), r.body.size())) return;
  pugi::xml_node e = doc.child("Error");
  if (!e) return;
  r.code = e.child_value("Code");
  r.message = e.child_value("Message");
}

std::string describe(const Response& r) {
  if (!r.invalid.empty()) return r.invalid;
  if (r.curl != CURLE_OK)
    return std::string(curl_easy_strerror(r.curl)) +
           (r.curl_error.empty() ? "" : " (" + r.curl_error + ")");
  std::string out = "HTTP " + std::to_string(r.status);
  if (!r.code.empty()) out += " " + r.code;
  if (!r.message.empty()) out += ": " + r.message;
  if (r.code.empty() && r.message.empty() && !r.body.empty()) out += ": " + r.body.substr(0, 200);
  return out;
}

bool retryable(const Response& r) {
  if (!r.invalid.empty()) return false;
  if (r.curl != CURLE_OK) return transport_retryable(r.curl);
  return status_retryable(r.status, r.code);
}

// What one transfer needs from curl's callbacks.
struct Transfer {
  CURL* handle;
  const Request* request;
  Response* response;
  size_t sent = 0;
  std::string* target = nullptr;  // chosen at the first byte of the body
  bool into = false;              // the target is Request::into instead
  size_t start = 0;               // the target's size then
  curl_off_t length = -1;         // the body's Content-Length, -1 if none
  bool error_document = false;    // the body of an error answer
  bool head_pending = false;      // the request's check has yet to see the head
  std::string callback_error;     // an exception a callback could not throw
  std::exception_ptr refusal;     // what the request's check threw
};

// The value lands in one buffer, sized once from Content-Length.
void make_room(Transfer& t) {
  if (t.length <= 0) return;
  t.target->reserve(t.start + size_t(t.length));
  prefer_huge_pages(*t.target);
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view in(data, size * n);
  try {
    if (!t->target) {
      long status = 0;
      curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &status);
      t->error_document = status / 100 != 2;
      t->into = !t->error_document && t->request->into;
      bool value = !t->error_document && t->request->sink;
      t->target = value ? t->request->sink : &t->response->body;
      t->start = t->target->size();
      curl_easy_getinfo(t->handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &t->length);
      // Without a Content-Length (S3 always sends one), the check waits for
      // the whole body, whose size it needs.
      t->head_pending = value && t->request->check && t->length >= 0;
      if (value && !t->head_pending) make_room(*t);
    }
    if (t->into) {
      size_t& filled = t->response->into_bytes;
      if (in.size() > t->request->into_size - filled) {
        t->response->invalid =
            "the answer holds more than the " + std::to_string(t->request->into_size) +
            " bytes asked for (Content-Range '" + t->response->content_range + "')";
        return 0;  // CURLE_WRITE_ERROR
      }
      std::memcpy(t->request->into + filled, in.data(), in.size());
      filled += in.size();
      return size * n;
    }
    // Error documents are short; a huge one is not kept whole.
    if (t->error_document && t->target->size() + in.size() > (1 << 16)) return in.size();
    if (t->head_pending) {
      size_t head_bytes = t->request->head_bytes;
      size_t missing = head_bytes - (t->target->size() - t->start);
      t->target->append(in.substr(0, missing));
      in.remove_prefix(std::min(missing, in.size()));
      if (t->target->size() - t->start < head_bytes) return size * n;
      try {
        (*t->request->check)(std::string_view(*t->target).substr(t->start), uint64_t(t->length));
      } catch (...) {
        t->refusal = std::current_exception();
        return 0;  // CURLE_WRITE_ERROR: the transfer ends here
      }
      t->head_pending = false;
      t->response->head_checked = true;
      make_room(*t);
    }
    t->target->append(in);
    return size * n;
  } catch (const std::exception& e) {
    t->callback_error = e.what();
    return 0;  // CURLE_WRITE_ERROR
  }
}

size_t on_read(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view body = t->request->body;
  size_t k = std::min(size * n, body.size() - t->sent);
  std::memcpy(buffer, body.data() + t->sent, k);
  t->sent += k;
  return k;
}

// curl rewinds the body when it must send it again (a reused connection that
// turned out to be closed).
int on_seek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || size_t(offset) > t->request->body.size())
    return CURL_SEEKFUNC_FAIL;
  t->sent = size_t(offset);
  return CURL_SEEKFUNC_OK;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  Response& r = *t->response;
  if (line.starts_with("HTTP/")) {  // a new response (after a 100 Continue, say)
    r.etag.clear();
    r.content_range.clear();
  } else if (header_is(line, "etag")) {
    r.etag = header_value(line, 4);
  } else if (header_is(line, "content-range")) {
    r.content_range = header_value(line, 13);
  } else if ((line == "\r\n" || line == "\n") && r.content_range.ends_with("/0") &&
             r.content_range.starts_with("bytes ")) {
    r.empty_range = true;
    return 0;  // stops the transfer: what its body would be is known
  }
  return size * n;
}

// ---- the store ----

struct Config {
  std::string bucket;
  std::string prefix;    // "" or ending with '/'
  std::string endpoint;  // scheme://host[:port], no trailing '/'
  bool path_style = false;
  AwsCredentials aws;
};

Config configure(const std::string& rest) {
  Config c;
  size_t slash = rest.find('/');
  c.bucket = rest.substr(0, slash);
  if (slash != std::string::npos) c.prefix = rest.substr(slash + 1);
  while (c.prefix.starts_with('/')) c.prefix.erase(0, 1);
  if (!c.prefix.empty() && !c.prefix.ends_with('/')) c.prefix += '/';
  if (c.bucket.empty() || !std::all_of(c.bucket.begin(), c.bucket.end(), [](unsigned char ch) {
        return std::isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
      }))
    throw Error("s3 store: invalid bucket name '" + c.bucket + "' in s3://" + rest +
                " (expected s3://BUCKET/PREFIX)");

  c.aws = aws_credentials_from_env("s3 store", "s3://" + rest);
  std::string endpoint = aws_endpoint_from_env("S3", "s3 store");
  if (!endpoint.empty()) {
    c.endpoint = endpoint;
    c.path_style = true;
  } else if (c.bucket.find('.') != std::string::npos) {
    // Dotted names do not match the wildcard certificate of virtual hosts.
    c.endpoint = "https://s3." + c.aws.region + ".amazonaws.com";
    c.path_style = true;
  } else {
    c.endpoint = "https://" + c.bucket + ".s3." + c.aws.region + ".amazonaws.com";
  }
  return c;
}

class S3Store final : public CheckpointStore {
 public:
  S3Store(Config config, const S3Tuning& tuning) : c_(std::move(config)), t_(tuning) {
    if (t_.part_size < 1 || t_.multipart_threshold < 1 || t_.max_attempts < 1)
      throw Error("s3 store: invalid tuning");
  }

  const S3Tuning& tuning() const { return t_; }

  // Fails at once, naming the reason, if the bucket cannot be listed.
  void check_reachable() {
    Request r;
    r.params = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", c_.prefix}};
    call("list", c_.prefix, r);
  }

  void put(const std::string& key, std::string_view bytes) override {
    std::string k = object_key(key);
    if (bytes.size() >= t_.multipart_threshold) return put_multipart(k, bytes);
    put_object(k, bytes);
  }

  std::unique_ptr<ValueWriter> put_stream(const std::string& key) override;

  std::unique_ptr<ValueReader> open_value(const std::string& key) override;

  std::optional<std::string> get(const std::string& key) override {
    return get_checked(key, 0, {});
  }

  std::optional<std::string> get_checked(const std::string& key, size_t head_bytes,
                                         const HeadCheck& check) override {
    std::string k = object_key(key);
    std::string value;
    Request r;
    r.key = k;
    r.sink = &value;
    if (check) r.check = &check;
    r.head_bytes = head_bytes;
    Response resp = call("get", k, r, {404});
    if (resp.status == 404) return missing(resp, "get", k);
    // A value shorter than the head, or an answer without a Content-Length.
    if (check && !resp.head_checked)
      check(std::string_view(value).substr(0, head_bytes), value.size());
    return value;
  }

  std::vector<std::string> list(const std::string& prefix) override {
    std::vector<std::string> keys = list_objects(c_.prefix + prefix);
    for (std::string& k : keys) k.erase(0, c_.prefix.size());
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  void remove(const std::string& key) override {
    std::string k = object_key(key);
    Request r;
    r.method = "DELETE";
    r.key = k;
    Response resp = call("remove", k, r, {404});
    if (resp.status == 404) missing(resp, "remove", k);
  }

  // Server-side: CopyObject, then DELETE of the source; the bytes never
  // come here. S3 may answer a copy 200 with an <Error> body (documented for
  // CopyObject): that is a failure too.
  void move(const std::string& from, const std::string& to) override {
    std::string f = object_key(from), t = object_key(to);
    Request r;
    r.method = "PUT";
    r.key = t;
    r.headers = {"x-amz-copy-source: " + uri_encode(c_.bucket + "/" + f, true)};
    Response resp = call("move", t, r, {404});
    if (resp.status == 404) {
      missing(resp, "move", f);  // throws unless the source is the missing thing
      std::vector<std::string> there = list_objects(t);
      if (std::find(there.begin(), there.end(), t) != there.end()) return;  // moved already
      throw Error("s3 store: cannot move " + object_url(f) + " to " + object_url(t) +
                  ": neither exists");
    }
    if (resp.body.find("<Error>") != std::string::npos)
      throw Error("s3 store: move of " + object_url(f) + " to " + object_url(t) +
                  " failed: " + resp.body.substr(0, 300));
    remove(from);
  }

  void remove_prefix(const std::string& prefix) override {
    if (prefix.empty() || prefix.back() != '/')
      throw Error("remove_prefix needs a directory prefix ending in '/', not '" + prefix + "'");
    std::string p = c_.prefix + prefix;
    std::vector<std::string> keys = list_objects(p);
    for (size_t at = 0; at < keys.size(); at += 1000) {
      size_t end = std::min(keys.size(), at + 1000);
      std::string body =
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
          "<Quiet>true</Quiet>";
      for (size_t i = at; i < end; ++i)
        body += "<Object><Key>" + xml_escape(keys[i]) + "</Key></Object>";
      body += "</Delete>";
      Request r;
      r.method = "POST";
      r.params = {{"delete", ""}};
      r.body = body;
      r.headers = {"Content-Type: application/xml", "Content-MD5: " + md5_base64(body)};
      Response resp = call("remove", p, r);
      pugi::xml_document doc;
      if (!doc.load_buffer(resp.body.data(), resp.body.size()))
        throw Error("s3 store: remove of " + object_url(p) +
                    "*: unreadable DeleteObjects answer: " + resp.body.substr(0, 200));
      // Quiet: only the keys that could not be deleted are listed.
      pugi::xml_node e = doc.child("DeleteResult").child("Error");
      if (e)
        throw Error("s3 store: remove of " + object_url(e.child_value("Key")) +
                    " failed: " + e.child_value("Code") + ": " + e.child_value("Message"));
    }
  }

  std::string url() const override {
    std::string p = c_.prefix;
    if (!p.empty()) p.pop_back();
    return "s3://" + c_.bucket + (p.empty() ? "" : "/" + p);
  }

 private:
  class Writer;
  class Reader;

  std::string object_key(const std::string& key) const {
    if (key.empty()) throw Error("s3 store: empty key");
    std::string k = c_.prefix + key;
    if (k.size() > 1024) throw Error("s3 store: key '" + k + "' is longer than S3's 1024 bytes");
    return k;
  }

  std::string object_url(const std::string& key) const { return "s3://" + c_.bucket + "/" + key; }

  std::string url_of(const Request& r) const {
    std::string u = c_.endpoint;
    if (c_.path_style) u += "/" + c_.bucket;
    if (!r.key.empty() || !c_.path_style) u += "/" + uri_encode(r.key, true);
    if (!r.params.empty()) u += "?" + query_string(r.params);
    return u;
  }

  // A 404 answer to a read: nothing under the key, or an error (no bucket).
  std::optional<std::string> missing(const Response& r, const char* op, const std::string& k) {
    if (r.code.empty() || r.code == "NoSuchKey") return std::nullopt;
    throw Error("s3 store: " + std::string(op) + " of " + object_url(k) +
                " failed: " + describe(r));
  }

  // One attempt.
  Response perform(CURL* h, const Request& r, const std::string& payload_hash) {
    Response resp;
    Transfer t{.handle = h, .request = &r, .response = &resp};
    size_t sink_size = r.sink ? r.sink->size() : 0;
    curl_easy_reset(h);  // options only: connections stay open
    std::string url = url_of(r);
    CurlHeaders headers;
    sign_sigv4(h, c_.aws, "s3", payload_hash, headers);
    for (const std::string& extra : r.headers) headers.add(extra);
    char error[CURL_ERROR_SIZE] = "";

    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);  // a key's "./" and "../" are its own
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, long(t_.stall_timeout.count()));
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, long(512 << 10));  // fewer, larger writes and reads
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, long(512 << 10));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    std::string_view method = r.method;
    if (method == "PUT") {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(r.body.size()));
      curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
    } else if (method == "POST") {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.empty() ? "" : r.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(r.body.size()));
    } else if (method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method);
    }

    resp.curl = curl_easy_perform(h);
    if (t.refusal) std::rethrow_exception(t.refusal);
    if (!t.callback_error.empty()) throw Error("s3 store: " + t.callback_error);
    if (resp.curl != CURLE_OK) resp.curl_error = error;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &resp.content_length);
    if (resp.status / 100 != 2 || resp.curl != CURLE_OK) {
      if (r.sink) r.sink->resize(sink_size);  // nothing of a failed attempt stays
      parse_error(resp);
    }
    return resp;
  }

  enum class Verdict { kDone, kRetry, kFail };

  // Runs `r` until an answer worth keeping: returns it when its status is
  // 2xx or in `accept`, retries what may pass, throws for the rest. `op` and
  // `key` name it in messages. `judge`, if given, decides first.
  Response call(const char* op, const std::string& key, const Request& r,
                std::initializer_list<long> accept = {},
                const std::function<std::optional<Verdict>(Response&, int attempt)>& judge = {}) {
    auto start = Clock::now();
    const std::string payload_hash = sha256_hex(r.body);
    CurlLease lease(pool_);
    for (int attempt = 1;; ++attempt) {
      Response resp = perform(lease.handle, r, payload_hash);
      std::optional<Verdict> v;
      if (judge) v = judge(resp, attempt);
      if (!v) {
        if (resp.curl == CURLE_OK &&
            (resp.status / 100 == 2 ||
             std::find(accept.begin(), accept.end(), resp.status) != accept.end()))
          v = Verdict::kDone;
        else
          v = retryable(resp) ? Verdict::kRetry : Verdict::kFail;
      }
      if (*v == Verdict::kDone) return resp;
      if (*v == Verdict::kRetry && attempt < t_.max_attempts) {
        auto delay = backoff_delay(attempt, t_.base_delay, t_.max_delay);
        spdlog::warn("s3 store: {} of {}: {}; retrying in {} ms (attempt {} of {})", op,
                     object_url(key), describe(resp), delay.count(), attempt + 1, t_.max_attempts);
        std::this_thread::sleep_for(delay);
        continue;
      }
      std::string after = attempt > 1 ? " after " + std::to_string(attempt) + " attempts in " +
                                            seconds_text(Clock::now() - start)
                                      : "";
      throw Error("s3 store: " + std::string(op) + " of " + object_url(key) + " failed" + after +
                  ": " + describe(resp));
    }
  }

  // Every key under `prefix` (whole keys), page by page.
  std::vector<std::string> list_objects(const std::string& prefix) {
    std::vector<std::string> keys;
    std::string token;
    for (;;) {
      Request r;
      r.params = {
          {"list-type", "2"}, {"max-keys", std::to_string(t_.list_page_size)}, {"prefix", prefix}};
      if (!token.empty()) r.params.push_back({"continuation-token", token});
      Response resp = call("list", prefix, r);
      pugi::xml_document doc;
      pugi::xml_node result;
      if (doc.load_buffer(resp.body.data(), resp.body.size()))
        result = doc.child("ListBucketResult");
      if (!result)
        throw Error("s3 store: list of " + object_url(prefix) +
                    "* failed: unreadable answer: " + resp.body.substr(0, 200));
      for (pugi::xml_node c : result.children("Contents")) {
        std::string k = c.child_value("Key");
        if (k.starts_with(prefix)) keys.push_back(std::move(k));
      }
      if (std::string_view(result.child_value("IsTruncated")) != "true") break;
      token = result.child_value("NextContinuationToken");
      if (token.empty())
        throw Error("s3 store: list of " + object_url(prefix) +
                    "* failed: a truncated page without a continuation token");
    }
    return keys;
  }

  // One PutObject.
  void put_object(const std::string& k, std::string_view bytes) {
    Request r;
    r.method = "PUT";
    r.key = k;
    r.body = bytes;
    call("put", k, r);
  }

  void put_multipart(const std::string& k, std::string_view bytes) {
    std::string upload_id = start_multipart(k);
    try {
      // S3 takes at most 10,000 parts.
      size_t part = std::max(t_.part_size, (bytes.size() + kMaxParts - 1) / kMaxParts);
      std::vector<std::string> etags((bytes.size() + part - 1) / part);
      upload_parts(k, upload_id, bytes, part, etags);
      complete_multipart(k, upload_id, etags, bytes.size());
    } catch (...) {
      abort_multipart(k, upload_id);
      throw;
    }
  }

  // CreateMultipartUpload: the new upload's id.
  std::string start_multipart(const std::string& k) {
    Request start;
    start.method = "POST";
    start.key = k;
    start.params = {{"uploads", ""}};
    start.headers = {"Content-Type: application/octet-stream"};
    Response started = call("put (starting a multipart upload)", k, start);
    pugi::xml_document doc;
    std::string upload_id;
    if (doc.load_buffer(started.body.data(), started.body.size()))
      upload_id = doc.child("InitiateMultipartUploadResult").child_value("UploadId");
    if (upload_id.empty())
      throw Error("s3 store: put of " + object_url(k) +
                  " failed: no UploadId in the answer to CreateMultipartUpload: " +
                  started.body.substr(0, 200));
    return upload_id;
  }

  // UploadPart: part `number` (from 1) of an upload; returns its ETag.
  std::string upload_part(const std::string& k, const std::string& upload_id, size_t number,
                          std::string_view body) {
    Request p;
    p.method = "PUT";
    p.key = k;
    p.params = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
    p.body = body;
    std::string op = "put (part " + std::to_string(number) + ")";
    Response resp = call(op.c_str(), k, p);
    if (resp.etag.empty())
      throw Error("s3 store: put of " + object_url(k) + " failed: part " + std::to_string(number) +
                  " was stored without an ETag");
    return resp.etag;
  }

  // Uploads the parts, up to t_.parallel_parts at once (each on a handle,
  // and so a connection, of its own); the first failure stops the rest.
  void upload_parts(const std::string& k, const std::string& upload_id, std::string_view bytes,
                    size_t part, std::vector<std::string>& etags) {
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mu;
    auto uploader = [&] {
      for (size_t i; !failed && (i = next.fetch_add(1)) < etags.size();) {
        try {
          etags[i] = upload_part(k, upload_id, i + 1, bytes.substr(i * part, part));
        } catch (...) {
          std::lock_guard lock(error_mu);
          if (!error) error = std::current_exception();
          failed = true;
        }
      }
    };
    size_t threads = std::min<size_t>(std::max(t_.parallel_parts, 1), etags.size());
    std::vector<std::thread> helpers;
    for (size_t i = 1; i < threads; ++i) helpers.emplace_back(uploader);
    uploader();
    for (std::thread& t : helpers) t.join();
    if (error) std::rethrow_exception(error);
  }

  // CompleteMultipartUpload of the parts with these ETags, `size` bytes in all.
  void complete_multipart(const std::string& k, const std::string& upload_id,
                          const std::vector<std::string>& etags, uint64_t size) {
    std::string body =
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
    for (size_t i = 0; i < etags.size(); ++i)
      body += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
              xml_escape(etags[i]) + "</ETag></Part>";
    body += "</CompleteMultipartUpload>";
    Request r;
    r.method = "POST";
    r.key = k;
    r.params = {{"uploadId", upload_id}};
    r.body = body;
    r.headers = {"Content-Type: application/xml"};
    bool gone = false;
    call("put (completing a multipart upload)", k, r, {},
         [&](Response& resp, int) -> std::optional<Verdict> {
           if (resp.curl == CURLE_OK && resp.status == 200) {
             // A 200 may still carry an error, sent once the work had begun.
             parse_error(resp);
             if (resp.code.empty()) return Verdict::kDone;
             return retryable(resp) ? Verdict::kRetry : Verdict::kFail;
           }
           if (resp.status == 404 && resp.code == "NoSuchUpload") {
             gone = true;
             return Verdict::kDone;
           }
           return std::nullopt;
         });
    if (!gone) return;
    // The upload is gone: an earlier attempt whose answer was lost (ours, or
    // one curl repeated by itself on a connection that died) completed it,
    // if the object is there with the size we sent.
    Request head;
    head.method = "HEAD";
    head.key = k;
    Response h = call("put (checking a completed upload)", k, head, {404});
    if (h.status != 200 || h.content_length != curl_off_t(size))
      throw Error("s3 store: put of " + object_url(k) +
                  " failed: the multipart upload vanished before it was completed");
  }

  void abort_multipart(const std::string& k, const std::string& upload_id) noexcept {
    try {
      Request r;
      r.method = "DELETE";
      r.key = k;
      r.params = {{"uploadId", upload_id}};
      call("put (aborting a multipart upload)", k, r, {404});
    } catch (const std::exception& e) {
      spdlog::warn(
          "s3 store: could not abort multipart upload {} of {}: {}; its parts stay invisible "
          "(a lifecycle rule for incomplete uploads removes them)",
          upload_id, object_url(k), e.what());
    }
  }

  // Reads bytes [offset, offset + bytes) of the object `k`, whose version
  // has this ETag and this size, into `dst`: one ranged GET, with If-Match
  // so that S3 refuses a replaced object (412), and the answer's own ETag
  // compared too, for servers that ignore If-Match (s3rver).
  void read_range(const std::string& k, const std::string& etag, uint64_t size, uint64_t offset,
                  char* dst, size_t bytes) {
    std::string first = std::to_string(offset), last = std::to_string(offset + bytes - 1);
    Request r;
    r.key = k;
    r.into = dst;
    r.into_size = bytes;
    r.headers = {"Range: bytes=" + first + "-" + last, "If-Match: " + etag};
    std::string op = "read of bytes " + first + "-" + last;
    Response resp = call(op.c_str(), k, r, {404, 412});
    std::string why;
    if (resp.status == 404)
      why = "it was removed after it was opened";
    else if (resp.status == 412 || resp.etag != etag)
      why = "it was replaced after it was opened (ETag " + etag + " then, " +
            (resp.etag.empty() ? "another" : resp.etag) + " now)";
    else if (resp.status != 206 ||
             resp.content_range != "bytes " + first + "-" + last + "/" + std::to_string(size))
      why = "the answer is not the range asked for (HTTP " + std::to_string(resp.status) +
            ", Content-Range '" + resp.content_range + "')";
    else if (resp.into_bytes != bytes)
      why = "the answer holds " + std::to_string(resp.into_bytes) + " of the " +
            std::to_string(bytes) + " bytes asked for";
    if (!why.empty()) throw Error("s3 store: " + op + " of " + object_url(k) + " failed: " + why);
  }

  Config c_;
  S3Tuning t_;
  CurlHandlePool pool_;
};

// A value uploaded as it is written: kept until it reaches the multipart
// threshold, then uploaded in parts as each fills, up to
// kStreamPartsInFlight of them at once (on threads of their own) while the
// next fills. Committed, it is one PutObject if it stayed under the
// threshold (as put() would), else the upload's completion. Failed or
// destroyed uncommitted, it aborts the upload.
class S3Store::Writer final : public ValueWriter {
 public:
  Writer(S3Store& store, std::string k)
      : store_(store),
        k_(std::move(k)),
        part_(store.t_.part_size),
        first_(std::max(store.t_.multipart_threshold, part_)),
        in_flight_max_(
            std::min<size_t>(std::max(store.t_.parallel_parts, 1), kStreamPartsInFlight)) {}
  ~Writer() override {
    if (state_ == State::kOpen) discard();
  }

  void write(std::string_view bytes) override {
    check_open("write to");
    try {
      while (!bytes.empty()) {
        // Before the upload begins, up to the threshold; then a part at a time.
        size_t limit = upload_id_.empty() ? first_ : part_;
        size_t take = std::min(bytes.size(), limit - buffer_.size());
        if (buffer_.capacity() < buffer_.size() + take)
          buffer_.reserve(std::min(limit, std::max(2 * buffer_.capacity(), buffer_.size() + take)));
        buffer_.append(bytes.substr(0, take));
        bytes.remove_prefix(take);
        size_ += take;
        if (buffer_.size() == limit) send_full_parts();
      }
    } catch (...) {
      fail();
      throw;
    }
  }

  void commit() override {
    check_open("commit");
    try {
      if (upload_id_.empty()) {
        store_.put_object(k_, buffer_);
      } else {
        if (!buffer_.empty()) send(std::move(buffer_));
        while (!in_flight_.empty()) collect_oldest();
        store_.complete_multipart(k_, upload_id_, etags_, size_);
      }
    } catch (...) {
      fail();
      throw;
    }
    state_ = State::kCommitted;
    buffer_ = std::string();
  }

 private:
  enum class State { kOpen, kCommitted, kFailed };

  void check_open(const char* doing) const {
    if (state_ != State::kOpen)
      throw Error(std::string("s3 store: cannot ") + doing + " " + store_.object_url(k_) +
                  ": its writer has " + (state_ == State::kCommitted ? "committed" : "failed") +
                  " already");
  }

  // Uploads the buffer's whole parts, beginning the upload if need be.
  void send_full_parts() {
    if (upload_id_.empty()) upload_id_ = store_.start_multipart(k_);
    while (buffer_.size() >= part_) {
      std::string rest = buffer_.substr(part_);  // empty but at the first parts
      buffer_.resize(part_);
      send(std::move(buffer_));
      buffer_ = std::move(rest);
    }
    buffer_.reserve(part_);
  }

  void send(std::string part) {
    if (etags_.size() + in_flight_.size() == kMaxParts)
      throw Error("s3 store: put of " + store_.object_url(k_) + " failed: it has outgrown " +
                  std::to_string(kMaxParts) + " parts of " + std::to_string(part_) +
                  " bytes, S3's limit (raise the part size)");
    if (in_flight_.size() == in_flight_max_) collect_oldest();
    size_t number = etags_.size() + in_flight_.size() + 1;
    in_flight_.push_back(std::async(std::launch::async, [this, number, body = std::move(part)] {
      return store_.upload_part(k_, upload_id_, number, body);
    }));
  }

  // Waits for the oldest part in flight, and keeps its ETag (or throws its error).
  void collect_oldest() {
    std::future<std::string> oldest = std::move(in_flight_.front());
    in_flight_.pop_front();
    etags_.push_back(oldest.get());
  }

  void fail() noexcept {
    state_ = State::kFailed;
    discard();
  }

  // Waits for the parts in flight, then aborts the upload (if begun).
  void discard() noexcept {
    for (std::future<std::string>& f : in_flight_) f.wait();
    in_flight_.clear();
    if (!upload_id_.empty()) store_.abort_multipart(k_, upload_id_);
    upload_id_.clear();
    buffer_ = std::string();
  }

  S3Store& store_;
  const std::string k_;
  const size_t part_, first_, in_flight_max_;
  std::string buffer_;                              // written, not yet sent
  std::string upload_id_;                           // "" until the multipart upload begins
  std::deque<std::future<std::string>> in_flight_;  // parts sent, in order
  std::vector<std::string> etags_;                  // of the parts uploaded, in order
  uint64_t size_ = 0;
  State state_ = State::kOpen;
};

// Reads ranges of the version of an object it opened (see read_range).
// After a large read (a restore's segment), the ranges that come next are
// fetched ahead, read_ahead_ranges of
// read_ahead_bytes at once on threads of their own, and reads that follow
// are served from them: a restore of a large image has four requests of
// 8 MiB under way (parallel ranged GETs, as AWS advises for throughput)
// while it verifies and copies a segment, where it used to wait for one
// request per 4 MiB segment in turn. A read elsewhere drops them (after they arrive: their threads
// write into them). The value's first bytes, fetched by open_value, serve
// every read that lies within them.
class S3Store::Reader final : public ValueReader {
 public:
  Reader(S3Store& store, std::string k, uint64_t size, std::string etag, std::string first)
      : store_(store),
        k_(std::move(k)),
        size_(size),
        etag_(std::move(etag)),
        first_(std::move(first)) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, char* dst, size_t bytes) override {
    check_read_range(offset, bytes, size_, store_.object_url(k_));
    if (bytes == 0) return;
    bool from_ahead = !ahead_.empty() && ahead_.front().offset + ahead_.front().used == offset;
    next_ = offset + bytes;
    if (offset + bytes <= first_.size()) {
      std::memcpy(dst, first_.data() + offset, bytes);
    } else if (from_ahead) {
      take_ahead(dst, bytes);
    } else {
      ahead_.clear();
      store_.read_range(k_, etag_, size_, offset, dst, bytes);
    }
    if (from_ahead || bytes >= std::min(kLargeReadBytes, store_.tuning().read_ahead_bytes))
      read_ahead();
  }

 private:
  static constexpr size_t kLargeReadBytes = size_t(1) << 20;

  struct Range {
    uint64_t offset;
    size_t bytes;
    std::future<std::string> data;
    std::string got;  // data's, once taken
    size_t used = 0;  // of got, handed out already
  };

  // Copies the next `bytes` from the ranges ahead (which begin where this
  // read does), fetching the rest if they end before it does.
  void take_ahead(char* dst, size_t bytes) {
    while (bytes > 0 && !ahead_.empty()) {
      Range& r = ahead_.front();
      if (r.data.valid()) {
        try {
          r.got = r.data.get();
        } catch (...) {  // as read_range would have thrown
          ahead_.clear();
          throw;
        }
      }
      size_t n = std::min(bytes, r.bytes - r.used);
      std::memcpy(dst, r.got.data() + r.used, n);
      r.used += n, dst += n, bytes -= n;
      if (r.used == r.bytes) ahead_.pop_front();
    }
    if (bytes > 0) store_.read_range(k_, etag_, size_, next_ - bytes, dst, bytes);
  }

  // Keeps read_ahead_ranges ranges under way from next_ on.
  void read_ahead() {
    const S3Tuning& t = store_.tuning();
    uint64_t from = ahead_.empty() ? next_ : ahead_.back().offset + ahead_.back().bytes;
    while (ahead_.size() < size_t(std::max(t.read_ahead_ranges, 0)) && from < size_) {
      size_t n = size_t(std::min<uint64_t>(std::max<size_t>(t.read_ahead_bytes, 1), size_ - from));
      std::future<std::string> data = std::async(std::launch::async, [this, from, n] {
        std::string bytes = string_for_overwrite(n);
        store_.read_range(k_, etag_, size_, from, bytes.data(), n);
        return bytes;
      });
      ahead_.push_back(Range{from, n, std::move(data), {}, 0});
      from += n;
    }
  }

  S3Store& store_;
  const std::string k_;
  const uint64_t size_;
  const std::string etag_;
  const std::string first_;  // the value's bytes [0, first_.size())
  uint64_t next_ = 0;        // where the last read ended
  std::deque<Range> ahead_;  // contiguous, from next_ on
};

std::unique_ptr<ValueWriter> S3Store::put_stream(const std::string& key) {
  return std::make_unique<Writer>(*this, object_key(key));
}

// SIZE of a Content-Range "bytes 0-LAST/SIZE" that announces `got` bytes
// from the first; nullopt if it is not one.
std::optional<uint64_t> range_total(const std::string& content_range, uint64_t got) {
  if (got == 0) return std::nullopt;
  const std::string expected = "bytes 0-" + std::to_string(got - 1) + "/";
  if (content_range.compare(0, expected.size(), expected) != 0) return std::nullopt;
  const char* from = content_range.data() + expected.size();
  const char* end = content_range.data() + content_range.size();
  uint64_t size = 0;
  auto [stop, error] = std::from_chars(from, end, size);
  if (error != std::errc() || stop != end || from == end || size < got) return std::nullopt;
  return size;
}

// A GET of the value's first open_bytes (Range: bytes=0-N) gives its size
// (Content-Range), the ETag that pins the version, and those bytes: a value
// that small is opened and read with one request, where a HEAD and then a
// GET took two. An empty value has no byte to give (416, or an empty
// range), nor does a reader told to fetch none: then a HEAD gives size and
// ETag. (A HEAD answer has no body: a 404 for a missing bucket looks like
// one for a missing key.)
std::unique_ptr<ValueReader> S3Store::open_value(const std::string& key) {
  std::string k = object_key(key);
  auto refuse = [&](const std::string& why) {
    throw Error("s3 store: open of " + object_url(k) + " failed: " + why);
  };
  if (t_.open_bytes > 0) {
    std::string first = string_for_overwrite(t_.open_bytes);
    Request get;
    get.key = k;
    get.into = first.data();
    get.into_size = first.size();
    get.headers = {"Range: bytes=0-" + std::to_string(first.size() - 1)};
    Response resp = call("open", k, get, {404, 416}, [](Response& r, int) {
      return r.empty_range ? std::optional<Verdict>(Verdict::kDone) : std::nullopt;
    });
    if (resp.status == 404) {
      missing(resp, "open", k);
      return nullptr;
    }
    if (resp.status != 416 && !resp.empty_range) {
      // 206 and "bytes 0-LAST/SIZE"; or 200, the whole value, from a server
      // that ignores Range.
      uint64_t size = resp.into_bytes;
      if (resp.status == 206) {
        std::optional<uint64_t> total = range_total(resp.content_range, resp.into_bytes);
        if (!total || (*total > resp.into_bytes && resp.into_bytes < first.size()))
          refuse("the answer to a GET of its first bytes has Content-Range '" + resp.content_range +
                 "' for " + std::to_string(resp.into_bytes) + " bytes");
        size = *total;
      } else if (resp.status != 200 || resp.content_length != curl_off_t(resp.into_bytes)) {
        refuse("the answer to a GET of its first bytes is HTTP " + std::to_string(resp.status) +
               " with " + std::to_string(resp.into_bytes) + " bytes");
      }
      if (resp.etag.empty()) refuse("the answer to a GET has no ETag");
      first.resize(resp.into_bytes);
      if (first.size() < first.capacity() / 2) first.shrink_to_fit();  // a small value
      return std::make_unique<Reader>(*this, k, size, resp.etag, std::move(first));
    }
  }
  Request head;
  head.method = "HEAD";
  head.key = k;
  Response resp = call("open", k, head, {404});
  if (resp.status == 404) return nullptr;
  if (resp.content_length < 0 || resp.etag.empty())
    refuse("the answer to HEAD has no Content-Length or no ETag");
  return std::make_unique<Reader>(*this, k, uint64_t(resp.content_length), resp.etag,
                                  std::string());
}

}  // namespace

std::unique_ptr<CheckpointStore> open_s3_store(const std::string& rest, const StoreOptions& o,
                                               const S3Tuning& tuning) {
  auto store = std::make_unique<S3Store>(configure(rest), tuning);
  if (!o.create) store->check_reachable();
  return store;
}

std::unique_ptr<CheckpointStore> open_s3_store(const std::string& rest, const StoreOptions& o) {
  return open_s3_store(rest, o, S3Tuning{});
}

}  // namespace kappa::detail
