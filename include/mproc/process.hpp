// mproc::Process: Python's multiprocessing.Process for C++, on fork, spawn and forkserver.
//
//   int main(int argc, char** argv) {
//     mproc::init(argc, argv);                 // first line of main (see init below)
//     mproc::Process p(task, std::string("p1"), 3);
//     p.start();
//     p.join();
//     return *p.exitcode();
//   }
//
// Semantics follow CPython's (docs/process.md lists every rule and every divergence):
//   * exitcode(): nullopt while running; n after exit(n) or a thrown mproc::SystemExit(n); 0 when
//     the target returns; 1 when it throws (the exception's type and what() go to the child's
//     stderr, as CPython prints a traceback); -N when signal N ended it.
//   * Misuse that CPython reports with asserts or ValueError throws mproc::ProcessError here, with
//     a message that says what to do.
//   * At normal exit of the creating process, daemon children are terminated and the others are
//     joined, so no child outlives main() by accident and no zombie is left behind.
//   * A Process is movable, not copyable, like std::thread. Destroying the handle of a running,
//     unjoined child does not stop or wait for it: the child keeps running, active_children()
//     still lists it, and exit handling joins (or, for a daemon, terminates) it, as CPython does
//     when a Process object is garbage collected.
//
// Targets and arguments:
//   * fork: any callable, including capturing lambdas; the child gets a copy of the parent.
//   * spawn / forkserver: a free function or a captureless lambda (or any stateless functor); it
//     is named across exec by its module and offset, never by its address. Arguments are
//     serialized with mproc's codec, so every argument type must be Encodable (mproc/codec.hpp):
//     a type that is not is a compile-time error naming it, whatever the start method.
//   * Subclasses overriding run() work under fork; under spawn/forkserver start() throws
//     ProcessError (the child cannot re-create an object of the subclass).
//
// Thread safety: a Process may be joined, polled and signalled from several threads at once;
// start() and close() must not race with other calls on the same object.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/errors.hpp"
#include "mproc/export.hpp"

namespace mproc {

/// How a child process is created (CPython's three start methods on Linux).
enum class StartMethod {
  fork,        ///< a copy of the parent; fastest; only async-signal-safe work is safe in the
               ///< child if the parent had other threads (a warning is printed once)
  spawn,       ///< a fresh run of the same binary; only the target and its arguments cross over
  forkserver,  ///< a fork of a single-threaded server process started (by spawn) on first use
};

MPROC_API std::string_view to_string(StartMethod method) noexcept;

/// Parses "fork", "spawn" or "forkserver"; ValueError("cannot find context for 'x'") otherwise.
MPROC_API StartMethod parse_start_method(std::string_view name);

/// The first line of main(), the C++ twin of Python's `if __name__ == "__main__":` guard.
/// In the main process it records argv and returns. In a process started by spawn it runs the
/// target and exits; in the forkserver it serves until its parent goes away; neither returns.
/// spawn and forkserver refuse to start a child until init() has run (ProcessError), because a
/// child of a program that never calls init() would run main() again from the top.
MPROC_API void init(int argc, char** argv);

/// Throw from a target to end its process with this exit code and no error message, as Python's
/// sys.exit(n) does. (std::exit(n) works too, but under fork it also runs the atexit handlers
/// and static destructors the child inherited from its parent.)
class MPROC_API SystemExit {
 public:
  explicit SystemExit(int code = 0) noexcept : code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

/// Constructor options: Python's name= and daemon= keywords. nullopt means Python's None: a
/// generated name ("Process-N", "Process-N:M" in a child), and the daemon flag of the creating
/// process.
struct ProcessOptions {
  std::optional<std::string> name = std::nullopt;
  std::optional<bool> daemon = std::nullopt;
};

namespace detail {

/// The child-side entry of a spawn/forkserver target: decodes the arguments, calls the target.
using Trampoline = void (*)(const void* target, Decoder& args);

/// Where a target lives in the code: a trampoline, and the function it calls (null when the
/// trampoline re-creates a stateless callable itself).
struct TargetEntry {
  const void* trampoline = nullptr;
  const void* function = nullptr;
};

/// A target and its copied arguments, type-erased.
class MPROC_API TargetBase {
 public:
  virtual ~TargetBase() = default;
  /// Calls the target in this process (fork children; the arguments are moved into the call).
  virtual void invoke() = 0;
  /// The code entry under spawn/forkserver; nullopt for callables with state (capturing lambdas).
  [[nodiscard]] virtual std::optional<TargetEntry> entry() const noexcept = 0;
  /// Serializes the arguments, in order.
  virtual void encode_arguments(Encoder& out) const = 0;
  /// The callable's type, for error messages.
  [[nodiscard]] virtual const std::type_info& type() const noexcept = 0;
};

template <class Fn, class... Stored>
void call_function_pointer(const void* target, Decoder& in) {
  auto fn = reinterpret_cast<Fn>(const_cast<void*>(target));
  std::tuple<Stored...> args{in.get<Stored>()...};  // braced: decoded left to right
  in.expect_end();
  std::apply([&](Stored&... a) { fn(std::move(a)...); }, args);
}

template <class F, class... Stored>
void call_stateless(const void*, Decoder& in) {
  std::tuple<Stored...> args{in.get<Stored>()...};
  in.expect_end();
  F f{};
  std::apply([&](Stored&... a) { std::invoke(f, std::move(a)...); }, args);
}

template <class F, class... Stored>
class Target final : public TargetBase {
 public:
  template <class G, class... A>
  explicit Target(G&& f, A&&... args) : f_(std::forward<G>(f)), args_(std::forward<A>(args)...) {}

  void invoke() override {
    std::apply([&](Stored&... a) { std::invoke(f_, std::move(a)...); }, args_);
  }

  [[nodiscard]] std::optional<TargetEntry> entry() const noexcept override {
    if constexpr (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) {
      return TargetEntry{reinterpret_cast<const void*>(&call_function_pointer<F, Stored...>),
                         reinterpret_cast<const void*>(f_)};
    } else if constexpr (std::is_empty_v<F> && std::is_default_constructible_v<F> &&
                         std::is_trivially_copyable_v<F>) {
      return TargetEntry{reinterpret_cast<const void*>(&call_stateless<F, Stored...>), nullptr};
    } else {
      return std::nullopt;
    }
  }

  void encode_arguments(Encoder& out) const override {
    std::apply([&](const Stored&... a) { (out.put(a), ...); }, args_);
  }

  [[nodiscard]] const std::type_info& type() const noexcept override { return typeid(F); }

 private:
  F f_;
  std::tuple<Stored...> args_;
};

/// What an argument is stored as: its decayed type, except that string literals and C strings
/// become std::string (seed 001 passes 'hello'; a pointer could not cross to another process).
template <class A>
using stored_t =
    std::conditional_t<std::is_same_v<std::decay_t<A>, const char*> || std::is_same_v<std::decay_t<A>, char*>,
                       std::string, std::decay_t<A>>;

template <class F, class... Args>
concept ProcessTarget = !std::is_same_v<std::remove_cvref_t<F>, ProcessOptions> &&
                        std::is_invocable_v<std::decay_t<F>&, stored_t<Args>...>;

template <class F, class... Args>
std::unique_ptr<TargetBase> make_target(F&& f, Args&&... args) {
  static_assert((require_encodable<stored_t<Args>> && ...),
                "every Process argument must be serializable (see mproc/codec.hpp)");
  return std::make_unique<Target<std::decay_t<F>, stored_t<Args>...>>(std::forward<F>(f),
                                                                      std::forward<Args>(args)...);
}

struct ProcessState;
struct ParentState;
class Runtime;

}  // namespace detail

class Process;

/// The process that started this one, seen from a child (CPython's parent_process()).
class MPROC_API ParentProcess {
 public:
  [[nodiscard]] int pid() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept;
  /// Whether the parent is still running.
  [[nodiscard]] bool is_alive() const;
  /// Waits for the parent to end; with a timeout, returns whether it ended.
  void join() const;
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) const {
    if (std::chrono::duration<double>(timeout) >=
        std::chrono::duration<double>(std::chrono::hours(876'000))) {
      return join_for(std::chrono::nanoseconds::max());
    }
    return join_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }
  /// A descriptor that becomes readable when the parent ends.
  [[nodiscard]] int sentinel() const;

 private:
  friend std::optional<ParentProcess> parent_process();
  explicit ParentProcess(std::shared_ptr<detail::ParentState> state) noexcept : state_(std::move(state)) {}
  bool join_for(std::chrono::nanoseconds timeout) const;
  std::shared_ptr<detail::ParentState> state_;
};

class MPROC_API Process {
 public:
  /// No target: run() does nothing unless a subclass overrides it.
  Process();
  explicit Process(ProcessOptions options);

  /// target(args...) runs in the child. Arguments are copied (decayed) now, as CPython copies
  /// args into a tuple in the constructor.
  template <class F, class... Args>
    requires detail::ProcessTarget<F, Args...> && (!std::is_base_of_v<Process, std::remove_cvref_t<F>>)
  explicit Process(F&& target, Args&&... args) : Process(ProcessOptions{}) {
    set_target(detail::make_target(std::forward<F>(target), std::forward<Args>(args)...));
  }

  template <class F, class... Args>
    requires detail::ProcessTarget<F, Args...>
  Process(ProcessOptions options, F&& target, Args&&... args) : Process(std::move(options)) {
    set_target(detail::make_target(std::forward<F>(target), std::forward<Args>(args)...));
  }

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  virtual ~Process();

  /// What the child runs: calls the target. Override it in a subclass (fork only).
  virtual void run();

  /// Starts the child. At most once; not after close(); not from a daemon process.
  void start();

  /// Waits until the child ends. join() may be called many times.
  void join();
  /// Waits at most timeout; returns whether the child has ended. A timeout <= 0 only polls.
  template <class Rep, class Period>
  bool join(std::chrono::duration<Rep, Period> timeout) {
    // Saturate: duration::max() of a coarse unit would overflow nanoseconds; a century is forever.
    if (std::chrono::duration<double>(timeout) >=
        std::chrono::duration<double>(std::chrono::hours(876'000))) {
      return join_for(std::chrono::nanoseconds::max());
    }
    return join_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  }

  /// Whether the child is running (false before start and after it ended; reaps it if ended).
  [[nodiscard]] bool is_alive();
  /// nullopt before start and while running; see the file comment for the values.
  [[nodiscard]] std::optional<int> exitcode();
  /// nullopt before start.
  [[nodiscard]] std::optional<int> pid() const;
  /// SIGTERM / SIGKILL; nothing once the child has ended. Grandchildren are not signalled.
  void terminate();
  void kill();
  /// Releases the resources (descriptors) of an ended or never-started process. Idempotent.
  /// After close(), every accessor but name() throws ProcessError.
  void close();

  [[nodiscard]] const std::string& name() const;
  void set_name(std::string name);
  [[nodiscard]] bool daemon() const;
  /// Before start() only.
  void set_daemon(bool daemon);
  /// A descriptor that becomes readable when the child ends (poll/select/epoll, or
  /// mproc::connection wait). Owned by the Process; valid until close().
  [[nodiscard]] int sentinel() const;
  /// The start method this process uses (or will use: the default context's, unless it came
  /// from a Context).
  [[nodiscard]] StartMethod start_method() const;

  /// "<Process name='Process-1' pid=123 parent=100 started>", as CPython's repr.
  [[nodiscard]] std::string repr() const;

 private:
  friend class Context;
  friend struct detail::ProcessState;
  friend std::vector<Process> active_children();
  friend Process& current_process();
  friend class detail::Runtime;

  explicit Process(std::shared_ptr<detail::ProcessState> state) noexcept;
  bool join_for(std::chrono::nanoseconds timeout);
  void set_target(std::unique_ptr<detail::TargetBase> target);
  void set_method(StartMethod method);
  detail::ProcessState& state() const;

  std::shared_ptr<detail::ProcessState> state_;
};

/// A start method bound to an API, as CPython's get_context() returns.
class MPROC_API Context {
 public:
  explicit Context(StartMethod method) noexcept : method_(method) {}
  [[nodiscard]] StartMethod start_method() const noexcept { return method_; }

  /// ctx.Process(target, args...) / ctx.Process({.name = ...}, target, args...).
  template <class F, class... Args>
    requires detail::ProcessTarget<F, Args...>
  mproc::Process Process(F&& target, Args&&... args) const {
    mproc::Process p(std::forward<F>(target), std::forward<Args>(args)...);
    p.set_method(method_);
    return p;
  }
  template <class F, class... Args>
    requires detail::ProcessTarget<F, Args...>
  mproc::Process Process(ProcessOptions options, F&& target, Args&&... args) const {
    mproc::Process p(std::move(options), std::forward<F>(target), std::forward<Args>(args)...);
    p.set_method(method_);
    return p;
  }

 private:
  StartMethod method_;
};

/// The Process object of the caller: "MainProcess" in the main process.
MPROC_API Process& current_process();
/// The parent, seen from a child; nullopt in the main process.
MPROC_API std::optional<ParentProcess> parent_process();
/// The live children of this process. Reaps the ones that have ended, as CPython does.
MPROC_API std::vector<Process> active_children();
/// The number of CPUs this process may run on (sched_getaffinity), at least 1.
MPROC_API int cpu_count();

/// Fixes the default start method. A second call without force throws ProcessError("context
/// has already been set"), as does a call after the default was used (a process started with
/// it, or get_start_method()).
MPROC_API void set_start_method(StartMethod method, bool force = false);
/// The default start method (fixing it). Initially fork, or MPROC_START_METHOD if set in the
/// environment.
MPROC_API StartMethod get_start_method();
/// nullopt if the default has not been fixed yet.
MPROC_API std::optional<StartMethod> get_start_method_if_set();
/// fork, spawn, forkserver: the default first, as CPython lists them.
MPROC_API std::vector<StartMethod> get_all_start_methods();
/// A context for one start method; without an argument, the default's.
MPROC_API Context get_context(std::optional<StartMethod> method = std::nullopt);

}  // namespace mproc
