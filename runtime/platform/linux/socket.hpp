// Stream sockets for Listener and Client (TCP over IPv4/IPv6 and Unix-domain), and random bytes
// for authentication challenges. Every call retries EINTR; sends never raise SIGPIPE.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "mproc/expected.hpp"
#include "platform/linux/fd.hpp"

namespace mproc::platform {

struct BoundSocket {
  UniqueFd fd;
  std::string host;  // TCP: the address bound, as text
  std::uint16_t port = 0;
};

/// A listening TCP socket on host:port (port 0: any free port; SO_REUSEADDR, as CPython's).
Expected<BoundSocket> listen_tcp(const std::string& host, std::uint16_t port, int backlog) noexcept;
/// A listening Unix-domain socket at path (a leading '\0' makes it abstract).
Expected<UniqueFd> listen_unix(const std::string& path, int backlog) noexcept;
/// The next connection; the peer's address for TCP.
Expected<UniqueFd> accept_connection(int listener, std::string* peer_host, std::uint16_t* peer_port) noexcept;
Expected<UniqueFd> connect_tcp(const std::string& host, std::uint16_t port) noexcept;
Expected<UniqueFd> connect_unix(const std::string& path) noexcept;

/// send(2) of the whole buffer (MSG_NOSIGNAL).
Expected<void> send_all(int fd, const void* data, std::size_t size) noexcept;
/// recv(2) of at most size bytes; 0 at end of stream.
Expected<std::size_t> recv_some(int fd, void* data, std::size_t size) noexcept;
/// SO_RCVTIMEO: a recv(2) that waits longer fails with EAGAIN; zero waits without limit again.
Expected<void> set_receive_timeout(int fd, std::chrono::milliseconds timeout) noexcept;
/// getrandom(2).
Expected<void> random_bytes(void* data, std::size_t size) noexcept;
/// shutdown(2) of both directions: wakes a thread blocked in accept() or recv() on it.
void shutdown_socket(int fd) noexcept;
/// unlink(2) of a Unix socket's path (nothing for an abstract one).
void unlink_socket_path(const std::string& path) noexcept;

}  // namespace mproc::platform
