// File descriptors: an owning handle and the EINTR discipline every system call site follows.
#pragma once

#include <cerrno>
#include <span>
#include <utility>

#include "mproc/expected.hpp"

namespace mproc::platform {

/// Retries a system call while it fails with EINTR. Returns the call's result; errno is left as
/// the call set it.
template <class F>
auto retry_eintr(F&& call) {
  for (;;) {
    auto rc = call();
    if (rc != -1 || errno != EINTR) return rc;
  }
}

/// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  /// Gives up ownership without closing.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes the held descriptor (if any) and takes fd. close() errors are ignored: after
  /// close(2) fails the descriptor is released anyway on Linux, and retrying could close another.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

/// A duplicate of fd with O_CLOEXEC set.
Expected<UniqueFd> dup_cloexec(int fd) noexcept;

/// Sets close-on-exec on a descriptor we were handed; fails (EBADF) when fd is not open.
Expected<void> set_cloexec(int fd) noexcept;

/// pipe2(O_CLOEXEC): {read end, write end}.
Expected<std::pair<UniqueFd, UniqueFd>> make_pipe() noexcept;

/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): two connected ends. mproc's connections use
/// one as a liveness token: when every descriptor of one end is closed (also by the kernel when
/// its holders die), the other end reports a hang-up.
Expected<std::pair<UniqueFd, UniqueFd>> make_socketpair() noexcept;

/// True when every descriptor of fd's peer end is closed (POLLHUP / POLLRDHUP), without blocking.
bool peer_hung_up(int fd) noexcept;

/// Blocks until fd is readable or the deadline passes. timeout_ns < 0 waits forever.
/// Returns true when readable (or hung up), false on timeout.
Expected<bool> wait_readable(int fd, long long timeout_ns) noexcept;

/// Waits until at least one of fds is readable (or hung up) or the timeout passes (timeout_ns < 0:
/// forever). Sets ready[i] for each readable descriptor; returns how many are ready (0: timeout).
Expected<int> poll_readable(std::span<const int> fds, std::span<bool> ready, long long timeout_ns) noexcept;

/// write(2) of the whole buffer, retried on EINTR and partial writes; MSG_NOSIGNAL semantics are
/// the caller's concern (use on pipes whose reader is alive, or with SIGPIPE handled).
Expected<void> write_all(int fd, const void* data, std::size_t size) noexcept;

/// read(2) of exactly size bytes. Returns the number read: less than size only at end of file.
Expected<std::size_t> read_full(int fd, void* data, std::size_t size) noexcept;

}  // namespace mproc::platform
