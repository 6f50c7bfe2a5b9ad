// mproc::Process and the process-wide registry of children.
#include "platform/linux/process.hpp"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "process/state.hpp"

namespace mproc {
namespace {
[[noreturn]] void throw_closed() {
  throw ProcessError("process object is closed");
}
}  // namespace

namespace detail {
namespace {

[[noreturn]] void throw_os(const std::error_code& code, const std::string& what) {
  throw_os_error(code, what);
}

std::optional<StartMethod> method_from_environment() {
  const char* env = std::getenv("MPROC_START_METHOD");
  if (env == nullptr || *env == '\0') return std::nullopt;
  return parse_start_method(env);
}

}  // namespace

std::optional<int> ProcessState::poll_locked() {
  if (exit_code || !started) return exit_code;
  const auto code = collect_exit_code_locked();
  if (code) target.reset();  // CPython drops target and args once the child has them (bpo-30775)
  return code;
}

std::optional<int> ProcessState::collect_exit_code_locked() {
  if (used_method == StartMethod::forkserver && !server_lost) {
    // The server writes the wait status into the pipe after reaping the child; end of file with
    // no status means the server died first.
    auto ready = platform::wait_readable(status_fd.get(), 0);
    if (!ready) throw_os(ready.error(), "poll of a forkserver status pipe");
    if (!*ready) return std::nullopt;
    int status = 0;
    auto got = platform::read_full(status_fd.get(), &status, sizeof status);
    if (!got) throw_os(got.error(), "read of a forkserver status pipe");
    if (*got == sizeof status) {
      exit_code = platform::exit_code_from_status(status);
      return exit_code;
    }
    server_lost = true;  // from now on the pidfd is the sentinel
  }
  if (used_method == StartMethod::forkserver) {
    // Not our child (the server's, now gone): the pidfd says whether it ended, not how.
    auto ended = platform::wait_readable(pidfd.get(), 0);
    if (!ended) throw_os(ended.error(), "poll of a pidfd");
    if (*ended) exit_code = kExitStatusLost;
    return exit_code;
  }
  auto reaped = platform::reap_pidfd(pidfd.get(), /*block=*/false);
  if (!reaped) {
    // ECHILD: something else reaped it (a waitpid(-1) in the program); its status is lost.
    if (reaped.error() != std::errc::no_child_process) {
      throw_os(reaped.error(), "waitid of process " + std::to_string(pid));
    }
    exit_code = kExitStatusLost;
    return exit_code;
  }
  exit_code = *reaped;
  return exit_code;
}

bool wait_for_exit(ProcessState& s, std::chrono::nanoseconds timeout) {
  const bool forever = timeout == std::chrono::nanoseconds::max();
  const auto deadline =
      forever ? std::chrono::steady_clock::time_point::max()
              : std::chrono::steady_clock::now() + std::max(timeout, std::chrono::nanoseconds(0));
  for (;;) {
    int sentinel = -1;
    {
      // Only the known state here: asking the kernel first would cost a system call on the path
      // where the child is still running, and the sentinel answers that question anyway.
      std::lock_guard lock(s.mutex);
      if (s.exit_code) return true;
      sentinel = s.sentinel_locked();
    }
    // Wait without the lock, so that other threads may poll or signal meanwhile. The sentinel
    // stays open until close(), which must not race with a join.
    long long ns = -1;
    if (!forever) ns = std::max<long long>(0, (deadline - std::chrono::steady_clock::now()).count());
    auto ready = platform::wait_readable(sentinel, ns);
    if (!ready) throw_os(ready.error(), "poll of a process sentinel");
    std::lock_guard lock(s.mutex);
    if (s.poll_locked()) return true;
    if (!*ready) return false;  // timed out
    // Readable but not ended: the forkserver died, and the pidfd is the sentinel from now on.
  }
}

int ParentState::pidfd_locked() {
  if (!pidfd) {
    // Open, then confirm the parent is still ours: if getppid() still names it after the open,
    // the pidfd refers to it and not to a later process that reused the pid.
    auto fd = platform::open_pidfd(pid);
    if (fd && platform::parent_pid() == pid) pidfd = std::move(*fd);
  }
  return pidfd.get();
}

Runtime& Runtime::get() {
  // Never destroyed: exit handlers and static destructors may still use it. The first call also
  // makes the main process's handle, so that current_process() needs no lock of its own.
  static Runtime* runtime = [] {
    auto* rt = new Runtime();
    auto state = std::make_shared<ProcessState>();
    state->kind = ProcessState::Kind::self;
    state->name = "MainProcess";
    state->started = true;
    state->creator = platform::current_pid();
    rt->current = make_process(std::move(state));
    platform::bind_child_calls();
    flush_standard_streams_of_child();  // binds what the child's flush calls, writing nothing
    return rt;
  }();
  return *runtime;
}

StartMethod Runtime::fix_default_method() {
  std::lock_guard lock(context_mutex);
  if (!default_method) default_method = method_from_environment().value_or(StartMethod::fork);
  return *default_method;
}

StartMethod Runtime::peek_default_method() {
  std::lock_guard lock(context_mutex);
  return default_method ? *default_method : method_from_environment().value_or(StartMethod::fork);
}

void Runtime::add_child(std::shared_ptr<ProcessState> child) {
  std::lock_guard lock(children_mutex);
  children.push_back(std::move(child));
}

void Runtime::remove_child(const ProcessState* child) {
  std::lock_guard lock(children_mutex);
  std::erase_if(children, [&](const auto& c) { return c.get() == child; });
}

void Runtime::cleanup_children() {
  std::vector<std::shared_ptr<ProcessState>> snapshot;
  {
    std::lock_guard lock(children_mutex);
    snapshot = children;
  }
  for (const auto& child : snapshot) {
    bool ended = true;  // a child whose state cannot be read is dropped, not allowed to block others
    try {
      std::lock_guard lock(child->mutex);
      ended = child->closed || child->poll_locked().has_value();
    } catch (const std::exception&) {
    }
    if (ended) remove_child(child.get());
  }
}

extern "C" void mproc_exit_function() {
  Runtime::get().exit_function();
}

void Runtime::register_exit_handler() {
  std::lock_guard lock(children_mutex);
  if (exit_handler_registered) return;
  exit_handler_registered = true;
  std::atexit(mproc_exit_function);
}

void Runtime::exit_function() noexcept {
  std::vector<std::shared_ptr<ProcessState>> snapshot;
  {
    std::lock_guard lock(children_mutex);
    snapshot.swap(children);
  }
  // Each child on its own: one that cannot be waited for must not spare the others.
  for (const auto& child : snapshot) {
    try {
      std::lock_guard lock(child->mutex);
      if (child->daemon && !child->closed && !child->poll_locked()) {
        (void)platform::signal_pidfd(child->pidfd.get(), SIGTERM);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mproc: cannot terminate daemon %s at exit: %s\n", child->name.c_str(), e.what());
    }
  }
  for (const auto& child : snapshot) {
    try {
      if (!child->closed) wait_for_exit(*child, std::chrono::nanoseconds::max());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mproc: cannot join %s at exit: %s\n", child->name.c_str(), e.what());
    }
  }
  forkserver_shutdown();
}

void Runtime::reset_in_fork_child(Process* self, pid_t parent_id, const std::string& parent_name) {
  // Other threads of the parent do not exist here; their locks may be held forever. Rebuild the
  // pieces a child uses instead of touching the parent's. Every page written here is copied
  // (copy-on-write), so this writes only to the Runtime object itself and allocates nothing.
  new (&children_mutex) std::mutex();
  new (&context_mutex) std::mutex();
  // Forget the parent's children without destroying them: clear() would drop references
  // (writing their control blocks) and free the buffer (writing malloc's), copying both pages.
  // Moving the vector only moves its pointers; the buffer stays reachable, never used again.
  forgotten_children_ = std::move(children);
  counter.store(0, std::memory_order_relaxed);  // relaxed: the child is single-threaded here
  self_pidfd_.reset();
  devnull_.reset();
  forkserver_forget();
  current = self;
  new (&parent_slot_.mutex) std::mutex();
  parent_slot_.pid = parent_id;
  parent_slot_.name = parent_name;
  parent_slot_.pidfd.reset();
  // Non-owning: the slot lives as long as the Runtime, which is never destroyed.
  parent = std::shared_ptr<ParentState>(std::shared_ptr<ParentState>(), &parent_slot_);
}

Process* Runtime::make_process(std::shared_ptr<ProcessState> state) {
  return new Process(std::move(state));
}

void Runtime::become(std::shared_ptr<ProcessState> state) {
  if (current == nullptr) {
    current = make_process(std::move(state));  // never destroyed, like the Runtime
  } else {
    current->state_ = std::move(state);
  }
}

int Runtime::devnull() {
  std::lock_guard lock(children_mutex);
  if (!devnull_) {
    auto fd = platform::open_devnull();
    if (!fd) throw_os(fd.error(), "open of /dev/null");
    devnull_ = std::move(*fd);
  }
  return devnull_.get();
}

int Runtime::self_pidfd() {
  std::lock_guard lock(children_mutex);
  if (!self_pidfd_) {
    auto fd = platform::open_pidfd(platform::current_pid());
    if (!fd) throw_os(fd.error(), "pidfd_open of this process");
    self_pidfd_ = std::move(*fd);
  }
  return self_pidfd_.get();
}

}  // namespace detail

using detail::ProcessState;
using detail::Runtime;

std::string_view to_string(StartMethod method) noexcept {
  switch (method) {
    case StartMethod::fork:
      return "fork";
    case StartMethod::spawn:
      return "spawn";
    case StartMethod::forkserver:
      return "forkserver";
  }
  return "unknown";
}

StartMethod parse_start_method(std::string_view name) {
  if (name == "fork") return StartMethod::fork;
  if (name == "spawn") return StartMethod::spawn;
  if (name == "forkserver") return StartMethod::forkserver;
  throw ValueError("cannot find context for '" + std::string(name) + "'");
}

// --- Process ---------------------------------------------------------------------------------

Process::Process() : Process(ProcessOptions{}) {}

Process::Process(ProcessOptions options) : state_(std::make_shared<ProcessState>()) {
  auto& rt = Runtime::get();
  auto& s = *state_;
  s.creator = platform::current_pid();
  const Process& creator = current_process();
  s.identity = creator.state_->identity;
  // relaxed: a counter that only has to hand out distinct numbers.
  s.identity.push_back(rt.counter.fetch_add(1, std::memory_order_relaxed) + 1);
  if (options.name) {
    s.name = std::move(*options.name);
  } else {
    s.name = "Process-";
    for (std::size_t i = 0; i < s.identity.size(); ++i) {
      if (i > 0) s.name += ':';
      s.name += std::to_string(s.identity[i]);
    }
  }
  s.daemon = options.daemon.value_or(creator.state_->daemon);
}

Process::Process(std::shared_ptr<ProcessState> state) noexcept : state_(std::move(state)) {}

// Moving out of a subclass object into a plain Process (a vector<Process> of Pro objects) would
// silently lose the subclass's run(). The state remembers the type it was moved from, and
// start() refuses when that is not the type of the object starting it.
Process::Process(Process&& other) noexcept : state_(std::move(other.state_)) {
  if (state_ && typeid(other) != typeid(Process) && state_->origin == nullptr)
    state_->origin = &typeid(other);
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    state_ = std::move(other.state_);
    if (state_ && typeid(other) != typeid(Process) && state_->origin == nullptr) {
      state_->origin = &typeid(other);
    }
  }
  return *this;
}

// A running child whose handle goes away keeps running; the registry holds its state, so exit
// handling and active_children() still see it (CPython's behaviour on garbage collection).
Process::~Process() = default;

detail::ProcessState& Process::state() const {
  if (!state_) throw ProcessError("use of a moved-from Process");
  return *state_;
}

void Process::set_target(std::unique_ptr<detail::TargetBase> target) {
  state().target = std::move(target);
}

void Process::set_method(StartMethod method) {
  state().method = method;
}

void Process::run() {
  auto& s = state();
  if (s.target) s.target->invoke();
}

namespace {

struct ForkBody {
  Process* self;
};

void warn_if_threaded(Runtime& rt) {
  // relaxed: a flag that only suppresses a repeated message; a second warning in a race is harmless.
  if (rt.warned_threads.load(std::memory_order_relaxed)) return;
  // relaxed: a count that only decides whether to print a warning.
  const int own = rt.internal_threads.load(std::memory_order_relaxed);
  if (platform::thread_count() > 1 + own && !rt.warned_threads.exchange(true, std::memory_order_relaxed)) {
    std::fprintf(stderr,
                 "mproc: warning: this process (pid=%d) is multi-threaded, use of fork() may lead to "
                 "deadlocks in the child. Use the spawn or forkserver start method.\n",
                 static_cast<int>(platform::current_pid()));
  }
}

void flush_standard_streams() {
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::fflush(nullptr);
}

}  // namespace

void Process::start() {
  auto& s = state();
  auto& rt = Runtime::get();
  if (s.closed) throw_closed();
  if (s.kind == ProcessState::Kind::self || s.started) throw ProcessError("cannot start a process twice");
  if (s.creator != platform::current_pid()) {
    throw ProcessError("can only start a process object created by current process");
  }
  if (current_process().daemon()) throw ProcessError("daemonic processes are not allowed to have children");
  if (s.origin != nullptr && *s.origin != typeid(*this)) {
    throw ProcessError("this Process was moved out of a " + detail::demangle(s.origin->name()) +
                       " object, so that object's run() is lost: keep subclass objects in their own type "
                       "(or behind std::unique_ptr<mproc::Process>)");
  }

  const StartMethod method = s.method ? *s.method : rt.fix_default_method();
  rt.cleanup_children();
  rt.register_exit_handler();

  if (method == StartMethod::fork) {
    warn_if_threaded(rt);
    flush_standard_streams();
    const pid_t parent = platform::current_pid();
    const int devnull = rt.devnull();
    // Everything the parent records is written before fork: a page written while the child
    // lives is copied (copy-on-write), and those copies are most of what fork costs beyond the
    // system call. After fork the parent writes only the pid and pidfd.
    s.used_method = method;
    s.started = true;
    rt.add_child(state_);
    auto pid = platform::fork_process();
    if (!pid) {
      rt.remove_child(&s);
      s.started = false;
      detail::throw_os(pid.error(), "fork");
    }
    if (*pid == 0) {
      rt.reset_in_fork_child(this, parent, current_process().name());
      s.kind = ProcessState::Kind::self;
      platform::stdin_from(devnull);
      ForkBody body{this};
      detail::run_child_and_exit(
          s.name, [](void* ctx) { static_cast<ForkBody*>(ctx)->self->run(); }, &body);
    }
    auto pidfd = platform::open_pidfd(*pid);
    if (!pidfd) {
      // Cannot happen for our own unreaped child short of descriptor exhaustion; do not leave it.
      platform::kill_and_reap(*pid);
      rt.remove_child(&s);
      s.started = false;
      detail::throw_os(pidfd.error(), "pidfd_open of a new child");
    }
    std::lock_guard lock(s.mutex);
    s.pid = *pid;
    s.pidfd = std::move(*pidfd);
    // The target is released when the exit code is collected, once no page is shared.
    return;
  } else {
    if (!rt.initialized) {
      throw ProcessError(
          "the " + std::string(to_string(method)) +
          " start method needs mproc::init(argc, argv) as the first line of main(): the child runs "
          "this program again and init() is where it takes over");
    }
    if (typeid(*this) != typeid(Process)) {
      throw ProcessError("cannot start an object of the Process subclass " +
                         detail::demangle(typeid(*this).name()) + " with the " +
                         std::string(to_string(method)) +
                         " start method: the child cannot re-create it. Use the fork start method "
                         "(mproc::get_context(mproc::StartMethod::fork)) or pass a target function.");
    }
    std::optional<detail::TargetEntry> entry;
    if (s.target) {
      entry = s.target->entry();
      if (!entry) {
        throw ProcessError("the target " + detail::demangle(s.target->type().name()) +
                           " has state (a capturing lambda or functor), so it cannot cross to a " +
                           std::string(to_string(method)) +
                           " child: use a free function or captureless lambda, or the fork start method");
      }
    } else {
      entry = detail::TargetEntry{};  // no target: the child runs nothing and exits 0
    }
    std::vector<int> fds;
    const detail::BootPayload payload = detail::make_boot_payload(s, *entry, fds);
    const std::vector<std::byte> bytes = dumps(payload);
    auto blob = platform::make_sealed_blob(bytes);
    if (!blob) detail::throw_os(blob.error(), "memfd for the boot payload");
    fds.insert(fds.begin(), blob->get());

    flush_standard_streams();
    if (method == StartMethod::spawn) {
      fds.insert(fds.begin() + 1, rt.self_pidfd());
      auto pid = platform::spawn_self({rt.argv0, detail::kSpawnFlag}, fds);
      if (!pid) detail::throw_os(pid.error(), "posix_spawn of " + rt.argv0);
      auto pidfd = platform::open_pidfd(*pid);
      if (!pidfd) {
        platform::kill_and_reap(*pid);  // never leave an untracked child
        detail::throw_os(pidfd.error(), "pidfd_open of a new child");
      }
      std::lock_guard lock(s.mutex);
      s.pid = *pid;
      s.pidfd = std::move(*pidfd);
    } else {
      auto child = detail::forkserver_start({}, fds);
      std::lock_guard lock(s.mutex);
      s.pid = child.pid;
      s.pidfd = std::move(child.pidfd);
      s.status_fd = std::move(child.status_fd);
    }
  }
  {
    std::lock_guard lock(s.mutex);
    s.started = true;
    s.used_method = method;
  }
  s.target.reset();  // CPython drops target and args once the child has them (bpo-30775)
  rt.add_child(state_);
}

void Process::join() {
  join_for(std::chrono::nanoseconds::max());
}

bool Process::join_for(std::chrono::nanoseconds timeout) {
  auto& s = state();
  if (s.closed) throw_closed();
  if (s.kind == ProcessState::Kind::self || s.creator != platform::current_pid()) {
    throw ProcessError("can only join a child process");
  }
  if (!s.started) throw ProcessError("can only join a started process");
  const bool ended = detail::wait_for_exit(s, timeout);
  if (ended) Runtime::get().remove_child(&s);
  return ended;
}

bool Process::is_alive() {
  auto& s = state();
  if (s.closed) throw_closed();
  if (s.kind == ProcessState::Kind::self) return true;
  if (s.creator != platform::current_pid()) throw ProcessError("can only test a child process");
  if (!s.started) return false;
  std::lock_guard lock(s.mutex);
  return !s.poll_locked().has_value();
}

std::optional<int> Process::exitcode() {
  auto& s = state();
  if (s.closed) throw_closed();
  if (s.kind == ProcessState::Kind::self || !s.started) return std::nullopt;
  std::lock_guard lock(s.mutex);
  return s.poll_locked();
}

std::optional<int> Process::pid() const {
  auto& s = state();
  if (s.closed) throw_closed();
  if (s.kind == ProcessState::Kind::self) return static_cast<int>(platform::current_pid());
  std::lock_guard lock(s.mutex);
  if (!s.started) return std::nullopt;
  return static_cast<int>(s.pid);
}

namespace {
void send_signal(ProcessState& s, int signal, const char* what) {
  if (s.closed) throw_closed();
  if (s.kind == ProcessState::Kind::self)
    throw ProcessError(std::string("cannot ") + what + " the current process");
  if (!s.started) throw ProcessError(std::string("cannot ") + what + " a process that has not been started");
  std::lock_guard lock(s.mutex);
  if (s.exit_code) return;
  if (auto r = platform::signal_pidfd(s.pidfd.get(), signal); !r) {
    detail::throw_os(r.error(), std::string(what) + " of process " + std::to_string(s.pid));
  }
}
}  // namespace

void Process::terminate() {
  send_signal(state(), SIGTERM, "terminate");
}
void Process::kill() {
  send_signal(state(), SIGKILL, "kill");
}

void Process::close() {
  auto& s = state();
  if (s.closed) return;
  if (s.kind == ProcessState::Kind::self) throw ProcessError("cannot close the current process");
  {
    std::lock_guard lock(s.mutex);
    if (s.started && !s.poll_locked()) {
      throw ProcessError(
          "Cannot close a process while it is still running. You should first call join() or terminate().");
    }
    s.pidfd.reset();
    s.status_fd.reset();
    s.target.reset();
    s.closed = true;
  }
  Runtime::get().remove_child(&s);
}

const std::string& Process::name() const {
  return state().name;
}
void Process::set_name(std::string name) {
  state().name = std::move(name);
}

bool Process::daemon() const {
  auto& s = state();
  if (s.closed) throw_closed();
  return s.daemon;
}

void Process::set_daemon(bool daemon) {
  auto& s = state();
  if (s.closed) throw_closed();
  if (s.started) throw ProcessError("process has already started");
  s.daemon = daemon;
}

int Process::sentinel() const {
  auto& s = state();
  if (s.closed) throw_closed();
  if (!s.started || s.kind == ProcessState::Kind::self) throw ProcessError("process not started");
  std::lock_guard lock(s.mutex);
  return s.sentinel_locked();
}

StartMethod Process::start_method() const {
  auto& s = state();
  if (s.closed) throw_closed();
  if (s.kind == ProcessState::Kind::self) return Runtime::get().peek_default_method();
  if (s.started) return s.used_method;
  if (s.method) return *s.method;
  return Runtime::get().peek_default_method();  // reading it must not fix the default
}

std::string Process::repr() const {
  auto& s = state();
  std::ostringstream out;
  out << "<Process name='" << s.name << "'";
  if (s.closed) {
    out << " closed>";
    return out.str();
  }
  std::lock_guard lock(s.mutex);
  if (s.kind == ProcessState::Kind::self) {
    out << " pid=" << platform::current_pid() << " started>";
    return out.str();
  }
  if (!s.started) {
    out << " initial" << (s.daemon ? " daemon" : "") << ">";
    return out.str();
  }
  out << " pid=" << s.pid << " parent=" << s.creator;
  if (s.exit_code) {
    out << " stopped exitcode=";
    if (*s.exit_code < 0) {
      const char* sig = sigabbrev_np(-*s.exit_code);
      out << "-SIG" << (sig != nullptr ? sig : std::to_string(-*s.exit_code).c_str());
    } else {
      out << *s.exit_code;
    }
  } else {
    out << " started";
  }
  if (s.daemon) out << " daemon";
  out << ">";
  return out.str();
}

// --- module functions ------------------------------------------------------------------------

Process& current_process() {
  return *Runtime::get().current;
}

std::optional<ParentProcess> parent_process() {
  auto& rt = Runtime::get();
  if (!rt.parent) return std::nullopt;
  return ParentProcess(rt.parent);
}

std::vector<Process> active_children() {
  auto& rt = Runtime::get();
  rt.cleanup_children();
  std::lock_guard lock(rt.children_mutex);
  std::vector<Process> out;
  out.reserve(rt.children.size());
  for (const auto& child : rt.children) out.push_back(Process(child));
  return out;
}

int cpu_count() {
  return platform::affinity_cpu_count();
}

void set_start_method(StartMethod method, bool force) {
  auto& rt = Runtime::get();
  std::lock_guard lock(rt.context_mutex);
  if (rt.default_method && !force) throw ProcessError("context has already been set");
  rt.default_method = method;
}

StartMethod get_start_method() {
  return Runtime::get().fix_default_method();
}

std::optional<StartMethod> get_start_method_if_set() {
  auto& rt = Runtime::get();
  std::lock_guard lock(rt.context_mutex);
  return rt.default_method;
}

std::vector<StartMethod> get_all_start_methods() {
  std::vector<StartMethod> all{StartMethod::fork, StartMethod::spawn, StartMethod::forkserver};
  const StartMethod first = Runtime::get().peek_default_method();
  std::erase(all, first);
  all.insert(all.begin(), first);
  return all;
}

Context get_context(std::optional<StartMethod> method) {
  return Context(method ? *method : get_start_method());
}

// --- ParentProcess ---------------------------------------------------------------------------

int ParentProcess::pid() const noexcept {
  return static_cast<int>(state_->pid);
}
const std::string& ParentProcess::name() const noexcept {
  return state_->name;
}

int ParentProcess::sentinel() const {
  std::lock_guard lock(state_->mutex);
  const int fd = state_->pidfd_locked();
  if (fd < 0) throw ProcessError("the parent process has already ended");
  return fd;
}

bool ParentProcess::is_alive() const {
  return !join_for(std::chrono::nanoseconds(0));
}

void ParentProcess::join() const {
  join_for(std::chrono::nanoseconds::max());
}

bool ParentProcess::join_for(std::chrono::nanoseconds timeout) const {
  int fd = -1;
  {
    std::lock_guard lock(state_->mutex);
    fd = state_->pidfd_locked();
  }
  if (fd < 0) return true;  // gone before we could watch it
  const long long ns =
      timeout == std::chrono::nanoseconds::max() ? -1 : std::max<long long>(0, timeout.count());
  auto ready = platform::wait_readable(fd, ns);
  if (!ready) detail::throw_os(ready.error(), "poll of the parent's pidfd");
  return *ready;
}

}  // namespace mproc
