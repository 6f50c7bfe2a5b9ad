// RobustMutexPresence: how mproc::Condition tells a live waiter from a dead one, with no system
// call and no polling: each waiter slot holds a robust, process-shared pthread mutex that the
// waiter's thread locks while it waits. When a thread dies holding a robust mutex (SIGKILL of its
// process included), the kernel walks the thread's robust list at exit and marks the mutex
// FUTEX_OWNER_DIED; the next trylock returns EOWNERDEAD. A trylock of a mutex held by a live
// thread fails with EBUSY in user space (one atomic read), which is what notify() pays per slot.
//
// glibc owns the one robust list per thread, so a custom futex lock cannot join it
// (../../../docs/architecture.md); pthread's robust mutexes are the supported way in.
#pragma once

#include <pthread.h>

#include <cerrno>
#include <type_traits>

namespace mproc::platform {

struct RobustMutexPresence {
  struct Marker {
    pthread_mutex_t mutex;
  };
  static_assert(std::is_standard_layout_v<Marker> && std::is_trivially_destructible_v<Marker>,
                "the marker lives in shared memory");

  /// Makes an unlocked robust, process-shared mutex. Called once per slot, under the lock.
  static void init(Marker& m) noexcept {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m.mutex, &attr);
    pthread_mutexattr_destroy(&attr);
  }

  /// The calling thread takes the marker; false only if a live thread holds it.
  static bool claim(Marker& m) noexcept {
    switch (pthread_mutex_trylock(&m.mutex)) {
      case 0:
        return true;
      case EOWNERDEAD:  // a holder died before it could hand the slot back: the slot is ours now
        pthread_mutex_consistent(&m.mutex);
        return true;
      case ENOTRECOVERABLE:  // cannot happen (we always mark consistent), but recover anyway
        init(m);
        return pthread_mutex_trylock(&m.mutex) == 0;
      default:  // EBUSY
        return false;
    }
  }

  /// The claiming thread gives the marker back.
  static void release(Marker& m) noexcept { pthread_mutex_unlock(&m.mutex); }

  /// Whether the thread that claimed the marker is gone; if so the marker is left unclaimed.
  static bool holder_died(Marker& m) noexcept {
    switch (pthread_mutex_trylock(&m.mutex)) {
      case EBUSY:
        return false;
      case EOWNERDEAD:
        pthread_mutex_consistent(&m.mutex);
        pthread_mutex_unlock(&m.mutex);
        return true;
      case 0:  // nobody held it: the holder died between giving it back and freeing the slot
        pthread_mutex_unlock(&m.mutex);
        return true;
      case ENOTRECOVERABLE:
        init(m);
        return true;
      default:
        return false;
    }
  }
};

}  // namespace mproc::platform
