#include "shm/tracker.hpp"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

#include "platform/linux/process.hpp"
#include "platform/linux/shm.hpp"

namespace mproc::detail {
namespace {

struct Entry {
  pid_t creator;  // a fork child inherits its parent's entries; it unlinks only its own
  std::string name;
};

struct Registry {
  std::mutex mutex;
  std::vector<Entry> entries;
};

// Never destroyed: the exit handler runs after static destructors may have begun.
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

// fork() while another thread holds the mutex would leave it locked forever in the child: hold it
// across fork instead (the forking thread takes it, both sides release it).
void lock_before_fork() {
  registry().mutex.lock();
}
void unlock_after_fork() {
  registry().mutex.unlock();
}

extern "C" void mproc_unlink_tracked_segments_at_exit() {
  auto& r = registry();
  const pid_t self = platform::current_pid();
  std::vector<std::string> mine;
  {
    std::lock_guard lock(r.mutex);
    for (auto& e : r.entries) {
      if (e.creator == self) mine.push_back(std::move(e.name));
    }
    std::erase_if(r.entries, [&](const Entry& e) { return e.creator == self; });
  }
  for (const auto& name : mine) {
    // ENOENT: another process unlinked it without telling us; nothing to report.
    if (platform::unlink_named(name)) {
      std::fprintf(stderr,
                   "mproc: SharedMemory '%s' was never unlinked; unlinking it at exit (unlink() it, or "
                   "create it with track = false to keep it)\n",
                   name.c_str());
    }
  }
}

void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)registry();
    ::pthread_atfork(lock_before_fork, unlock_after_fork, unlock_after_fork);
    std::atexit(mproc_unlink_tracked_segments_at_exit);
  });
}

// Registered before main() so that the handler runs after mproc's exit handling (atexit runs
// handlers in reverse order), which mproc::init() registers: children are joined before their
// segments lose their names.
[[maybe_unused]] const bool g_installed = (install(), true);

}  // namespace

void track_segment(const std::string& name) {
  install();
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.entries.push_back(Entry{platform::current_pid(), name});
}

void untrack_segment(const std::string& name) noexcept {
  auto& r = registry();
  const pid_t self = platform::current_pid();
  std::lock_guard lock(r.mutex);
  std::erase_if(r.entries, [&](const Entry& e) { return e.creator == self && e.name == name; });
}

}  // namespace mproc::detail
