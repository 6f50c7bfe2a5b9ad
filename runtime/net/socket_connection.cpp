// Listener, Client and SocketConnection (include/mproc/listener.hpp): CPython's framing and
// authkey handshake (multiprocessing/connection.py, 3.11 to 3.13), HMAC from OpenSSL.
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "mproc/listener.hpp"
#include "mproc/synchronize.hpp"
#include "platform/linux/fd.hpp"
#include "platform/linux/socket.hpp"

namespace mproc {

namespace {

constexpr std::string_view kChallenge = "#CHALLENGE#";
constexpr std::string_view kWelcome = "#WELCOME#";
constexpr std::string_view kFailure = "#FAILURE#";
constexpr std::size_t kMessageLength = 40;    // random bytes of a modern challenge
constexpr std::size_t kLegacyChallenge = 20;  // CPython 3.11's challenge: bare random bytes
constexpr std::size_t kLegacyDigest = 16;     // and its answer: a bare HMAC-MD5
constexpr std::size_t kMaxHandshakeMessage = 256;
constexpr std::size_t kReadChunk = std::size_t{1} << 20;

[[noreturn]] void throw_os(std::error_code code, const std::string& what) {
  throw_os_error(code, what);
}

const EVP_MD* digest_by_name(std::string_view name) {
  if (name == "md5") return EVP_md5();
  if (name == "sha256") return EVP_sha256();
  if (name == "sha384") return EVP_sha384();
  if (name == "sha3_256") return EVP_sha3_256();
  if (name == "sha3_384") return EVP_sha3_384();
  return nullptr;
}

std::string hmac(std::string_view digest, std::string_view key, std::string_view message) {
  const EVP_MD* md = digest_by_name(digest);
  if (md == nullptr) throw AuthenticationError("digest " + std::string(digest) + " unsupported");
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(md, key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &length) == nullptr) {
    throw AuthenticationError("HMAC-" + std::string(digest) + " failed");
  }
  return std::string(reinterpret_cast<const char*>(out), length);
}

// CPython's _get_digest_name_and_payload: the legacy lengths are HMAC-MD5 without a prefix;
// otherwise "{name}" must lead, with a name from the allowed list.
std::pair<std::string, std::string_view> digest_and_payload(std::string_view message) {
  if (message.size() == kLegacyChallenge || message.size() == kLegacyDigest) return {"md5", message};
  if (message.starts_with('{')) {
    const auto curly = message.find('}', 1);
    if (curly != std::string_view::npos && curly <= 21) {
      const std::string name(message.substr(1, curly - 1));
      if (digest_by_name(name) != nullptr) return {name, message.substr(curly + 1)};
    }
  }
  throw AuthenticationError("unsupported message length, missing digest prefix, or unsupported digest");
}

std::string as_text(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

// --- Address --------------------------------------------------------------------------------

std::string Address::to_string() const {
  if (!tcp_) return host_;
  return host_.find(':') != std::string::npos ? "[" + host_ + "]:" + std::to_string(port_)
                                              : host_ + ":" + std::to_string(port_);
}

// --- SocketConnection -------------------------------------------------------------------------

SocketConnection::SocketConnection(SocketConnection&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

SocketConnection& SocketConnection::operator=(SocketConnection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

SocketConnection::~SocketConnection() {
  close();
}

void SocketConnection::close() noexcept {
  if (fd_ >= 0) platform::UniqueFd(std::exchange(fd_, -1)).reset();
}

void SocketConnection::check_open() const {
  if (fd_ < 0) throw OSError(EBADF, "handle is closed");
}

int SocketConnection::fileno() const {
  check_open();
  return fd_;
}

void SocketConnection::send_bytes(std::span<const std::byte> message) {
  check_open();
  std::array<unsigned char, 12> header{};
  std::size_t header_size = 4;
  const std::uint64_t n = message.size();
  if (n > 0x7fffffffULL) {
    header = {0xff, 0xff, 0xff, 0xff};
    for (int i = 0; i < 8; ++i) header[4 + i] = static_cast<unsigned char>(n >> (56 - 8 * i));
    header_size = 12;
  } else {
    for (int i = 0; i < 4; ++i) header[i] = static_cast<unsigned char>(n >> (24 - 8 * i));
  }
  // Small messages in one send, as CPython does up to 16 KiB: one segment on the wire.
  if (n <= 16384) {
    std::array<std::byte, 16384 + 12> frame;
    std::memcpy(frame.data(), header.data(), header_size);
    if (n != 0) std::memcpy(frame.data() + header_size, message.data(), n);
    if (auto r = platform::send_all(fd_, frame.data(), header_size + n); !r) throw_os(r.error(), "send");
    return;
  }
  if (auto r = platform::send_all(fd_, header.data(), header_size); !r) throw_os(r.error(), "send");
  if (auto r = platform::send_all(fd_, message.data(), n); !r) throw_os(r.error(), "send");
}

void SocketConnection::read_exactly(std::byte* out, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    auto r = platform::recv_some(fd_, out + got, n - got);
    if (!r) throw_os(r.error(), "recv");
    if (*r == 0) {
      if (got == 0) throw EOFError("the connection was closed by its peer");
      throw OSError(EPIPE, "got end of file during message");
    }
    got += *r;
  }
}

std::vector<std::byte> SocketConnection::recv_bytes(std::optional<std::size_t> maxlength) {
  check_open();
  std::byte head[4];
  read_exactly(head, 4);
  std::int64_t size = 0;
  std::uint32_t raw = 0;
  for (std::byte b : head) raw = (raw << 8) | std::to_integer<std::uint32_t>(b);
  size = static_cast<std::int32_t>(raw);
  std::uint64_t length = 0;
  if (size == -1) {
    std::byte big[8];
    read_exactly(big, 8);
    for (std::byte b : big) length = (length << 8) | std::to_integer<std::uint64_t>(b);
  } else if (size < 0) {
    close();
    throw OSError(EPROTO, "bad message length");
  } else {
    length = static_cast<std::uint64_t>(size);
  }
  if (maxlength && length > *maxlength) {
    close();  // the rest of the message is still in the stream: nothing after it can be read
    throw OSError(EMSGSIZE, "bad message length");
  }
  // Grown as the bytes arrive: a peer announcing a huge length costs only what it sends.
  std::vector<std::byte> out;
  while (out.size() < length) {
    const std::size_t step =
        static_cast<std::size_t>(std::min<std::uint64_t>(length - out.size(), kReadChunk));
    const std::size_t at = out.size();
    out.resize(at + step);
    read_exactly(out.data() + at, step);
  }
  return out;
}

std::string SocketConnection::recv_text(std::optional<std::size_t> maxlength) {
  return as_text(recv_bytes(maxlength));
}

bool SocketConnection::poll(std::optional<std::chrono::duration<double>> timeout) {
  check_open();
  long long ns = -1;
  if (timeout) ns = std::max<long long>(0, static_cast<long long>(timeout->count() * 1e9));
  auto r = platform::wait_readable(fd_, ns);
  if (!r) throw_os(r.error(), "poll");
  return *r;
}

std::vector<SocketConnection*> wait(std::span<SocketConnection* const> connections,
                                    std::optional<std::chrono::nanoseconds> timeout) {
  std::vector<int> fds;
  fds.reserve(connections.size());
  for (SocketConnection* c : connections) fds.push_back(c->fileno());  // OSError when closed
  std::unique_ptr<bool[]> ready(new bool[fds.size()]());
  // A signal (EINTR) restarts the wait for the time that is left, as CPython does (PEP 475).
  const auto deadline = detail::deadline_after(timeout.value_or(std::chrono::nanoseconds::max()));
  for (;;) {
    long long ns = -1;
    if (deadline) {
      ns = std::max<long long>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      *deadline - std::chrono::steady_clock::now())
                                      .count());
    }
    auto r = platform::poll_readable(fds, std::span<bool>(ready.get(), fds.size()), ns);
    if (r) break;
    if (r.error() != std::error_code(EINTR, std::system_category())) throw_os(r.error(), "poll");
  }
  std::vector<SocketConnection*> out;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (ready[i]) out.push_back(connections[i]);
  }
  return out;
}

std::vector<SocketConnection*> wait(std::initializer_list<SocketConnection*> connections,
                                    std::optional<std::chrono::nanoseconds> timeout) {
  return wait(std::span<SocketConnection* const>(connections.begin(), connections.size()), timeout);
}

// --- the handshake -----------------------------------------------------------------------------

void deliver_challenge(SocketConnection& connection, std::string_view authkey) {
  std::string random(kMessageLength, '\0');
  if (auto r = platform::random_bytes(random.data(), random.size()); !r) throw_os(r.error(), "getrandom");
  const std::string message = "{sha256}" + random;
  connection.send_bytes(std::string(kChallenge) + message);
  const std::string response = connection.recv_text(kMaxHandshakeMessage);
  bool ok = false;
  try {
    const auto [digest, mac] = digest_and_payload(response);
    const std::string expected = hmac(digest, authkey, message);
    ok = expected.size() == mac.size() && CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) == 0;
  } catch (const AuthenticationError&) {
    ok = false;
  }
  if (!ok) {
    try {
      connection.send_bytes(kFailure);
    } catch (const Error&) {
    }
    throw AuthenticationError("digest received was wrong");
  }
  connection.send_bytes(kWelcome);
}

void answer_challenge(SocketConnection& connection, std::string_view authkey) {
  const std::string challenge = connection.recv_text(kMaxHandshakeMessage);
  if (!challenge.starts_with(kChallenge)) {
    throw AuthenticationError("Protocol error, expected challenge");
  }
  const std::string_view message = std::string_view(challenge).substr(kChallenge.size());
  if (message.size() < kLegacyChallenge) {
    throw AuthenticationError("challenge too short: " + std::to_string(message.size()) + " bytes");
  }
  const auto [digest, payload] = digest_and_payload(message);
  (void)payload;
  // The MAC covers the whole message, its "{digest}" prefix included; a legacy (3.11) challenge
  // gets a bare HMAC-MD5, a modern one the prefixed form.
  const std::string mac = hmac(digest, authkey, message);
  const bool legacy = message.size() == kLegacyChallenge;
  connection.send_bytes(legacy ? mac : "{" + digest + "}" + mac);
  const std::string welcome = connection.recv_text(kMaxHandshakeMessage);
  if (welcome != kWelcome) throw AuthenticationError("digest sent was rejected");
}

// --- Listener and Client ---------------------------------------------------------------------

Listener::Listener(const Address& address, std::optional<std::string> authkey, int backlog)
    : authkey_(std::move(authkey)) {
  if (address.is_tcp()) {
    if (address.port() < 0 || address.port() > 65535) throw ValueError("port must be 0-65535");
    auto bound = platform::listen_tcp(address.host(), static_cast<std::uint16_t>(address.port()), backlog);
    if (!bound) throw_os(bound.error(), "cannot listen on " + address.to_string());
    fd_ = bound->fd.release();
    address_ = Address(bound->host, bound->port);
  } else {
    auto fd = platform::listen_unix(address.path(), backlog);
    if (!fd) throw_os(fd.error(), "cannot listen on " + address.path());
    fd_ = fd->release();
    address_ = address;
  }
}

Listener::Listener(Listener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      address_(std::move(other.address_)),
      last_accepted_(std::move(other.last_accepted_)),
      authkey_(std::move(other.authkey_)) {
  other.address_.reset();
}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    address_ = std::move(other.address_);
    other.address_.reset();
    last_accepted_ = std::move(other.last_accepted_);
    authkey_ = std::move(other.authkey_);
  }
  return *this;
}

Listener::~Listener() {
  close();
}

void Listener::close() noexcept {
  if (fd_ < 0) return;
  platform::UniqueFd(std::exchange(fd_, -1)).reset();
  if (address_ && !address_->is_tcp()) platform::unlink_socket_path(address_->path());
}

const Address& Listener::address() const {
  if (!address_ || fd_ < 0) throw OSError(EBADF, "listener is closed");
  return *address_;
}

SocketConnection Listener::accept() {
  if (fd_ < 0) throw OSError(EBADF, "listener is closed");
  std::string host;
  std::uint16_t port = 0;
  auto fd = platform::accept_connection(fd_, &host, &port);
  if (!fd) throw_os(fd.error(), "accept");
  SocketConnection connection(fd->release());
  if (address_->is_tcp()) last_accepted_ = Address(host, port);
  if (authkey_) {
    deliver_challenge(connection, *authkey_);
    answer_challenge(connection, *authkey_);
  }
  return connection;
}

SocketConnection Client(const Address& address, std::optional<std::string> authkey) {
  Expected<platform::UniqueFd> fd =
      address.is_tcp() ? platform::connect_tcp(address.host(), static_cast<std::uint16_t>(address.port()))
                       : platform::connect_unix(address.path());
  if (!fd) throw_os(fd.error(), "cannot connect to " + address.to_string());
  SocketConnection connection(fd->release());
  if (authkey) {
    answer_challenge(connection, *authkey);
    deliver_challenge(connection, *authkey);
  }
  return connection;
}

}  // namespace mproc
