// Process identities for lock words, read from /proc/<pid>/stat.
#include "mproc/detail/liveness.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "platform/linux/fd.hpp"

namespace mproc::detail {
// 0 means "not computed in this process": the atfork child handler resets it.
std::atomic<std::uint64_t> process_identity_cache{0};

namespace {

struct StatFields {
  char state = '?';
  unsigned long long start_time = 0;
};

enum class StatRead { ok, no_such_process, unreadable };

// Reads /proc/<pid>/stat (or /proc/self/stat for pid 0): the state (field 3) and the start time
// in clock ticks (field 22). comm (field 2) may contain spaces and parentheses, so fields are
// counted from the last ')'. Only a missing entry means "no such process": a read that fails for
// another reason (no descriptors left, /proc hidden or absent) says nothing about the process.
StatRead read_stat(std::uint32_t pid, StatFields& out) noexcept {
  char path[32];
  if (pid == 0) {
    std::snprintf(path, sizeof path, "/proc/self/stat");
  } else {
    std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  }
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ESRCH ? StatRead::no_such_process : StatRead::unreadable;
  char buf[1024];
  const ssize_t n = platform::retry_eintr([&] { return ::read(fd, buf, sizeof buf - 1); });
  const int read_errno = errno;
  ::close(fd);
  if (n < 0 && read_errno == ESRCH) return StatRead::no_such_process;  // it exited while we read
  if (n <= 0) return StatRead::unreadable;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return StatRead::unreadable;
  out.state = p[2];
  int field = 3;
  for (p += 2; *p != '\0' && field < 22; ++p) {
    if (*p == ' ') ++field;
  }
  out.start_time = std::strtoull(p, nullptr, 10);
  return StatRead::ok;
}

// Whether process `pid`, whose main thread is a zombie, still runs other threads: a main thread
// that called pthread_exit stays a zombie while they do, and /proc/<pid>/stat (the main thread's)
// then says 'Z' for a process that is very much alive. Unreadable: assumed to (a live owner is
// never declared dead because /proc could not be read).
bool other_threads_run(std::uint32_t pid) noexcept {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%u/status", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT && errno != ESRCH;
  char buf[4096];
  const ssize_t n = platform::retry_eintr([&] { return ::read(fd, buf, sizeof buf - 1); });
  ::close(fd);
  if (n <= 0) return true;
  buf[n] = '\0';
  const char* threads = std::strstr(buf, "\nThreads:");
  if (threads == nullptr) return true;
  return std::strtoul(threads + std::strlen("\nThreads:"), nullptr, 10) > 1;
}

std::uint64_t compute_identity() noexcept {
  const auto pid = static_cast<std::uint32_t>(::getpid());
  StatFields self;
  // /proc/self, not /proc/<pid>: /proc may belong to another pid namespace. Unreadable: stamp 0,
  // which process_alive() treats as "pid only".
  if (read_stat(0, self) != StatRead::ok) self.start_time = 0;
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(self.start_time)) << 32) | pid;
}

void forget_identity_in_child() noexcept {
  // relaxed: the child is single-threaded while fork's handlers run.
  process_identity_cache.store(0, std::memory_order_relaxed);
}

[[maybe_unused]] const int g_registered = ::pthread_atfork(nullptr, nullptr, forget_identity_in_child);

}  // namespace

std::uint64_t process_identity() noexcept {
  // relaxed: every thread of a process computes the same value; a race computes it twice.
  std::uint64_t id = process_identity_cache.load(std::memory_order_relaxed);
  if (id == 0) {
    id = compute_identity();
    process_identity_cache.store(id, std::memory_order_relaxed);  // relaxed: as above
  }
  return id;
}

bool process_alive(std::uint64_t identity) noexcept {
  const auto pid = static_cast<std::uint32_t>(identity);
  const auto stamp = static_cast<std::uint32_t>(identity >> 32);
  StatFields st;
  switch (read_stat(pid, st)) {
    case StatRead::no_such_process:
      return false;
    case StatRead::unreadable:
      // Never declare a live owner dead because /proc could not be read: ask the kernel whether
      // the pid exists at all (EPERM: it exists, under another user).
      return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
    case StatRead::ok:
      break;
  }
  if (stamp != 0 && static_cast<std::uint32_t>(st.start_time) != stamp) return false;  // a newcomer
  if (st.state == 'X') return false;
  // A zombie main thread: exited and not yet reaped, unless other threads still run.
  return st.state != 'Z' || other_threads_run(pid);
}

bool thread_alive(std::uint32_t pid, std::uint32_t tid) noexcept {
  // tgkill with signal 0 checks that thread tid belongs to process pid and exists (EPERM: it
  // does, under another user). A thread other than the main one is gone from the kernel as soon
  // as it exits, so that answer is final. The main thread stays, as a zombie, until the process
  // is reaped (and while its other threads run, if it called pthread_exit), so for it the state
  // is read.
  if (::syscall(SYS_tgkill, static_cast<pid_t>(pid), static_cast<pid_t>(tid), 0) != 0 && errno != EPERM) {
    return false;
  }
  if (tid != pid) return true;
  // The main thread: /proc/<pid>/stat is its own state (a zombie once it exited, even while its
  // process runs on in other threads).
  StatFields st;
  switch (read_stat(pid, st)) {
    case StatRead::no_such_process:
      return false;
    case StatRead::unreadable:
      return true;
    case StatRead::ok:
      break;
  }
  return st.state != 'Z' && st.state != 'X';
}

std::uint32_t thread_id() noexcept {
  thread_local std::uint32_t tid = 0;
  thread_local std::uint32_t pid_seen = 0;
  // A forked child's thread keeps its thread_local values; its tid changed with its pid.
  const auto pid = static_cast<std::uint32_t>(process_identity());
  if (tid == 0 || pid_seen != pid) {
    tid = static_cast<std::uint32_t>(::syscall(SYS_gettid));
    pid_seen = pid;
  }
  return tid;
}

}  // namespace mproc::detail
