// SpscRing: a single-producer, single-consumer ring of variable-length records in shared memory,
// the core of mproc::Pipe's connections. Records are contiguous, so a producer can build a
// message in place (reserve + commit: zero-copy sends) and a consumer can read it in place.
//
// Layout (one region; the geometry is validated once and kept in the process-local view):
//
//   Shared   tail (bytes published), head (bytes consumed), the two WaitWords and the geometry,
//            each on its own cache line: the producer writes only tail, the consumer only head
//   data[C]  C bytes, a power of two; records are 8-byte aligned: [u64 header][payload][pad]
//
// The header holds the payload length, or kPadRecord for the unused end of the ring when a record
// would not fit before the wrap (records never wrap, so a payload is one contiguous span).
//
// Each side keeps a cached copy of the other side's index and reads the shared one only when
// the cached copy says full (producer) or empty (consumer): in a stream, one cache-line transfer
// of an index serves many records. Publishing is one release store of tail (consuming: of head),
// and a notify that makes no system call and no shared RMW when nobody sleeps (WaitWord).
//
// Failures: one producer and one consumer by contract (Pipe's connection ends). A producer that
// dies before its release store of tail published nothing: no torn record is ever visible. What
// the other side learns of a death (EOF) is the connection's business (connection.hpp), not the
// ring's. A hostile peer can write anything into the data and the indices: every header and index
// read from shared memory is checked before use (RingStatus::corrupted), never trusted.
#pragma once

#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "mproc/core/layout.hpp"
#include "mproc/core/mpmc_ring.hpp"  // RingStatus
#include "mproc/core/wait_word.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/liveness.hpp"
#include "mproc/export.hpp"

namespace mproc::core {

template <detail::FutexPolicy Futex = detail::SharedFutex>
class SpscRing {
 public:
  static constexpr std::size_t kHeaderBytes = sizeof(std::uint64_t);
  static constexpr std::uint64_t kPadRecord = ~std::uint64_t{0};
  /// A record header: the payload length in the low 48 bits, the caller's flags (0-255) above.
  static constexpr int kFlagShift = 56;
  static constexpr std::uint64_t kLengthMask = (std::uint64_t{1} << 48) - 1;
  static constexpr std::uint32_t kMinCapacity = 64;
  static constexpr std::uint32_t kMaxCapacity = 1U << 30;

  struct Shared {
    CachePadded<std::atomic<std::uint64_t>> tail{};  // written by the producer only
    CachePadded<std::atomic<std::uint64_t>> head{};  // written by the consumer only
    CachePadded<WaitWord<Futex>> not_empty{};
    CachePadded<WaitWord<Futex>> not_full{};
    struct Geometry {
      std::uint32_t capacity;  // data bytes, a power of two
      std::uint32_t reserved;
      // Which view last produced with a private copy of its position (stamp()): written when
      // the producing view changes, read by every private-copy push. Zero in a new ring.
      std::atomic<std::uint64_t> producer_stamp;
    };
    CachePadded<Geometry> geometry{};
  };
  static_assert(std::is_standard_layout_v<Shared> && std::is_trivially_destructible_v<Shared>,
                "the ring's header lives in shared memory");

  static constexpr std::size_t data_offset() noexcept {
    return (sizeof(Shared) + kCacheLine - 1) / kCacheLine * kCacheLine;
  }
  static constexpr std::size_t region_size(std::uint32_t capacity) noexcept {
    return data_offset() + capacity;
  }
  static constexpr bool valid_capacity(std::uint32_t capacity) noexcept {
    return std::has_single_bit(capacity) && capacity >= kMinCapacity && capacity <= kMaxCapacity;
  }

  SpscRing() noexcept = default;

  /// Initialises a ring in a zero-filled region; nullopt for an invalid capacity or short region.
  static std::optional<SpscRing> create(std::span<std::byte> region, std::uint32_t capacity) noexcept {
    if (!valid_capacity(capacity) || region.size() < region_size(capacity)) return std::nullopt;
    auto* shared = new (region.data()) Shared{};
    shared->geometry->capacity = capacity;
    return SpscRing(region, capacity);
  }

  /// A view of a ring created by another party; nullopt when its geometry is invalid or does
  /// not fit the region. The capacity is copied here once and never re-read.
  static std::optional<SpscRing> attach(std::span<std::byte> region) noexcept {
    if (region.size() < data_offset()) return std::nullopt;
    std::uint32_t capacity = 0;
    std::memcpy(&capacity,
                region.data() + offsetof(Shared, geometry) + offsetof(typename Shared::Geometry, capacity),
                sizeof capacity);
    if (!valid_capacity(capacity) || region.size() < region_size(capacity)) return std::nullopt;
    return SpscRing(region, capacity);
  }

  [[nodiscard]] std::uint32_t capacity() const noexcept { return capacity_; }
  /// The largest payload of one record: half the ring (so that a record always fits after at
  /// most one pad), less its header.
  [[nodiscard]] std::size_t max_record() const noexcept { return capacity_ / 2 - kHeaderBytes; }

  // ---- producer side -------------------------------------------------------------------------

  /// Space for one record of `size` bytes, reserved but not published: write the payload, then
  /// commit(). Empty span (and status full) when there is no room now; too_large over
  /// max_record(). Only one reservation at a time. @concurrent producer
  struct Reservation {
    RingStatus status = RingStatus::full;
    std::span<std::byte> payload;
  };
  Reservation try_reserve(std::size_t size, std::uint8_t flags = 0) noexcept {
    if (size > max_record()) return {RingStatus::too_large, {}};
    const std::uint64_t need = record_bytes(size);
    std::uint64_t pos = take_position(shared_);
    if ((pos & 7) != 0) return {RingStatus::corrupted, {}};  // records are 8-byte aligned
    const std::uint64_t offset = pos & mask();
    const std::uint64_t pad = offset + need > capacity_ ? capacity_ - offset : 0;
    if (pos + pad + need - cached_head_ > capacity_) {
      // [sync:spsc.free] acquire: pairs with the consumer's release store of head; the bytes it
      // read before are no longer needed when this producer overwrites them.
      cached_head_ = shared_->head->load(std::memory_order_acquire);
      if (cached_head_ > pos || pos - cached_head_ > capacity_) return {RingStatus::corrupted, {}};
      if (pos + pad + need - cached_head_ > capacity_) return {RingStatus::full, {}};
    }
    if (pad != 0) {
      std::memcpy(data_ + offset, &kPadRecord, sizeof kPadRecord);
      pos += pad;
    }
    const std::uint64_t header = static_cast<std::uint64_t>(size) | (std::uint64_t{flags} << kFlagShift);
    std::memcpy(data_ + (pos & mask()), &header, sizeof header);
    pending_end_ = pos + need;
    return {RingStatus::ok, std::span<std::byte>(data_ + (pos & mask()) + kHeaderBytes, size)};
  }

  /// Publishes the reserved record. `notify` false leaves waking the consumer to the caller (a
  /// LaneQueue's consumers park on one queue-wide word, not on a lane's). @concurrent producer
  void commit(bool notify = true) noexcept {
    if (private_tail_) local_tail_ = pending_end_;
    // [sync:spsc.publish] release: the header and payload written since try_reserve are visible
    // to the consumer's acquire load of tail.
    shared_->tail->store(pending_end_, std::memory_order_release);
    if (notify) shared_->not_empty->notify_one();
  }

  /// The fast path for a small record of a fixed size (a plain scalar's bytes): reserve, write and
  /// publish in one step. True when published; false, with nothing written, when there is no room
  /// now or the ring is corrupted (the caller's slow path, try_reserve, tells which). In a stream
  /// the producer waits on its stores (each one to a line the consumer is reading), so this makes
  /// as few as it can: for a record of 16 bytes (a scalar of up to 8), one store of header and
  /// payload and one of tail, where try_reserve + commit made five. @concurrent producer
  /// Notify false: as in commit().
  template <std::size_t Size, bool Notify = true>
    requires(Size <= 16)
  MPROC_ALWAYS_INLINE bool try_push_fixed(const void* value, std::uint8_t flags = 0) noexcept {
    // Every member is read into a local before the record's stores: a store through std::byte*
    // may alias this view, and each member re-read after it was one more load behind the stores
    // that a streaming producer waits on (docs/benchmarks.md, session 6).
    constexpr std::uint64_t need = record_bytes(Size);
    Shared* const shared = shared_;
    std::byte* const data = data_;
    const std::uint64_t capacity = capacity_;
    const bool keep_private = private_tail_;
    std::uint64_t pos = take_position(shared);
    const std::uint64_t offset = pos & (capacity - 1);
    const std::uint64_t pad = offset + need > capacity ? capacity - offset : 0;
    if ((pos & 7) != 0 || need > max_record() + kHeaderBytes) return false;
    if (pos + pad + need - cached_head_ > capacity) {
      // [sync:spsc.free] acquire: as in try_reserve.
      const std::uint64_t head = shared->head->load(std::memory_order_acquire);
      if (head > pos || pos - head > capacity) return false;
      cached_head_ = head;
      if (pos + pad + need - head > capacity) return false;
    }
    const std::uint64_t header = std::uint64_t{Size} | (std::uint64_t{flags} << kFlagShift);
    if (pad != 0) std::memcpy(data + offset, &kPadRecord, sizeof kPadRecord);
    std::byte* const at = data + ((pos + pad) & (capacity - 1));
#if defined(__SSE2__)
    if constexpr (need == 16) {  // one 16-byte store built in registers: one store-buffer entry
      std::uint64_t payload = 0;
      std::memcpy(&payload, value, Size);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(at),
                       _mm_set_epi64x(static_cast<long long>(payload), static_cast<long long>(header)));
    } else
#endif
    {
      std::byte record[need] = {};  // zeroed: the padding never carries this process's stack
      std::memcpy(record, &header, sizeof header);
      std::memcpy(record + kHeaderBytes, value, Size);
      std::memcpy(at, record, need);
    }
    const std::uint64_t end = pos + pad + need;
    if (keep_private) local_tail_ = end;
    // [sync:spsc.publish] release: as in commit().
    shared->tail->store(end, std::memory_order_release);
    if constexpr (Notify) shared->not_empty->notify_one();
    return true;
  }

  /// Waits (one slice of at most 10 ms, or until the deadline) for room for a record of `size`
  /// bytes or for hint() to turn true; false once the deadline has passed. Callers loop: they
  /// re-try, and check what hint() only hints at (a closed or dead peer) between slices.
  template <class Hint>
  bool wait_writable(std::size_t size, std::optional<std::chrono::steady_clock::time_point> deadline,
                     Hint&& hint) {
    const std::uint64_t need = 2 * record_bytes(size);  // the record and, at worst, a pad
    return wait(
        *shared_->not_full,
        [&] {
          // relaxed: a peek for the waiter; try_reserve re-reads head with acquire.
          return produced() + need - shared_->head->load(std::memory_order_relaxed) <= capacity_ || hint();
        },
        deadline);
  }

  // ---- consumer side -------------------------------------------------------------------------

  /// The oldest record's payload, read in place, or a status: empty, corrupted. The record stays
  /// until release(). @concurrent consumer
  struct Peek {
    RingStatus status = RingStatus::empty;
    std::span<const std::byte> payload;
    std::uint8_t flags = 0;
  };
  Peek try_peek() noexcept {
    std::uint64_t pos = consumed();
    for (;;) {
      if ((pos & 7) != 0) return {RingStatus::corrupted, {}};  // records are 8-byte aligned
      // Outside (pos, pos + capacity] the cached tail says nothing (empty, or a head the peer
      // moved): re-read and check. One compare covers both, unsigned.
      if (cached_tail_ - pos - 1 >= capacity_) {
        // [sync:spsc.publish] acquire: pairs with the producer's release store of tail.
        cached_tail_ = shared_->tail->load(std::memory_order_acquire);
        if (cached_tail_ < pos || cached_tail_ - pos > capacity_) return {RingStatus::corrupted, {}};
        if (pos == cached_tail_) return {RingStatus::empty, {}};
      }
      const std::uint64_t offset = pos & mask();
      std::uint64_t header = 0;
      std::memcpy(&header, data_ + offset, sizeof header);
      if (header == kPadRecord) {
        const std::uint64_t pad = capacity_ - offset;
        if (pad > cached_tail_ - pos) return {RingStatus::corrupted, {}};
        pos += pad;  // published with the record's release()
        // A producer publishes a pad only with the record after it: a pad that ends what was
        // published is corruption, not "empty" (which would leave readable() true forever).
        if (pos == cached_tail_) return {RingStatus::corrupted, {}};
        continue;
      }
      const std::uint64_t length = header & kLengthMask;
      const std::uint64_t need = length <= max_record() ? record_bytes(length) : 0;
      if (need == 0 || offset + need > capacity_ || need > cached_tail_ - pos) {
        return {RingStatus::corrupted, {}};
      }
      peek_end_ = pos + need;
      return {RingStatus::ok, std::span<const std::byte>(data_ + offset + kHeaderBytes, length),
              static_cast<std::uint8_t>(header >> kFlagShift)};
    }
  }

  /// The consumer's fast path for try_push_fixed's records: when the oldest record is a whole
  /// record of exactly Size bytes with these flags, copies its payload to `out`, releases it and
  /// returns true. Otherwise false with nothing consumed (empty, a pad, another size or flags, a
  /// corrupted index): the caller's slow path, try_peek, deals with it. @concurrent consumer
  template <std::size_t Size>
    requires(Size <= 16)
  MPROC_ALWAYS_INLINE bool try_pop_fixed(void* out, std::uint8_t flags = 0) noexcept {
    // Members are read into locals first, as in try_push_fixed: `out` may alias this view.
    constexpr std::uint64_t need = record_bytes(Size);
    Shared* const shared = shared_;
    const std::uint64_t capacity = capacity_;
    const std::uint64_t pos = shared->head->load(std::memory_order_relaxed);  // relaxed: our own index
    std::uint64_t tail = cached_tail_;
    if (tail - pos - 1 >= capacity) {  // empty, or a head the peer moved: as in try_peek
      // [sync:spsc.publish] acquire: as in try_peek.
      tail = shared->tail->load(std::memory_order_acquire);
      if (tail == pos || tail < pos || tail - pos > capacity) return false;
      cached_tail_ = tail;
    }
    if ((pos & 7) != 0) return false;  // before reading a header there: 8 bytes must fit
    const std::uint64_t offset = pos & (capacity - 1);
    std::uint64_t header = 0;
    std::memcpy(&header, data_ + offset, sizeof header);
    if (header != (std::uint64_t{Size} | (std::uint64_t{flags} << kFlagShift)) || offset + need > capacity ||
        need > tail - pos) {
      return false;
    }
    std::byte payload[Size];
    std::memcpy(payload, data_ + offset + kHeaderBytes, Size);
    // [sync:spsc.free] release: as in release().
    shared->head->store(pos + need, std::memory_order_release);
    shared->not_full->notify_one();
    std::memcpy(out, payload, Size);
    return true;
  }

  /// Gives the peeked record's bytes back to the producer. @concurrent consumer
  void release() noexcept {
    // [sync:spsc.free] release: this consumer's reads of the record happen before the producer's
    // acquire load of head lets it overwrite them.
    shared_->head->store(peek_end_, std::memory_order_release);
    shared_->not_full->notify_one();
  }

  /// Drops what the consumer would read (after corruption: resynchronise at the producer's tail).
  void skip_to_tail() noexcept {
    // [sync:spsc.publish] acquire: as in try_peek.
    cached_tail_ = shared_->tail->load(std::memory_order_acquire);
    // [sync:spsc.free] release: as in release().
    shared_->head->store(cached_tail_, std::memory_order_release);
    shared_->not_full->notify_one();
  }

  /// Waits (one slice, as wait_writable) for a record or for hint(); false once the deadline has
  /// passed. @concurrent consumer
  template <class Hint>
  bool wait_readable(std::optional<std::chrono::steady_clock::time_point> deadline, Hint&& hint) {
    return wait(
        *shared_->not_empty, [&] { return readable() || hint(); }, deadline);
  }

  /// A racy peek: has the producer published bytes this consumer has not read? @concurrent consumer
  [[nodiscard]] bool readable() const noexcept {
    // relaxed: a hint; try_peek re-reads tail with acquire.
    const std::uint64_t pos = consumed();
    return pos != cached_tail_ || shared_->tail->load(std::memory_order_relaxed) != pos;
  }

  /// A racy peek from anyone (not only the consumer): are there published bytes nobody consumed?
  /// Reads only the two shared indices. @concurrent any
  [[nodiscard]] bool has_unread() const noexcept {
    // relaxed (both): a hint; the consumer's try_peek re-reads tail with acquire.
    return shared_->tail->load(std::memory_order_relaxed) != shared_->head->load(std::memory_order_relaxed);
  }

  /// Records between head and tail: a racy snapshot (CPython's qsize()), from either side or a
  /// third party. It reads record headers the consumer may be releasing meanwhile: every value is
  /// bounds-checked, and a torn or stale one only ends the count early. @concurrent any
  [[nodiscard]] std::size_t approximate_count() const noexcept {
    // relaxed (both): a snapshot; nothing is read through them but headers, each checked.
    std::uint64_t pos = shared_->head->load(std::memory_order_relaxed);
    const std::uint64_t end = shared_->tail->load(std::memory_order_relaxed);
    if (end < pos || end - pos > capacity_ || (pos & 7) != 0) return 0;
    std::size_t count = 0;
    while (pos < end) {
      const std::uint64_t offset = pos & mask();
      std::uint64_t header = 0;
      std::memcpy(&header, data_ + offset, sizeof header);
      if (header == kPadRecord) {
        pos += capacity_ - offset;
        continue;
      }
      const std::uint64_t length = header & kLengthMask;
      if (length > max_record() || offset + record_bytes(length) > capacity_) break;
      pos += record_bytes(length);
      ++count;
    }
    return count;
  }

  /// A racy peek: is there room for a record of `size` bytes now? @concurrent any
  [[nodiscard]] bool has_room(std::size_t size) const noexcept {
    // relaxed (both): a peek, as in readable().
    const std::uint64_t t = shared_->tail->load(std::memory_order_relaxed);
    const std::uint64_t h = shared_->head->load(std::memory_order_relaxed);
    return t + 2 * record_bytes(size) - h <= capacity_;
  }

  /// Wakes both sides' waiters (in every process), so that each re-checks its stop().
  void wake_all() noexcept {
    shared_->not_empty->notify_all();
    shared_->not_full->notify_all();
  }

  /// Re-reads the shared indices into this view: a view copied into another process (a
  /// connection passed to a child) starts from the ring's state, not from its creator's. The
  /// other side's index is only a cache here: it is re-read, and checked, at the first use.
  void resync() noexcept {
    resync_producer();
    resync_consumer();
  }
  /// Whether the producer keeps a private copy of its position (see produced()): for a ring
  /// whose two sides take turns (a Pipe), not for a streaming one. Off by default. Set it before
  /// producing, from the producer's thread. @concurrent producer
  void use_private_tail(bool on) noexcept {
    private_tail_ = on;
    resync_producer();
  }
  /// resync() of the producer's half only: a process whose one view serves both roles (an spsc
  /// Queue's producer thread and consumer thread) must not move the other role's position while
  /// that role's thread is using it. @concurrent producer
  void resync_producer() noexcept {
    // relaxed: the index this side alone writes; see produced().
    local_tail_ = shared_->tail->load(std::memory_order_relaxed);
    cached_head_ = local_tail_ - capacity_;  // "full": try_reserve re-reads head first
  }
  /// resync() of the consumer's half only. @concurrent consumer
  void resync_consumer() noexcept {
    cached_tail_ = consumed();  // "empty": try_peek re-reads tail first
  }
  /// For a producer that takes the role over from one that stopped without handing it over (it
  /// died, or its thread exited): reads the latest tail, then resyncs. @concurrent producer
  void take_over_producer() noexcept {
    // An RMW reads the last value in the index's modification order, so this view starts from
    // the previous producer's last store of tail (spsc.publish), which released nothing to this
    // party; the relaxed reads of its own index that follow see that value or a later one.
    // [sync:spsc.takeover] acq_rel RMW (of nothing), as said.
    shared_->tail->fetch_add(0, std::memory_order_acq_rel);
    resync_producer();
  }
  /// The same for a consumer that takes over from one that stopped. @concurrent consumer
  void take_over_consumer() noexcept {
    // [sync:spsc.takeover] acq_rel RMW (of nothing): as in take_over_producer, for head (the
    // previous consumer's spsc.free stores).
    shared_->head->fetch_add(0, std::memory_order_acq_rel);
    resync_consumer();
  }

 private:
  SpscRing(std::span<std::byte> region, std::uint32_t capacity) noexcept
      : shared_(std::launder(reinterpret_cast<Shared*>(region.data()))),
        data_(region.data() + data_offset()),
        capacity_(capacity) {
    resync();
  }

  [[nodiscard]] std::uint64_t mask() const noexcept { return capacity_ - 1; }

  // Each side's own position. The consumer's is its shared index, not a private copy: a private
  // copy is one more store per record. The producer's is a choice (use_private_tail()):
  //   * read back from the shared tail (the default): no extra store per record, which a
  //     streaming producer waits on (an spsc Queue streamed at 0.8-1.0x Boost's spsc_queue this
  //     way, 0.5x with the private copy; docs/benchmarks.md, session 6);
  //   * a private copy: the consumer spins on the tail's line and takes it away, so reading the
  //     position back from there costs a cache miss before each record when the two sides take
  //     turns. A Pipe's spinning ping-pong ran at 200-220 ns a round trip that way, 140-166 ns
  //     with the copy (Boost: 180-200). A Pipe's connections keep the copy.
  // Reading one's own shared index relaxed is enough:
  //   * the thread holding a role is the only writer of its index, so it reads its own last store
  //     (coherence), also when one view serves both roles from two threads (each reads only its own);
  //   * a forked child, or a process taking a dead holder's role over, starts from the index as the
  //     last holder left it (fork orders it; otherwise coherence) and reads none of the data that
  //     holder wrote through it, so it needs no acquire;
  //   * a hostile peer's write is checked like any index: the producer's unsigned window test and
  //     the consumer's (try_peek, try_pop_fixed) send any position outside the window to a re-read
  //     and a check.
  // The cached copy of the other side's index stays process-local.
  // A private copy is only right while no other view produces: a Pipe's end used by a child and
  // then by its parent (CPython allows it) has two views, each with its own copy, one after the
  // other. So the ring carries a stamp of the view that produced last (its process identity and
  // its address: a forked child's view has its parent's address, not its identity), and a view
  // that finds another's stamp takes the position from the shared tail first. One load of a
  // line that is written only at such a change. The user orders the two producers (a join, a
  // message), as the contract of one producer at a time requires; coherence then makes the
  // relaxed loads see the other view's last tail.
  [[nodiscard]] std::uint64_t stamp() const noexcept {
    return detail::cached_process_identity() * 0x9e3779b97f4a7c15ULL ^ reinterpret_cast<std::uintptr_t>(this);
  }
  // The producer's position at the start of a push: in private mode, after taking it over from
  // the ring if another view produced since this one did.
  // Always inline: the fixed-size pushes are, and GCC left this call out of line in a
  // LaneQueue's (a fifth of a streaming producer's samples in perf).
  MPROC_ALWAYS_INLINE std::uint64_t take_position(Shared* shared) noexcept {
    if (!private_tail_) return shared->tail->load(std::memory_order_relaxed);  // relaxed: see above
    const std::uint64_t mine = stamp();
    // relaxed: see above.
    if (shared->geometry->producer_stamp.load(std::memory_order_relaxed) != mine) [[unlikely]] {
      take_over_position(shared, mine);
    }
    return local_tail_;
  }
  [[gnu::noinline]] void take_over_position(Shared* shared, std::uint64_t mine) noexcept {
    resync_producer();
    // relaxed: see above.
    shared->geometry->producer_stamp.store(mine, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t produced() const noexcept {
    // relaxed: the index this side alone writes (see above).
    return private_tail_ ? local_tail_ : shared_->tail->load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t consumed() const noexcept {
    // relaxed: the consumer reads back its own index (see above).
    return shared_->head->load(std::memory_order_relaxed);
  }
  static constexpr std::uint64_t record_bytes(std::uint64_t size) noexcept {
    return (kHeaderBytes + size + 7) & ~std::uint64_t{7};
  }

  // Waits for ready() for one slice, so that a caller's check of a closed or dead peer runs at
  // least every 10 ms even if nobody notifies. False when the deadline passed.
  template <class Ready>
  static bool wait(WaitWord<Futex>& waiter, Ready ready,
                   std::optional<std::chrono::steady_clock::time_point> deadline) {
    return waiter.wait_slice(ready, deadline, std::chrono::milliseconds(10)).has_value();
  }

  Shared* shared_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t capacity_ = 0;
  // Process-local: the producer's own position, each side's cached copy of the other side's
  // index, and its pending end. The consumer's own position is its shared index: see produced().
  std::uint64_t local_tail_ = 0;  // the producer's position, kept when private_tail_
  bool private_tail_ = false;
  std::uint64_t cached_head_ = 0;
  std::uint64_t pending_end_ = 0;
  std::uint64_t cached_tail_ = 0;
  std::uint64_t peek_end_ = 0;
};

}  // namespace mproc::core
