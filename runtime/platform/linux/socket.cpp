// Stream sockets (socket.hpp).
#include "platform/linux/socket.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mproc::platform {

namespace {

// getaddrinfo for a stream socket; EAI errors become EADDRNOTAVAIL (no such host).
Expected<addrinfo*> resolve(const std::string& host, std::uint16_t port, bool passive) noexcept {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  const std::string service = std::to_string(port);
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) return unexpected_errno(rc == EAI_SYSTEM ? errno : EADDRNOTAVAIL);
  return found;
}

bool fill_unix(const std::string& path, sockaddr_un& sa, socklen_t& len) noexcept {
  sa = {};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path) return false;
  std::memcpy(sa.sun_path, path.data(), path.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '\0' ? 0 : 1));
  return true;
}

// Makes a stream socket for each address getaddrinfo gives for host:port and hands it to
// use(fd, ai), which returns 0 to keep it or an errno to try the next address.
template <class Use>
Expected<UniqueFd> first_working(const std::string& host, std::uint16_t port, bool passive, int fallback,
                                 Use&& use) noexcept {
  auto found = resolve(host, port, passive);
  if (!found) return unexpected(found.error());
  int last = fallback;
  for (addrinfo* ai = *found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    last = !fd ? errno : use(fd.get(), ai);
    if (last == 0) {
      ::freeaddrinfo(*found);
      return fd;
    }
  }
  ::freeaddrinfo(*found);
  return unexpected_errno(last);
}

void no_delay(int fd) noexcept {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on Unix sockets
}

}  // namespace

Expected<BoundSocket> listen_tcp(const std::string& host, std::uint16_t port, int backlog) noexcept {
  auto fd = first_working(host, port, true, EADDRNOTAVAIL, [&](int s, const addrinfo* ai) {
    const int one = 1;
    (void)::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    return ::bind(s, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(s, backlog) == 0 ? 0 : errno;
  });
  if (!fd) return unexpected(fd.error());
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&ss), &len);
  char text[INET6_ADDRSTRLEN] = {};
  BoundSocket out;
  if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
    out.port = ntohs(in.sin_port);
  } else {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    out.port = ntohs(in6.sin6_port);
  }
  out.host = text;
  out.fd = std::move(*fd);
  return out;
}

Expected<UniqueFd> listen_unix(const std::string& path, int backlog) noexcept {
  sockaddr_un sa;
  socklen_t len = 0;
  if (!fill_unix(path, sa, len)) return unexpected_errno(ENAMETOOLONG);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return unexpected_errno(errno);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0) return unexpected_errno(errno);
  if (::listen(fd.get(), backlog) != 0) return unexpected_errno(errno);
  return fd;
}

Expected<UniqueFd> accept_connection(int listener, std::string* peer_host,
                                     std::uint16_t* peer_port) noexcept {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int raw = ::accept4(listener, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (raw < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return unexpected_errno(errno);
    }
    UniqueFd fd(raw);
    char text[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
      const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
      ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
      if (peer_port != nullptr) *peer_port = ntohs(in.sin_port);
      no_delay(fd.get());
    } else if (ss.ss_family == AF_INET6) {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(ss);
      ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
      if (peer_port != nullptr) *peer_port = ntohs(in6.sin6_port);
      no_delay(fd.get());
    }
    if (peer_host != nullptr) *peer_host = text;
    return fd;
  }
}

Expected<UniqueFd> connect_tcp(const std::string& host, std::uint16_t port) noexcept {
  auto fd = first_working(host, port, false, ECONNREFUSED, [](int s, const addrinfo* ai) {
    int rc = 0;
    do {
      rc = ::connect(s, ai->ai_addr, ai->ai_addrlen);
    } while (rc != 0 && errno == EINTR);
    return rc == 0 ? 0 : errno;
  });
  if (fd) no_delay(fd->get());
  return fd;
}

Expected<UniqueFd> connect_unix(const std::string& path) noexcept {
  sockaddr_un sa;
  socklen_t len = 0;
  if (!fill_unix(path, sa, len)) return unexpected_errno(ENAMETOOLONG);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return unexpected_errno(errno);
  int rc = 0;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), len);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return unexpected_errno(errno);
  return fd;
}

namespace {
// Calls step(p, left) until it has covered size bytes; step returns the bytes it did, or -1 with
// errno (EINTR: again).
template <class Step>
Expected<void> whole(void* data, std::size_t size, Step&& step) noexcept {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = step(p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected_errno(errno);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return {};
}
}  // namespace

Expected<void> send_all(int fd, const void* data, std::size_t size) noexcept {
  return whole(const_cast<void*>(data), size,
               [fd](const char* p, std::size_t n) { return ::send(fd, p, n, MSG_NOSIGNAL); });
}

Expected<std::size_t> recv_some(int fd, void* data, std::size_t size) noexcept {
  for (;;) {
    const ssize_t n = ::recv(fd, data, size, 0);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return unexpected_errno(errno);
  }
}

Expected<void> set_receive_timeout(int fd, std::chrono::milliseconds timeout) noexcept {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return unexpected_errno(errno);
  return {};
}

Expected<void> random_bytes(void* data, std::size_t size) noexcept {
  return whole(data, size, [](char* p, std::size_t n) { return ::getrandom(p, n, 0); });
}

void shutdown_socket(int fd) noexcept {
  (void)::shutdown(fd, SHUT_RDWR);
}

void unlink_socket_path(const std::string& path) noexcept {
  if (!path.empty() && path[0] != '\0') (void)::unlink(path.c_str());
}

}  // namespace mproc::platform
