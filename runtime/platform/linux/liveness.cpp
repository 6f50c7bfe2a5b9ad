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
  unsigned long pid = 0;  // field 1: this /proc's number for the process
  char state = '?';
  unsigned long num_threads = 0;
  unsigned long long start_time = 0;
};

// Set when /proc/self/stat names another pid than getpid(): /proc belongs to another pid
// namespace, so /proc/<pid> may describe an unrelated process, and liveness falls back to kill.
std::atomic<bool> g_foreign_proc{false};

// Whether the kernel knows a process `pid` (EPERM: it does, under another user). Unlike /proc,
// not hidden by hidepid, an absent /proc or another namespace's /proc; blind to pid reuse.
bool pid_exists(std::uint32_t pid) noexcept {
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

enum class StatRead { ok, no_such_process, unreadable };

// Reads /proc/<pid>/stat (or /proc/self/stat for pid 0): the pid (field 1), the state (field 3),
// the number of threads (field 20) and the start time in clock ticks (field 22). comm (field 2) may contain
// spaces and parentheses, so fields are counted from the last ')'. Only a missing entry means "no such
// process": a read that fails for another reason (no descriptors left, /proc hidden or absent) says nothing
// about the process.
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
  out.pid = std::strtoul(buf, nullptr, 10);
  out.state = p[2];
  int field = 3;
  for (p += 2; *p != '\0' && field < 22; ++p) {
    if (*p != ' ') continue;
    ++field;
    if (field == 20) out.num_threads = std::strtoul(p + 1, nullptr, 10);
  }
  out.start_time = std::strtoull(p, nullptr, 10);
  return StatRead::ok;
}

std::uint64_t compute_identity() noexcept {
  const auto pid = static_cast<std::uint32_t>(::getpid());
  StatFields self;
  // /proc/self, not /proc/<pid>: /proc may belong to another pid namespace. Unreadable: stamp 0,
  // which process_alive() treats as "pid only".
  if (read_stat(0, self) != StatRead::ok) self.start_time = 0;
  if (self.pid != 0 && self.pid != pid) {
    // relaxed: a process-wide setting, the same from every thread that computes it.
    g_foreign_proc.store(true, std::memory_order_relaxed);
    self.start_time = 0;  // another namespace's numbers: pid only
  }
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
  (void)process_identity();  // learns whether /proc is this namespace's
  // relaxed: set before, by this thread's own call above or another's.
  if (g_foreign_proc.load(std::memory_order_relaxed)) return pid_exists(pid);
  StatFields st;
  switch (read_stat(pid, st)) {
    case StatRead::no_such_process:
    case StatRead::unreadable:
      // Never declare a live owner dead because /proc could not tell: a missing entry may be
      // hidepid or an empty /proc, so the kernel has the last word.
      return pid_exists(pid);
    case StatRead::ok:
      break;
  }
  if (stamp != 0 && static_cast<std::uint32_t>(st.start_time) != stamp) return false;  // a newcomer
  if (st.state == 'X') return false;
  // A zombie main thread: exited and not yet reaped, unless other threads still run (a main
  // thread that called pthread_exit stays a zombie while they do; field 20 counts them).
  return st.state != 'Z' || st.num_threads > 1;
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
  // relaxed: as in process_alive.
  if (g_foreign_proc.load(std::memory_order_relaxed) || read_stat(pid, st) != StatRead::ok) return true;
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
