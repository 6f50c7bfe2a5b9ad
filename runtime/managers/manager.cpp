// Manager (include/mproc/managers.hpp): the server process and the proxies' connections.
//
// The server listens on an abstract Unix-domain name with a random authkey (CPython's
// handshake, runtime/net/), serves each connection in a thread of its own, and keeps the objects
// under one mutex: a list is a vector of encoded values, a dict a vector of (key, value) in
// insertion order with an index by the key's bytes, a Namespace a map by name. A client keeps one
// connection per thread and per process (a fork child makes its own: two processes on one socket
// would interleave their messages).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>

#include "mproc/connection.hpp"
#include "mproc/listener.hpp"
#include "mproc/managers.hpp"
#include "platform/linux/shm.hpp"
#include "platform/linux/socket.hpp"

namespace mproc {

namespace detail {

namespace {

enum ManagerStatus : std::uint8_t { kOk = 0, kIndexError, kKeyError, kAttributeError, kValueError };

using Bytes = std::vector<std::byte>;

struct ListObject {
  std::vector<Bytes> items;
};
// A dict key's index entry: its encoded bytes as a string (hashable).
std::string key_of(const Bytes& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

struct DictObject {
  std::vector<std::pair<Bytes, Bytes>> items;          // insertion order
  std::unordered_map<std::string, std::size_t> index;  // key bytes -> position in items
  void erase_at(std::size_t at) {
    index.erase(key_of(items[at].first));
    items.erase(items.begin() + static_cast<std::ptrdiff_t>(at));
    for (auto& [key, pos] : index) {
      if (pos > at) --pos;
    }
  }
};
struct NamespaceObject {
  std::map<std::string, Bytes> values;
};
using Object = std::variant<ListObject, DictObject, NamespaceObject>;

class Server {
 public:
  ManagerResponse handle(const ManagerRequest& r) {
    std::lock_guard lock(mutex_);
    switch (r.op) {
      case kNewList:
        return created(ListObject{});
      case kNewDict:
        return created(DictObject{});
      case kNewNamespace:
        return created(NamespaceObject{});
      default:
        break;
    }
    auto it = objects_.find(r.object);
    if (it == objects_.end()) return fail(kValueError, "no such object in the manager");
    if (auto* l = std::get_if<ListObject>(&it->second)) return list(*l, r);
    if (auto* d = std::get_if<DictObject>(&it->second)) return dict(*d, r);
    return ns(std::get<NamespaceObject>(it->second), r);
  }

 private:
  static ManagerResponse fail(std::uint8_t status, std::string message) {
    ManagerResponse out;
    out.status = status;
    out.message = std::move(message);
    return out;
  }
  static ManagerResponse ok() { return {}; }
  static ManagerResponse number(std::uint64_t n) {
    ManagerResponse out;
    out.number = n;
    return out;
  }
  static ManagerResponse value(Bytes v) {
    ManagerResponse out;
    out.value = std::move(v);
    return out;
  }

  ManagerResponse created(Object o) {
    const std::uint64_t id = next_++;
    objects_.emplace(id, std::move(o));
    return number(id);
  }

  // Python's index rules: negative counts from the end.
  static std::optional<std::size_t> position(std::int64_t i, std::size_t size) {
    const std::int64_t n = static_cast<std::int64_t>(size);
    if (i < 0) i += n;
    if (i < 0 || i >= n) return std::nullopt;
    return static_cast<std::size_t>(i);
  }

  static ManagerResponse list(ListObject& l, const ManagerRequest& r) {
    switch (r.op) {
      case kListAppend:
        l.items.push_back(r.a);
        return ok();
      case kListLen:
        return number(l.items.size());
      case kListGet: {
        auto at = position(r.index, l.items.size());
        if (!at) return fail(kIndexError, "list index out of range");
        return value(l.items[*at]);
      }
      case kListSet: {
        auto at = position(r.index, l.items.size());
        if (!at) return fail(kIndexError, "list assignment index out of range");
        l.items[*at] = r.a;
        return ok();
      }
      case kListPop: {
        if (l.items.empty()) return fail(kIndexError, "pop from empty list");
        auto at = position(r.index, l.items.size());
        if (!at) return fail(kIndexError, "pop index out of range");
        Bytes v = std::move(l.items[*at]);
        l.items.erase(l.items.begin() + static_cast<std::ptrdiff_t>(*at));
        return value(std::move(v));
      }
      case kListClear:
        l.items.clear();
        return ok();
      case kListAll: {
        ManagerResponse out;
        out.values = l.items;
        return out;
      }
      default:
        return fail(kValueError, "not a list operation");
    }
  }

  static ManagerResponse dict(DictObject& d, const ManagerRequest& r) {
    switch (r.op) {
      case kDictSet: {
        auto it = d.index.find(key_of(r.a));
        if (it != d.index.end()) {
          d.items[it->second].second = r.b;
        } else {
          d.index.emplace(key_of(r.a), d.items.size());
          d.items.emplace_back(r.a, r.b);
        }
        return ok();
      }
      case kDictGet: {
        auto it = d.index.find(key_of(r.a));
        if (it == d.index.end()) return fail(kKeyError, "key not found");
        return value(d.items[it->second].second);
      }
      case kDictContains:
        return number(d.index.contains(key_of(r.a)) ? 1 : 0);
      case kDictDel: {
        auto it = d.index.find(key_of(r.a));
        if (it == d.index.end()) return fail(kKeyError, "key not found");
        d.erase_at(it->second);
        return ok();
      }
      case kDictKeys:
      case kDictValues: {
        ManagerResponse out;
        for (const auto& [k, v] : d.items) out.values.push_back(r.op == kDictKeys ? k : v);
        return out;
      }
      case kDictLen:
        return number(d.items.size());
      default:
        return fail(kValueError, "not a dict operation");
    }
  }

  static ManagerResponse ns(NamespaceObject& n, const ManagerRequest& r) {
    std::string name;
    try {
      name = loads<std::string>(r.a);
    } catch (const DecodeError&) {
      return fail(kValueError, "a Namespace name that is not a string");
    }
    const std::string missing = "'Namespace' object has no attribute '" + name + "'";
    switch (r.op) {
      case kNsSet:
        n.values[name] = r.b;
        return ok();
      case kNsGet: {
        auto it = n.values.find(name);
        if (it == n.values.end()) return fail(kAttributeError, missing);
        return value(it->second);
      }
      case kNsDel:
        if (n.values.erase(name) == 0) return fail(kAttributeError, missing);
        return ok();
      default:
        return fail(kValueError, "not a Namespace operation");
    }
  }

  std::mutex mutex_;
  std::unordered_map<std::uint64_t, Object> objects_;
  std::uint64_t next_ = 1;
};

// Answers requests from `in` on `out` until the end of the stream or a shutdown request.
template <class Link>
bool answer(Server& server, Link& link, std::atomic<bool>& stop, int listener_fd) {
  for (;;) {
    const auto request = link.template recv<ManagerRequest>();
    if (request.op == kShutdown) {
      link.send(ManagerResponse{});
      stop = true;
      platform::shutdown_socket(listener_fd);  // wakes the accept loop
      return false;
    }
    if (request.op == kAttachPipe) return true;  // the caller moves to the pipe
    link.send(server.handle(request));
  }
}

// One client: requests on its socket until it attaches a shared-memory Pipe, then on the pipe.
// The end of either stream (the client closed or died) ends this thread; the server goes on
// serving the others.
void serve(Server& server, SocketConnection conn, std::atomic<bool>& stop, int listener_fd) {
  try {
    if (!answer(server, conn, stop, listener_fd)) return;
  } catch (const std::exception&) {
    return;
  }
  // kAttachPipe: open the client's named pipe, say whether that worked, and serve it.
  std::optional<Connection> pipe;
  try {
    // The request is read again by the loop above only up to the op; the name follows here.
    const auto name = conn.recv<std::string>();
    pipe.emplace(Connection::open(name));
    // Both ends are mapped: the name is not needed any more. Removed here, it cannot be left
    // behind by a client that ends without running destructors (a Process child's _exit).
    (void)platform::unlink_named("/" + name);
    conn.send(ManagerResponse{});
  } catch (const std::exception& e) {
    try {
      ManagerResponse no;
      no.status = kValueError;
      no.message = e.what();
      conn.send(no);
      (void)answer(server, conn, stop, listener_fd);  // the client stays on the socket
    } catch (const std::exception&) {
    }
    return;
  }
  try {
    (void)answer(server, *pipe, stop, listener_fd);
  } catch (const std::exception&) {
  }
}

}  // namespace

// The server process's main.
void manager_server_main(std::string address, std::string authkey) {
  Listener listener(Address(address), authkey, 16);
  Server server;
  std::atomic<bool> stop{false};
  while (!stop) {
    SocketConnection conn;
    try {
      conn = listener.accept();
    } catch (const AuthenticationError&) {
      continue;  // a wrong key: that client is refused, the others are served
    } catch (const std::exception&) {
      if (stop) break;
      continue;
    }
    // The listener's descriptor goes along, so that a shutdown request can wake this accept().
    std::thread(serve, std::ref(server), std::move(conn), std::ref(stop), listener.fileno()).detach();
  }
}

// --- the client side ---------------------------------------------------------------------------

namespace {

// What a thread of a process holds to reach one server: the authenticated socket, and the
// shared-memory Pipe its calls travel on once attached (nullopt: the socket carries them).
struct ClientLink {
  SocketConnection socket;
  std::optional<Connection> pipe;
};

// This thread's links, by server address; made again in a new process: a fork child must not
// share its parent's socket or pipe end.
struct Connections {
  pid_t pid = 0;
  std::unordered_map<std::string, std::unique_ptr<ClientLink>> by_address;
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
  const std::string name = "mproc-mgr-" + std::to_string(::getpid()) + "-" +
                           std::to_string(g_pipe_counter.fetch_add(1, std::memory_order_relaxed));
  std::optional<Connection> pipe;
  try {
    pipe.emplace(Connection::create(name, PipeOptions{.capacity = 1U << 16}));
  } catch (const std::exception&) {
    return;
  }
  link.socket.send(ManagerRequest{0, kAttachPipe, {}, {}, 0});
  link.socket.send(name);
  if (link.socket.recv<ManagerResponse>().status == kOk) link.pipe = std::move(pipe);
}

ClientLink& connection_to(const ProxyRef& ref) {
  Connections& c = t_connections;
  if (c.pid != ::getpid()) {
    if (c.pid != 0) forget_parents_links(c);
    c.pid = ::getpid();
  }
  auto it = c.by_address.find(ref.address);
  if (it == c.by_address.end()) {
    auto link = std::make_unique<ClientLink>();
    try {
      link->socket = Client(Address(ref.address), ref.authkey);
    } catch (const OSError& e) {
      throw ProcessError(std::string("the manager is not running (") + e.what() + ")");
    }
    attach_pipe(*link);
    it = c.by_address.emplace(ref.address, std::move(link)).first;
  }
  return *it->second;
}

[[noreturn]] void throw_answer(const ManagerResponse& r) {
  switch (r.status) {
    case kIndexError:
      throw IndexError(r.message);
    case kKeyError:
      throw KeyError(r.message);
    case kAttributeError:
      throw AttributeError(r.message);
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
    t_connections.by_address.erase(ref.address);
    throw ProcessError("the manager has shut down");
  } catch (const OSError&) {
    t_connections.by_address.erase(ref.address);
    throw ProcessError("the manager has shut down");
  }
  if (response.status != kOk) throw_answer(response);
  return response;
}

}  // namespace detail

// --- Manager -----------------------------------------------------------------------------------

struct Manager::State {
  std::string address;
  std::string authkey;
  std::optional<Process> server;
  pid_t creator = 0;
  bool shut_down = false;
};

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

}  // namespace

Manager::Manager(ManagerOptions options) : state_(std::make_unique<State>()) {
  auto& s = *state_;
  s.creator = ::getpid();
  s.authkey = random_hex(32);
  // An abstract name: nothing in the file system to clean up, gone with the server.
  s.address = std::string(1, '\0') + "mproc-manager-" + std::to_string(s.creator) + "-" + random_hex(8);
  ProcessOptions o;
  o.name = "SyncManager-" + std::to_string(s.creator);
  o.daemon = true;
  s.server.emplace(
      get_context(options.start_method).Process(o, &detail::manager_server_main, s.address, s.authkey));
  s.server->start();
  // Ready when it answers: a first connection, retried while the server starts listening.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    try {
      (void)detail::connection_to(detail::ProxyRef{s.address, s.authkey, 0});
      break;
    } catch (const ProcessError&) {
      if (!s.server->is_alive() || std::chrono::steady_clock::now() > deadline) {
        s.server->kill();
        s.server->join();
        throw ProcessError("the manager's server process did not start");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

Manager::Manager(Manager&&) noexcept = default;
Manager& Manager::operator=(Manager&&) noexcept = default;

Manager::~Manager() {
  try {
    shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc: shutting a manager down failed: %s\n", e.what());
  }
}

const std::string& Manager::address() const {
  if (!state_) throw ProcessError("use of a moved-from Manager");
  return state_->address;
}

void Manager::check_running() const {
  if (!state_ || state_->shut_down) throw ProcessError("the manager has shut down");
}

detail::ProxyRef Manager::make(std::uint8_t op) {
  check_running();
  detail::ProxyRef ref{state_->address, state_->authkey, 0};
  ref.object = detail::manager_call(ref, {0, op, {}, {}, 0}).number;
  return ref;
}

void Manager::shutdown() {
  if (!state_ || state_->shut_down) return;
  auto& s = *state_;
  s.shut_down = true;
  if (s.creator != ::getpid()) return;  // a fork child's copy: the server is its parent's
  try {
    (void)detail::manager_call({s.address, s.authkey, 0}, {0, detail::kShutdown, {}, {}, 0});
  } catch (const std::exception&) {
  }
  detail::t_connections.by_address.erase(s.address);
  if (!s.server->join(std::chrono::seconds(5))) {
    s.server->kill();
    s.server->join();
  }
}

}  // namespace mproc
