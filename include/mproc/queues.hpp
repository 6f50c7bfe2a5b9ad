// Queue, SimpleQueue and JoinableQueue: CPython's multiprocessing.queues for any encodable type,
// on a lock-free ring in shared memory (core::MpmcRing), or on lanes (core::LaneQueue, one
// single-producer ring per producing thread) with QueueOptions::lanes.
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
#include <atomic>
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
#include "mproc/core/lane_queue.hpp"
#include "mproc/core/mpmc_ring.hpp"
#include "mproc/core/spsc_ring.hpp"
#include "mproc/detail/liveness.hpp"
#include "mproc/detail/shared_block.hpp"
#include "mproc/errors.hpp"
#include "mproc/export.hpp"
#include "mproc/synchronize.hpp"

namespace mproc {

/// How a Queue is sized. Zeroes choose the defaults.
struct QueueOptions {
  /// CPython's maxsize: at most this many messages (of one slot each) in the queue; 0 means the
  /// default capacity, kDefaultSlots slots (per lane with `lanes`).
  std::size_t maxsize = 0;
  /// Bytes per slot (a power of two, at least 16). 0: just enough for one message of a
  /// fixed-size type, else 64. A message takes ceil((8 + its encoded size) / slot_size) slots.
  std::uint32_t slot_size = 0;
  /// Lanes (1-256, the shared one included; 0: none, the multi-producer ring): each producing
  /// thread writes a single-producer ring of its own (room for kDefaultSlots one-slot messages;
  /// threads beyond lanes - 1 share one under a lock), so put() makes no read-modify-write and a
  /// consumer one per get(). Faster, with weaker order: FIFO per producing thread only, and
  /// messages of different threads are unordered even when one put happens after the other (a
  /// sentinel put after joining the producers can overtake their messages: let each producer put
  /// its own). Not with maxsize or spsc (ValueError). docs/queues.md, "Lanes".
  std::uint32_t lanes = 0;
  /// One producer and one consumer: the queue runs on the single-producer ring (as a Pipe does),
  /// faster than the multi-producer one. The first thread to put is the producer and the first
  /// to get the consumer (in one process or two); another thread or process that tries while
  /// their process lives gets ValueError, and a dead process's role is taken over. The ring holds
  /// maxsize (or kDefaultSlots) records of slot_size bytes, so maxsize counts messages exactly
  /// only for fixed-size types.
  bool spsc = false;

  static constexpr std::uint32_t kDefaultSlots = 4096;
  static constexpr std::uint32_t kDefaultSlotSize = 64;
};

namespace detail {

/// Which thread of this process holds a role (producer or consumer) of an spsc queue: read inline
/// by put() and get(), so that the holder's check costs two loads and no call.
struct SpscSeat {
  std::atomic<std::uint64_t> process{0};  // cached_process_identity() of the holder; 0: none
  std::atomic<std::uint32_t> thread{0};   // its cached_thread_id()

  [[nodiscard]] bool mine() const noexcept {
    // relaxed (both): written by the holding thread under the claim mutex, read back by it; any
    // other thread (or a forked child, whose identity differs) sees a value not its own.
    return thread.load(std::memory_order_relaxed) == cached_thread_id() &&
           process.load(std::memory_order_relaxed) == cached_process_identity();
  }
};

/// Which lane of which queue the calling thread writes: read inline by put(), so that finding its
/// lane costs a few loads and no call. `queue` is the QueueCore's serial number in this process,
/// `process` the process identity (a forked child's thread keeps its parent's value, and claims
/// a lane of its own).
struct LaneSeat {
  std::uint64_t queue = 0;
  std::uint64_t process = 0;
  std::uint64_t self = 0;  // core::LanePolicy::producer_self()
  std::uint32_t lane = 0;
  // The shared lane's writer looks for a lane of its own again after this (steady_clock ticks):
  // not at every put, since a lookup that finds every lane taken asks each owner if it runs.
  std::int64_t retry_at = 0;
};
/// The calling thread's seat (one queue at a time). Defined in the library and exported, so that
/// the inline put of a program and the library's slow path share one (constinit: read without
/// a call to an initialisation wrapper).
extern MPROC_API constinit thread_local LaneSeat t_lane_seat;

/// The untyped queue (runtime/queues/queue_core.cpp): its shared memory, the ring inside (the
/// multi-producer one, or the single-producer one for QueueOptions::spsc) and this process's
/// state (close(), roles). Queue<T> encodes and decodes around it. A cheap, copyable handle.
class MPROC_API QueueCore {
 public:
  /// Writes a message into the bytes the ring reserved for it; must not throw.
  using Fill = void (*)(void* context, std::span<std::byte> out) noexcept;
  /// Reads a message in place; may throw (the message is consumed either way).
  using Consume = void (*)(void* context, std::span<const std::byte> in);

  QueueCore() = default;
  /// An anonymous queue; slot_size 0 was resolved by the caller. ValueError for a bad geometry.
  QueueCore(const QueueOptions& options, std::uint64_t type_hash);
  /// A named queue (create: FileExistsError if taken; open: FileNotFoundError, ValueError for
  /// another message type or a bad header).
  static QueueCore create_named(std::string_view name, const QueueOptions& options, std::uint64_t type_hash);
  static QueueCore open_named(std::string_view name, std::uint64_t type_hash);

  /// Appends a message of `size` bytes, waiting for room if `block` (until the deadline, nullopt:
  /// forever). ok, full, too_large, corrupted; ValueError if closed or another process holds the
  /// producer role of an spsc queue.
  core::RingStatus put(std::size_t size, Fill fill, void* context,
                       std::optional<std::chrono::steady_clock::time_point> deadline, bool block);
  /// Takes the oldest message, waiting if `block`; ok, empty, corrupted. A get blocked when this
  /// handle is closed (by another thread) raises ValueError.
  core::RingStatus get(Consume consume, void* context,
                       std::optional<std::chrono::steady_clock::time_point> deadline, bool block);

  [[nodiscard]] std::size_t qsize() const;
  [[nodiscard]] bool empty() const;
  [[nodiscard]] bool full() const;
  [[nodiscard]] std::size_t max_message() const;
  [[nodiscard]] std::string name() const;
  [[nodiscard]] bool closed() const noexcept;
  void close() noexcept;

  void encode(Encoder& out) const;
  static QueueCore decode(Decoder& in, std::uint64_t type_hash);

  /// The lanes of a default queue, or nullptr: Queue<T> drives them inline.
  [[nodiscard]] core::LaneQueue<>* lanes() const noexcept { return lanes_; }
  /// The lane the calling thread owns in this queue, or 0 (the shared lane, or none looked up
  /// yet): the inline put's check, which never claims.
  [[nodiscard]] MPROC_ALWAYS_INLINE std::uint32_t owned_lane() const noexcept {
    const LaneSeat& seat = t_lane_seat;
    return seat.queue == serial_ && seat.process == cached_process_identity() && seat.lane != 0 &&
                   lanes_->holds(seat.lane, seat.self)
               ? seat.lane
               : 0;
  }
  /// owned_lane(), or the lane looked up (claimed) now: an owned one or the shared one (0).
  std::uint32_t producer_lane();

  /// The multi-producer ring, or nullptr for an spsc queue: Queue<T> drives it inline (an
  /// out-of-line call and a function pointer per message cost the ring measurably).
  [[nodiscard]] core::MpmcRing<>* mpmc() const noexcept { return mpmc_; }
  /// The single-producer ring, or nullptr for a multi-producer queue. Call begin_put() (or
  /// begin_get()) before using it: it makes the calling thread the holder of the role, or throws
  /// ValueError if another thread or another live process holds it.
  [[nodiscard]] core::SpscRing<>* spsc() const noexcept { return spsc_; }
  void begin_put();
  void begin_get();
  /// begin_put() / begin_get() without a call when the calling thread already holds the role.
  void enter_put() {
    if (!producer_seat_->mine()) begin_put();
  }
  void enter_get() {
    if (!consumer_seat_->mine()) begin_get();
  }
  /// Whether the calling thread holds the spsc producer (consumer) role already: the inline fast
  /// paths' check, which never claims. Only for an spsc queue.
  [[nodiscard]] bool holds_put() const noexcept { return producer_seat_->mine(); }
  [[nodiscard]] bool holds_get() const noexcept { return consumer_seat_->mine(); }
  /// This process's close() flag (shared by the copies of this handle).
  [[nodiscard]] const std::atomic<bool>& closed_flag() const noexcept { return *closed_; }

 private:
  void cache_pointers() noexcept;
  core::LaneQueue<>* lanes_ = nullptr;
  std::uint64_t serial_ = 0;
  core::MpmcRing<>* mpmc_ = nullptr;
  core::SpscRing<>* spsc_ = nullptr;
  const SpscSeat* producer_seat_ = nullptr;
  const SpscSeat* consumer_seat_ = nullptr;
  const std::atomic<bool>* closed_ = nullptr;
  std::shared_ptr<struct QueueState> state_;
};

/// Throws the exception for a ring status that is not ok (Empty, Full, ValueError, Error).
[[noreturn]] MPROC_API void throw_queue_status(core::RingStatus status, std::size_t message_size,
                                               std::size_t max_message);
[[noreturn]] MPROC_API void throw_queue_has_fds();

/// A scratch buffer per thread for encoding messages: no allocation per put once warm.
MPROC_API std::vector<std::byte>& encode_scratch() noexcept;

/// Types whose encoding is their bytes: put and get copy them straight into and out of the ring.
template <class T>
inline constexpr bool is_raw_message_v = is_plain_scalar_v<T> && !UserCodec<T>;

/// What a queue of T is tagged with (a named queue's header, a received queue's block): T's name,
/// so that a Queue<int> opened or received as a Queue<std::string> is refused.
template <class T>
constexpr std::uint64_t queue_type_hash() noexcept {
  return fnv1a_type_name(kFnvOffsetBasis, type_name<T>());
}

template <class T>
QueueOptions resolved_options(QueueOptions options) noexcept {
  if (options.slot_size == 0) {
    if constexpr (is_raw_message_v<T>) {
      options.slot_size =
          std::max<std::uint32_t>(16, std::bit_ceil(static_cast<std::uint32_t>(sizeof(T) + 8)));
    } else {
      options.slot_size = QueueOptions::kDefaultSlotSize;
    }
  }
  return options;
}

}  // namespace detail

/// A multi-producer, multi-consumer FIFO of T between processes (multiprocessing.Queue).
/// A cheap, copyable handle: copies refer to one queue. @concurrent any
template <class T>
class Queue {
  static_assert(require_encodable<T>);

 public:
  using value_type = T;

  /// A queue with the default capacity.
  Queue() : Queue(QueueOptions{}) {}
  /// A queue of at most maxsize messages (0: the default capacity), as multiprocessing.Queue(maxsize).
  explicit Queue(std::size_t maxsize) : Queue(QueueOptions{.maxsize = maxsize}) {}
  explicit Queue(const QueueOptions& options)
      : core_(detail::resolved_options<T>(options), detail::queue_type_hash<T>()) {}

  /// A queue that unrelated programs open by name (Queue<T>::open). This process owns the name:
  /// it is unlinked when this process's last handle to the queue goes. FileExistsError if the
  /// name exists; ValueError for an invalid name (1-253 characters, no '/').
  static Queue create(std::string_view name, std::size_t maxsize = 0) {
    return create(name, QueueOptions{.maxsize = maxsize});
  }
  static Queue create(std::string_view name, const QueueOptions& options) {
    return Queue(detail::QueueCore::create_named(name, detail::resolved_options<T>(options),
                                                 detail::queue_type_hash<T>()));
  }
  /// Opens a queue another process created with Queue<T>::create(name). FileNotFoundError if
  /// there is none; ValueError if it holds another message type (a Queue<int> opened as a
  /// Queue<std::string>) or its ring header is invalid.
  static Queue open(std::string_view name) {
    return Queue(detail::QueueCore::open_named(name, detail::queue_type_hash<T>()));
  }
  /// The name of a named queue; empty for an anonymous one.
  [[nodiscard]] std::string name() const { return core_.name(); }

  /// put(obj): blocks while the queue is full. Throws ValueError after close() or when the
  /// message can never fit. @concurrent any
  MPROC_ALWAYS_INLINE void put(const T& item) {
    if constexpr (detail::is_raw_message_v<T>) {
      if (put_inline(item)) return;
      T copy;  // only the copy escapes to the call: see Connection::send
      std::memcpy(&copy, &item, sizeof copy);
      put_until(copy, std::nullopt);
    } else {
      put_until(item, std::nullopt);
    }
  }
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
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, size, core_.max_message());
  }
  /// Like put_nowait, but says false instead of raising Full.
  [[nodiscard]] bool try_put(const T& item) {
    const auto [status, size] = push(item, std::nullopt, false);
    if (status == core::RingStatus::full) return false;
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, size, core_.max_message());
    return true;
  }

  /// get(): blocks until a message arrives; wakes with ValueError if this handle is closed meanwhile.
  MPROC_ALWAYS_INLINE T get() {
    if constexpr (detail::is_raw_message_v<T>) {
      T value;
      if (get_inline(value)) return value;
    }
    return get_until(std::nullopt);
  }
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
    std::optional<T> item;
    const auto status = core_.get(&consume, &item, std::nullopt, false);
    if (status == core::RingStatus::empty) return std::nullopt;
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, 0, 0);
    return item;
  }

  /// Messages in the queue, approximately (another process may put or get meanwhile).
  [[nodiscard]] std::size_t qsize() const { return core_.qsize(); }
  [[nodiscard]] bool empty() const { return core_.empty(); }
  /// True when a one-slot message would not fit now.
  [[nodiscard]] bool full() const { return core_.full(); }
  /// The largest encoded message this queue carries.
  [[nodiscard]] std::size_t max_message() const { return core_.max_message(); }

  /// This process will use this queue (all copies of this handle) no more: later calls raise
  /// ValueError, and a get() blocked in another thread wakes with it. Other processes, and other
  /// handles received separately, are not affected. Idempotent.
  void close() noexcept { core_.close(); }
  /// CPython joins its feeder thread here; mproc has none (put() has already written every
  /// message). Raises ValueError unless close() was called, as CPython's assertion does.
  void join_thread() const {
    if (!core_.closed()) throw ValueError("Queue.join_thread() called before close()");
  }
  /// Nothing to cancel: there is no feeder thread, and nothing a process put is pending in it.
  void cancel_join_thread() const noexcept {}

 protected:
  explicit Queue(detail::QueueCore core) noexcept : core_(std::move(core)) {}

 private:
  friend struct codec<Queue<T>>;

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
  static void consume(void* item, std::span<const std::byte> bytes) {
    static_cast<std::optional<T>*>(item)->emplace(decode(bytes));
  }
  static void fill_raw(void* item, std::span<std::byte> out) noexcept {
    std::memcpy(out.data(), item, sizeof(T));
  }
  static void fill_scratch(void* scratch, std::span<std::byte> out) noexcept {
    const auto& bytes = *static_cast<const std::vector<std::byte>*>(scratch);
    if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  }

  struct PushResult {
    core::RingStatus status;
    std::size_t size;
  };

  void check_open() const {
    // relaxed: this process's own flag.
    if (core_.closed_flag().load(std::memory_order_relaxed)) throw ValueError("Queue is closed");
  }

  PushResult push(const T& item, std::optional<std::chrono::steady_clock::time_point> deadline, bool block) {
    if constexpr (detail::is_raw_message_v<T>) {
      if (core::LaneQueue<>* lanes = core_.lanes()) {  // the fast path: an owned lane with room
        check_open();
        if (const std::uint32_t lane = core_.producer_lane(); lane != 0) {
          for (int polls = block ? 64 : 1;;) {  // a few polls, as for the spsc ring below
            if (lanes->template try_push_fixed<sizeof(T)>(lane, &item))
              return {core::RingStatus::ok, sizeof(T)};
            if (--polls == 0) break;
            core::cpu_relax();
          }
        }
      } else if (core::MpmcRing<>* ring = core_.mpmc()) {
        check_open();
        const auto fill = [&](std::span<std::byte> out) noexcept {
          std::memcpy(out.data(), &item, sizeof(T));
        };
        return {block ? ring->push(sizeof(T), fill, deadline) : ring->try_push(sizeof(T), fill), sizeof(T)};
      }
      if (core::SpscRing<>* spsc = core_.spsc()) {  // the fast path: room at once, or soon
        check_open();
        core_.enter_put();
        // Plain scalars are at most 16 bytes, try_push_fixed's limit. A few polls when blocking:
        // a running consumer makes room sooner than the slow path's set-up.
        for (int polls = block ? 64 : 1;;) {
          if (spsc->template try_push_fixed<sizeof(T)>(&item)) return {core::RingStatus::ok, sizeof(T)};
          if (--polls == 0) break;
          core::cpu_relax();
        }
      }
      // A copy, as in Connection::send: only it escapes to the out-of-line call.
      T copy;
      std::memcpy(&copy, &item, sizeof copy);
      return {core_.put(sizeof(T), &fill_raw, &copy, deadline, block), sizeof(T)};
    } else {
      std::vector<std::byte>& scratch = detail::encode_scratch();
      scratch.clear();
      Encoder out(scratch);
      out.put(item);
      if (!out.fds().empty()) detail::throw_queue_has_fds();
      return {core_.put(scratch.size(), &fill_scratch, &scratch, deadline, block), scratch.size()};
    }
  }

  // The spsc ring's inline paths for plain scalars: one attempt, no claim, no throw; false sends
  // the caller to the general path, which deals with everything else (a closed handle, a role
  // not yet held, a full or empty ring, a record of another kind). They are separate and small so
  // that the caller's loop stays free of the general path's spills: on a producer that waits on
  // its stores, each spill is one more (docs/benchmarks.md, session 6).
  MPROC_ALWAYS_INLINE bool put_inline(const T& item) noexcept {
    if constexpr (detail::is_raw_message_v<T>) {
      if (core::LaneQueue<>* lanes = core_.lanes()) {
        // relaxed: this process's own flag, as in check_open().
        if (core_.closed_flag().load(std::memory_order_relaxed)) return false;
        const std::uint32_t lane = core_.owned_lane();
        return lane != 0 && lanes->template try_push_fixed<sizeof(T)>(lane, &item);
      }
      core::SpscRing<>* spsc = core_.spsc();
      // relaxed: this process's own flag, as in check_open().
      return spsc != nullptr && !core_.closed_flag().load(std::memory_order_relaxed) && core_.holds_put() &&
             spsc->template try_push_fixed<sizeof(T)>(&item);
    }
    return false;
  }
  MPROC_ALWAYS_INLINE bool get_inline(T& value) noexcept {
    if constexpr (detail::is_raw_message_v<T>) {
      if (core::LaneQueue<>* lanes = core_.lanes()) {
        // relaxed: as in put_inline.
        return !core_.closed_flag().load(std::memory_order_relaxed) &&
               lanes->template try_pop_fixed<sizeof(T)>(&value);
      }
      core::SpscRing<>* spsc = core_.spsc();
      // relaxed: as in put_inline.
      return spsc != nullptr && !core_.closed_flag().load(std::memory_order_relaxed) && core_.holds_get() &&
             spsc->template try_pop_fixed<sizeof(T)>(&value);
    }
    return false;
  }

  [[gnu::noinline]] void put_until(const T& item,
                                   std::optional<std::chrono::steady_clock::time_point> deadline) {
    const auto [status, size] = push(item, deadline, true);
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, size, core_.max_message());
  }

  [[gnu::noinline]] T get_until(std::optional<std::chrono::steady_clock::time_point> deadline) {
    std::optional<T> item;
    core::RingStatus status{};
    if (core::LaneQueue<>* lanes = core_.lanes()) {
      check_open();
      status = lanes->pop([&](std::span<const std::byte> bytes) { item.emplace(decode(bytes)); }, deadline,
                          // relaxed: this process's own flag.
                          [this] { return core_.closed_flag().load(std::memory_order_relaxed); });
      check_open();
    } else if (core::MpmcRing<>* ring = core_.mpmc()) {
      check_open();
      status = ring->pop([&](std::span<const std::byte> bytes) { item.emplace(decode(bytes)); }, deadline,
                         // relaxed: this process's own flag.
                         [this] { return core_.closed_flag().load(std::memory_order_relaxed); });
      check_open();
    } else {
      if constexpr (detail::is_raw_message_v<T>) {  // the fast path: a message at once
        if (core::SpscRing<>* spsc = core_.spsc()) {
          check_open();
          core_.enter_get();
          // A few polls first: a running producer answers sooner than the slow path's set-up.
          for (int polls = 0; polls < 64; ++polls) {
            T value;
            if (spsc->template try_pop_fixed<sizeof(T)>(&value)) return value;
            if (spsc->readable()) break;  // a record the fixed path does not take: the slow path says
            core::cpu_relax();
          }
        }
      }
      status = core_.get(&consume, &item, deadline, true);
    }
    if (status != core::RingStatus::ok) detail::throw_queue_status(status, 0, 0);
    return std::move(*item);
  }

  detail::QueueCore core_;
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
  static void encode(Encoder& out, const Queue<T>& q) { q.core_.encode(out); }
  static Queue<T> decode(Decoder& in) {
    return Queue<T>(detail::QueueCore::decode(in, detail::queue_type_hash<T>()));
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
