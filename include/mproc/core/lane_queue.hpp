// LaneQueue: a multi-producer, multi-consumer queue made of single-producer lanes, the core of
// mproc::Queue with QueueOptions::lanes (docs/queues.md, "Many producers, fast").
//
// Why: the multi-producer ring (MpmcRing) pays four compare-and-swaps per message (claim and move
// tail, claim and move head), which held one producer and one consumer to 0.14x Boost's
// spsc_queue; a single-producer ring streams at 0.85-1x. Here each producing thread gets a lane of
// its own, an SpscRing, and writes it with no read-modify-write at all; consumers take a lane's
// lock word (a compare-and-swap on a line only consumers touch) around each pop.
//
// Layout (one region):
//
//   Shared     the geometry, `used` (lanes [0, used) may hold records) and the queue-wide
//              not_empty WaitWord that consumers park on, each on its own line
//   lane[L]    LaneWords (owner, consumer lock: a line each), then an SpscRing region
//
// Lane 0 is the shared lane: a producer that finds no free lane writes it under a producer lock
// (its owner word), so any number of producers works. Lanes 1..L-1 are owned: a producer claims
// one with a compare-and-swap of its owner word from 0 (or from an owner that no longer runs) to
// its own identity, and keeps it while it runs.
//
// Order: FIFO per producer (per thread), as in each lane. A producer that wrote the shared lane
// moves to an owned lane only when the shared lane is empty, so its earlier messages are gone
// first. Messages of different producers are unordered, even when one put happened after the
// other (which is why lanes are an option, not the default queue: docs/queues.md).
//
// Failures:
//   * a producer killed inside a push published nothing (the lane's tail did not move); its
//     lane is taken over by the next producer that needs one, its published records are still
//     delivered;
//   * a consumer killed holding a lane's lock leaves the record it was reading in place (the
//     head had not moved): the next consumer takes the lock over from the dead holder and
//     delivers it. Nothing is lost, which MpmcRing cannot promise for a dead reader;
//   * a hostile peer can write anything: the geometry is validated once and kept process-local,
//     `used` is clamped, the rings check every index and header, and owner and lock words only
//     decide who waits.
//
// Policy (tests substitute it): the identities written into owner and lock words, whether they
// still run, and crash points (LaneStep) for the kill tests.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "mproc/core/layout.hpp"
#include "mproc/core/mpmc_ring.hpp"  // RingStatus
#include "mproc/core/spsc_ring.hpp"
#include "mproc/core/wait_word.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/liveness.hpp"
#include "mproc/export.hpp"

namespace mproc::core {

/// Where a party can stop inside a LaneQueue operation (kill tests).
enum class LaneStep {
  push_filled,   ///< a producer wrote a record, not yet published (holding the shared lane's lock, if that
                 ///< lane)
  pop_read,      ///< a consumer holds a lane's lock and read a record, not yet given back
  pop_released,  ///< the record given back, the lane's lock still held
};

/// The production policy: producers are threads ((tid << 32) | pid), consumers processes
/// (process_identity()).
struct LanePolicy {
  static std::uint64_t producer_self() noexcept {
    return (std::uint64_t{detail::cached_thread_id()} << 32) |
           static_cast<std::uint32_t>(detail::cached_process_identity());
  }
  static bool producer_alive(std::uint64_t owner) noexcept {
    return detail::thread_alive(static_cast<std::uint32_t>(owner), static_cast<std::uint32_t>(owner >> 32));
  }
  static std::uint64_t consumer_self() noexcept { return detail::cached_process_identity(); }
  static bool consumer_alive(std::uint64_t holder) noexcept { return detail::process_alive(holder); }
  static void at(LaneStep /*step*/) noexcept {}
};

template <detail::FutexPolicy Futex = detail::SharedFutex, class Policy = LanePolicy>
class LaneQueue {
 public:
  using Ring = SpscRing<Futex>;
  static constexpr std::uint32_t kSharedLane = 0;
  static constexpr std::uint32_t kMinLanes = 1;
  static constexpr std::uint32_t kMaxLanes = 256;
  /// How long a lock (a lane's consumer lock, the shared lane's producer lock) may stay with one
  /// holder before a party that wants it asks whether the holder still runs. Holders keep these
  /// locks for one record, so a longer hold means a descheduled or dead one. A policy may set its
  /// own (the fuzzer's, for which every other party is dead, sets 0).
  static constexpr std::chrono::milliseconds kHolderPatience = [] {
    if constexpr (requires { Policy::kHolderPatience; }) {
      return std::chrono::milliseconds{Policy::kHolderPatience};
    } else {
      return std::chrono::milliseconds{2};
    }
  }();
  /// Pops from one lane before a consumer's next pop starts at the next lane: a lane that never
  /// empties does not starve the others.
  static constexpr std::uint32_t kStreak = 64;
  /// The longest a waiter sleeps before it looks at stop(), dead holders and its deadline again.
  static constexpr std::chrono::milliseconds kWaitSlice{10};

  struct Shared {
    struct Geometry {
      std::uint32_t lanes;     // L, lane 0 the shared one
      std::uint32_t capacity;  // each lane's ring bytes, a power of two
    };
    CachePadded<Geometry> geometry{};
    CachePadded<std::atomic<std::uint32_t>> used{};  // lanes [0, used) were ever claimed
    CachePadded<WaitWord<Futex>> not_empty{};        // consumers park here
  };
  struct LaneWords {
    // The owner's identity (0: free); in the shared lane, the holder of its producer lock.
    CachePadded<std::atomic<std::uint64_t>> owner{};
    CachePadded<std::atomic<std::uint64_t>> consumer{};  // the consumer lock's holder, 0: free
  };
  static_assert(std::is_standard_layout_v<Shared> && std::is_trivially_destructible_v<Shared> &&
                    std::is_standard_layout_v<LaneWords> && std::is_trivially_destructible_v<LaneWords>,
                "the queue's words live in shared memory");

  static constexpr bool valid_geometry(std::uint32_t lanes, std::uint32_t capacity) noexcept {
    return lanes >= kMinLanes && lanes <= kMaxLanes && Ring::valid_capacity(capacity) &&
           capacity >= kCacheLine;
  }
  static constexpr std::size_t lane_stride(std::uint32_t capacity) noexcept {
    return sizeof(LaneWords) + (Ring::region_size(capacity) + kCacheLine - 1) / kCacheLine * kCacheLine;
  }
  static constexpr std::size_t region_size(std::uint32_t lanes, std::uint32_t capacity) noexcept {
    return sizeof(Shared) + std::size_t{lanes} * lane_stride(capacity);
  }

  /// Initialises a queue in a zero-filled region; nullptr for an invalid geometry or short region.
  static std::unique_ptr<LaneQueue> create(std::span<std::byte> region, std::uint32_t lanes,
                                           std::uint32_t capacity) {
    if (!valid_geometry(lanes, capacity) || region.size() < region_size(lanes, capacity)) return nullptr;
    auto* shared = new (region.data()) Shared{};
    shared->geometry->lanes = lanes;
    shared->geometry->capacity = capacity;
    shared->used->store(1, std::memory_order_relaxed);  // relaxed: published with the region
    for (std::uint32_t i = 0; i < lanes; ++i) {
      std::byte* lane = region.data() + sizeof(Shared) + i * lane_stride(capacity);
      new (lane) LaneWords{};
      if (!Ring::create(std::span(lane + sizeof(LaneWords), Ring::region_size(capacity)), capacity)) {
        return nullptr;
      }
    }
    return attach(region);
  }

  /// A view of a queue created by another party; nullptr when its geometry is invalid or does
  /// not fit the region. The geometry is copied here once and never re-read.
  static std::unique_ptr<LaneQueue> attach(std::span<std::byte> region) {
    if (region.size() < sizeof(Shared)) return nullptr;
    typename Shared::Geometry g{};
    std::memcpy(&g, region.data() + offsetof(Shared, geometry), sizeof g);
    if (!valid_geometry(g.lanes, g.capacity) || region.size() < region_size(g.lanes, g.capacity))
      return nullptr;
    std::unique_ptr<LaneQueue> q(new LaneQueue(region, g.lanes));
    for (std::uint32_t i = 0; i < g.lanes; ++i) {
      std::byte* lane = region.data() + sizeof(Shared) + i * lane_stride(g.capacity);
      auto ring = Ring::attach(std::span(lane + sizeof(LaneWords), Ring::region_size(g.capacity)));
      if (!ring || ring->capacity() != g.capacity) return nullptr;
      q->lanes_.push_back(Lane{std::launder(reinterpret_cast<LaneWords*>(lane)), *ring});
    }
    return q;
  }

  LaneQueue(const LaneQueue&) = delete;
  LaneQueue& operator=(const LaneQueue&) = delete;
  ~LaneQueue() = default;

  [[nodiscard]] std::uint32_t lanes() const noexcept { return lane_count_; }
  [[nodiscard]] std::uint32_t capacity() const noexcept { return lanes_[0].ring.capacity(); }
  /// The largest message: one record of a lane.
  [[nodiscard]] std::size_t max_message() const noexcept { return lanes_[0].ring.max_record(); }

  // ---- producer side -------------------------------------------------------------------------

  /// The lane the producer `self` writes: the one it owns, else one claimed now (free, or owned
  /// by a producer that no longer runs), else the shared lane. `wrote_shared`: this producer has
  /// written the shared lane, and may leave it only once it is empty (FIFO). @concurrent any
  std::uint32_t lane_for(std::uint64_t self, bool wrote_shared = false) noexcept {
    for (std::uint32_t i = 1; i < lane_count_; ++i) {
      // relaxed: a producer reads back its own identity (another view of the same thread wrote
      // it, or nobody did); the claim below is the ordered access.
      if (owner(i).load(std::memory_order_relaxed) == self) return i;
    }
    if (wrote_shared && lanes_[kSharedLane].ring.has_unread()) return kSharedLane;
    for (int pass = 0; pass < 2; ++pass) {
      for (std::uint32_t i = 1; i < lane_count_; ++i) {
        // relaxed: the compare-and-swap below re-reads it.
        std::uint64_t seen = owner(i).load(std::memory_order_relaxed);
        if (pass == 0 ? seen != 0 : seen == 0 || Policy::producer_alive(seen)) continue;
        // The claim publishes nothing. The lane's state is in its shared indices, which the
        // producer reads back (its own index, SpscRing's produced()) and checks. A view's
        // process-local producer state (the cached head, a lower bound) may be left by a previous
        // owner thread of this process, which has exited: only its staleness matters, and a stale
        // head only makes the next push re-read the shared one. So relaxed.
        if (owner(i).compare_exchange_strong(seen, self, std::memory_order_relaxed)) {
          if (pass == 1) lanes_[i].ring.take_over_producer();  // the dead owner handed nothing over
          note_used(i);
          return i;
        }
      }
    }
    return kSharedLane;
  }

  /// Whether `lane` is the shared lane or still owned by `self`: the check a producer makes
  /// before each push into a lane it looked up earlier (a hostile or mistaken peer may have
  /// taken it). One load of a line written only at claims. @concurrent any
  [[nodiscard]] bool holds(std::uint32_t lane, std::uint64_t self) const noexcept {
    // relaxed: the producer reads back its own identity, as in lane_for.
    return lane == kSharedLane || (lane < lane_count_ && owner(lane).load(std::memory_order_relaxed) == self);
  }

  /// The fast path for an owned lane and a small fixed-size record (a plain scalar): write and
  /// publish, or false with nothing written (full, corrupted: try_push says which). Only for a
  /// lane that holds(lane, self) said is the caller's. @concurrent the lane's owner
  template <std::size_t Size>
    requires(Size <= 16)
  MPROC_ALWAYS_INLINE bool try_push_fixed(std::uint32_t lane, const void* value) noexcept {
    if (!lanes_[lane].ring.template try_push_fixed<Size, false>(value)) return false;
    shared_->not_empty->notify_one();
    return true;
  }

  /// One attempt to append a record of `size` bytes written by fill(span) (which must not
  /// throw) to `lane`: ok, full, too_large, corrupted. A lane the caller no longer holds is
  /// looked up again (lane_for). The shared lane is written under its producer lock, which a
  /// caller that cannot get it within a slice counts as `full`. @concurrent any
  /// `lock_until`: how long to wait for the shared lane's lock (nullopt: kHolderPatience).
  template <class Fill>
  RingStatus try_push(
      std::uint32_t& lane, std::uint64_t self, std::size_t size, Fill&& fill,
      std::optional<std::chrono::steady_clock::time_point> lock_until = std::nullopt) noexcept {
    if (size > max_message()) return RingStatus::too_large;
    if (!holds(lane, self)) lane = lane_for(self);
    if (lane == kSharedLane && !lock_shared_producer(self, lock_until)) return RingStatus::full;
    Ring& ring = lanes_[lane].ring;
    const auto r = ring.try_reserve(size);
    if (r.status == RingStatus::ok) {
      fill(r.payload);
      Policy::at(LaneStep::push_filled);
      ring.commit(false);
    }
    if (lane == kSharedLane) unlock_shared_producer();
    if (r.status == RingStatus::ok) shared_->not_empty->notify_one();
    return r.status;
  }

  /// try_push, waiting for room until the deadline (nullopt: forever) or stop(); `full` then.
  /// @concurrent any
  template <class Fill, class Stop>
  RingStatus push(std::uint32_t& lane, std::uint64_t self, std::size_t size, Fill&& fill,
                  std::optional<std::chrono::steady_clock::time_point> deadline, Stop&& stop) {
    for (;;) {
      // One wait slice for the shared lane's lock at most, so that stop() and the deadline are
      // looked at between slices.
      auto lock_until = std::chrono::steady_clock::now() + kWaitSlice;
      if (deadline && *deadline < lock_until) lock_until = *deadline;
      const RingStatus s = try_push(lane, self, size, fill, lock_until);
      if (s != RingStatus::full || stop()) return s;
      if (!lanes_[lane].ring.wait_writable(size, deadline, stop)) return try_push(lane, self, size, fill);
    }
  }

  /// A racy peek: is there room for a record of `size` bytes in `lane` now? @concurrent any
  [[nodiscard]] bool has_room(std::uint32_t lane, std::size_t size) const noexcept {
    return lane < lane_count_ && lanes_[lane].ring.has_room(size);
  }

  // ---- consumer side -------------------------------------------------------------------------

  /// The fast path for try_push_fixed's records: pops from the lane this process's consumers
  /// took from last, if that lane's next record is one of exactly Size bytes. False with nothing
  /// consumed otherwise (empty, locked, another kind of record): try_pop deals with it.
  /// @concurrent any
  template <std::size_t Size>
    requires(Size <= 16)
  MPROC_ALWAYS_INLINE bool try_pop_fixed(void* out) noexcept {
    // relaxed (sticky_, streak_): process-local hints; a stale one costs a scan, nothing else.
    const std::uint32_t i = sticky_.load(std::memory_order_relaxed);
    Lane& lane = lanes_[i];
    const std::uint64_t self = Policy::consumer_self();
    std::uint64_t expected = 0;
    // [sync:lanes.consumer] acquire: pairs with the previous holder's release store in the
    // unlock below: its consumer-side view state (cached tail) and head move happen before ours.
    if (!lane.words->consumer->compare_exchange_strong(expected, self, std::memory_order_acquire,
                                                       std::memory_order_relaxed)) {
      return false;
    }
    const bool ok = lane.ring.template try_pop_fixed<Size>(out);
    // [sync:lanes.consumer] release: as above.
    lane.words->consumer->store(0, std::memory_order_release);
    if (ok) count_streak(i);
    return ok;
  }

  /// Takes one record from the first lane (from this process's rotating start) that has one and
  /// whose lock is free (or held by a dead consumer), and hands it to consume(span), which may
  /// throw (the record is consumed either way). ok, empty, corrupted (the lane's unread bytes are
  /// dropped). @concurrent any
  template <class Consume>
  RingStatus try_pop(Consume&& consume) {
    return scan(consume).status;
  }

  /// try_pop, waiting until the deadline (nullopt: forever) or stop(); `empty` then.
  /// @concurrent any
  template <class Consume, class Stop>
  RingStatus pop(Consume&& consume, std::optional<std::chrono::steady_clock::time_point> deadline,
                 Stop&& stop) {
    std::optional<std::chrono::steady_clock::time_point> busy_since;
    for (std::uint32_t busy = 0;; ++busy) {
      const Scan s = scan(consume);
      if (s.status != RingStatus::empty || stop()) return s.status;
      if (s.locked) {
        // Records wait behind another consumer's lock, which is held for one record: spin and
        // yield, and past kHolderPatience (a descheduled, stopped or slow holder) sleep in short
        // naps instead. A dead holder's lock is taken over by scan().
        const auto now = std::chrono::steady_clock::now();
        if (deadline && now >= *deadline) return RingStatus::empty;
        if (!busy_since) busy_since = now;
        if (now - *busy_since >= kHolderPatience) {
          std::this_thread::sleep_for(std::chrono::microseconds(100));
        } else if (busy % 16 == 15) {
          std::this_thread::yield();
        } else {
          cpu_relax();
        }
        continue;
      }
      busy_since.reset();
      const auto in_time =
          shared_->not_empty->wait_slice([&] { return any_unread() || stop(); }, deadline, kWaitSlice);
      if (!in_time) return scan(consume).status;
    }
  }

  /// A racy observer for tests and the fuzzer: is every consumer lock and the shared lane's
  /// producer lock free now? (Each operation leaves them so; only one caught mid-way holds one.)
  [[nodiscard]] bool locks_free_snapshot() const noexcept {
    // relaxed: stale as soon as it is read; orders nothing.
    if (owner(kSharedLane).load(std::memory_order_relaxed) != 0) return false;
    for (const Lane& lane : lanes_) {
      // relaxed: as above.
      if (lane.words->consumer->load(std::memory_order_relaxed) != 0) return false;
    }
    return true;
  }

  /// A racy peek: has any lane published a record nobody consumed? @concurrent any
  [[nodiscard]] bool any_unread() const noexcept {
    const std::uint32_t n = used_lanes();
    for (std::uint32_t i = 0; i < n; ++i) {
      if (lanes_[i].ring.has_unread()) return true;
    }
    return false;
  }

  /// Records in the queue: a racy snapshot (CPython's qsize()). @concurrent any
  [[nodiscard]] std::size_t approximate_size() const noexcept {
    std::size_t count = 0;
    const std::uint32_t n = used_lanes();
    for (std::uint32_t i = 0; i < n; ++i) count += lanes_[i].ring.approximate_count();
    return count;
  }

  /// Wakes every waiter (consumers and producers, in every process) so that each re-checks its
  /// stop().
  void wake_all() noexcept {
    shared_->not_empty->notify_all();
    for (Lane& lane : lanes_) lane.ring.wake_all();
  }

 private:
  struct Lane {
    LaneWords* words;
    Ring ring;  // this process's view; its consumer half is used under the consumer lock only
  };
  struct Scan {
    RingStatus status;
    bool locked;  // a lane with records was locked by another consumer
  };

  LaneQueue(std::span<std::byte> region, std::uint32_t lanes)
      : shared_(std::launder(reinterpret_cast<Shared*>(region.data()))),
        lane_count_(lanes),
        suspects_(std::make_unique<Suspect[]>(lanes + 1)) {
    lanes_.reserve(lanes);
  }

  std::atomic<std::uint64_t>& owner(std::uint32_t i) const noexcept { return *lanes_[i].words->owner; }

  [[nodiscard]] std::uint32_t used_lanes() const noexcept {
    // relaxed: which lanes to look at. A lane's records are read after an acquire load of its
    // tail; a waiter that missed a new lane is woken by that lane's producer (WaitWord's
    // invariants order the producer's stores, `used` among them, before its notify).
    return std::clamp(shared_->used->load(std::memory_order_relaxed), 1U, lane_count_);
  }

  void note_used(std::uint32_t lane) noexcept {
    // relaxed: see used_lanes().
    std::uint32_t seen = shared_->used->load(std::memory_order_relaxed);
    while (seen <= lane && !shared_->used->compare_exchange_weak(seen, lane + 1, std::memory_order_relaxed)) {
    }
  }

  void count_streak(std::uint32_t lane) noexcept {
    // relaxed (both): process-local hints, racy on purpose.
    const std::uint32_t s = streak_.load(std::memory_order_relaxed) + 1;
    if (s < kStreak) {
      streak_.store(s, std::memory_order_relaxed);
      return;
    }
    streak_.store(0, std::memory_order_relaxed);
    // The next lane with records starts the next pops; a lane alone with records keeps them (and
    // the fixed-size path: moving to an empty lane cost a scan every kStreak pops).
    const std::uint32_t n = used_lanes();
    for (std::uint32_t k = 1, j = lane; k < n; ++k) {
      j = j + 1 < n ? j + 1 : 0;
      if (lanes_[j].ring.has_unread()) {
        sticky_.store(j, std::memory_order_relaxed);  // relaxed: as above
        return;
      }
    }
  }

  // A lock word held by one holder for longer than kHolderPatience is checked for a dead holder
  // (and taken from it). Process-local memory of what was seen where: racy hints, each a relaxed
  // atomic. Index lane_count_ is the shared lane's producer lock.
  struct Suspect {
    std::atomic<std::uint64_t> holder{0};
    std::atomic<std::int64_t> since{0};
  };

  // Takes `word` from a holder that no longer runs, once it has held it past kHolderPatience.
  // True if the word is now the caller's.
  template <class Alive>
  bool take_from_dead(std::atomic<std::uint64_t>& word, std::uint64_t seen, std::uint64_t self,
                      Suspect& suspect, Alive alive) noexcept {
    const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    // relaxed (holder, since): hints; the compare-and-swap decides.
    if (suspect.holder.load(std::memory_order_relaxed) != seen) {
      suspect.holder.store(seen, std::memory_order_relaxed);
      suspect.since.store(now, std::memory_order_relaxed);
      return false;
    }
    if (now - suspect.since.load(std::memory_order_relaxed) <
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(kHolderPatience).count()) {
      return false;
    }
    suspect.since.store(now, std::memory_order_relaxed);  // relaxed: a hint, as above
    // A holder with the caller's own identity runs (it is this process, or this thread): never
    // taken from, whatever the liveness check says (a /proc from another pid namespace).
    if (seen == self || alive(seen)) return false;
    // [sync:lanes.consumer] [sync:lanes.shared] acquire: the dead holder released nothing; the
    // caller reads the lane's index it moved with an RMW (SpscRing::take_over_*).
    return word.compare_exchange_strong(seen, self, std::memory_order_acquire, std::memory_order_relaxed);
  }

  // The shared lane's producer lock: held for one record, so a caller spins and yields for it
  // until `until` (nullopt: for kHolderPatience, so that a non-blocking put does not report a
  // queue with room as full because a live producer was copying), and takes it from a dead holder.
  bool lock_shared_producer(std::uint64_t self,
                            std::optional<std::chrono::steady_clock::time_point> until) noexcept {
    std::atomic<std::uint64_t>& word = owner(kSharedLane);
    for (int tries = 0;; ++tries) {
      std::uint64_t seen = 0;
      // [sync:lanes.shared] acquire: pairs with the previous holder's release in
      // unlock_shared_producer: its records and its view's producer state happen before ours.
      if (word.compare_exchange_weak(seen, self, std::memory_order_acquire, std::memory_order_relaxed))
        return true;
      if (seen != 0 && take_from_dead(word, seen, self, suspects_[lane_count_], &Policy::producer_alive)) {
        lanes_[kSharedLane].ring.take_over_producer();
        return true;
      }
      if (tries % 16 == 15) {
        const auto now = std::chrono::steady_clock::now();
        if (!until) until = now + kHolderPatience;
        if (now >= *until) return false;
        std::this_thread::yield();
      } else {
        cpu_relax();
      }
    }
  }
  void unlock_shared_producer() noexcept {
    // [sync:lanes.shared] release: as above.
    owner(kSharedLane).store(0, std::memory_order_release);
  }

  // One pass over the lanes in use, from the sticky lane on.
  template <class Consume>
  Scan scan(Consume& consume) {
    const std::uint64_t self = Policy::consumer_self();
    const std::uint32_t n = used_lanes();
    // relaxed: a process-local hint.
    std::uint32_t i = std::min(sticky_.load(std::memory_order_relaxed), n - 1);
    bool locked = false;
    for (std::uint32_t k = 0; k < n; ++k, i = i + 1 < n ? i + 1 : 0) {
      Lane& lane = lanes_[i];
      if (!lane.ring.has_unread()) continue;
      std::atomic<std::uint64_t>& word = *lane.words->consumer;
      std::uint64_t seen = 0;
      // [sync:lanes.consumer] acquire: as in try_pop_fixed.
      if (!word.compare_exchange_strong(seen, self, std::memory_order_acquire, std::memory_order_relaxed)) {
        if (!take_from_dead(word, seen, self, suspects_[i], &Policy::consumer_alive)) {
          locked = true;
          continue;
        }
        lane.ring.take_over_consumer();
      }
      struct Unlock {
        std::atomic<std::uint64_t>& word;
        // [sync:lanes.consumer] release: as in try_pop_fixed.
        ~Unlock() { word.store(0, std::memory_order_release); }
      } unlock{word};
      const auto p = lane.ring.try_peek();
      if (p.status == RingStatus::corrupted) {
        lane.ring.skip_to_tail();
        return {RingStatus::corrupted, false};
      }
      if (p.status != RingStatus::ok) continue;  // another consumer took it meanwhile
      // relaxed: process-local hints.
      if (sticky_.load(std::memory_order_relaxed) != i) {
        sticky_.store(i, std::memory_order_relaxed);
        streak_.store(0, std::memory_order_relaxed);
      }
      count_streak(i);
      struct Release {
        Ring& ring;
        ~Release() {
          Policy::at(LaneStep::pop_read);
          ring.release();
          Policy::at(LaneStep::pop_released);
        }
      } release{lane.ring};
      consume(p.payload);
      return {RingStatus::ok, false};
    }
    return {RingStatus::empty, locked};
  }

  Shared* shared_;
  std::vector<Lane> lanes_;
  std::uint32_t lane_count_;
  std::atomic<std::uint32_t> sticky_{0};  // the lane this process's consumers took from last
  std::atomic<std::uint32_t> streak_{0};  // pops from it since
  std::unique_ptr<Suspect[]> suspects_;
};

}  // namespace mproc::core
