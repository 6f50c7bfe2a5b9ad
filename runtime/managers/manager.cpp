// Managers (include/mproc/managers.hpp): the proxies' connections, BaseManager and Manager.
// The server itself is runtime/managers/server.cpp.
//
// A client keeps one connection per thread and per process to each server (a fork child makes its
// own: two processes on one socket would interleave their messages). After CPython's handshake it
// moves its calls to a shared-memory Pipe when the server can open one (the same machine).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>

#include "managers/server.hpp"
#include "mproc/connection.hpp"
#include "mproc/listener.hpp"
#include "mproc/managers.hpp"
#include "platform/linux/socket.hpp"

namespace mproc {

namespace detail {

namespace {

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (auto r = platform::random_bytes(raw.data(), raw.size()); !r) throw_os_error(r.error(), "getrandom");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : raw) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::string address_key(const Address& a) {
  return (a.is_tcp() ? "tcp:" : "unix:") + a.to_string();
}

// An address for a message: an abstract name's leading NUL as '@', as ss(8) prints it.
std::string printable(const Address& a) {
  std::string s = a.to_string();
  if (!a.is_tcp() && !s.empty() && s[0] == '\0') s[0] = '@';
  return s;
}

// What a thread of a process holds to reach one server: the authenticated socket, and the
// shared-memory Pipe its calls travel on once attached (nullopt: the socket carries them).
struct ClientLink {
  SocketConnection socket;
  std::optional<Connection> pipe;
  ClientLink() = default;
  ClientLink(const ClientLink&) = delete;
  ClientLink& operator=(const ClientLink&) = delete;
  // Closed explicitly: the server's thread waits on the pipe, and only a close (or this process's
  // end) tells it that this client is gone. A thread's links close when the thread ends.
  ~ClientLink() {
    if (pipe) pipe->close();
  }
};

// This thread's links, by server address; made again in a new process: a fork child must not
// share its parent's socket or pipe end.
struct Connections {
  pid_t pid = 0;
  std::unordered_map<std::string, std::unique_ptr<ClientLink>> by_address;  // by address_key()
};
thread_local Connections t_connections;

// A fork child's copies of its parent's links are forgotten, not destroyed: destroying a copy of
// the parent's pipe end would close it for the parent too.
void forget_parents_links(Connections& c) {
  static auto* forgotten = new std::vector<std::unique_ptr<ClientLink>>();  // never freed, on purpose
  for (auto& [address, link] : c.by_address) forgotten->push_back(std::move(link));
  c.by_address.clear();
}

std::atomic<std::uint64_t> g_pipe_counter{0};

// Moves a fresh link's calls to a shared-memory Pipe: a named one this process creates, the
// server opens, and which stays the client's (its name is removed with this process's handle).
// When anything fails, the calls stay on the socket.
void attach_pipe(ClientLink& link) {
  // relaxed: distinct numbers only.
  // The random part: a server on another machine must not find a pipe of its own by this name.
  const std::string name = "mproc-mgr-" + std::to_string(::getpid()) + "-" +
                           std::to_string(g_pipe_counter.fetch_add(1, std::memory_order_relaxed)) + "-" +
                           random_hex(8);
  std::optional<Connection> pipe;
  try {
    pipe.emplace(Connection::create(name, PipeOptions{.capacity = 1U << 16}));
  } catch (const std::exception&) {
    return;
  }
  ManagerRequest attach;
  attach.op = kAttachPipe;
  link.socket.send(attach);
  link.socket.send(name);
  if (link.socket.recv<ManagerResponse>().status == kOk) link.pipe = std::move(pipe);
}

// This thread's links, after forgetting (not closing) the ones a fork child inherited.
Connections& this_process_connections() {
  Connections& c = t_connections;
  if (c.pid != ::getpid()) {
    if (c.pid != 0) forget_parents_links(c);
    c.pid = ::getpid();
  }
  return c;
}

ClientLink& connection_to(const ProxyRef& ref,
                          std::chrono::milliseconds handshake_timeout = kHandshakeTimeout) {
  Connections& c = this_process_connections();
  const std::string key = address_key(ref.address);
  auto it = c.by_address.find(key);
  if (it == c.by_address.end()) {
    auto link = std::make_unique<ClientLink>();
    try {
      link->socket = Client(ref.address);
    } catch (const OSError& e) {
      throw ProcessError("no manager answers at " + printable(ref.address) + " (" + e.what() + ")");
    }
    // The handshake and the move to a pipe have a time limit: something that accepts connections
    // at that address but never answers must not hang this caller. AuthenticationError passes.
    try {
      (void)platform::set_receive_timeout(link->socket.fileno(), handshake_timeout);
      answer_challenge(link->socket, ref.authkey);
      deliver_challenge(link->socket, ref.authkey);
      attach_pipe(*link);
      (void)platform::set_receive_timeout(link->socket.fileno(), std::chrono::milliseconds(0));
    } catch (const OSError& e) {
      throw ProcessError("the manager at " + printable(ref.address) + " did not complete the handshake (" +
                         e.what() + ")");
    } catch (const EOFError& e) {
      throw ProcessError("the manager at " + printable(ref.address) + " did not complete the handshake (" +
                         e.what() + ")");
    }
    it = c.by_address.emplace(key, std::move(link)).first;
  }
  return *it->second;
}

// This thread's link to a server, closed (a shut-down manager, a connection that failed).
void forget_link(const Address& address) {
  Connections& c = this_process_connections();
  c.by_address.erase(address_key(address));
}

[[noreturn]] void throw_answer(const ManagerResponse& r) {
  switch (r.status) {
    case kIndexError:
      throw IndexError(r.message);
    case kKeyError:
      throw KeyError(r.message);
    case kAttributeError:
      throw AttributeError(r.message);
    case kTypeError:
      throw TypeError(r.message);
    case kEmpty:
      throw Empty(r.message);
    case kShuttingDown:
      throw ProcessError(r.message);
    case kFull:
      throw Full(r.message);
    case kRemoteError:
      throw RemoteError(r.type_name, r.message, "the manager's server");
    default:
      throw ValueError(r.message);
  }
}

}  // namespace

ManagerResponse manager_call(const ProxyRef& ref, ManagerRequest request) {
  ClientLink& link = connection_to(ref);
  ManagerResponse response;
  try {
    if (link.pipe) {
      link.pipe->send(request);
      response = link.pipe->recv<ManagerResponse>();
    } else {
      link.socket.send(request);
      response = link.socket.recv<ManagerResponse>();
    }
  } catch (const EOFError&) {
    forget_link(ref.address);
    throw ProcessError("the manager has shut down");
  } catch (const OSError&) {
    forget_link(ref.address);
    throw ProcessError("the manager has shut down");
  }
  if (response.status != kOk) throw_answer(response);
  return response;
}

}  // namespace detail

// --- BaseManager -------------------------------------------------------------------------------

struct BaseManager::State {
  enum class Mode { initial, listening, serving, started, connected, shut_down };

  State(Address a, std::string key, ManagerOptions o)
      : address(std::move(a)), authkey(std::move(key)), options(o), creator(::getpid()) {}

  Address address;
  std::string authkey;
  ManagerOptions options;
  detail::TypeRegistry types;
  pid_t creator;
  std::mutex mutex;  // guards mode and serving: shutdown() may come from another thread
  Mode mode = Mode::initial;
  std::optional<Listener> listener;              // listen() .. serve_forever()
  std::shared_ptr<detail::ServerState> serving;  // while serve_forever() runs
  std::optional<Process> server;                 // start()
};

namespace {

// An abstract name: nothing in the file system to clean up, gone with the server.
Address local_address() {
  return Address(std::string(1, '\0') + "mproc-manager-" + std::to_string(::getpid()) + "-" +
                 detail::random_hex(8));
}

}  // namespace

BaseManager::BaseManager(ManagerOptions options)
    : BaseManager(local_address(), detail::random_hex(32), options) {}

BaseManager::BaseManager(Address address, std::string authkey, ManagerOptions options)
    : state_(std::make_unique<State>(std::move(address), std::move(authkey), options)) {}

BaseManager::BaseManager(Connected /*unused*/) {}

BaseManager BaseManager::connect(const Address& address, std::string authkey,
                                 std::chrono::milliseconds timeout) {
  BaseManager m{Connected{}};
  m.state_ = std::make_unique<State>(address, std::move(authkey), ManagerOptions{});
  (void)detail::connection_to(detail::ProxyRef{address, m.state_->authkey, 0},
                              timeout);  // the key is checked now
  m.state_->mode = State::Mode::connected;
  return m;
}

BaseManager::BaseManager(BaseManager&&) noexcept = default;
BaseManager& BaseManager::operator=(BaseManager&& other) noexcept {
  if (this != &other) {
    try {
      shutdown();
    } catch (const std::exception&) {
    }
    state_ = std::move(other.state_);
  }
  return *this;
}

BaseManager::~BaseManager() {
  if (!state_) return;
  try {
    if (state_->mode == State::Mode::connected) {
      detail::forget_link(state_->address);  // a client does not stop the server
    } else {
      shutdown();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc: shutting a manager down failed: %s\n", e.what());
  }
}

const Address& BaseManager::address() const {
  if (!state_) throw ProcessError("use of a moved-from manager");
  return state_->address;
}

void BaseManager::check_running() const {
  if (!state_) throw ProcessError("use of a moved-from manager");
  std::lock_guard lock(state_->mutex);
  if (state_->mode == State::Mode::shut_down) throw ProcessError("the manager has shut down");
}

void BaseManager::add_type(std::string type_name, detail::TypeEntry entry) {
  check_running();
  std::lock_guard lock(state_->mutex);
  if (state_->mode != State::Mode::initial) {
    throw ProcessError(
        "register_type() comes before the manager serves: its server has its registrations already");
  }
  state_->types.insert_or_assign(std::move(type_name), std::move(entry));
}

detail::ProxyRef BaseManager::make(detail::ManagerRequest request) {
  check_running();
  auto& s = *state_;
  detail::ProxyRef ref;
  {
    std::lock_guard lock(s.mutex);
    if (s.mode == State::Mode::initial || s.mode == State::Mode::listening) {
      throw ProcessError("the manager is not running: start() it, serve_forever() it, or connect() to one");
    }
    ref = detail::ProxyRef{s.address, s.authkey, 0};
  }
  ref.object = detail::manager_call(ref, std::move(request)).number;
  return ref;
}

Address BaseManager::listen() {
  check_running();
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.mode != State::Mode::initial) throw ProcessError("Already started server");
  bind_locked();
  return s.address;
}

void BaseManager::bind_locked() {
  auto& s = *state_;
  s.listener.emplace(detail::manager_listener(s.address));
  s.address = s.listener->address();
  s.mode = State::Mode::listening;
}

void BaseManager::serve_forever() {
  if (!state_) throw ProcessError("use of a moved-from manager");
  auto& s = *state_;
  std::shared_ptr<detail::ServerState> state;
  {
    std::lock_guard lock(s.mutex);
    switch (s.mode) {
      case State::Mode::initial:
        bind_locked();
        break;
      case State::Mode::listening:
        break;
      case State::Mode::shut_down:
        return;  // shut down before it served (from another thread): nothing to serve
      default:
        throw ProcessError("Already started server");
    }
    state = std::make_shared<detail::ServerState>(s.types, s.options.max_request);
    s.serving = state;
    s.mode = State::Mode::serving;
  }
  // However serving ends, the manager is shut down afterwards.
  struct Finish {
    State& s;
    ~Finish() {
      std::lock_guard lock(s.mutex);
      s.listener.reset();
      s.serving.reset();
      s.mode = State::Mode::shut_down;
    }
  } finish{s};
  state->serve(*s.listener, s.authkey);
}

namespace {

// A server process started with spawn or forkserver: only built-in types.
void server_process_main(Address address, std::string authkey, std::size_t max_request, Connection report) {
  detail::run_server(address, authkey, {}, max_request, std::move(report));
}

}  // namespace

void BaseManager::start() {
  check_running();
  auto& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.mode != State::Mode::initial) throw ProcessError("Already started server");
  std::optional<StartMethod> method = s.options.start_method;
  if (!s.types.empty()) {
    if (method && *method != StartMethod::fork) {
      throw ProcessError(
          "a manager with registered types starts its server with the fork start method: a "
          "spawned server could not rebuild the registrations");
    }
    method = StartMethod::fork;
  }
  auto [report_in, report_out] = Pipe(false);
  ProcessOptions o;
  o.name = "SyncManager-" + std::to_string(s.creator);
  o.daemon = true;
  const auto context = get_context(method);
  if (s.types.empty()) {
    s.server.emplace(context.Process(o, &server_process_main, s.address, s.authkey, s.options.max_request,
                                     std::move(report_out)));
  } else {
    // fork: the child has a copy of the registrations.
    s.server.emplace(context.Process(o, [&s, out = std::move(report_out)]() mutable {
      detail::run_server(s.address, s.authkey, s.types, s.options.max_request, std::move(out));
    }));
  }
  s.server->start();
  report_out.close();
  // The child reports the address it bound, or why it could not bind. The Process keeps a copy
  // of the write end (its arguments) until it is joined, so a child that dies first is noticed
  // by asking whether it is alive, not by the end of the pipe.
  std::optional<std::variant<Address, std::string>> report;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  try {
    while (std::chrono::steady_clock::now() < deadline) {
      if (report_in.poll(std::chrono::milliseconds(50))) {
        report = report_in.recv<std::variant<Address, std::string>>();
        break;
      }
      if (!s.server->is_alive()) break;
    }
  } catch (const std::exception&) {
  }
  if (!report || report->index() == 1) {
    s.server->kill();
    s.server->join();
    s.server.reset();
    throw ProcessError("the manager's server process did not start" +
                       (report ? ": " + std::get<std::string>(*report) : std::string()));
  }
  s.address = std::get<Address>(*report);
  s.mode = State::Mode::started;
}

void BaseManager::shutdown() {
  if (!state_) return;
  auto& s = *state_;
  std::unique_lock lock(s.mutex);
  if (s.mode == State::Mode::serving) {
    s.serving->stop();  // serve_forever() marks the end itself
    return;
  }
  const auto mode = std::exchange(s.mode, State::Mode::shut_down);
  if (mode == State::Mode::listening) s.listener.reset();
  if (mode == State::Mode::connected) detail::forget_link(s.address);
  if (mode != State::Mode::started) return;
  if (s.creator != ::getpid()) return;  // a fork child's copy: the server is its parent's
  lock.unlock();
  try {
    detail::ManagerRequest request;
    request.op = detail::kShutdown;
    (void)detail::manager_call({s.address, s.authkey, 0}, request);
  } catch (const std::exception&) {
  }
  detail::forget_link(s.address);
  if (!s.server->join(std::chrono::seconds(5))) {
    s.server->kill();
    s.server->join();
  }
}

// --- Manager -----------------------------------------------------------------------------------

Manager::Manager(ManagerOptions options) : BaseManager(options) {
  start();
}

}  // namespace mproc
