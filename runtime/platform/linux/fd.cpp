#include "platform/linux/fd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <iterator>
#include <memory>
#include <new>

namespace mproc::platform {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Expected<UniqueFd> dup_cloexec(int fd) noexcept {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return unexpected_errno(errno);
  return UniqueFd(copy);
}

Expected<void> set_cloexec(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) return unexpected_errno(errno);
  return {};
}

Expected<std::pair<UniqueFd, UniqueFd>> make_pipe() noexcept {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return unexpected_errno(errno);
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Expected<std::pair<UniqueFd, UniqueFd>> make_socketpair() noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return unexpected_errno(errno);
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

bool peer_hung_up(int fd) noexcept {
  pollfd p{fd, POLLRDHUP, 0};
  const int n = retry_eintr([&] { return ::poll(&p, 1, 0); });
  return n == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) != 0;
}

Expected<bool> wait_readable(int fd, long long timeout_ns) noexcept {
  timespec deadline{};
  if (timeout_ns >= 0) {
    ::clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ns / 1'000'000'000;
    deadline.tv_nsec += timeout_ns % 1'000'000'000;
    if (deadline.tv_nsec >= 1'000'000'000) {
      deadline.tv_sec += 1;
      deadline.tv_nsec -= 1'000'000'000;
    }
  }
  for (;;) {
    timespec left{};
    timespec* left_ptr = nullptr;
    if (timeout_ns >= 0) {
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      long long ns = (deadline.tv_sec - now.tv_sec) * 1'000'000'000LL + (deadline.tv_nsec - now.tv_nsec);
      if (ns < 0) ns = 0;
      left = {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      left_ptr = &left;
    }
    pollfd p{fd, POLLIN, 0};
    int rc = ::ppoll(&p, 1, left_ptr, nullptr);
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return unexpected_errno(errno);
  }
}

Expected<int> poll_readable(std::span<const int> fds, std::span<bool> ready, long long timeout_ns) noexcept {
  if (ready.size() < fds.size()) return unexpected_errno(EINVAL);
  pollfd few[8];
  std::unique_ptr<pollfd[]> many;  // more than 8: one allocation (a wait over many connections)
  pollfd* polls = few;
  if (fds.size() > std::size(few)) {
    many.reset(new (std::nothrow) pollfd[fds.size()]);
    if (!many) return unexpected_errno(ENOMEM);
    polls = many.get();
  }
  for (std::size_t i = 0; i < fds.size(); ++i) polls[i] = {fds[i], POLLIN, 0};
  timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000), static_cast<long>(timeout_ns % 1'000'000'000)};
  const int rc = ::ppoll(polls, fds.size(), timeout_ns < 0 ? nullptr : &ts, nullptr);
  if (rc < 0) return unexpected_errno(errno);  // EINTR included: the caller loops anyway
  for (std::size_t i = 0; i < fds.size(); ++i) ready[i] = polls[i].revents != 0;
  return rc;
}

Expected<void> write_all(int fd, const void* data, std::size_t size) noexcept {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = retry_eintr([&] { return ::write(fd, p, size); });
    if (n < 0) return unexpected_errno(errno);
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return {};
}

Expected<std::size_t> read_full(int fd, void* data, std::size_t size) noexcept {
  auto* p = static_cast<char*>(data);
  std::size_t got = 0;
  while (got < size) {
    ssize_t n = retry_eintr([&] { return ::read(fd, p + got, size - got); });
    if (n < 0) return unexpected_errno(errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

}  // namespace mproc::platform
