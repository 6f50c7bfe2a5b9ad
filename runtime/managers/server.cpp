// The manager's server (server.hpp): its objects and the threads that serve its connections.
//
// Built-in objects (list, dict, Namespace) hold encoded values under the table's one mutex.
// Objects of registered types are C++ objects; a call finds the object under that mutex, lets it
// go, and runs the method under the object's own mutex (none for a concurrent type), so a slow or
// waiting method holds up only callers of the same object.
#include "managers/server.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <new>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <variant>

#include "mproc/connection.hpp"
#include "platform/linux/shm.hpp"
#include "platform/linux/socket.hpp"
#include "process/state.hpp"

namespace mproc::detail {

namespace {

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
// An object of a registered type: the object, its type's entry, and the mutex that serializes its
// calls (none for a concurrent type).
struct UserObject {
  std::shared_ptr<void> object;
  const TypeEntry* type = nullptr;
  std::string type_name;
  std::shared_ptr<std::mutex> calls;
};
// A queue in the server: its own mutex, so that a put() or get() that waits holds up only the
// callers of this queue. Waits look at the server's stop flag now and then.
struct QueueObject {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Bytes> items;
  std::size_t maxsize = 0;       // 0: unbounded
  std::uint64_t unfinished = 0;  // items put and not yet task_done() (JoinableQueue)
};
// An Event in the server: a flag under its own mutex, waited on like a queue.
struct EventObject {
  std::mutex mutex;
  std::condition_variable changed;
  bool flag = false;
};
using Object = std::variant<ListObject, DictObject, NamespaceObject, UserObject, std::shared_ptr<QueueObject>,
                            std::shared_ptr<EventObject>>;

// A signature ("St5tupleIJiSsEE->v") for messages: "(int, std::string)" and "void".
struct ReadableSignature {
  std::string args;
  std::string result;
  [[nodiscard]] std::string full() const { return args + " -> " + result; }
};

ReadableSignature readable(const std::string& signature) {
  const auto arrow = signature.find("->");
  if (arrow == std::string::npos) return {signature, "?"};
  auto tidy = [](std::string s) {
    const std::string long_string =
        "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >";
    for (auto at = s.find(long_string); at != std::string::npos; at = s.find(long_string)) {
      s.replace(at, long_string.size(), "std::string");
    }
    return s;
  };
  std::string args = tidy(demangle(signature.substr(0, arrow).c_str()));
  const std::string tuple = "std::tuple<";
  if (args.rfind(tuple, 0) == 0 && args.back() == '>')
    args = args.substr(tuple.size(), args.size() - tuple.size() - 1);
  while (!args.empty() && args.back() == ' ') args.pop_back();
  return {"(" + args + ")", tidy(demangle(signature.substr(arrow + 2).c_str()))};
}

ManagerResponse fail(std::uint8_t status, std::string message) {
  ManagerResponse out;
  out.status = status;
  out.message = std::move(message);
  return out;
}

// Runs a registered method or factory; its exception, if any, as the response.
template <class F>
ManagerResponse guarded(const std::string& where, F&& f) {
  try {
    return f();
  } catch (const IndexError& e) {
    return fail(kIndexError, e.what());
  } catch (const KeyError& e) {
    return fail(kKeyError, e.what());
  } catch (const AttributeError& e) {
    return fail(kAttributeError, e.what());
  } catch (const TypeError& e) {
    return fail(kTypeError, e.what());
  } catch (const DecodeError& e) {
    return fail(kValueError, where + ": arguments that do not decode: " + e.what());
  } catch (const ValueError& e) {
    return fail(kValueError, e.what());
  } catch (const std::exception& e) {
    auto out = fail(kRemoteError, e.what());
    out.type_name = demangle(typeid(e).name());
    return out;
  } catch (...) {
    auto out = fail(kRemoteError, "an exception that is not a std::exception");
    out.type_name = "unknown exception";
    return out;
  }
}

}  // namespace

class ObjectTable {
 public:
  ObjectTable(TypeRegistry types, const std::atomic<bool>& stop) : types_(std::move(types)), stop_(stop) {}

  ManagerResponse handle(const ManagerRequest& r, const ClientGone& client_gone) {
    switch (r.op) {
      case kCreate:
        return create(r);
      case kCall:
        return call(r);
      case kQueuePut:
      case kQueueGet:
      case kQueueSize:
      case kQueueEmpty:
      case kQueueFull:
      case kQueueTaskDone:
      case kQueueJoin:
        return queue(r, client_gone);
      case kEventSet:
      case kEventClear:
      case kEventIsSet:
      case kEventWait:
        return event(r, client_gone);
      default:
        break;
    }
    std::lock_guard lock(mutex_);
    switch (r.op) {
      case kNewList:
        return created(ListObject{});
      case kNewDict:
        return created(DictObject{});
      case kNewNamespace:
        return created(NamespaceObject{});
      case kNewEvent:
        return created(std::make_shared<EventObject>());
      case kNewQueue: {
        if (r.index < 0) return fail(kValueError, "a queue's maxsize cannot be negative");
        auto q = std::make_shared<QueueObject>();
        q->maxsize = static_cast<std::size_t>(r.index);
        return created(std::move(q));
      }
      default:
        break;
    }
    auto it = objects_.find(r.object);
    if (it == objects_.end()) return fail(kValueError, "no such object in the manager");
    if (auto* l = std::get_if<ListObject>(&it->second)) return list(*l, r);
    if (auto* d = std::get_if<DictObject>(&it->second)) return dict(*d, r);
    if (auto* n = std::get_if<NamespaceObject>(&it->second)) return ns(*n, r);
    return fail(kValueError, "not an operation of a registered type's object");
  }

 private:
  ManagerResponse create(const ManagerRequest& r) {
    auto type = types_.find(r.name);
    if (type == types_.end())
      return fail(kKeyError, "no type named '" + r.name + "' is registered with the manager");
    const TypeEntry& entry = type->second;
    if (r.signature != entry.signature) {
      return fail(kTypeError, r.name + "() takes " + readable(entry.signature).args + ", not " +
                                  readable(r.signature).args);
    }
    std::shared_ptr<void> made;
    auto response = guarded(r.name + "()", [&] {
      // One factory call at a time: a factory may keep state (a counter, a cache) of its own.
      std::lock_guard serialized(factories_);
      made = entry.make(r.a);
      return ManagerResponse{};
    });
    if (response.status != kOk) return response;
    std::lock_guard lock(mutex_);
    // One mutex per C++ object, not per id: a factory that returns the same object every time
    // (a shared queue) gives one object behind many ids, and its calls must still go one by one.
    std::shared_ptr<std::mutex> calls;
    if (!entry.concurrent) {
      auto& shared = object_mutexes_[made.get()];
      if (!shared) shared = std::make_shared<std::mutex>();
      calls = shared;
    }
    return created(UserObject{std::move(made), &entry, r.name, std::move(calls)});
  }

  ManagerResponse call(const ManagerRequest& r) {
    UserObject object;
    {
      std::lock_guard lock(mutex_);
      auto it = objects_.find(r.object);
      if (it == objects_.end()) return fail(kValueError, "no such object in the manager");
      auto* user = std::get_if<UserObject>(&it->second);
      if (user == nullptr) return fail(kValueError, "not an object of a registered type");
      object = *user;
    }
    auto method = object.type->methods.find(r.name);
    if (method == object.type->methods.end()) {
      return fail(kAttributeError, "'" + object.type_name + "' object has no attribute '" + r.name + "'");
    }
    const std::string where = object.type_name + "." + r.name + "()";
    if (r.signature != method->second.signature) {
      return fail(kTypeError, where + " is " + readable(method->second.signature).full() +
                                  "; it was called as " + readable(r.signature).full());
    }
    return guarded(where, [&] {
      std::unique_lock<std::mutex> serialized;
      if (object.calls) serialized = std::unique_lock(*object.calls);
      ManagerResponse out;
      out.value = method->second.invoke(object.object.get(), r.a);
      return out;
    });
  }

  // An object that waits under a mutex of its own (a queue, an Event): found under the table's
  // mutex, used after letting it go. nullptr when the id names no such object.
  template <class T>
  std::shared_ptr<T> find_own_locked(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = objects_.find(id);
    if (it == objects_.end()) return nullptr;
    auto* held = std::get_if<std::shared_ptr<T>>(&it->second);
    return held != nullptr ? *held : nullptr;
  }

  ManagerResponse queue(const ManagerRequest& r, const ClientGone& client_gone) {
    const auto q = find_own_locked<QueueObject>(r.object);
    if (!q) return fail(kValueError, "no such queue in the manager");
    std::unique_lock lock(q->mutex);
    switch (r.op) {
      case kQueueSize:
        return number(q->items.size());
      case kQueueEmpty:
        return number(q->items.empty() ? 1 : 0);
      case kQueueFull:
        return number(q->maxsize != 0 && q->items.size() >= q->maxsize ? 1 : 0);
      case kQueuePut: {
        const auto waited = wait(q->changed, lock, r.index, client_gone,
                                 [&] { return q->maxsize == 0 || q->items.size() < q->maxsize; });
        if (waited == kEmpty) return fail(kFull, "the queue is full");
        if (waited != kOk) return fail(waited, "the manager shut down during the call");
      }
        q->items.push_back(r.a);
        ++q->unfinished;
        q->changed.notify_all();
        return ManagerResponse{};
      case kQueueTaskDone:
        if (q->unfinished == 0) return fail(kValueError, "task_done() called too many times");
        if (--q->unfinished == 0) q->changed.notify_all();
        return ManagerResponse{};
      case kQueueJoin: {
        const auto waited = wait(q->changed, lock, -1, client_gone, [&] { return q->unfinished == 0; });
        if (waited != kOk) return fail(waited, "the manager shut down during the call");
        return ManagerResponse{};
      }
      default: {  // kQueueGet
        const auto waited = wait(q->changed, lock, r.index, client_gone, [&] { return !q->items.empty(); });
        if (waited == kEmpty) return fail(kEmpty, "the queue is empty");
        if (waited != kOk) return fail(waited, "the manager shut down during the call");
        Bytes item = std::move(q->items.front());
        q->items.pop_front();
        q->changed.notify_all();
        return value(std::move(item));
      }
    }
  }

  ManagerResponse event(const ManagerRequest& r, const ClientGone& client_gone) {
    const auto e = find_own_locked<EventObject>(r.object);
    if (!e) return fail(kValueError, "no such Event in the manager");
    std::unique_lock lock(e->mutex);
    switch (r.op) {
      case kEventSet:
        e->flag = true;
        e->changed.notify_all();
        return ManagerResponse{};
      case kEventClear:
        e->flag = false;
        return ManagerResponse{};
      case kEventIsSet:
        return number(e->flag ? 1 : 0);
      default: {  // kEventWait
        const auto waited = wait(e->changed, lock, r.index, client_gone, [&] { return e->flag; });
        if (waited == kShuttingDown) return fail(waited, "the manager shut down during the call");
        return number(waited == kOk ? 1 : 0);
      }
    }
  }

  // Waits until ready(), for at most timeout_ns (-1, or a century or more: no limit), in slices
  // that look at the server's stop flag and at the client: kOk, kEmpty when the time ran out,
  // kShuttingDown when the server stops or the client has gone (a dead consumer must not take
  // the next item with it).
  template <class Ready>
  std::uint8_t wait(std::condition_variable& changed, std::unique_lock<std::mutex>& lock,
                    std::int64_t timeout_ns, const ClientGone& client_gone, Ready ready) {
    if (ready()) return kOk;  // the common case: no clock, no look at the client
    constexpr std::int64_t kCentury = std::int64_t{100} * 365 * 24 * 3600 * 1'000'000'000;
    if (timeout_ns >= kCentury) timeout_ns = -1;  // and now + timeout cannot overflow
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::max<std::int64_t>(timeout_ns, 0));
    do {
      if (timeout_ns >= 0 && std::chrono::steady_clock::now() >= deadline) return kEmpty;
      // relaxed: a hint to give up; the connection's own end does the rest.
      if (stop_.load(std::memory_order_relaxed)) return kShuttingDown;
      // Only a call that waits asks about its client (for a pipe, a liveness check of its
      // process): one that is answered at once has a client that just spoke.
      if (client_gone && client_gone()) return kShuttingDown;  // nobody to answer
      auto slice = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      if (timeout_ns >= 0 && deadline < slice) slice = deadline;
      changed.wait_until(lock, slice);
    } while (!ready());
    if (client_gone && client_gone()) return kShuttingDown;  // woken for an item nobody would get
    return kOk;
  }

  ManagerResponse created(Object o) {
    const std::uint64_t id = next_++;
    objects_.emplace(id, std::move(o));
    return number(id);
  }

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

  const TypeRegistry types_;  // not changed while serving
  std::mutex factories_;
  std::mutex mutex_;  // guards what follows
  std::unordered_map<const void*, std::shared_ptr<std::mutex>>
      object_mutexes_;  // objects live until shutdown
  std::unordered_map<std::uint64_t, Object> objects_;
  std::uint64_t next_ = 1;
  const std::atomic<bool>& stop_;
};

// --- ServerState -------------------------------------------------------------------------------

ServerState::ServerState(TypeRegistry types, std::size_t max_request)
    : objects_(std::make_unique<ObjectTable>(std::move(types), stop_)), max_request_(max_request) {}

ServerState::~ServerState() = default;

ManagerResponse ServerState::handle(const ManagerRequest& request, const ClientGone& client_gone) {
  return objects_->handle(request, client_gone);
}

bool ServerState::stopped() const noexcept {
  // acquire: a thread that sees the stop also sees the descriptors stop() shut down.
  return stop_.load(std::memory_order_acquire);  // [sync:manager.stop]
}

void ServerState::stop() noexcept {
  std::lock_guard lock(mutex_);
  stop_.store(true, std::memory_order_release);                    // [sync:manager.stop]
  if (listener_fd_ >= 0) platform::shutdown_socket(listener_fd_);  // wakes accept()
  for (int fd : live_) platform::shutdown_socket(fd);              // wakes each connection's recv
}

std::optional<int> ServerState::admit(int fd) {
  std::lock_guard lock(mutex_);
  if (handshaking_ >= kMaxHandshakes) return std::nullopt;
  const int duplicate = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (duplicate < 0) return std::nullopt;
  live_.insert(duplicate);
  ++running_;
  ++handshaking_;
  if (stopped()) platform::shutdown_socket(duplicate);
  return duplicate;
}

void ServerState::authenticated() noexcept {
  std::lock_guard lock(mutex_);
  --handshaking_;
}

void ServerState::leave(int duplicate, bool was_authenticated) noexcept {
  std::lock_guard lock(mutex_);
  live_.erase(duplicate);
  ::close(duplicate);
  if (!was_authenticated) --handshaking_;
  try {
    finished_.push_back(std::this_thread::get_id());
  } catch (const std::bad_alloc&) {
    // Not filed for an early join: reap(true) joins it with the rest when serving ends.
  }
  if (--running_ == 0) idle_.notify_all();
}

void ServerState::reap(bool all) {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mutex_);
    if (all) {
      for (auto& [id, t] : threads_) done.push_back(std::move(t));
      threads_.clear();
      finished_.clear();
    } else {
      std::vector<std::thread::id> not_yet;  // finished before serve() filed its thread
      for (const auto id : finished_) {
        auto it = threads_.find(id);
        if (it == threads_.end()) {
          not_yet.push_back(id);
          continue;
        }
        done.push_back(std::move(it->second));
        threads_.erase(it);
      }
      finished_ = std::move(not_yet);
    }
  }
  for (auto& t : done) t.join();  // each has left(): only its exit is still to come
}

namespace {

// A request off a link; a longer one than the limit, or bytes that do not decode, end the
// connection (the exception ends its thread).
ManagerRequest receive(SocketConnection& socket, std::size_t max_request) {
  return loads<ManagerRequest>(socket.recv_bytes(max_request));
}
// On a pipe the request is decoded in place, from the ring.
ManagerRequest receive(Connection& pipe, std::size_t max_request) {
  const auto view = pipe.recv_view();
  if (view.bytes().size() > max_request) throw OSError(EMSGSIZE, "bad message length");
  return loads<ManagerRequest>(view.bytes());
}

// Waits for the next request on a shared-memory pipe, looking at the stop flag now and then: a
// pipe has no descriptor that stop() could shut down.
bool wait_for_request(ServerState& state, Connection& pipe) {
  while (!pipe.poll(std::chrono::milliseconds(100))) {
    if (state.stopped()) return false;
  }
  return !state.stopped();  // a client calling in a loop is never idle for 100 ms
}
bool wait_for_request(ServerState& state, SocketConnection& /*socket*/) {
  return !state.stopped();
}

bool has_input(Connection& pipe) {
  try {
    return pipe.poll();
  } catch (const std::exception&) {
    return true;
  }
}
bool has_input(SocketConnection& socket) {
  try {
    return socket.poll(std::chrono::duration<double>(0));
  } catch (const std::exception&) {
    return true;
  }
}

// Answers requests on `link` until the end of the stream, an error, or a shutdown request.
// Returns true when the client asks to move to a pipe.
template <class Link>
bool answer(ServerState& state, Link& link) {
  for (;;) {
    if (!wait_for_request(state, link)) return false;
    const auto request = receive(link, state.max_request());
    if (request.op == kShutdown) {
      link.send(ManagerResponse{});
      state.stop();
      return false;
    }
    if (request.op == kAttachPipe) return true;  // the caller moves to the pipe
    // During a call the client only waits for the answer: anything readable on its link (the end
    // of the stream) means it has gone.
    link.send(state.handle(request, [&link] { return has_input(link); }));
  }
}

// A connection's place in the server's bookkeeping, for as long as its thread runs.
class Admitted {
 public:
  Admitted(ServerState& state, int duplicate) : state_(state), duplicate_(duplicate) {}
  ~Admitted() { state_.leave(duplicate_, authenticated_); }
  Admitted(const Admitted&) = delete;
  Admitted& operator=(const Admitted&) = delete;
  void authenticated() {
    state_.authenticated();
    authenticated_ = true;
  }

 private:
  ServerState& state_;
  int duplicate_;
  bool authenticated_ = false;
};

// One client: the handshake, then requests on its socket until it attaches a shared-memory
// Pipe, then on the pipe. The end of either stream (the client closed or died), a malformed or
// oversized request, or a wrong key ends this thread; the server goes on serving the others.
void serve_connection(const std::shared_ptr<ServerState>& state, SocketConnection conn,
                      const std::string& authkey, int duplicate) {
  Admitted admitted(*state, duplicate);
  try {
    // A client that connects and says nothing gives up this thread after the time limit.
    (void)platform::set_receive_timeout(conn.fileno(), kHandshakeTimeout);
    deliver_challenge(conn, authkey);
    answer_challenge(conn, authkey);
    (void)platform::set_receive_timeout(conn.fileno(), std::chrono::milliseconds(0));
    admitted.authenticated();
    if (!answer(*state, conn)) return;
  } catch (const std::exception&) {
    return;
  }
  // kAttachPipe: open the client's named pipe, say whether that worked, and serve it.
  std::optional<Connection> pipe;
  try {
    const auto name = loads<std::string>(conn.recv_bytes(256));
    if (name.rfind("mproc-mgr-", 0) != 0) throw ValueError("not a manager pipe's name");
    pipe.emplace(Connection::open(name));
    // Both ends are mapped: the name is not needed any more. Removed here, it cannot be left
    // behind by a client that ends without running destructors (a Process child's _exit).
    (void)platform::unlink_named("/" + name);
    conn.send(ManagerResponse{});
  } catch (const std::exception& e) {
    try {
      conn.send(fail(kValueError, e.what()));
      (void)answer(*state, conn);  // the client stays on the socket (a server on another machine)
    } catch (const std::exception&) {
    }
    return;
  }
  try {
    (void)answer(*state, *pipe);
  } catch (const std::exception&) {
  }
  // Closed explicitly: the client waits on the pipe, and only a close (or this process's end)
  // tells it that nobody will answer.
  pipe->close();
}

}  // namespace

void ServerState::serve(Listener& listener, const std::string& authkey) {
  {
    std::lock_guard lock(mutex_);
    listener_fd_ = listener.fileno();
    if (stopped()) platform::shutdown_socket(listener_fd_);
  }
  while (!stopped()) {
    SocketConnection conn;
    try {
      conn = listener.accept();
    } catch (const std::exception&) {
      if (stopped()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // out of descriptors: wait a little
      continue;
    }
    reap(false);
    const auto duplicate = admit(conn.fileno());
    if (!duplicate) continue;  // too many handshakes under way: this one is dropped (closed)
    try {
      // The thread keeps the state alive, and has its own copy of the key.
      std::thread t(serve_connection, shared_from_this(), std::move(conn), authkey, *duplicate);
      std::lock_guard lock(mutex_);
      const auto id = t.get_id();
      threads_.emplace(id, std::move(t));
    } catch (const std::system_error&) {
      leave(*duplicate, false);  // no thread to be had: this connection is dropped
    }
  }
  {
    std::unique_lock lock(mutex_);
    listener_fd_ = -1;
    idle_.wait(lock, [&] { return running_ == 0; });
  }
  reap(true);
}

void run_server(const Address& address, const std::string& authkey, TypeRegistry types,
                std::size_t max_request, Connection report) {
  using Report = std::variant<Address, std::string>;
  std::optional<Listener> listener;
  try {
    listener.emplace(manager_listener(address));
  } catch (const std::exception& e) {
    report.send(Report(std::string(e.what())));
    return;
  }
  auto state = std::make_shared<ServerState>(std::move(types), max_request);
  report.send(Report(listener->address()));
  report.close();
  state->serve(*listener, authkey);
}

}  // namespace mproc::detail
