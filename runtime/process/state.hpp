// The process layer's internal state: one ProcessState per child (shared by its Process handles
// and the registry of children), the state of this process itself, and the forkserver client.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include "mproc/process.hpp"
#include "platform/linux/fd.hpp"
#include "platform/linux/symbols.hpp"

namespace mproc::detail {

struct ProcessState {
  enum class Kind { child, self };

  Kind kind = Kind::child;
  std::string name;
  bool daemon = false;
  std::optional<StartMethod> method;  // nullopt: the default context's, read at start()
  std::unique_ptr<TargetBase> target;
  pid_t creator = 0;          // the process that constructed this object
  std::vector<int> identity;  // CPython's _identity: names "Process-1:2"

  // Set by start(); guarded by mutex from then on (join/poll/signal may come from any thread).
  std::mutex mutex;
  bool started = false;
  bool closed = false;
  StartMethod used_method = StartMethod::fork;
  pid_t pid = 0;
  platform::UniqueFd pidfd;      // signals; the sentinel under fork and spawn
  platform::UniqueFd status_fd;  // forkserver: the server writes the wait status here
  std::optional<int> exit_code;

  bool server_lost = false;                // forkserver child whose server died before reporting
  const std::type_info* origin = nullptr;  // the subclass this state was moved out of, if any

  /// Collects the exit code if the child has ended, without blocking; the exit code once known.
  /// Caller holds mutex.
  std::optional<int> poll_locked();
  std::optional<int> collect_exit_code_locked();
  /// The descriptor that becomes readable when the child ends. Caller holds mutex.
  [[nodiscard]] int sentinel_locked() const noexcept {
    return used_method == StartMethod::forkserver && !server_lost ? status_fd.get() : pidfd.get();
  }
};

/// The exit code reported when a child's wait status was lost: its forkserver died before
/// reporting it, or something other than mproc reaped the child.
inline constexpr int kExitStatusLost = 255;

/// Waits until the child ends (timeout nanoseconds::max(): forever); whether it ended. Takes and
/// releases the state's mutex, never holding it while it sleeps.
bool wait_for_exit(ProcessState& s, std::chrono::nanoseconds timeout);

struct ParentState {
  pid_t pid = 0;
  std::string name;
  std::mutex mutex;
  platform::UniqueFd pidfd;  // opened lazily (fork) or received at start (spawn, forkserver)
  /// The parent's pidfd, opened on first use; invalid if the parent is already gone.
  int pidfd_locked();
};

/// The boot payload a spawn or forkserver child reads from descriptor 3.
struct BootPayload {
  std::uint32_t magic = 0;
  std::uint32_t version = 0;
  std::string name;
  bool daemon = false;
  std::vector<int> identity;
  int parent_pid = 0;
  std::string parent_name;
  std::uint8_t default_method = 0;  // StartMethod of the child's default context
  bool default_method_fixed = false;
  std::string trampoline_module;
  std::uint64_t trampoline_offset = 0;
  bool has_function = false;
  std::string function_module;
  std::uint64_t function_offset = 0;
  std::vector<std::byte> arguments;
  std::uint32_t argument_fds = 0;
};

inline constexpr std::uint32_t kBootMagic = 0x6d70726f;  // "mpro"
/// Bumped whenever BootPayload or the child's descriptor layout changes.
inline constexpr std::uint32_t kBootVersion = 1;
/// Descriptor layout of a spawn or forkserver child at boot.
inline constexpr int kPayloadFd = 3;
inline constexpr int kParentPidFd = 4;
inline constexpr int kFirstArgumentFd = 5;
/// The most descriptors a child's arguments may carry (the forkserver passes at most 16 in one
/// message, one of which is the payload).
inline constexpr std::uint32_t kMaxArgumentFds = 15;
/// The largest boot payload a child accepts (arguments included).
inline constexpr std::size_t kMaxBootPayload = std::size_t{1} << 30;

inline constexpr const char* kSpawnFlag = "--mproc-spawn";
inline constexpr const char* kForkserverFlag = "--mproc-forkserver";

/// Process-wide state of the process layer. Never destroyed (exit handlers and static
/// destructors of user objects may still use it); reset in a fork child.
class Runtime {
 public:
  static Runtime& get();

  // --- this process ---
  bool initialized = false;
  std::string argv0;
  Process* current = nullptr;
  std::shared_ptr<ParentState> parent;  // null in the main process
  std::atomic<int> counter{0};          // CPython's _process_counter: names children

  // --- default context ---
  std::mutex context_mutex;
  std::optional<StartMethod> default_method;  // fixed once used or set

  // --- children ---
  std::mutex children_mutex;
  std::vector<std::shared_ptr<ProcessState>> children;
  bool exit_handler_registered = false;
  std::atomic<bool> warned_threads{false};
  std::atomic<int> internal_threads{0};  // mproc's own threads (a Pool's collector): not warned about

  StartMethod fix_default_method();
  /// The default start method, without fixing it.
  StartMethod peek_default_method();
  void add_child(std::shared_ptr<ProcessState> child);
  void remove_child(const ProcessState* child);
  /// Reaps ended children and drops them from the registry (CPython's _cleanup()).
  void cleanup_children();
  void register_exit_handler();
  /// In a freshly forked child: forget the parent's children and forkserver, become `self`.
  void reset_in_fork_child(Process* self, pid_t parent_id, const std::string& parent_name);
  /// CPython's _exit_function: terminate daemon children, join the others, stop the forkserver.
  void exit_function() noexcept;
  /// A new Process handle for a state (Process's constructor from a state is private).
  static Process* make_process(std::shared_ptr<ProcessState> state);
  /// Makes the current process's handle refer to state (a spawn or forkserver child becoming
  /// itself, where init() already made a MainProcess handle).
  void become(std::shared_ptr<ProcessState> state);
  /// This process's own pidfd, opened once (children receive a copy to watch their parent).
  int self_pidfd();
  /// /dev/null, opened once: a fork child's stdin (one dup2 in the child instead of an open).
  int devnull();

 private:
  Runtime() = default;
  platform::UniqueFd self_pidfd_;
  platform::UniqueFd devnull_;
  ParentState parent_slot_;  // a fork child's parent (filled in the child, allocation-free)
  std::vector<std::shared_ptr<ProcessState>> forgotten_children_;  // a fork child's parent's
};

/// Flushes stdout and stderr (and std::cout, std::cerr, std::clog if they buffer on their own)
/// when they hold output; writes nothing otherwise. What every child does before it exits.
void flush_standard_streams_of_child() noexcept;

/// Runs body as a child's main: exceptions become exit code 1 with a message on stderr,
/// SystemExit(n) exit code n; then the child's own children are handled and the process exits.
[[noreturn]] void run_child_and_exit(const std::string& name, void (*body)(void*), void* context) noexcept;

/// Reads the payload at kPayloadFd and runs the target it names (spawn and forkserver children).
[[noreturn]] void boot_from_payload() noexcept;

/// Builds the boot payload of a child that is about to start.
BootPayload make_boot_payload(const ProcessState& child, const TargetEntry& entry, std::vector<int>& fds);

/// Starts a child through the forkserver: {pid, pidfd, status fd}.
struct ForkserverChild {
  pid_t pid;
  platform::UniqueFd pidfd;
  platform::UniqueFd status_fd;
};
ForkserverChild forkserver_start(std::span<const std::byte> payload, std::span<const int> fds);
/// Stops this process's forkserver (closing its socket) and reaps it.
void forkserver_shutdown() noexcept;
/// Forgets the forkserver in a fork child (the server belongs to the parent).
void forkserver_forget() noexcept;
/// Runs the forkserver loop (argv[1] == kForkserverFlag); never returns.
[[noreturn]] void forkserver_main() noexcept;

/// The demangled name of a type.
std::string demangle(const char* mangled);

}  // namespace mproc::detail
