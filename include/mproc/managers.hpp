// mproc::Manager: CPython's multiprocessing.Manager: a server process holding shared objects that
// other processes use through proxies.
//
//   void worker(mproc::ListProxy<std::string> shared_list) {
//     shared_list.append(mproc::current_process().name());
//   }
//   mproc::Manager manager;                              // starts the server process
//   auto shared_list = manager.list<std::string>();
//   mproc::Process p(worker, shared_list);  p.start();  p.join();
//   std::vector<std::string> names = shared_list.to_vector();
//
// What exists so far (docs/managers.md): list, dict and Namespace proxies. A client connects over
// a Unix-domain socket (an abstract name, authenticated with a random key, CPython's handshake),
// then carries its calls on a shared-memory Pipe whose name it sends over that socket. The server
// keeps every value encoded with mproc's codec, so it is one program for every element type; a
// proxy encodes and decodes. Errors raised in the server arrive with their kind: IndexError,
// KeyError, AttributeError. Objects live until the manager shuts down (no reference counting
// yet). Queue, Lock, Event, Value and the others are mproc's own shared objects (see below). Not
// yet: BaseManager with registered types, and managers across machines over TCP.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/errors.hpp"
#include "mproc/export.hpp"
#include "mproc/process.hpp"
#include "mproc/queues.hpp"
#include "mproc/sharedctypes.hpp"
#include "mproc/synchronize.hpp"

namespace mproc {

namespace detail {

/// One request to the manager's server, and its answer (encoded with mproc's codec).
struct ManagerRequest {
  std::uint64_t object = 0;
  std::uint8_t op = 0;
  std::vector<std::byte> a;  // a value or key
  std::vector<std::byte> b;  // a second value
  std::int64_t index = 0;
};
struct ManagerResponse {
  std::uint8_t status = 0;  // ManagerStatus
  std::vector<std::byte> value;
  std::vector<std::vector<std::byte>> values;
  std::uint64_t number = 0;
  std::string message;
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
};

/// How a proxy finds its object: the server's address and key, the object's id.
struct ProxyRef {
  std::string address;
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
  friend class Manager;
  friend struct codec<ListProxy<T>>;
  explicit ListProxy(detail::ProxyRef ref) : ref_(std::move(ref)) {}
  detail::ManagerResponse call(std::uint8_t op, std::vector<std::byte> a = {}, std::vector<std::byte> b = {},
                               std::int64_t index = 0) const {
    return detail::manager_call(ref_, {ref_.object, op, std::move(a), std::move(b), index});
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
  friend class Manager;
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
    return detail::manager_call(ref_, {ref_.object, op, std::move(a), std::move(b), 0});
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
  friend class Manager;
  friend struct codec<NamespaceProxy>;
  explicit NamespaceProxy(detail::ProxyRef ref) : ref_(std::move(ref)) {}
  detail::ManagerResponse call(std::uint8_t op, const std::string& name,
                               std::vector<std::byte> b = {}) const {
    return detail::manager_call(ref_, {ref_.object, op, detail::encode_value(name), std::move(b), 0});
  }
  detail::ProxyRef ref_;
};

struct ManagerOptions {
  std::optional<StartMethod> start_method = std::nullopt;  ///< of the server process
};

/// CPython's SyncManager, started at construction (CPython's Manager() starts it too); shutdown()
/// or the destructor stops the server. Only the creating process may create objects or shut it
/// down; proxies work from any process.
class MPROC_API Manager {
 public:
  Manager() : Manager(ManagerOptions{}) {}
  explicit Manager(ManagerOptions options);
  Manager(Manager&&) noexcept;
  Manager& operator=(Manager&&) noexcept;
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;
  ~Manager();

  template <class T>
  ListProxy<T> list() {
    return ListProxy<T>(make(detail::kNewList));
  }
  template <class T>
  ListProxy<T> list(const std::vector<T>& initial) {
    auto l = list<T>();
    l.extend(initial);
    return l;
  }
  template <class K, class V>
  DictProxy<K, V> dict() {
    return DictProxy<K, V>(make(detail::kNewDict));
  }
  NamespaceProxy Namespace() {  // NOLINT: CPython's names, here and below
    return NamespaceProxy(make(detail::kNewNamespace));
  }

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

  /// Stops the server; idempotent. Proxies then fail with ProcessError.
  void shutdown();
  /// The server's address (an abstract Unix-domain name).
  [[nodiscard]] const std::string& address() const;

 private:
  struct State;
  detail::ProxyRef make(std::uint8_t op);
  /// ProcessError("the manager has shut down") after shutdown().
  void check_running() const;
  std::unique_ptr<State> state_;
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
    r.address = in.get<std::string>();
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
template <>
struct codec<NamespaceProxy> {
  static void encode(Encoder& out, const NamespaceProxy& p) { out.put(p.ref_); }
  static NamespaceProxy decode(Decoder& in) { return NamespaceProxy(in.get<detail::ProxyRef>()); }
};

}  // namespace mproc
