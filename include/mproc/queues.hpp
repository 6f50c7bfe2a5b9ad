// Queue, SimpleQueue and JoinableQueue: CPython's multiprocessing.queues for any encodable type,
// on a lock-free ring in shared memory (core::MpmcRing).
//
//   mproc::Queue<int> q;                       // maxsize 0: the default capacity (docs/queues.md)
//   q.put(42);  int v = q.get();
//   mproc::Process p(worker, q);               // handles pass to children under every start method
//
// Differences from CPython, each deliberate (docs/queues.md):
//   * there is no feeder thread: put() writes the message into shared memory before it returns,
//     so a put() on a full queue blocks (or raises Full) even when maxsize is 0 ("unbounded" in
//     CPython), join_thread() has nothing to wait for and cancel_join_thread() nothing to cancel;
//   * a message larger than one slot counts as several towards maxsize; one larger than
//     max_message() raises ValueError before anything is written;
//   * a queue carries values, not shared objects: a Lock or another Queue inside a message
//     (which needs a descriptor) raises ValueError, as CPython's pickling of a Lock does.
#pragma once

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/core/mpmc_ring.hpp"
#include "mproc/detail/shared_block.hpp"
#include "mproc/errors.hpp"
#include "mproc/export.hpp"
#include "mproc/synchronize.hpp"

namespace mproc {

/// How a Queue is sized. Zeroes choose the defaults.
struct QueueOptions {
  /// CPython's maxsize: at most this many messages (of one slot each) in the queue; 0 means the
  /// default capacity, kDefaultSlots slots.
  std::size_t maxsize = 0;
  /// Bytes per slot (a power of two, at least 16). 0: just enough for one message of a
  /// fixed-size type, else 64. A message takes ceil((8 + its encoded size) / slot_size) slots.
  std::uint32_t slot_size = 0;

  static constexpr std::uint32_t kDefaultSlots = 4096;
  static constexpr std::uint32_t kDefaultSlotSize = 64;
};

namespace detail {

using QueueRing = core::MpmcRing<>;

/// The per-process state that copies of one handle share (CPython: one Queue object): whether
/// close() was called on it in this process.
struct QueueLocal {
  std::atomic<bool> closed{false};
};

/// Throws the exception for a ring status that is not ok (Empty, Full, ValueError, Error).
[[noreturn]] MPROC_API void throw_queue_status(core::RingStatus status, std::size_t message_size,
                                               std::size_t max_message);
[[noreturn]] MPROC_API void throw_queue_closed();
[[noreturn]] MPROC_API void throw_queue_has_fds();

/// A named queue's segment (runtime/queues/named.cpp), shared by this process's handles. The
/// process that created it unlinks the name when its last handle goes.
class NamedRegion;
struct NamedRegionRef {
  std::shared_ptr<NamedRegion> region;
  std::span<std::byte> payload;
};
/// What kind of named object a segment holds (SegmentHeader::kind): a queue, whatever its T.
inline constexpr std::uint32_t kNamedQueueKind = 0x51554555;  // "UEUQ"
/// Creates `name` (FileExistsError if it exists; ValueError for a bad name) with `size`
/// zero-filled payload bytes; call publish_named_region() once the payload is initialised.
MPROC_API NamedRegionRef create_named_region(std::string_view name, std::size_t size, std::uint64_t type_hash,
                                             std::uint32_t kind);
MPROC_API void publish_named_region(NamedRegion& region) noexcept;
/// Opens `name`, validated: FileNotFoundError, or ValueError naming what does not match (another
/// type of message, another kind of object, another mproc layout version).
MPROC_API NamedRegionRef open_named_region(std::string_view name, std::uint64_t type_hash, std::uint32_t kind,
                                           std::size_t min_size);
MPROC_API const std::string& named_region_name(const NamedRegion& region) noexcept;

/// A scratch buffer per thread for encoding messages: no allocation per put once warm.
MPROC_API std::vector<std::byte>& encode_scratch() noexcept;

/// The block type hash of a queue of T: the ring's layout and T's name, so that a Queue<int>
/// received or opened as a Queue<std::string> is refused.
template <class T>
constexpr std::uint64_t queue_type_hash() noexcept {
  return fnv1a_type_name(abi_hash<QueueRing::Shared>(), type_name<T>());
}

/// Types whose encoding is their bytes: put and get copy them straight into and out of the ring.
template <class T>
inline constexpr bool is_raw_message_v = is_plain_scalar_v<T> && !UserCodec<T>;

template <class T>
std::uint32_t default_slot_size() noexcept {
  if constexpr (is_raw_message_v<T>) {
    return std::max<std::uint32_t>(
        QueueRing::kMinSlotSize,
        std::bit_ceil(static_cast<std::uint32_t>(sizeof(T) + QueueRing::kLengthBytes)));
  } else {
    return QueueOptions::kDefaultSlotSize;
  }
}

}  // namespace detail

/// A multi-producer, multi-consumer FIFO of T between processes (multiprocessing.Queue).
/// A cheap, copyable handle: copies refer to one queue. @concurrent any
template <class T>
class Queue {
  static_assert(require_encodable<T>);
  using QueueRing = detail::QueueRing;

 public:
  using value_type = T;

  /// A queue with the default capacity.
  Queue() : Queue(QueueOptions{}) {}
  /// A queue of at most maxsize messages (0: the default capacity), as multiprocessing.Queue(maxsize).
  explicit Queue(std::size_t maxsize) : Queue(QueueOptions{.maxsize = maxsize}) {}
  explicit Queue(const QueueOptions& options) {
    if (options.maxsize > QueueRing::kMaxSlotCount) throw ValueError("Queue maxsize is too large");
    const auto slots = options.maxsize == 0 ? QueueOptions::kDefaultSlots
                                            : std::bit_ceil(static_cast<std::uint32_t>(options.maxsize));
    const auto limit = options.maxsize == 0 ? slots : static_cast<std::uint32_t>(options.maxsize);
    const std::uint32_t slot_size =
        options.slot_size == 0 ? detail::default_slot_size<T>() : options.slot_size;
    if (!QueueRing::valid_geometry(slots, slot_size, limit)) {
      throw ValueError("Queue slot_size must be a power of two between 16 and 1 MiB");
    }
    block_ = detail::SharedBlock::create(QueueRing::region_size(slots, slot_size),
                                         detail::queue_type_hash<T>(), "Queue");
    ring_ = *QueueRing::create(std::span(block_.payload(), block_.payload_size()), slots, slot_size, limit);
  }

  /// A queue that unrelated programs open by name (Queue<T>::open). This process owns the name:
  /// it is unlinked when this process's last handle to the queue goes. FileExistsError if the
  /// name exists; ValueError for an invalid name (1-253 characters, no '/').
  static Queue create(std::string_view name, std::size_t maxsize = 0) {
    return create(name, QueueOptions{.maxsize = maxsize});
  }
  static Queue create(std::string_view name, const QueueOptions& options) {
    const Geometry g = geometry(options);
    auto named = detail::create_named_region(name, QueueRing::region_size(g.slots, g.slot_size),
                                             detail::queue_type_hash<T>(), detail::kNamedQueueKind);
    auto ring = QueueRing::create(named.payload, g.slots, g.slot_size, g.limit);
    detail::publish_named_region(*named.region);
    return Queue(std::move(named.region), *ring);
  }
  /// Opens a queue another process created with Queue<T>::create(name). FileNotFoundError if
  /// there is none; ValueError if it holds another message type (a Queue<int> opened as a
  /// Queue<std::string>) or its ring header is invalid.
  static Queue open(std::string_view name) {
    auto named = detail::open_named_region(name, detail::queue_type_hash<T>(), detail::kNamedQueueKind,
                                           sizeof(typename QueueRing::Shared));
    auto ring = QueueRing::attach(named.payload);
    if (!ring) throw ValueError("named Queue '" + std::string(name) + "' has an invalid ring header");
    return Queue(std::move(named.region), *ring);
  }
  /// The name of a named queue; empty for an anonymous one.
  [[nodiscard]] std::string name() const {
    return named_ ? detail::named_region_name(*named_) : std::string();
  }

  /// put(obj): blocks while the queue is full. Throws ValueError after close() or when the
  /// message can never fit. @concurrent any
  void put(const T& item) { put_until(item, std::nullopt); }
  /// put(obj, timeout=...): Full when no room came within the timeout (negative: at once).
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    put_until(item, detail::deadline_after(detail::to_timeout(timeout)));
  }
  /// put(obj, block): with block false, Full at once when there is no room.
  void put(const T& item, bool block) { block ? put(item) : put_nowait(item); }
  /// put_nowait(obj): Full at once when there is no room.
  void put_nowait(const T& item) {
    const auto [status, size] = push(item, std::nullopt, false);
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, size, ring_.max_message());
  }
  /// Like put_nowait, but says false instead of raising Full.
  [[nodiscard]] bool try_put(const T& item) {
    const auto [status, size] = push(item, std::nullopt, false);
    if (status == core::RingStatus::full) return false;
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, size, ring_.max_message());
    return true;
  }

  /// get(): blocks until a message arrives; wakes with ValueError if this handle is closed meanwhile.
  T get() { return get_until(std::nullopt); }
  /// get(timeout=...): Empty when nothing came within the timeout (negative: at once).
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    return get_until(detail::deadline_after(detail::to_timeout(timeout)));
  }
  /// get(block): with block false, Empty at once when there is nothing.
  T get(bool block) { return block ? get() : get_nowait(); }
  /// get_nowait(): Empty at once when there is nothing.
  T get_nowait() {
    auto item = try_get();
    if (!item) detail::throw_queue_status(core::RingStatus::empty, 0, 0);
    return std::move(*item);
  }
  /// Like get_nowait, but nullopt instead of raising Empty.
  [[nodiscard]] std::optional<T> try_get() {
    check_open();
    std::optional<T> item;
    const auto status = ring_.try_pop([&](std::span<const std::byte> bytes) { item.emplace(decode(bytes)); });
    if (status == core::RingStatus::empty) return std::nullopt;
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, 0, 0);
    return item;
  }

  /// Messages in the queue, approximately (another process may put or get meanwhile).
  [[nodiscard]] std::size_t qsize() const { return ring_.approximate_size(); }
  [[nodiscard]] bool empty() const { return !ring_.readable(); }
  /// True when a one-slot message would not fit now.
  [[nodiscard]] bool full() const { return !ring_.writable(1); }
  /// The largest encoded message this queue carries.
  [[nodiscard]] std::size_t max_message() const noexcept { return ring_.max_message(); }

  /// This process will use this queue (all copies of this handle) no more: later calls raise
  /// ValueError, and a get() blocked in another thread wakes with it. Other processes, and other
  /// handles received separately, are not affected. Idempotent.
  void close() {
    local_->closed.store(true);
    ring_.wake_all();
  }
  /// CPython joins its feeder thread here; mproc has none (put() has already written every
  /// message). Raises ValueError unless close() was called, as CPython's assertion does.
  void join_thread() const {
    if (!local_->closed.load()) throw ValueError("Queue.join_thread() called before close()");
  }
  /// Nothing to cancel: there is no feeder thread, and nothing a process put is pending in it.
  void cancel_join_thread() const noexcept {}

 protected:
  Queue(detail::SharedBlock block, QueueRing ring) noexcept : block_(std::move(block)), ring_(ring) {}
  Queue(std::shared_ptr<detail::NamedRegion> named, QueueRing ring) noexcept
      : named_(std::move(named)), ring_(ring) {}

 private:
  friend struct codec<Queue<T>>;

  struct Geometry {
    std::uint32_t slots, slot_size, limit;
  };
  static Geometry geometry(const QueueOptions& options) {
    if (options.maxsize > QueueRing::kMaxSlotCount) throw ValueError("Queue maxsize is too large");
    const auto slots = options.maxsize == 0 ? QueueOptions::kDefaultSlots
                                            : std::bit_ceil(static_cast<std::uint32_t>(options.maxsize));
    const auto limit = options.maxsize == 0 ? slots : static_cast<std::uint32_t>(options.maxsize);
    const std::uint32_t slot_size =
        options.slot_size == 0 ? detail::default_slot_size<T>() : options.slot_size;
    if (!QueueRing::valid_geometry(slots, slot_size, limit)) {
      throw ValueError("Queue slot_size must be a power of two between 16 and 1 MiB");
    }
    return {slots, slot_size, limit};
  }

  void check_open() const {
    if (local_->closed.load(std::memory_order_relaxed)) detail::throw_queue_closed();  // relaxed: own flag
  }

  static T decode(std::span<const std::byte> bytes) {
    if constexpr (detail::is_raw_message_v<T>) {
      if (bytes.size() != sizeof(T)) throw DecodeError("a queue message has the wrong size for its type");
      T value;
      std::memcpy(&value, bytes.data(), sizeof(T));
      return value;
    } else {
      Decoder in(bytes);
      T value = in.template get<T>();
      in.expect_end();
      return value;
    }
  }

  struct PushResult {
    core::RingStatus status;
    std::size_t size;
  };

  PushResult push(const T& item, std::optional<std::chrono::steady_clock::time_point> deadline, bool block) {
    check_open();
    if constexpr (detail::is_raw_message_v<T>) {
      const auto fill = [&](std::span<std::byte> out) noexcept { std::memcpy(out.data(), &item, sizeof(T)); };
      return {block ? ring_.push(sizeof(T), fill, deadline) : ring_.try_push(sizeof(T), fill), sizeof(T)};
    } else {
      std::vector<std::byte>& scratch = detail::encode_scratch();
      scratch.clear();
      Encoder out(scratch);
      out.put(item);
      if (!out.fds().empty()) detail::throw_queue_has_fds();
      const auto fill = [&](std::span<std::byte> dst) noexcept {
        if (!scratch.empty()) std::memcpy(dst.data(), scratch.data(), scratch.size());
      };
      const std::size_t size = scratch.size();
      return {block ? ring_.push(size, fill, deadline) : ring_.try_push(size, fill), size};
    }
  }

  void put_until(const T& item, std::optional<std::chrono::steady_clock::time_point> deadline) {
    const auto [status, size] = push(item, deadline, true);
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, size, ring_.max_message());
  }

  T get_until(std::optional<std::chrono::steady_clock::time_point> deadline) {
    check_open();
    std::optional<T> item;
    const auto status =
        ring_.pop([&](std::span<const std::byte> bytes) { item.emplace(decode(bytes)); }, deadline,
                  [this] { return local_->closed.load(std::memory_order_relaxed); });  // relaxed: own flag
    check_open();
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, 0, 0);
    return std::move(*item);
  }

  detail::SharedBlock block_;                   // an anonymous queue's memory, or
  std::shared_ptr<detail::NamedRegion> named_;  // a named queue's
  QueueRing ring_;
  std::shared_ptr<detail::QueueLocal> local_ = std::make_shared<detail::QueueLocal>();
};

/// multiprocessing.SimpleQueue: get, put, empty, close; the same ring.
template <class T>
class SimpleQueue {
 public:
  SimpleQueue() = default;
  void put(const T& item) { queue_.put(item); }
  T get() { return queue_.get(); }
  [[nodiscard]] bool empty() const { return queue_.empty(); }
  void close() { queue_.close(); }

 private:
  friend struct codec<SimpleQueue<T>>;
  explicit SimpleQueue(Queue<T> queue) : queue_(std::move(queue)) {}
  Queue<T> queue_;
};

/// multiprocessing.JoinableQueue: a Queue whose consumers call task_done() for each get(), and
/// whose join() waits until every message put has been marked done.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  JoinableQueue() : JoinableQueue(QueueOptions{}) {}
  explicit JoinableQueue(std::size_t maxsize) : JoinableQueue(QueueOptions{.maxsize = maxsize}) {}
  explicit JoinableQueue(const QueueOptions& options) : Queue<T>(options), unfinished_(0) {}

  void put(const T& item) {
    counted([&] { return Queue<T>::put(item), true; });
  }
  template <class Rep, class Period>
  void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    counted([&] { return Queue<T>::put(item, timeout), true; });
  }
  void put(const T& item, bool block) { block ? put(item) : put_nowait(item); }
  void put_nowait(const T& item) {
    counted([&] { return Queue<T>::put_nowait(item), true; });
  }
  [[nodiscard]] bool try_put(const T& item) {
    return counted([&] { return Queue<T>::try_put(item); });
  }

  /// One message taken with get() is processed. ValueError when called more times than put().
  void task_done() {
    std::lock_guard guard(cond_);
    if (!unfinished_.acquire(false)) throw ValueError("task_done() called too many times");
    if (unfinished_.get_value() == 0) cond_.notify_all();
  }
  /// Blocks until every message put (by any process) has been marked done.
  void join() {
    std::lock_guard guard(cond_);
    cond_.wait_for([&] { return unfinished_.get_value() == 0; });
  }

 private:
  friend struct codec<JoinableQueue<T>>;
  JoinableQueue(Queue<T> queue, Semaphore unfinished, Condition cond)
      : Queue<T>(std::move(queue)), unfinished_(std::move(unfinished)), cond_(std::move(cond)) {}

  // The count goes up before the message is in the queue (so join() can never see 0 while a
  // message is there) and back down if the put fails.
  template <class Put>
  bool counted(Put put) {
    unfinished_.release();
    bool stored = false;
    const auto undo = [&]() noexcept {
      try {
        std::lock_guard guard(cond_);
        (void)unfinished_.acquire(false);
        if (unfinished_.get_value() == 0) cond_.notify_all();
      } catch (...) {  // NOLINT(bugprone-empty-catch): the put's own error is the one to report
      }
    };
    try {
      stored = put();
    } catch (...) {
      undo();
      throw;
    }
    if (!stored) undo();
    return stored;
  }

  Semaphore unfinished_;
  Condition cond_;
};

/// A Queue passes to a Process as its memory (anonymous: the memfd travels with the arguments)
/// or its name (named: the child opens it by name, so the creator must still hold it).
template <class T>
struct codec<Queue<T>> {
  static void encode(Encoder& out, const Queue<T>& q) {
    out.put(q.named_ != nullptr);
    if (q.named_) {
      out.put(detail::named_region_name(*q.named_));
    } else {
      detail::encode_block_ref(out, q.block_, 0);
    }
  }
  static Queue<T> decode(Decoder& in) {
    if (in.get<bool>()) return Queue<T>::open(in.get<std::string>());
    auto [block, offset] =
        detail::decode_block_ref(in, sizeof(typename detail::QueueRing::Shared), kCacheLine);
    if (block.type_hash() != detail::queue_type_hash<T>() || offset != 0) {
      throw DecodeError("a received Queue holds another type");
    }
    auto ring = detail::QueueRing::attach(std::span(block.payload(), block.payload_size()));
    if (!ring) throw DecodeError("a received Queue's ring header is invalid");
    return Queue<T>(std::move(block), *ring);
  }
};

template <class T>
struct codec<JoinableQueue<T>> {
  static void encode(Encoder& out, const JoinableQueue<T>& q) {
    codec<Queue<T>>::encode(out, q);
    out.put(q.unfinished_);
    out.put(q.cond_);
  }
  static JoinableQueue<T> decode(Decoder& in) {
    Queue<T> queue = codec<Queue<T>>::decode(in);
    Semaphore unfinished = in.get<Semaphore>();
    Condition cond = in.get<Condition>();
    return JoinableQueue<T>(std::move(queue), std::move(unfinished), std::move(cond));
  }
};

template <class T>
struct codec<SimpleQueue<T>> {
  static void encode(Encoder& out, const SimpleQueue<T>& q) { codec<Queue<T>>::encode(out, q.queue_); }
  static SimpleQueue<T> decode(Decoder& in) { return SimpleQueue<T>(codec<Queue<T>>::decode(in)); }
};

}  // namespace mproc
