#include "platform/linux/process.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio_ext.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char** environ;

namespace mproc::platform {

Expected<pid_t> fork_process() noexcept {
  const pid_t pid = ::fork();
  if (pid < 0) return unexpected_errno(errno);
  return pid;
}

void exit_now(int code) noexcept {
  // exit_group(2) is what _exit() does. Calling it through syscall(), which the parent has
  // already used, spares each fork child a lazy symbol lookup (and a copied GOT page).
  ::syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

void bind_child_calls() noexcept {
  // Under lazy binding the first call of a library function resolves it and writes the GOT: in
  // a fork child that is a symbol lookup and a copied page at every start. Calling the
  // functions a child uses once in the parent binds them for every child to come.
  (void)::__fpending(stdout);
  (void)::dup2(-1, -1);  // EBADF, harmlessly
  (void)::syscall(SYS_getpid);
}

pid_t current_pid() noexcept {
  return ::getpid();
}
pid_t parent_pid() noexcept {
  return ::getppid();
}

Expected<UniqueFd> open_pidfd(pid_t pid) noexcept {
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return unexpected_errno(errno);
  // pidfd_open sets close-on-exec itself.
  return UniqueFd(static_cast<int>(fd));
}

void kill_and_reap(pid_t pid) noexcept {
  ::kill(pid, SIGKILL);
  int status = 0;
  retry_eintr([&] { return ::waitpid(pid, &status, 0); });
}

ExitCode exit_code_from_status(int status) noexcept {
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WEXITSTATUS(status);
}

Expected<std::optional<ExitCode>> reap_pidfd(int pidfd, bool block) noexcept {
  siginfo_t info{};
  const int flags = WEXITED | (block ? 0 : WNOHANG);
  const int rc = retry_eintr(
      [&] { return ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, flags); });
  if (rc != 0) return unexpected_errno(errno);
  if (info.si_pid == 0) return std::optional<ExitCode>();  // WNOHANG and still running
  if (info.si_code == CLD_EXITED) return std::optional<ExitCode>(info.si_status);
  return std::optional<ExitCode>(-info.si_status);  // CLD_KILLED or CLD_DUMPED
}

Expected<void> signal_pidfd(int pidfd, int signal) noexcept {
  if (::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0) != 0 && errno != ESRCH) {
    return unexpected_errno(errno);
  }
  return {};
}

int thread_count() noexcept {
  // procfs gives /proc/self/task one link per thread plus "." and "..": one stat(2), several
  // times cheaper than reading and parsing /proc/self/stat (it runs before every fork).
  struct stat st {};
  if (::stat("/proc/self/task", &st) != 0 || st.st_nlink < 3) return 0;
  return static_cast<int>(st.st_nlink - 2);
}

Expected<UniqueFd> open_devnull() noexcept {
  UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!fd) return unexpected_errno(errno);
  return fd;
}

void stdin_from(int fd) noexcept {
  if (fd >= 0 && fd != STDIN_FILENO) ::dup2(fd, STDIN_FILENO);
}

Expected<UniqueFd> make_sealed_blob(std::span<const std::byte> bytes) noexcept {
  UniqueFd fd(::memfd_create("mproc:payload", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return unexpected_errno(errno);
  if (auto w = write_all(fd.get(), bytes.data(), bytes.size()); !w) return unexpected(w.error());
  // Sealed: the reader can trust that the size and content it sees will not change under it.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    return unexpected_errno(errno);
  }
  return fd;
}

Expected<std::vector<std::byte>> read_blob(int fd, std::size_t max_size) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return unexpected_errno(errno);
  if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) > max_size) return unexpected_errno(EFBIG);
  try {
    std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < out.size()) {
      const ssize_t n = retry_eintr(
          [&] { return ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got)); });
      if (n < 0) return unexpected_errno(errno);
      if (n == 0) return unexpected_errno(EIO);
      got += static_cast<std::size_t>(n);
    }
    return out;
  } catch (const std::bad_alloc&) {
    return unexpected_errno(ENOMEM);
  }
}

namespace {

// Makes private copies of fds numbered above every target slot (3 .. 3 + n - 1), so that placing
// fds[i] at 3 + i can never overwrite a source not yet placed.
Expected<std::vector<UniqueFd>> lift_fds(std::span<const int> fds) noexcept {
  std::vector<UniqueFd> lifted;
  try {
    lifted.reserve(fds.size());
  } catch (...) {
    return unexpected_errno(ENOMEM);
  }
  const int floor = 3 + static_cast<int>(fds.size());
  for (int fd : fds) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (copy < 0) return unexpected_errno(errno);
    lifted.emplace_back(copy);
  }
  return lifted;
}

}  // namespace

Expected<pid_t> spawn_self(const std::vector<std::string>& argv, std::span<const int> fds) noexcept {
  auto lifted = lift_fds(fds);
  if (!lifted) return unexpected(lifted.error());

  std::vector<char*> args;
  try {
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
  } catch (...) {
    return unexpected_errno(ENOMEM);
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  int rc = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  for (std::size_t i = 0; rc == 0 && i < lifted->size(); ++i) {
    // dup2 onto a new number clears close-on-exec on the copy; the lifted source keeps it.
    rc = posix_spawn_file_actions_adddup2(&actions, (*lifted)[i].get(), 3 + static_cast<int>(i));
  }
  if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3 + static_cast<int>(fds.size()));
  sigset_t empty;
  sigemptyset(&empty);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &empty);
  if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  if (rc == 0) rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return unexpected_errno(rc);
  return pid;
}

Expected<void> arrange_child_fds(std::span<const int> fds) noexcept {
  auto lifted = lift_fds(fds);
  if (!lifted) return unexpected(lifted.error());
  for (std::size_t i = 0; i < lifted->size(); ++i) {
    if (::dup2((*lifted)[i].get(), 3 + static_cast<int>(i)) < 0) return unexpected_errno(errno);
  }
  lifted->clear();  // closes the lifted copies
  if (::syscall(SYS_close_range, 3 + fds.size(), ~0U, 0) != 0) return unexpected_errno(errno);
  return {};
}

Expected<std::pair<UniqueFd, UniqueFd>> make_seqpacket_pair() noexcept {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return unexpected_errno(errno);
  return std::pair{UniqueFd(sv[0]), UniqueFd(sv[1])};
}

namespace {
constexpr std::size_t kMaxFdsPerMessage = 16;
}

Expected<void> send_message(int socket, std::span<const std::byte> bytes, std::span<const int> fds) noexcept {
  if (fds.size() > kMaxFdsPerMessage) return unexpected_errno(E2BIG);
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
  }
  const ssize_t n = retry_eintr([&] { return ::sendmsg(socket, &msg, MSG_NOSIGNAL); });
  if (n < 0) return unexpected_errno(errno);
  if (static_cast<std::size_t>(n) != bytes.size()) return unexpected_errno(EMSGSIZE);
  return {};
}

Expected<Message> receive_message(int socket, std::size_t max_bytes, std::size_t max_fds) noexcept {
  Message out;
  try {
    out.bytes.resize(max_bytes);
  } catch (...) {
    return unexpected_errno(ENOMEM);
  }
  iovec iov{out.bytes.data(), out.bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * std::min(max_fds, kMaxFdsPerMessage));
  const ssize_t n = retry_eintr([&] { return ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); });
  if (n < 0) return unexpected_errno(errno);
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      out.fds.emplace_back(fd);
    }
  }
  out.truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  out.bytes.resize(std::min(static_cast<std::size_t>(n), out.bytes.size()));
  return out;
}

Expected<UniqueFd> make_sigchld_fd() noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return unexpected_errno(EINVAL);
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) return unexpected_errno(errno);
  return fd;
}

void drain_signal_fd(int fd) noexcept {
  signalfd_siginfo info[8];
  while (::read(fd, info, sizeof info) > 0) {
  }
}

std::optional<std::pair<pid_t, int>> reap_any_child() noexcept {
  int status = 0;
  const pid_t pid = retry_eintr([&] { return ::waitpid(-1, &status, WNOHANG); });
  if (pid <= 0) return std::nullopt;
  return std::pair{pid, status};
}

void ignore_interrupts() noexcept {
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
}

void reset_child_signals() noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::signal(SIGCHLD, SIG_DFL);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
}

void signal_pid(pid_t pid, int signal) noexcept {
  ::kill(pid, signal);
}

int affinity_cpu_count() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
  }
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

void set_process_title(const std::string& title) noexcept {
  ::prctl(PR_SET_NAME, title.c_str(), 0, 0, 0);
}

}  // namespace mproc::platform
