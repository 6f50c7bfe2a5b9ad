// Listener, Client and their connections: CPython's multiprocessing.connection over TCP and
// Unix-domain sockets, with CPython's wire format and authkey handshake, so that a C++ program and
// a Python program talk to each other.
//
//   auto listener = mproc::Listener({"127.0.0.1", 0}, "secret");      // port 0: any free port
//   auto client = mproc::Client(listener.address(), "secret");       // in another process
//   auto conn = listener.accept();
//   client.send_bytes(bytes);  std::vector<std::byte> m = conn.recv_bytes();
//
// On the wire (multiprocessing/connection.py): each message is a 4-byte big-endian length and the
// bytes; a message of 2 GiB or more is -1 and an 8-byte length. The handshake, when an authkey is
// given, is CPython's in both directions (the server challenges first, then the client):
// "#CHALLENGE#{sha256}" and 40 random bytes, answered with "{sha256}" and the HMAC-SHA256 of the
// whole challenge; CPython 3.11's legacy form (20 random bytes, answered with a bare HMAC-MD5) is
// answered and accepted too, so 3.11, 3.12 and 3.13 all interoperate. A wrong key is
// AuthenticationError on both sides ("digest received was wrong" / "digest sent was rejected").
//
// A received message is read as it arrives: a peer that announces a huge length and sends
// nothing makes nothing allocated; recv_bytes(maxlength) refuses a longer message with
// OSError("bad message length"), as CPython does.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/errors.hpp"
#include "mproc/export.hpp"
#include "mproc/pickle.hpp"

namespace mproc {

/// Where a Listener listens: a TCP host and port (CPython's ('127.0.0.1', 5000) tuple), or a
/// Unix-domain socket path (a leading '\0' for an abstract name).
class MPROC_API Address {
 public:
  Address(std::string host, int port) : host_(std::move(host)), port_(port), tcp_(true) {}
  /// A Unix-domain socket path.
  Address(std::string path) : host_(std::move(path)), port_(0), tcp_(false) {}  // NOLINT: as CPython's str
  Address(const char* path) : Address(std::string(path)) {}                     // NOLINT

  [[nodiscard]] bool is_tcp() const noexcept { return tcp_; }
  [[nodiscard]] const std::string& host() const noexcept { return host_; }
  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] const std::string& path() const noexcept { return host_; }
  /// "127.0.0.1:5000" or the path.
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const Address&, const Address&) = default;

 private:
  std::string host_;
  int port_;
  bool tcp_;
};

/// One end of a socket connection (CPython's Connection over a socket). Movable; closes on
/// destruction.
class MPROC_API SocketConnection {
 public:
  SocketConnection() = default;
  SocketConnection(SocketConnection&& other) noexcept;
  SocketConnection& operator=(SocketConnection&& other) noexcept;
  SocketConnection(const SocketConnection&) = delete;
  SocketConnection& operator=(const SocketConnection&) = delete;
  ~SocketConnection();

  /// One message: the bytes, framed as CPython frames them.
  void send_bytes(std::span<const std::byte> message);
  void send_bytes(std::string_view message) {
    send_bytes(std::as_bytes(std::span(message.data(), message.size())));
  }
  /// The next message; EOFError when the peer closed. maxlength: OSError("bad message length")
  /// for a longer one, after which the connection is closed (its stream is out of step).
  std::vector<std::byte> recv_bytes(std::optional<std::size_t> maxlength = std::nullopt);
  /// recv_bytes as text (the bytes as they are).
  std::string recv_text(std::optional<std::size_t> maxlength = std::nullopt);
  /// Whether a message (or the end of the stream) is waiting; timeout nullopt: wait for one.
  bool poll(std::optional<std::chrono::duration<double>> timeout = std::chrono::duration<double>(0));

  /// A value through mproc's codec (between mproc peers).
  template <class T>
  void send(const T& value) {
    std::vector<std::byte> bytes;
    Encoder out(bytes);
    out.put(value);
    if (!out.fds().empty()) throw ValueError("a value holding a shared object cannot be sent over a socket");
    send_bytes(bytes);
  }
  template <class T>
  T recv() {
    const std::vector<std::byte> bytes = recv_bytes();
    Decoder in(bytes);
    T value = in.get<T>();
    in.expect_end();
    return value;
  }

  /// A value as a pickle (mproc/pickle.hpp): what Python's Connection.send / recv carry. Only
  /// plain data is loaded; anything else is a DecodeError.
  template <class T>
  void send_pickle(const T& value) {
    send_bytes(pickle::dumps(pickle::to_value(value)));
  }
  template <class T = pickle::Value>
  T recv_pickle() {
    return pickle::from_value<T>(pickle::loads(recv_bytes()));
  }

  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept { return fd_ < 0; }
  /// The socket; OSError("handle is closed") once closed.
  [[nodiscard]] int fileno() const;

  /// Adopts a connected stream socket (owned from now on).
  explicit SocketConnection(int fd) noexcept : fd_(fd) {}

 private:
  void read_exactly(std::byte* out, std::size_t n);
  void check_open() const;
  int fd_ = -1;
};

/// CPython's Listener: binds and listens; accept() returns authenticated connections.
class MPROC_API Listener {
 public:
  /// authkey nullopt: no authentication (as CPython's authkey=None).
  explicit Listener(const Address& address, std::optional<std::string> authkey = std::nullopt,
                    int backlog = 1);
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();

  /// The next connection, after the handshake when there is an authkey (AuthenticationError when
  /// the peer's key is wrong; the connection is then closed). OSError("listener is closed").
  SocketConnection accept();
  /// The address bound (a TCP port 0 resolved to the real one).
  [[nodiscard]] const Address& address() const;
  /// The peer of the last accept(), for TCP.
  [[nodiscard]] std::optional<Address> last_accepted() const { return last_accepted_; }
  /// Idempotent; removes a Unix socket's path.
  void close() noexcept;
  /// The listening socket (-1 once closed): poll it, or shutdown(2) it to wake an accept().
  [[nodiscard]] int fileno() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  std::optional<Address> address_;
  std::optional<Address> last_accepted_;
  std::optional<std::string> authkey_;
};

/// CPython's Client: connects, then answers the listener's challenge and challenges it in turn
/// when there is an authkey.
MPROC_API SocketConnection Client(const Address& address, std::optional<std::string> authkey = std::nullopt);

/// CPython's multiprocessing.connection.wait() over socket connections: blocks until at least one
/// has a message (or its peer closed: recv then raises EOFError) or the timeout passes (nullopt:
/// no limit), and returns those that are ready, in the order given; empty on timeout. OSError for
/// a closed connection in the list. (mproc/connection.hpp has the same for shared-memory Pipes.)
MPROC_API std::vector<SocketConnection*> wait(std::span<SocketConnection* const> connections,
                                              std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
MPROC_API std::vector<SocketConnection*> wait(std::initializer_list<SocketConnection*> connections,
                                              std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

/// The two halves of the handshake (CPython's public helpers), for connections made otherwise.
MPROC_API void deliver_challenge(SocketConnection& connection, std::string_view authkey);
MPROC_API void answer_challenge(SocketConnection& connection, std::string_view authkey);

/// An Address passes to Process targets (as CPython's address tuples and strings do).
template <>
struct codec<Address> {
  static void encode(Encoder& out, const Address& a) {
    out.put(a.is_tcp());
    out.put(a.host());
    out.put(a.port());
  }
  static Address decode(Decoder& in) {
    const bool tcp = in.get<bool>();
    std::string host = in.get<std::string>();
    const int port = in.get<int>();
    return tcp ? Address(std::move(host), port) : Address(std::move(host));
  }
};

}  // namespace mproc
