// Managers: CPython's multiprocessing.managers. A server process holds shared objects; other
// processes, on this machine or across the network, use them through proxies.
//
//   void worker(mproc::ListProxy<std::string> shared_list) {
//     shared_list.append(mproc::current_process().name());
//   }
//   mproc::Manager manager;                              // starts the server process
//   auto shared_list = manager.list<std::string>();
//   mproc::Process p(worker, shared_list);  p.start();  p.join();
//   std::vector<std::string> names = shared_list.to_vector();
//
// A BaseManager serves types the program registers, at an address of its choice (TCP across
// machines), with a key (CPython's register / get_server().serve_forever() / connect()):
//
//   mproc::BaseManager server({"0.0.0.0", 50000}, "secret");
//   server.register_type<Counter>("Counter", mproc::Methods<Counter>()
//                                                .def("add", &Counter::add)
//                                                .def("value", &Counter::value));
//   server.serve_forever();
//   // elsewhere:
//   auto remote = mproc::BaseManager::connect({"server-host", 50000}, "secret");
//   mproc::BaseProxy counter = remote.create("Counter");
//   counter.call("add", 5L);  long v = counter.call<long>("value");   // Counter::add(long)
//
// How it works (docs/managers.md): a client connects over a socket (CPython's handshake,
// mproc/listener.hpp), then, when the server is on the same machine, carries its calls on a
// shared-memory Pipe. The server keeps list, dict and Namespace values encoded with mproc's codec,
// and registered objects as C++ objects whose methods it calls by name after checking the
// argument types. Errors raised in the server arrive with their kind: IndexError, KeyError,
// AttributeError, TypeError, ValueError, and RemoteError for any other exception. Objects live
// until the manager shuts down (no reference counting yet). A local Manager's Queue, Lock, Event,
// Value and the others are mproc's own shared objects (see Manager below).
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
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
#include "mproc/listener.hpp"
#include "mproc/process.hpp"
#include "mproc/queues.hpp"
#include "mproc/sharedctypes.hpp"
#include "mproc/synchronize.hpp"

namespace mproc {

namespace detail {

/// One request to a manager's server, and its answer (encoded with mproc's codec).
struct ManagerRequest {
  std::uint64_t object = 0;
  std::uint8_t op = 0;
  std::vector<std::byte> a;  // a value or key; a call's encoded arguments
  std::vector<std::byte> b;  // a second value
  std::int64_t index = 0;
  std::string name;       // a registered type's or method's name
  std::string signature;  // the caller's argument and result types (see call_signature)
};
struct ManagerResponse {
  std::uint8_t status = 0;  // ManagerStatus (runtime/managers/)
  std::vector<std::byte> value;
  std::vector<std::vector<std::byte>> values;
  std::uint64_t number = 0;
  std::string message;
  std::string type_name;  // of an exception a registered method threw
};

enum ManagerOp : std::uint8_t {
  kNewList = 1,
  kNewDict,
  kNewNamespace,
  kShutdown,
  kListAppend = 10,
  kListGet,
  kListSet,
  kListLen,
  kListPop,
  kListAll,
  kListClear,
  kDictSet = 20,
  kDictGet,
  kDictContains,
  kDictDel,
  kDictKeys,
  kDictValues,
  kDictLen,
  kNsSet = 30,
  kNsGet,
  kNsDel,
  kAttachPipe = 40,  // carry this client's requests on the named Pipe in `a` from now on
  kNewQueue = 45,    // a server-side queue; index: maxsize (0: unbounded)
  kQueuePut = 60,    // a: the item; index: the timeout in ns (-1: no limit, 0: do not wait)
  kQueueGet,         // index: the timeout, as for put
  kQueueSize,
  kQueueEmpty,
  kQueueFull,
  kQueueTaskDone,
  kQueueJoin,
  kNewEvent = 70,  // a server-side Event
  kEventSet,
  kEventClear,
  kEventIsSet,
  kEventWait,    // index: the timeout in ns (-1: no limit); number: 1 when set
  kCreate = 50,  // a registered type: name, signature and the factory's arguments in `a`
  kCall,         // a registered object's method: name, signature and arguments in `a`
};

inline ManagerRequest make_request(std::uint64_t object, std::uint8_t op, std::vector<std::byte> a = {},
                                   std::vector<std::byte> b = {}, std::int64_t index = 0) {
  ManagerRequest r;
  r.object = object;
  r.op = op;
  r.a = std::move(a);
  r.b = std::move(b);
  r.index = index;
  return r;
}

/// A timeout as a server-side wait takes it: 0 for a negative one (at once, as in CPython), -1
/// for a century or more (no limit), saturating instead of overflowing.
template <class Rep, class Period>
std::int64_t wire_timeout(std::chrono::duration<Rep, Period> timeout) {
  const std::chrono::nanoseconds ns = to_timeout(timeout);
  if (ns == std::chrono::nanoseconds::max()) return -1;
  return ns.count() < 0 ? 0 : static_cast<std::int64_t>(ns.count());
}

/// How a proxy finds its object: the server's address and key, the object's id.
struct ProxyRef {
  Address address{std::string()};
  std::string authkey;
  std::uint64_t object = 0;
};

/// Sends one request over this process's (and thread's) connection to the server; throws the
/// answer's error, or ProcessError when the manager is gone.
MPROC_API ManagerResponse manager_call(const ProxyRef& ref, ManagerRequest request);

template <class T>
std::vector<std::byte> encode_value(const T& value) {
  static_assert(require_encodable<T>, "a Manager's values must be serializable (see mproc/codec.hpp)");
  return dumps(value);
}

template <class T>
T decode_value(const std::vector<std::byte>& bytes) {
  return loads<T>(bytes);
}

// --- calls to registered types ----------------------------------------------------------------

/// The type an argument travels as: string literals, C strings and std::string_view as
/// std::string, the rest as themselves without cv or reference (a type with a codec of its own
/// travels as itself, even if it converts to a string).
template <class A>
using wire_t = std::conditional_t<std::is_same_v<std::decay_t<A>, const char*> ||
                                      std::is_same_v<std::decay_t<A>, char*> ||
                                      std::is_same_v<std::remove_cvref_t<A>, std::string_view>,
                                  std::string, std::remove_cvref_t<A>>;

/// What both ends compare before a call: the argument types and the result type, as the
/// compiler names them (identical names on both ends of the same program or build).
template <class R, class... A>
std::string call_signature() {
  return std::string(typeid(std::tuple<wire_t<A>...>).name()) + "->" + typeid(std::remove_cvref_t<R>).name();
}

using CallArgs = std::span<const std::byte>;

/// One method of a registered type, type-erased: decodes the arguments, calls, encodes the result.
struct MethodEntry {
  std::string signature;
  std::function<std::vector<std::byte>(void* self, CallArgs args)> invoke;
};

/// A registered type: how to make one, and its methods by name.
struct TypeEntry {
  std::string signature;  // of the factory
  std::function<std::shared_ptr<void>(CallArgs args)> make;
  std::map<std::string, MethodEntry, std::less<>> methods;
  bool concurrent = false;
};

template <class... A>
struct type_list {};

// The shape of a callable: result and parameters. Member functions (any cv and noexcept),
// function pointers, and objects with one operator() (lambdas).
template <class F>
struct callable_shape : callable_shape<decltype(&F::operator())> {
  static constexpr bool member = false;
};
template <class R, class... A>
struct callable_shape<R (*)(A...)> {
  using result = R;
  using params = type_list<A...>;
  static constexpr bool member = false;
};
template <class R, class... A>
struct callable_shape<R (*)(A...) noexcept> : callable_shape<R (*)(A...)> {};
template <class R, class C, class... A>
struct callable_shape<R (C::*)(A...)> {
  using result = R;
  using params = type_list<A...>;
  static constexpr bool member = true;
};
template <class R, class C, class... A>
struct callable_shape<R (C::*)(A...) const> : callable_shape<R (C::*)(A...)> {};
template <class R, class C, class... A>
struct callable_shape<R (C::*)(A...) noexcept> : callable_shape<R (C::*)(A...)> {};
template <class R, class C, class... A>
struct callable_shape<R (C::*)(A...) const noexcept> : callable_shape<R (C::*)(A...)> {};

// Decodes the arguments as the callee's parameter types (all of them, nothing left over) and
// calls f(prefix..., arguments...); the result encoded (empty for void).
template <class R, class... A, class F, class... Prefix>
std::vector<std::byte> decode_and_call(type_list<A...> /*unused*/, CallArgs args, F& f, Prefix&&... prefix) {
  static_assert((Encodable<std::remove_cvref_t<A>> && ...),
                "every parameter of a registered method or factory must be serializable (mproc/codec.hpp)");
  Decoder in(args);
  std::tuple<std::remove_cvref_t<A>...> values{in.get<std::remove_cvref_t<A>>()...};  // braced: in order
  in.expect_end();
  return [&]<std::size_t... I>(std::index_sequence<I...>) -> std::vector<std::byte> {
    if constexpr (std::is_void_v<R>) {
      std::invoke(f, std::forward<Prefix>(prefix)..., static_cast<A&&>(std::get<I>(values))...);
      return {};
    } else {
      static_assert(Encodable<std::remove_cvref_t<R>>, "a registered method's result must be serializable");
      return dumps(std::invoke(f, std::forward<Prefix>(prefix)..., static_cast<A&&>(std::get<I>(values))...));
    }
  }(std::index_sequence_for<A...>{});
}

template <class R, class... A>
std::string signature_of(type_list<A...> /*unused*/) {
  return call_signature<R, A...>();
}

template <class First, class... Rest>
type_list<Rest...> drop_first(type_list<First, Rest...> /*unused*/);
template <class First, class... Rest>
First first_of(type_list<First, Rest...> /*unused*/);

}  // namespace detail

/// A proxy of a list in the manager's server (CPython's ListProxy). Copies and copies in other
/// processes are the same list.
template <class T>
class ListProxy {
 public:
  void append(const T& value) { call(detail::kListAppend, detail::encode_value(value)); }
  void extend(const std::vector<T>& values) {
    for (const T& v : values) append(v);
  }
  [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(call(detail::kListLen).number); }
  /// Negative indices count from the end, as in Python. IndexError("list index out of range").
  [[nodiscard]] T operator[](std::int64_t i) const { return get(i); }
  [[nodiscard]] T get(std::int64_t i) const {
    return detail::decode_value<T>(call(detail::kListGet, {}, {}, i).value);
  }
  void set(std::int64_t i, const T& value) { call(detail::kListSet, detail::encode_value(value), {}, i); }
  /// Removes and returns item i (the last by default). IndexError("pop from empty list").
  T pop(std::int64_t i = -1) { return detail::decode_value<T>(call(detail::kListPop, {}, {}, i).value); }
  void clear() { call(detail::kListClear); }
  [[nodiscard]] std::vector<T> to_vector() const {
    std::vector<T> out;
    for (const auto& v : call(detail::kListAll).values) out.push_back(detail::decode_value<T>(v));
    return out;
  }
  [[nodiscard]] const detail::ProxyRef& ref() const noexcept { return ref_; }

 private:
  friend class BaseManager;
  friend struct codec<ListProxy<T>>;
  explicit ListProxy(detail::ProxyRef ref) : ref_(std::move(ref)) {}
  detail::ManagerResponse call(std::uint8_t op, std::vector<std::byte> a = {}, std::vector<std::byte> b = {},
                               std::int64_t index = 0) const {
    return detail::manager_call(ref_,
                                detail::make_request(ref_.object, op, std::move(a), std::move(b), index));
  }
  detail::ProxyRef ref_;
};

/// A proxy of a dict (CPython's DictProxy). Keys keep their insertion order.
template <class K, class V>
class DictProxy {
 public:
  void set(const K& key, const V& value) {
    call(detail::kDictSet, detail::encode_value(key), detail::encode_value(value));
  }
  /// KeyError when the key is missing.
  [[nodiscard]] V get(const K& key) const {
    return detail::decode_value<V>(call(detail::kDictGet, detail::encode_value(key)).value);
  }
  [[nodiscard]] V get(const K& key, V fallback) const {
    return contains(key) ? get(key) : std::move(fallback);
  }
  [[nodiscard]] V operator[](const K& key) const { return get(key); }
  [[nodiscard]] bool contains(const K& key) const {
    return call(detail::kDictContains, detail::encode_value(key)).number != 0;
  }
  /// CPython's `del d[key]`: KeyError when the key is missing.
  void erase(const K& key) { call(detail::kDictDel, detail::encode_value(key)); }
  [[nodiscard]] std::vector<K> keys() const { return decode_all<K>(call(detail::kDictKeys).values); }
  [[nodiscard]] std::vector<V> values() const { return decode_all<V>(call(detail::kDictValues).values); }
  [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(call(detail::kDictLen).number); }
  [[nodiscard]] const detail::ProxyRef& ref() const noexcept { return ref_; }

 private:
  friend class BaseManager;
  friend struct codec<DictProxy<K, V>>;
  explicit DictProxy(detail::ProxyRef ref) : ref_(std::move(ref)) {}
  template <class X>
  static std::vector<X> decode_all(const std::vector<std::vector<std::byte>>& all) {
    std::vector<X> out;
    for (const auto& v : all) out.push_back(detail::decode_value<X>(v));
    return out;
  }
  detail::ManagerResponse call(std::uint8_t op, std::vector<std::byte> a = {},
                               std::vector<std::byte> b = {}) const {
    return detail::manager_call(ref_, detail::make_request(ref_.object, op, std::move(a), std::move(b)));
  }
  detail::ProxyRef ref_;
};

/// A proxy of a Namespace (CPython's NamespaceProxy): named values of any serializable type.
class NamespaceProxy {
 public:
  template <class T>
  void set(const std::string& name, const T& value) {
    call(detail::kNsSet, name, detail::encode_value(value));
  }
  /// AttributeError("'Namespace' object has no attribute 'x'") when missing; DecodeError when the
  /// value was stored as another type.
  template <class T>
  [[nodiscard]] T get(const std::string& name) const {
    return detail::decode_value<T>(call(detail::kNsGet, name).value);
  }
  void erase(const std::string& name) { call(detail::kNsDel, name); }
  [[nodiscard]] const detail::ProxyRef& ref() const noexcept { return ref_; }

 private:
  friend class BaseManager;
  friend struct codec<NamespaceProxy>;
  explicit NamespaceProxy(detail::ProxyRef ref) : ref_(std::move(ref)) {}
  detail::ManagerResponse call(std::uint8_t op, const std::string& name,
                               std::vector<std::byte> b = {}) const {
    return detail::manager_call(
        ref_, detail::make_request(ref_.object, op, detail::encode_value(name), std::move(b)));
  }
  detail::ProxyRef ref_;
};

/// A proxy of a queue that lives in the manager's server (CPython's SyncManager.Queue() as a
/// remote client sees it): put() and get() wait in the server, so any process that reaches the
/// server, on any machine, shares the queue. Empty and Full as mproc::Queue raises them.
template <class T>
class QueueProxy {
 public:
  void put(const T& item) { call(detail::kQueuePut, detail::encode_value(item), -1); }
  /// Full when no room came within the timeout (negative: at once).
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    call(detail::kQueuePut, detail::encode_value(item), detail::wire_timeout(timeout));
  }
  void put_nowait(const T& item) { call(detail::kQueuePut, detail::encode_value(item), 0); }
  T get() { return detail::decode_value<T>(call(detail::kQueueGet, {}, -1).value); }
  /// Empty when nothing came within the timeout (negative: at once).
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return detail::decode_value<T>(call(detail::kQueueGet, {}, detail::wire_timeout(timeout)).value);
  }
  T get_nowait() { return detail::decode_value<T>(call(detail::kQueueGet, {}, 0).value); }
  [[nodiscard]] std::size_t qsize() const {
    return static_cast<std::size_t>(call(detail::kQueueSize).number);
  }
  [[nodiscard]] bool empty() const { return call(detail::kQueueEmpty).number != 0; }
  [[nodiscard]] bool full() const { return call(detail::kQueueFull).number != 0; }
  [[nodiscard]] const detail::ProxyRef& ref() const noexcept { return ref_; }

 protected:
  friend class BaseManager;
  friend struct codec<QueueProxy<T>>;
  explicit QueueProxy(detail::ProxyRef ref) : ref_(std::move(ref)) {}
  detail::ManagerResponse call(std::uint8_t op, std::vector<std::byte> a = {},
                               std::int64_t timeout = 0) const {
    return detail::manager_call(ref_, detail::make_request(ref_.object, op, std::move(a), {}, timeout));
  }
  detail::ProxyRef ref_;
};

/// A server-side JoinableQueue (CPython's SyncManager.JoinableQueue()): a QueueProxy whose
/// consumers call task_done() for each get(), and whose join() waits, in the server, until every
/// item put has been marked done. ValueError("task_done() called too many times").
template <class T>
class JoinableQueueProxy : public QueueProxy<T> {
 public:
  void task_done() { this->call(detail::kQueueTaskDone); }
  void join() { this->call(detail::kQueueJoin, {}, -1); }

 private:
  friend class BaseManager;
  friend struct codec<JoinableQueueProxy<T>>;
  explicit JoinableQueueProxy(detail::ProxyRef ref) : QueueProxy<T>(std::move(ref)) {}
};

/// A server-side Event (CPython's SyncManager.Event() as a remote client sees it): wait() waits
/// in the server, so processes on any machine that reach the manager share it.
class EventProxy {
 public:
  void set() { call(detail::kEventSet); }
  void clear() { call(detail::kEventClear); }
  [[nodiscard]] bool is_set() const { return call(detail::kEventIsSet).number != 0; }
  /// True once set; false when the timeout passed first (negative: at once).
  bool wait() { return call(detail::kEventWait, -1).number != 0; }
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return call(detail::kEventWait, detail::wire_timeout(timeout)).number != 0;
  }
  [[nodiscard]] const detail::ProxyRef& ref() const noexcept { return ref_; }

 private:
  friend class BaseManager;
  friend struct codec<EventProxy>;
  explicit EventProxy(detail::ProxyRef ref) : ref_(std::move(ref)) {}
  detail::ManagerResponse call(std::uint8_t op, std::int64_t timeout = 0) const {
    return detail::manager_call(ref_, detail::make_request(ref_.object, op, {}, {}, timeout));
  }
  detail::ProxyRef ref_;
};

/// A proxy of an object of a registered type (CPython's BaseProxy): call(method, args...) is
/// CPython's _callmethod. The server checks that the arguments' types and the result type are the
/// method's (TypeError otherwise); string literals travel as std::string. A typed proxy is a
/// subclass that only adds methods:
///
///   struct CounterProxy : mproc::BaseProxy {
///     using BaseProxy::BaseProxy;
///     void add(int n) const { call<void>("add", n); }
///     int value() const { return call<int>("value"); }
///   };
///   auto counter = remote.create<CounterProxy>("Counter");
class BaseProxy {
 public:
  explicit BaseProxy(detail::ProxyRef ref) : ref_(std::move(ref)) {}

  /// Calls `method` on the object in the server. AttributeError for a method the type does not
  /// expose, TypeError for other argument or result types, the method's exception otherwise
  /// (IndexError, KeyError, ValueError, ... as themselves; anything else as RemoteError).
  template <class R = void, class... A>
  R call(std::string_view method, const A&... args) const {
    static_assert((Encodable<detail::wire_t<A>> && ...), "a method's arguments must be serializable");
    detail::ManagerRequest request;
    request.object = ref_.object;
    request.op = detail::kCall;
    request.a = dumps(std::tuple<detail::wire_t<A>...>(detail::wire_t<A>(args)...));
    request.name = std::string(method);
    request.signature = detail::call_signature<R, A...>();
    auto response = detail::manager_call(ref_, std::move(request));
    if constexpr (!std::is_void_v<R>) return loads<R>(response.value);
  }

  [[nodiscard]] const detail::ProxyRef& ref() const noexcept { return ref_; }

 private:
  detail::ProxyRef ref_;
};

/// The methods of a type registered with a BaseManager: each a name and a member function, or a
/// callable whose first parameter is the object (T& or const T&):
///
///   mproc::Methods<Counter>().def("add", &Counter::add)
///                            .def("reset", [](Counter& c) { c = Counter{}; });
///
/// The server calls one object's methods one at a time (a mutex per object) unless concurrent():
/// for a type that synchronizes itself, such as a queue whose get() waits for another client's
/// put(). Every parameter and result must be serializable (mproc/codec.hpp). The callables
/// themselves are shared by all objects and may run in several server threads at once (calls on
/// different objects); a factory runs one call at a time.
template <class T>
class Methods {
 public:
  template <class F>
  Methods& def(std::string name, F f) {
    using Shape = detail::callable_shape<F>;
    using R = typename Shape::result;
    if constexpr (std::is_member_function_pointer_v<F>) {
      using Params = typename Shape::params;
      entries_[std::move(name)] = detail::MethodEntry{
          detail::signature_of<R>(Params{}), [f](void* self, detail::CallArgs args) mutable {
            return detail::decode_and_call<R>(Params{}, args, f, *static_cast<T*>(self));
          }};
    } else {
      using Self = decltype(detail::first_of(typename Shape::params{}));
      static_assert(std::is_lvalue_reference_v<Self> && std::is_same_v<std::remove_cvref_t<Self>, T>,
                    "a method given as a callable takes the object first, as T& or const T& (not a copy)");
      using Params = decltype(detail::drop_first(typename Shape::params{}));
      entries_[std::move(name)] = detail::MethodEntry{
          detail::signature_of<R>(Params{}), [f](void* self, detail::CallArgs args) mutable {
            return detail::decode_and_call<R>(Params{}, args, f, *static_cast<T*>(self));
          }};
    }
    return *this;
  }

  /// Calls on one object may run at the same time (the type synchronizes itself).
  Methods& concurrent(bool yes = true) {
    concurrent_ = yes;
    return *this;
  }

 private:
  friend class BaseManager;
  std::map<std::string, detail::MethodEntry, std::less<>> entries_;
  bool concurrent_ = false;
};

struct ManagerOptions {
  std::optional<StartMethod> start_method = std::nullopt;  ///< of the server process
  /// The largest request the server accepts from a client, in bytes: a longer one ends that
  /// client's connection (OSError("bad message length") on the server's side), and nothing
  /// larger is ever allocated for it.
  std::size_t max_request = std::size_t{256} << 20;
};

/// CPython's BaseManager: a server of registered types (and of list, dict and Namespace, as
/// SyncManager's), at an address and with an authkey; or a client connected to one.
///
/// Server side: register_type() the types, then serve_forever() in this thread (CPython's
/// get_server().serve_forever()), or start() a server process. Client side: connect(). Proxies
/// from either work in any process and thread, and pass to Process targets.
class MPROC_API BaseManager {
 public:
  /// A manager for this machine, as CPython's BaseManager() with no address: an abstract
  /// Unix-domain name and a random key. Nothing runs yet: register_type(), then start().
  explicit BaseManager(ManagerOptions options = {});
  /// A manager to serve at `address` (TCP port 0: any free port; a Unix-domain path) with
  /// `authkey`. Nothing runs yet.
  BaseManager(Address address, std::string authkey, ManagerOptions options = {});
  /// Connects to a running server (CPython's manager.connect()); AuthenticationError for a wrong
  /// key, ProcessError when nothing answers at the address, or when what answers does not
  /// complete the handshake within `timeout` (this connection's; the links that proxies open
  /// later, in other threads and processes, allow 20 s).
  static BaseManager connect(const Address& address, std::string authkey,
                             std::chrono::milliseconds timeout = std::chrono::seconds(20));

  BaseManager(BaseManager&&) noexcept;
  BaseManager& operator=(BaseManager&&) noexcept;
  BaseManager(const BaseManager&) = delete;
  BaseManager& operator=(const BaseManager&) = delete;
  virtual ~BaseManager();

  /// CPython's register(typeid, callable): create(type_name) makes a T by default construction.
  template <class T>
  void register_type(std::string type_name, Methods<T> methods) {
    register_type<T>(
        std::move(type_name), [] { return std::make_shared<T>(); }, std::move(methods));
  }
  /// With a factory: any callable returning a T or a std::shared_ptr<T>; create(type_name, args...)
  /// passes it args (checked as a method's are). A factory that returns the same shared_ptr each
  /// time shares one object with every client (CPython's `register('get_queue', lambda: queue)`).
  template <class T, class F>
  void register_type(std::string type_name, F factory, Methods<T> methods) {
    using Shape = detail::callable_shape<F>;
    using R = std::remove_cvref_t<typename Shape::result>;
    using Params = typename Shape::params;
    static_assert(std::is_same_v<R, T> || std::is_same_v<R, std::shared_ptr<T>>,
                  "a factory returns a T or a std::shared_ptr<T>");
    detail::TypeEntry entry;
    entry.signature = detail::signature_of<void>(Params{});  // create() names no result type
    entry.make = [factory](detail::CallArgs args) mutable -> std::shared_ptr<void> {
      std::shared_ptr<T> made;
      auto make = [&](auto&&... a) {
        if constexpr (std::is_same_v<R, T>) {
          made = std::make_shared<T>(factory(std::forward<decltype(a)>(a)...));
        } else {
          made = factory(std::forward<decltype(a)>(a)...);
        }
      };
      (void)detail::decode_and_call<void>(Params{}, args, make);
      if (!made) throw ValueError("the factory returned no object");
      return made;
    };
    entry.methods = std::move(methods.entries_);
    entry.concurrent = methods.concurrent_;
    add_type(std::move(type_name), std::move(entry));
  }

  /// Binds the listening socket now (serve_forever() then serves it) and returns the address
  /// bound: a TCP port 0 resolved to the real one.
  Address listen();
  /// Serves in this thread until shutdown() (from another thread, or a client's shutdown
  /// request). Registered objects' methods run in the server's threads of this process.
  void serve_forever();
  /// Runs the server in a child process (CPython's start()) and returns when it listens.
  /// ProcessError when started twice or after shutdown(). Registered types need the fork start
  /// method (the default here): a spawned server could not rebuild the registrations.
  void start();

  /// A started manager: stops its server process. A serving one: makes serve_forever() return
  /// (callable from another thread). A connected one: closes this thread's link, and the server
  /// goes on. Idempotent; the manager cannot make objects afterwards, and proxies of a stopped
  /// server fail with ProcessError.
  void shutdown();
  /// The address: bound once listening or started.
  [[nodiscard]] const Address& address() const;

  /// A new object of a registered type; Proxy is BaseProxy or a subclass of it.
  template <class Proxy = BaseProxy, class... A>
  Proxy create(std::string_view type_name, const A&... args) {
    static_assert(std::derived_from<Proxy, BaseProxy>, "create<Proxy>: Proxy derives from mproc::BaseProxy");
    detail::ManagerRequest request;
    request.op = detail::kCreate;
    request.a = dumps(std::tuple<detail::wire_t<A>...>(detail::wire_t<A>(args)...));
    request.name = std::string(type_name);
    request.signature = detail::call_signature<void, A...>();
    return Proxy(make(std::move(request)));
  }

  template <class T>
  ListProxy<T> list() {
    return ListProxy<T>(make(simple(detail::kNewList)));
  }
  template <class T>
  ListProxy<T> list(const std::vector<T>& initial) {
    auto l = list<T>();
    l.extend(initial);
    return l;
  }
  template <class K, class V>
  DictProxy<K, V> dict() {
    return DictProxy<K, V>(make(simple(detail::kNewDict)));
  }
  NamespaceProxy Namespace() {  // NOLINT: CPython's names, here and below
    return NamespaceProxy(make(simple(detail::kNewNamespace)));
  }
  /// A queue in the server (maxsize 0: unbounded), for processes that reach this manager from
  /// anywhere. A local Manager's Queue() gives mproc's own shared-memory Queue instead.
  template <class T>
  QueueProxy<T> Queue(std::size_t maxsize = 0) {
    return QueueProxy<T>(new_queue(maxsize));
  }
  /// An Event in the server. A local Manager's Event() gives mproc's own.
  EventProxy Event() { return EventProxy(make(simple(detail::kNewEvent))); }  // NOLINT: CPython's name
  /// The same with task_done() and join(). A local Manager's JoinableQueue() gives mproc's own.
  template <class T>
  JoinableQueueProxy<T> JoinableQueue(std::size_t maxsize = 0) {
    return JoinableQueueProxy<T>(new_queue(maxsize));
  }

 protected:
  struct State;
  /// ProcessError("the manager has shut down") after shutdown().
  void check_running() const;

 private:
  struct Connected {};
  explicit BaseManager(Connected /*unused*/);
  static detail::ManagerRequest simple(std::uint8_t op) {
    detail::ManagerRequest r;
    r.op = op;
    return r;
  }
  detail::ProxyRef make(detail::ManagerRequest request);
  detail::ProxyRef new_queue(std::size_t maxsize) {
    auto request = simple(detail::kNewQueue);
    request.index = static_cast<std::int64_t>(maxsize);
    return make(std::move(request));
  }
  /// Binds the listening socket (State::mutex held); the manager is then listening.
  void bind_locked();
  void add_type(std::string type_name, detail::TypeEntry entry);
  std::unique_ptr<State> state_;
};

/// CPython's SyncManager, started at construction (CPython's Manager() starts it too), on this
/// machine: an abstract Unix-domain address and a random key. shutdown() or the destructor stops
/// the server. Proxies work from any process.
class MPROC_API Manager : public BaseManager {
 public:
  Manager() : Manager(ManagerOptions{}) {}
  explicit Manager(ManagerOptions options);
  Manager(Manager&&) noexcept = default;
  Manager& operator=(Manager&&) noexcept = default;
  ~Manager() override = default;

  // The synchronization objects, queues and shared values. On one machine mproc's own objects are
  // already shared between processes (memory every holder maps, futex words, crash-safe rings),
  // so a local manager makes those rather than server-side objects behind proxies: the same
  // calls, no round trip to the server, and they pass to Process targets the same way. They live
  // as long as a handle to them does, not until shutdown() (docs/managers.md).
  template <class T>
  mproc::Queue<T> Queue(std::size_t maxsize = 0) {
    check_running();
    return mproc::Queue<T>(maxsize);
  }
  template <class T>
  mproc::JoinableQueue<T> JoinableQueue(std::size_t maxsize = 0) {
    check_running();
    return mproc::JoinableQueue<T>(maxsize);
  }
  mproc::Lock Lock() {
    check_running();
    return mproc::Lock();
  }
  mproc::RLock RLock() {
    check_running();
    return mproc::RLock();
  }
  mproc::Semaphore Semaphore(int value = 1) {
    check_running();
    return mproc::Semaphore(value);
  }
  mproc::BoundedSemaphore BoundedSemaphore(int value = 1) {
    check_running();
    return mproc::BoundedSemaphore(value);
  }
  mproc::Condition Condition() {
    check_running();
    return mproc::Condition();
  }
  mproc::Event Event() {
    check_running();
    return mproc::Event();
  }
  mproc::Barrier Barrier(std::size_t parties) {
    check_running();
    return mproc::Barrier(parties);
  }
  template <class T>
  mproc::Value<T> Value(const T& initial) {
    check_running();
    return mproc::Value<T>(initial);
  }
  template <class T>
  mproc::Array<T> Array(std::size_t n) {
    check_running();
    return mproc::Array<T>(n);
  }
  template <class T>
  mproc::Array<T> Array(std::initializer_list<T> values) {
    check_running();
    return mproc::Array<T>(values);
  }
};

template <>
struct codec<detail::ProxyRef> {
  static void encode(Encoder& out, const detail::ProxyRef& r) {
    out.put(r.address);
    out.put(r.authkey);
    out.put(r.object);
  }
  static detail::ProxyRef decode(Decoder& in) {
    detail::ProxyRef r;
    r.address = in.get<Address>();
    r.authkey = in.get<std::string>();
    r.object = in.get<std::uint64_t>();
    return r;
  }
};

template <class T>
struct codec<ListProxy<T>> {
  static void encode(Encoder& out, const ListProxy<T>& p) { out.put(p.ref_); }
  static ListProxy<T> decode(Decoder& in) { return ListProxy<T>(in.get<detail::ProxyRef>()); }
};
template <class K, class V>
struct codec<DictProxy<K, V>> {
  static void encode(Encoder& out, const DictProxy<K, V>& p) { out.put(p.ref_); }
  static DictProxy<K, V> decode(Decoder& in) { return DictProxy<K, V>(in.get<detail::ProxyRef>()); }
};
template <class T>
struct codec<QueueProxy<T>> {
  static void encode(Encoder& out, const QueueProxy<T>& p) { out.put(p.ref_); }
  static QueueProxy<T> decode(Decoder& in) { return QueueProxy<T>(in.get<detail::ProxyRef>()); }
};
template <class T>
struct codec<JoinableQueueProxy<T>> {
  static void encode(Encoder& out, const JoinableQueueProxy<T>& p) { out.put(p.ref()); }
  static JoinableQueueProxy<T> decode(Decoder& in) {
    return JoinableQueueProxy<T>(in.get<detail::ProxyRef>());
  }
};
template <>
struct codec<EventProxy> {
  static void encode(Encoder& out, const EventProxy& p) { out.put(p.ref_); }
  static EventProxy decode(Decoder& in) { return EventProxy(in.get<detail::ProxyRef>()); }
};
template <>
struct codec<NamespaceProxy> {
  static void encode(Encoder& out, const NamespaceProxy& p) { out.put(p.ref_); }
  static NamespaceProxy decode(Decoder& in) { return NamespaceProxy(in.get<detail::ProxyRef>()); }
};

/// BaseProxy and its subclasses (which add methods, not data) pass to Process targets.
template <class P>
  requires std::derived_from<P, BaseProxy>
struct codec<P> {
  static void encode(Encoder& out, const P& p) { out.put(p.ref()); }
  static P decode(Decoder& in) { return P(in.get<detail::ProxyRef>()); }
};

}  // namespace mproc
