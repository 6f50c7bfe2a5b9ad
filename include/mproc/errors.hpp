// The exceptions of mproc's Python-like API.
//
// One hierarchy, rooted at mproc::Error, mirroring Python's names so that a reader of the
// multiprocessing documentation finds them where expected:
//
//   Error                      root of everything mproc throws
//   ├── ProcessError           misuse of Process, contexts, start methods (CPython's ProcessError,
//   │   │                      and its asserts turned into real errors)
//   │   ├── BufferTooShort, AuthenticationError, TimeoutError
//   │   ├── WorkerDied         a Pool worker died while it ran the task (CPython's Pool hangs)
//   │   └── BrokenPool         a Pool that cannot run tasks any more (its initializer failed)
//   ├── RemoteError            a Pool task threw: the original type's name, what() and where
//   ├── ValueError             a bad argument value (CPython's ValueError)
//   ├── IndexError             an index out of range (ShareableList, a Manager's list)
//   ├── KeyError, AttributeError  a missing key / name (a Manager's dict / Namespace)
//   ├── TypeError              a call with the wrong argument types (a registered type's method)
//   ├── BufferError            SharedMemory::close() while views of its buffer are alive
//   ├── OSError                a failed system call; carries the errno as std::error_code
//   │   ├── FileExistsError, FileNotFoundError, PermissionError
//   ├── DecodeError            bytes that do not decode as the expected type (hostile or corrupt)
//   ├── Empty, Full, EOFError  queue and connection states
//   ├── OwnerDied              a lock taken over from a dead owner (the caller holds it)
//   └── BrokenBarrierError     a Barrier that was aborted, reset or timed out (threading's name)
//
// Low-level, hot-path calls never throw: they return bool, std::optional or an error code.
#pragma once

#include <cerrno>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "mproc/export.hpp"

namespace mproc {

class MPROC_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class MPROC_API ProcessError : public Error {
 public:
  using Error::Error;
};

/// recv_bytes_into() into a buffer too small for the message: carries the whole message (CPython:
/// args[0]), which is no longer in the connection.
class MPROC_API BufferTooShort : public ProcessError {
 public:
  using ProcessError::ProcessError;
  BufferTooShort(const std::string& what, std::vector<std::byte> message)
      : ProcessError(what), message_(std::make_shared<const std::vector<std::byte>>(std::move(message))) {}
  /// The message that did not fit (empty when constructed without one).
  [[nodiscard]] const std::vector<std::byte>& message() const noexcept {
    static const std::vector<std::byte> kNone;
    return message_ ? *message_ : kNone;
  }

 private:
  std::shared_ptr<const std::vector<std::byte>> message_;  // shared: exceptions are copied
};

class MPROC_API AuthenticationError : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

/// CPython's multiprocessing.TimeoutError (a ProcessError, not the builtin TimeoutError).
class MPROC_API TimeoutError : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

/// A Pool worker died (a signal, exit(), abort) while it ran the task this error belongs to.
/// The pool replaced the worker; other tasks are unaffected.
class MPROC_API WorkerDied : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

/// A Pool that can no longer run tasks: a worker's initializer threw (instead of respawning
/// workers forever, as CPython does). Every pending and later task fails with it.
class MPROC_API BrokenPool : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

/// An exception a Pool task threw in a worker, re-raised in the caller. C++ cannot re-create an
/// arbitrary exception type in another process, so this carries the original's demangled type
/// name, its what() and where it was raised (worker name, pid, task). what() reads
/// "std::invalid_argument: bad item (raised in ForkPoolWorker-2, pid 1234)".
class MPROC_API RemoteError : public Error {
 public:
  RemoteError(std::string type_name, std::string message, std::string where);
  [[nodiscard]] const std::string& type_name() const noexcept { return info_->type_name; }
  [[nodiscard]] const std::string& message() const noexcept { return info_->message; }
  [[nodiscard]] const std::string& where() const noexcept { return info_->where; }

 private:
  struct Info {
    std::string type_name, message, where;
  };
  std::shared_ptr<const Info> info_;  // shared: exceptions are copied
};

class MPROC_API ValueError : public Error {
 public:
  using Error::Error;
};

/// CPython's IndexError: an index outside a sequence (ShareableList, a Manager's list).
class MPROC_API IndexError : public Error {
 public:
  using Error::Error;
};

/// CPython's KeyError: a key a Manager's dict does not hold.
class MPROC_API KeyError : public Error {
 public:
  using Error::Error;
};

/// CPython's TypeError: a call whose arguments or result do not match the callee's (a method of
/// a type registered with a BaseManager, called with other types).
class MPROC_API TypeError : public Error {
 public:
  using Error::Error;
};

/// CPython's AttributeError: a name a Manager's Namespace does not hold, or a method a registered
/// type does not expose.
class MPROC_API AttributeError : public Error {
 public:
  using Error::Error;
};

/// CPython's BufferError: an object cannot be closed while views of its memory are exported
/// (SharedMemory::close() while a SharedMemory::View is alive).
class MPROC_API BufferError : public Error {
 public:
  using Error::Error;
};

/// A failed system call. code() holds the errno in std::system_category().
class MPROC_API OSError : public Error {
 public:
  OSError(int errnum, const std::string& what);
  OSError(std::error_code code, const std::string& what);
  [[nodiscard]] const std::error_code& code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

class MPROC_API FileExistsError : public OSError {
 public:
  using OSError::OSError;
};

class MPROC_API FileNotFoundError : public OSError {
 public:
  using OSError::OSError;
};

class MPROC_API PermissionError : public OSError {
 public:
  using OSError::OSError;
};

/// Bytes that cannot be decoded as the requested type: truncated, oversized or corrupt input.
class MPROC_API DecodeError : public Error {
 public:
  using Error::Error;
};

class MPROC_API Empty : public Error {
 public:
  using Error::Error;
};

class MPROC_API Full : public Error {
 public:
  using Error::Error;
};

class MPROC_API EOFError : public Error {
 public:
  using Error::Error;
};

/// A lock was acquired from an owner that died holding it. When this is thrown the caller HOLDS
/// the lock: the data it guards may be half-updated, so repair (or check) it, then use or release
/// the lock as usual. The lock itself is intact and keeps working.
class MPROC_API OwnerDied : public Error {
 public:
  using Error::Error;
};

/// A Barrier is broken: abort() was called, a wait timed out, or reset() was called while this
/// party waited. The barrier stays broken (every wait throws this) until someone calls reset().
/// CPython's threading.BrokenBarrierError, which multiprocessing.Barrier raises too.
class MPROC_API BrokenBarrierError : public Error {
 public:
  using Error::Error;
};

/// Throws the OSError subclass that matches errnum (ENOENT: FileNotFoundError, EEXIST:
/// FileExistsError, EACCES/EPERM: PermissionError), with "what: strerror" as its message.
[[noreturn]] MPROC_API void throw_os_error(int errnum, const std::string& what);

/// throw_os_error for a std::error_code that may come from mproc's own categories.
[[noreturn]] MPROC_API void throw_os_error(std::error_code code, const std::string& what);

}  // namespace mproc
