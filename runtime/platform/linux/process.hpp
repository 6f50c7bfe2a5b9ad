// Process creation, waiting and signalling: fork, posix_spawn of the running binary, pidfds,
// and the descriptor passing that the forkserver speaks. Nothing above this layer calls fork,
// waitid, kill or socket functions directly.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mproc/expected.hpp"
#include "platform/linux/fd.hpp"

namespace mproc::platform {

/// fork(2) through glibc (its atfork handlers run). Returns 0 in the child, the pid in the parent.
Expected<pid_t> fork_process() noexcept;

/// Exits at once without running atexit handlers or static destructors (what a child must do).
[[noreturn]] void exit_now(int code) noexcept;

/// Binds (under lazy binding) the library functions a fork child calls, so that children do not
/// each resolve them again. Call once in the parent.
void bind_child_calls() noexcept;

pid_t current_pid() noexcept;
pid_t parent_pid() noexcept;

/// pidfd_open(2): a descriptor that names one process for its whole life (immune to pid reuse)
/// and becomes readable when the process exits.
Expected<UniqueFd> open_pidfd(pid_t pid) noexcept;

/// SIGKILLs a child by pid and reaps it (for the error path where no pidfd could be opened).
void kill_and_reap(pid_t pid) noexcept;

/// The exit code of an ended child, CPython's convention: n for exit(n), -N when signal N
/// killed it.
using ExitCode = int;

/// Reaps a child through its pidfd. nullopt while it is still running (only with block=false).
Expected<std::optional<ExitCode>> reap_pidfd(int pidfd, bool block) noexcept;

/// Decodes a wait status (as waitpid reports it) into an ExitCode.
ExitCode exit_code_from_status(int status) noexcept;

/// pidfd_send_signal(2). Succeeds (does nothing) when the process has already exited.
Expected<void> signal_pidfd(int pidfd, int signal) noexcept;

/// The number of threads in this process (from /proc/self/stat); 0 if it cannot be read.
int thread_count() noexcept;

/// /dev/null opened for reading (close-on-exec).
Expected<UniqueFd> open_devnull() noexcept;

/// Makes fd the standard input (a child's stdin is /dev/null, as CPython does it).
void stdin_from(int fd) noexcept;

/// A sealed, read-only-after-write memfd holding bytes (the payload a child reads at start).
Expected<UniqueFd> make_sealed_blob(std::span<const std::byte> bytes) noexcept;

/// Reads a whole blob made by make_sealed_blob, refusing more than max_size bytes.
Expected<std::vector<std::byte>> read_blob(int fd, std::size_t max_size) noexcept;

/// posix_spawn of /proc/self/exe with argv. Descriptor fds[i] becomes descriptor 3 + i in the
/// child; every other descriptor above 2 is closed in the child, stdin is /dev/null and the
/// signal mask is empty.
Expected<pid_t> spawn_self(const std::vector<std::string>& argv, std::span<const int> fds) noexcept;

/// In a fresh child: moves fds[i] to descriptor 3 + i (cloexec cleared) and closes every other
/// descriptor above 2 + fds.size(). Used after fork in the forkserver.
Expected<void> arrange_child_fds(std::span<const int> fds) noexcept;

/// A connected pair of SOCK_SEQPACKET Unix sockets (message boundaries preserved), close-on-exec.
Expected<std::pair<UniqueFd, UniqueFd>> make_seqpacket_pair() noexcept;

/// Sends one message of bytes with descriptors attached (SCM_RIGHTS). SIGPIPE is suppressed;
/// a closed peer gives EPIPE.
Expected<void> send_message(int socket, std::span<const std::byte> bytes, std::span<const int> fds) noexcept;

/// One received message: its bytes and the descriptors that came with it (owned, close-on-exec).
struct Message {
  std::vector<std::byte> bytes;
  std::vector<UniqueFd> fds;
  /// The message had more bytes or descriptors than allowed (or than this process could take):
  /// what did not fit is gone. A SOCK_SEQPACKET message is consumed whole either way, so the
  /// conversation stays in step.
  bool truncated = false;
};

/// Receives one message of at most max_bytes bytes and max_fds descriptors; an empty message
/// with no descriptors means the peer closed the socket.
Expected<Message> receive_message(int socket, std::size_t max_bytes, std::size_t max_fds) noexcept;

/// A signalfd reporting SIGCHLD (which it blocks in the calling thread). For the forkserver.
Expected<UniqueFd> make_sigchld_fd() noexcept;

/// Drains a signalfd made by make_sigchld_fd.
void drain_signal_fd(int fd) noexcept;

/// Reaps one ended child of this process without blocking: {pid, wait status}, or nullopt when
/// none has ended.
std::optional<std::pair<pid_t, int>> reap_any_child() noexcept;

/// Ignores SIGINT and SIGPIPE (the forkserver: Ctrl-C is for the parent, which decides; a
/// status pipe whose reader left must not kill it).
void ignore_interrupts() noexcept;

/// Undoes make_sigchld_fd and ignore_interrupts in a child of the forkserver: default
/// dispositions and an empty mask for SIGCHLD, SIGINT and SIGPIPE.
void reset_child_signals() noexcept;

/// Sends a signal to a process by pid. Only for a process that cannot have been reaped yet (a
/// forkserver child whose pidfd did not arrive): elsewhere use signal_pidfd.
void signal_pid(pid_t pid, int signal) noexcept;

/// CPUs this process may run on (sched_getaffinity), at least 1.
int affinity_cpu_count() noexcept;

/// Sets this process's name as ps and top show it (prctl PR_SET_NAME, 15 bytes at most).
void set_process_title(const std::string& title) noexcept;

}  // namespace mproc::platform
