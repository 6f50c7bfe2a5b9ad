// Who unlinks a segment its creator forgot: the creating process, at its normal exit.
//
// CPython 3.13's SharedMemory(track=True) registers every segment with a resource tracker process
// that unlinks leftovers when the process tree ends; before 3.13 attachers registered too, so an
// unrelated process that merely attached and exited destroyed the segment (gh-82300). mproc keeps
// the useful half without a tracker process: only the creator registers (attaching never does),
// and an exit handler of the creating process unlinks what it created and did not unlink.
//
// The handler runs at exit() or a return from main(), after mproc's own exit handling has joined
// the children (it is registered earlier, at static initialization, so it runs later). It does
// not run after _exit() (how mproc's children end), a crash or SIGKILL: those leave the segment
// in /dev/shm until someone unlinks it. A fork child inherits the registry but unlinks only what
// it created itself.
#pragma once

#include <string>

namespace mproc::detail {

/// Registers name (without '/') for unlinking at this process's exit. Thread-safe.
void track_segment(const std::string& name);

/// Forgets name: unlink() was called (by this process, through any handle). Thread-safe.
void untrack_segment(const std::string& name) noexcept;

}  // namespace mproc::detail
