// MpmcRing: a multi-producer, multi-consumer ring of variable-length records in shared memory,
// the core of mproc::Queue. It survives the death of any party at any point of its operations.
//
// Why not a textbook bounded MPMC queue (Vyukov's, rigtorp's, atomic_queue's): they claim a slot
// by bumping a shared index and publish it later. A producer that dies between the two leaves a
// slot that never becomes ready, and every consumer behind it waits forever. Here the claim is a
// compare-and-swap on the slot's own state word that writes the claimant's pid into it, so a
// waiter can always tell who holds it up and, if that process is gone, take the slot back.
//
// Layout (one region, validated copies of the geometry kept in the process-local view):
//
//   Shared           tail (next position to claim), head (next position to consume), the two
//                    WaitWords and the geometry, each on its own cache line
//   states[N]        one 64-bit state word per slot, packed
//   data[N * S]      S bytes per slot; a record of k slots owns k * S contiguous bytes, the first
//                    8 of which hold the message length
//
// A slot's state word:
//
//   bits  0-2   kind: free, writing, ready, reading, abandoned, pad
//   bits  3-14  k: slots in the record (a record never wraps; a pad record fills the ring's end)
//   bits 15-36  pid of the claimant (writing, reading); Linux pids are below 2^22
//   bits 37-63  lap: position / N, truncated to 27 bits
//
// Positions (tail, head) are 64-bit counters that only grow; slot = position % N.
//
// Protocol, for a record at position p in lap L (slot i = p % N):
//   produce: every slot i..i+k-1 reads free(L)   (the previous lap's records there are consumed)
//            CAS states[i] free(L) -> writing(L, k, pid)        claims the record
//            CAS tail p -> p + k                              anyone who sees the claim helps
//            write the length and payload
//            store states[i] = ready(L, k)                    publishes it
//   consume: CAS states[i] ready(L, k) -> reading(L, k, pid)  claims it
//            CAS head p -> p + k                              anyone who sees the claim helps
//            read the payload
//            store free(L + 1) into slots i+k-1 .. i          gives them to the next lap
//
// Failures: a waiter held up for a liveness slice scans the ring for records whose claimant is
// dead. A dead writer's record becomes `abandoned` (consumers skip it: its message, and only
// its, is lost); a dead reader's record is freed (its message, which it had taken, is lost).
// Helping moves tail and head past records whose claimant died before moving them. No state is
// ever torn: a message is delivered only from a `ready` record, and `ready` is stored after the
// whole payload.
//
// Hostile peers: every value read from shared memory (k, the length, the geometry) is checked
// before use; a word that cannot be valid gives RingStatus::corrupted, never an out-of-bounds
// access.
//
// Limits (documented in docs/queues.md): a record has at most 4095 slots; the lap is 27 bits, so a
// process stopped between reading a state and its CAS for exactly a multiple of 2^27 laps could
// claim a stale slot (the ABA problem, accepted like WaitWord's 2^32 epochs); a dead claimant is
// found by pid, so a pid reused before the scan delays recovery until the new process exits.
#pragma once

#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

#include "mproc/core/layout.hpp"
#include "mproc/core/wait_word.hpp"
#include "mproc/detail/futex.hpp"
#include "mproc/detail/liveness.hpp"

namespace mproc::core {

/// What a ring operation ended with (the low-level API returns it; Queue turns it into exceptions).
enum class RingStatus {
  ok,
  empty,      ///< nothing to consume (try) or nothing before the deadline (blocking)
  full,       ///< no room (try) or no room before the deadline (blocking)
  too_large,  ///< the message can never fit; nothing was written
  corrupted,  ///< the shared state holds a value no correct party writes
};

/// Where a party can stop inside a ring operation: the kill tests make a process die at each
/// of them (ProcessTag::at does nothing).
enum class RingStep {
  write_claimed,     ///< a producer owns its record, tail not yet moved past it
  write_tail_moved,  ///< tail moved, nothing written
  write_filled,      ///< the length and payload written, not yet published
  read_claimed,      ///< a consumer owns a record, head not yet moved past it
  read_done,         ///< the payload read, the slots not yet given back
  read_half_freed,   ///< some of the record's slots given back
};

/// The claimant tag written into a state word: the pid (22 bits), and whether it still runs.
struct ProcessTag {
  static std::uint32_t self() noexcept {
    return static_cast<std::uint32_t>(detail::cached_process_identity()) & ((1U << 22) - 1);
  }
  /// Pid only (no start-time stamp): a zombie or a missing pid is dead.
  static bool alive(std::uint32_t tag) noexcept { return detail::process_alive(tag); }
  /// A crash-point hook for tests; nothing in production.
  static void at(RingStep /*step*/) noexcept {}
};

template <detail::FutexPolicy Futex = detail::SharedFutex, class Tag = ProcessTag>
class MpmcRing {
 public:
  static constexpr std::uint32_t kMaxRecordSlots = (1U << 12) - 1;
  static constexpr std::uint32_t kMinSlotSize = 16;
  static constexpr std::uint32_t kMaxSlotCount = 1U << 24;
  static constexpr std::size_t kLengthBytes = sizeof(std::uint64_t);
  /// How long a waiter waits before it looks for dead claimants.
  static constexpr std::chrono::milliseconds kLivenessSlice{10};

  /// The shared part of the ring, at the start of its region.
  struct Shared {
    CachePadded<std::atomic<std::uint64_t>> tail{};  // next position to claim
    CachePadded<std::atomic<std::uint64_t>> head{};  // next position to consume
    CachePadded<WaitWord<Futex>> not_empty{};        // consumers park here
    CachePadded<WaitWord<Futex>> not_full{};         // producers park here
    struct Geometry {
      std::uint32_t slot_count;  // N, a power of two
      std::uint32_t slot_size;   // S, a power of two, at least kMinSlotSize
      std::uint32_t limit;       // at most this many slots in flight (Queue's maxsize), <= N
      std::uint32_t reserved;
    };
    CachePadded<Geometry> geometry{};
  };
  static_assert(std::is_standard_layout_v<Shared> && std::is_trivially_destructible_v<Shared>,
                "the ring's header lives in shared memory");

  /// Bytes a ring of this geometry needs (header, states, data).
  static constexpr std::size_t region_size(std::uint32_t slot_count, std::uint32_t slot_size) noexcept {
    return states_offset() + std::size_t{slot_count} * sizeof(std::uint64_t) +
           std::size_t{slot_count} * slot_size;
  }

  /// True when the geometry is one create() accepts.
  static constexpr bool valid_geometry(std::uint32_t slot_count, std::uint32_t slot_size,
                                       std::uint32_t limit) noexcept {
    return std::has_single_bit(slot_count) && slot_count <= kMaxSlotCount && std::has_single_bit(slot_size) &&
           slot_size >= kMinSlotSize && slot_size <= (1U << 20) && limit >= 1 && limit <= slot_count;
  }

  MpmcRing() noexcept = default;

  /// Initialises a ring in a zero-filled region of at least region_size() bytes and returns a view
  /// of it; nullopt when the geometry is invalid or the region too small.
  static std::optional<MpmcRing> create(std::span<std::byte> region, std::uint32_t slot_count,
                                        std::uint32_t slot_size, std::uint32_t limit) noexcept {
    if (!valid_geometry(slot_count, slot_size, limit) || region.size() < region_size(slot_count, slot_size)) {
      return std::nullopt;
    }
    auto* shared = new (region.data()) Shared{};
    shared->geometry->slot_count = slot_count;
    shared->geometry->slot_size = slot_size;
    shared->geometry->limit = limit;
    // The states are zero: free for lap 0. The region came zero-filled.
    return MpmcRing(region, *shared->geometry);
  }

  /// A view of a ring another party created in this region; nullopt when its geometry is invalid
  /// or does not fit the region (a hostile or corrupted header). The geometry is copied once
  /// here and never read from shared memory again.
  static std::optional<MpmcRing> attach(std::span<std::byte> region) noexcept {
    if (region.size() < states_offset()) return std::nullopt;
    typename Shared::Geometry g{};
    std::memcpy(&g, region.data() + offsetof(Shared, geometry), sizeof g);
    if (!valid_geometry(g.slot_count, g.slot_size, g.limit) ||
        region.size() < region_size(g.slot_count, g.slot_size)) {
      return std::nullopt;
    }
    return MpmcRing(region, g);
  }

  [[nodiscard]] std::uint32_t slot_count() const noexcept { return slot_count_; }
  [[nodiscard]] std::uint32_t slot_size() const noexcept { return slot_size_; }
  /// The largest payload one record carries.
  [[nodiscard]] std::size_t max_message() const noexcept {
    return std::size_t{max_record_slots()} * slot_size_ - kLengthBytes;
  }

  /// Slots a payload of `size` bytes needs (0 when it can never fit).
  [[nodiscard]] std::uint32_t slots_for(std::size_t size) const noexcept {
    if (size > max_message()) return 0;
    return static_cast<std::uint32_t>((size + kLengthBytes + slot_size_ - 1) >> slot_shift_);
  }

  /// Appends one message of `size` bytes; fill(std::span<std::byte>) writes it in place. Never
  /// blocks. fill must not throw (encode first if it can). @concurrent any
  template <class Fill>
  RingStatus try_push(std::size_t size, Fill&& fill) noexcept {
    const std::uint32_t k = slots_for(size);
    if (k == 0) return RingStatus::too_large;
    for (;;) {
      const Claim c = claim_for_write(k);
      if (c.status != RingStatus::ok) return c.status;
      std::byte* record = data_ + (std::size_t{c.slot} << slot_shift_);
      const auto length = static_cast<std::uint64_t>(size);
      std::memcpy(record, &length, sizeof length);
      fill(std::span<std::byte>(record + kLengthBytes, size));
      Tag::at(RingStep::write_filled);
      // [sync:ring.publish] release: the length and payload above are visible to the consumer
      // whose acquire CAS (or load) of this state sees `ready`.
      states_[c.slot].store(word(Kind::ready, k, 0, c.lap), std::memory_order_release);
      shared_->not_empty->notify_one();
      return RingStatus::ok;
    }
  }

  /// Takes the oldest message; consume(std::span<const std::byte>) reads it in place before its
  /// slots are given back (also when consume throws). Never blocks. @concurrent any
  template <class Consume>
  RingStatus try_pop(Consume&& consume) {
    for (;;) {
      const Claim c = claim_for_read();
      if (c.status != RingStatus::ok) return c.status;
      const ReleaseGuard release{*this, c};
      if (c.kind != Kind::ready) continue;  // a pad or an abandoned record: skipped, freed
      const std::byte* record = data_ + (std::size_t{c.slot} << slot_shift_);
      std::uint64_t length = 0;
      std::memcpy(&length, record, sizeof length);
      if (length > std::size_t{c.k} * slot_size_ - kLengthBytes) return RingStatus::corrupted;
      consume(std::span<const std::byte>(record + kLengthBytes, static_cast<std::size_t>(length)));
      Tag::at(RingStep::read_done);
      return RingStatus::ok;
    }
  }

  /// try_push, waiting for room until the deadline (nullopt: forever). Between slices it takes
  /// back records of dead parties. @concurrent any
  template <class Fill>
  RingStatus push(std::size_t size, Fill&& fill,
                  std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    const std::uint32_t k = slots_for(size);
    if (k == 0) return RingStatus::too_large;
    for (;;) {
      const RingStatus s = try_push(size, fill);
      if (s != RingStatus::full) return s;
      if (!wait_slice(
              *shared_->not_full, [&] { return writable(k); }, deadline))
        return RingStatus::full;
    }
  }

  /// try_pop, waiting for a message until the deadline (nullopt: forever); `stop()` is polled
  /// between waits (Queue's close()). @concurrent any
  template <class Consume, class Stop>
  RingStatus pop(Consume&& consume, std::optional<std::chrono::steady_clock::time_point> deadline,
                 Stop&& stop) {
    for (;;) {
      const RingStatus s = try_pop(consume);
      if (s != RingStatus::empty) return s;
      if (stop()) return RingStatus::empty;
      if (!wait_slice(
              *shared_->not_empty, [&] { return readable() || stop(); }, deadline)) {
        return RingStatus::empty;
      }
    }
  }

  /// Wakes every waiter of this ring (in every process) so that each re-checks its own stop().
  void wake_all() noexcept {
    shared_->not_empty->notify_all();
    shared_->not_full->notify_all();
  }

  /// A racy peek: is there a record at the head that a consumer could take now?
  [[nodiscard]] bool readable() const noexcept {
    // relaxed (all three peeks): a hint for a waiter's ready(); the try_pop / try_push that
    // follows makes the ordered accesses, and approximate_size() is stale when it returns anyway.
    const std::uint64_t h = shared_->head->load(std::memory_order_relaxed);
    const std::uint64_t s = states_[index(h)].load(std::memory_order_relaxed);
    if (lap_of_word(s) != lap_of(h)) return false;
    const Kind kind = kind_of(s);
    return kind == Kind::ready || kind == Kind::pad || kind == Kind::abandoned || kind == Kind::reading;
  }

  /// A racy peek: could a producer claim k slots now?
  [[nodiscard]] bool writable(std::uint32_t k) const noexcept {
    // relaxed: a peek, as in readable().
    const std::uint64_t t = shared_->tail->load(std::memory_order_relaxed);
    const std::uint64_t h = shared_->head->load(std::memory_order_relaxed);
    const std::uint32_t i = index(t);
    const std::uint32_t need = i + k > slot_count_ ? slot_count_ - i : k;
    if (t + need - h > limit_) return false;
    // relaxed: a peek, as in readable().
    const std::uint64_t s = states_[i].load(std::memory_order_relaxed);
    return s == word(Kind::free, 0, 0, lap_of(t)) || lap_of_word(s) == lap_of(t);
  }

  /// The positions of the next record to consume and of the next to claim: racy snapshots. Every
  /// record claimed before a tail_position() call lies below it, so once head_position() has
  /// reached it, each of those records was consumed or skipped. @concurrent any
  [[nodiscard]] std::uint64_t head_position() const noexcept {
    // [sync:ring.help] acquire: pairs with the release CAS that moved head past a record.
    return shared_->head->load(std::memory_order_acquire);
  }
  [[nodiscard]] std::uint64_t tail_position() const noexcept {
    // [sync:ring.help] acquire: pairs with the release CAS that moved tail past a claim.
    return shared_->tail->load(std::memory_order_acquire);
  }

  /// Messages in the ring (records between head and tail that are written or being written): a
  /// racy snapshot, like CPython's qsize(). @concurrent any
  [[nodiscard]] std::size_t approximate_size() const noexcept {
    // relaxed: a peek, as in readable().
    std::uint64_t pos = shared_->head->load(std::memory_order_relaxed);
    const std::uint64_t end = shared_->tail->load(std::memory_order_relaxed);
    std::size_t count = 0;
    for (std::uint32_t steps = 0; pos < end && steps < slot_count_; ++steps) {
      // relaxed: a peek, as in readable().
      const std::uint64_t s = states_[index(pos)].load(std::memory_order_relaxed);
      const std::uint32_t k = k_of(s);
      if (lap_of_word(s) != lap_of(pos) || k == 0) break;
      if (kind_of(s) == Kind::ready || kind_of(s) == Kind::writing) ++count;
      pos += k;
    }
    return count;
  }

  /// Scans every slot for records whose claimant is dead and takes them back: a dead writer's
  /// record is abandoned (skipped by consumers), a dead reader's freed. Returns how many it
  /// recovered. Waiters call it after each liveness slice; tests call it directly. @concurrent any
  std::size_t recover() noexcept {
    return recover_if([](std::uint32_t tag) noexcept { return !Tag::alive(tag); },
                      [](std::span<const std::byte>) noexcept {});
  }

  /// recover() for the claims whose tag `dead(tag)` says is dead, and each record such a reader
  /// held is first shown to lost(payload): the Pool keeps a task claimed while it runs, and asks
  /// for the claims of the one worker it saw exit (by its pid, so that a reaped zombie or a
  /// reused pid changes nothing), which are the tasks that worker was running. The payload's
  /// length is checked as try_pop checks it; a corrupt length shows an empty payload. Neither
  /// callback may throw. @concurrent any
  template <class Dead, class Lost>
  std::size_t recover_if(Dead&& dead, Lost&& lost) noexcept {
    std::size_t recovered = 0;
    for (std::uint32_t i = 0; i < slot_count_; ++i) {
      // relaxed: a snapshot to choose a CAS; the CAS below re-reads it atomically.
      std::uint64_t s = states_[i].load(std::memory_order_relaxed);
      const Kind kind = kind_of(s);
      if (kind != Kind::writing && kind != Kind::reading) continue;
      const std::uint32_t k = k_of(s);
      if (k == 0 || i + k > slot_count_ || !dead(pid_of(s))) continue;
      if (kind == Kind::writing) {
        // [sync:ring.claim] acq_rel: orders against the dead writer's claim; consumers that see
        // `abandoned` skip the record without reading its payload.
        if (states_[i].compare_exchange_strong(s, word(Kind::abandoned, k, 0, lap_of_word(s)),
                                               std::memory_order_acq_rel, std::memory_order_relaxed)) {
          help_advance(*shared_->tail, i, s, k);
          shared_->not_empty->notify_all();
          ++recovered;
        }
      } else {
        // Take the dead reader's claim over so that exactly one recoverer frees the record.
        const std::uint64_t mine = word(Kind::reading, k, Tag::self(), lap_of_word(s));
        // [sync:ring.claim] acq_rel: as above; the record is ours to free.
        if (states_[i].compare_exchange_strong(s, mine, std::memory_order_acq_rel,
                                               std::memory_order_relaxed)) {
          help_advance(*shared_->head, i, s, k);
          const std::byte* record = data_ + (std::size_t{i} << slot_shift_);
          std::uint64_t length = 0;
          std::memcpy(&length, record, sizeof length);
          if (length > std::size_t{k} * slot_size_ - kLengthBytes) length = 0;
          lost(std::span<const std::byte>(record + kLengthBytes, static_cast<std::size_t>(length)));
          release_slots(i, k, lap_of_word(s));
          ++recovered;
        }
      }
    }
    return recovered;
  }

 private:
  enum class Kind : std::uint32_t { free = 0, writing = 1, ready = 2, reading = 3, abandoned = 4, pad = 5 };

  static constexpr int kKindBits = 3;
  static constexpr int kKBits = 12;
  static constexpr int kPidBits = 22;
  static constexpr int kLapShift = kKindBits + kKBits + kPidBits;  // 37
  static constexpr std::uint64_t kLapMask = (std::uint64_t{1} << (64 - kLapShift)) - 1;

  struct Claim {
    RingStatus status;
    std::uint32_t slot = 0;
    std::uint32_t k = 0;
    std::uint64_t lap = 0;
    Kind kind = Kind::free;
  };

  // Gives a consumed record's slots to the next lap when try_pop leaves, even by an exception.
  struct ReleaseGuard {
    MpmcRing& ring;
    const Claim& claim;
    ~ReleaseGuard() {
      ring.release_slots(claim.slot, claim.k, claim.lap);
      ring.shared_->not_full->notify_one();
    }
  };

  MpmcRing(std::span<std::byte> region, const typename Shared::Geometry& g) noexcept
      : shared_(std::launder(reinterpret_cast<Shared*>(region.data()))),
        states_(std::launder(reinterpret_cast<std::atomic<std::uint64_t>*>(region.data() + states_offset()))),
        data_(region.data() + states_offset() + std::size_t{g.slot_count} * sizeof(std::uint64_t)),
        slot_count_(g.slot_count),
        slot_size_(g.slot_size),
        limit_(g.limit),
        slot_shift_(static_cast<std::uint32_t>(std::countr_zero(g.slot_size))),
        lap_shift_(static_cast<std::uint32_t>(std::countr_zero(g.slot_count))) {}

  static constexpr std::size_t states_offset() noexcept {
    return (sizeof(Shared) + kCacheLine - 1) / kCacheLine * kCacheLine;
  }

  [[nodiscard]] std::uint32_t max_record_slots() const noexcept {
    return limit_ < kMaxRecordSlots ? limit_ : kMaxRecordSlots;
  }
  [[nodiscard]] std::uint32_t index(std::uint64_t pos) const noexcept {
    return static_cast<std::uint32_t>(pos & (slot_count_ - 1));
  }
  [[nodiscard]] std::uint64_t lap_of(std::uint64_t pos) const noexcept {
    return (pos >> lap_shift_) & kLapMask;
  }

  static constexpr std::uint64_t word(Kind kind, std::uint32_t k, std::uint32_t pid,
                                      std::uint64_t lap) noexcept {
    return static_cast<std::uint64_t>(kind) | (std::uint64_t{k} << kKindBits) |
           (std::uint64_t{pid} << (kKindBits + kKBits)) | ((lap & kLapMask) << kLapShift);
  }
  static constexpr Kind kind_of(std::uint64_t s) noexcept {
    return static_cast<Kind>(s & ((1U << kKindBits) - 1));
  }
  static constexpr std::uint32_t k_of(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>((s >> kKindBits) & ((1U << kKBits) - 1));
  }
  static constexpr std::uint32_t pid_of(std::uint64_t s) noexcept {
    return static_cast<std::uint32_t>((s >> (kKindBits + kKBits)) & ((1U << kPidBits) - 1));
  }
  static constexpr std::uint64_t lap_of_word(std::uint64_t s) noexcept { return s >> kLapShift; }

  // Moves a position counter past the record at slot i (described by state s) if it still points
  // at it: the claimant may have died, or be slow, between its claim and its own move.
  void help_advance(std::atomic<std::uint64_t>& counter, std::uint32_t i, std::uint64_t s,
                    std::uint32_t k) noexcept {
    // relaxed: a hint; the CAS below decides.
    std::uint64_t pos = counter.load(std::memory_order_relaxed);
    if (index(pos) != i || lap_of(pos) != lap_of_word(s)) return;
    // [sync:ring.help] release: a position moves only past a claimed record; pairs with the
    // acquire loads of tail and head that pick the next record.
    counter.compare_exchange_strong(pos, pos + k, std::memory_order_release, std::memory_order_relaxed);
  }

  // Claims the k slots at the tail (after a pad record, if they would wrap).
  Claim claim_for_write(std::uint32_t k) noexcept {
    for (;;) {
      // [sync:ring.help] acquire: pairs with the release CAS that moved tail past a claimed record.
      const std::uint64_t t = shared_->tail->load(std::memory_order_acquire);
      const std::uint32_t i = index(t);
      const std::uint64_t lap = lap_of(t);
      // [sync:ring.release_slot] acquire: pairs with the release stores that freed the slot, so
      // the previous lap's reader is done with the bytes this producer will overwrite.
      std::uint64_t s = states_[i].load(std::memory_order_acquire);
      const std::uint64_t free_word = word(Kind::free, 0, 0, lap);
      if (s != free_word) {
        if (lap_of_word(s) == lap && kind_of(s) != Kind::free) {
          // Another producer claimed this position and has not moved tail yet: help it.
          const std::uint32_t claimed = k_of(s);
          if (claimed == 0 || i + claimed > slot_count_) return {RingStatus::corrupted};
          help_advance(*shared_->tail, i, s, claimed);
          continue;
        }
        if (shared_->tail->load(std::memory_order_relaxed) != t) continue;  // relaxed: a re-check hint
        return {RingStatus::full};  // the previous lap's record here is not consumed yet
      }
      const bool wraps = i + k > slot_count_;
      const std::uint32_t need = wraps ? slot_count_ - i : k;
      const std::uint64_t h = head_hint(t + need);
      if (h > t) {
        // t is stale (head moved past it meanwhile) or the counters are corrupted: head never
        // passes tail in a correct ring.
        // [sync:ring.help] acquire: as above.
        if (h > shared_->tail->load(std::memory_order_acquire)) return {RingStatus::corrupted};
        continue;
      }
      if (t + need - h > limit_) return {RingStatus::full};
      for (std::uint32_t j = i + 1; j < i + need; ++j) {
        // [sync:ring.release_slot] acquire: as above, for every slot of the record.
        if (states_[j].load(std::memory_order_acquire) != free_word) return {RingStatus::full};
      }
      const Kind kind = wraps ? Kind::pad : Kind::writing;
      // [sync:ring.claim] acquire on success: the slot's previous reader finished (its release
      // store freed it); relaxed on failure: the loop re-reads.
      const std::uint64_t claimed = word(kind, need, Tag::self(), lap);
      if (!states_[i].compare_exchange_strong(s, claimed, std::memory_order_acquire,
                                              std::memory_order_relaxed)) {
        continue;
      }
      if (!wraps) Tag::at(RingStep::write_claimed);
      help_advance(*shared_->tail, i, claimed, need);
      if (wraps) {
        shared_->not_empty->notify_one();  // a consumer may be waiting at the pad
        continue;
      }
      Tag::at(RingStep::write_tail_moved);
      return {RingStatus::ok, i, k, lap, kind};
    }
  }

  // Claims the record at the head: a ready message, or a pad or abandoned record to skip.
  Claim claim_for_read() noexcept {
    for (;;) {
      // [sync:ring.help] acquire: pairs with the release CAS that moved head past a claimed record.
      const std::uint64_t h = shared_->head->load(std::memory_order_acquire);
      const std::uint32_t i = index(h);
      const std::uint64_t lap = lap_of(h);
      // [sync:ring.publish] acquire: pairs with the producer's release store of `ready`.
      std::uint64_t s = states_[i].load(std::memory_order_acquire);
      if (lap_of_word(s) != lap || kind_of(s) == Kind::free) {
        if (shared_->head->load(std::memory_order_relaxed) != h) continue;  // relaxed: a re-check hint
        return {RingStatus::empty};
      }
      const Kind kind = kind_of(s);
      const std::uint32_t k = k_of(s);
      if (k == 0 || i + k > slot_count_) return {RingStatus::corrupted};
      if (kind == Kind::writing) return {RingStatus::empty};  // being written: wait for it
      if (kind == Kind::reading) {
        help_advance(*shared_->head, i, s, k);
        continue;
      }
      if (kind != Kind::ready && kind != Kind::pad && kind != Kind::abandoned) return {RingStatus::corrupted};
      // No need to help tail here: a producer moves tail past its record before it stores
      // `ready`, and recover() moves it past a record it abandons.
      // [sync:ring.publish] acquire on success: the payload stored before `ready` is visible.
      const std::uint64_t claimed = word(Kind::reading, k, Tag::self(), lap);
      if (!states_[i].compare_exchange_strong(s, claimed, std::memory_order_acquire,
                                              std::memory_order_relaxed)) {
        continue;
      }
      if (kind == Kind::ready) Tag::at(RingStep::read_claimed);
      help_advance(*shared_->head, i, claimed, k);
      return {RingStatus::ok, i, k, lap, kind};
    }
  }

  // The head as a producer needs it: a cached copy, refreshed only when it would say "full".
  std::uint64_t head_hint(std::uint64_t wanted_end) noexcept {
    // relaxed: a process-local cache of a monotonic counter; a stale value only errs towards full,
    // and the refresh below reads the real head.
    std::uint64_t h = cached_head_.load(std::memory_order_relaxed);
    if (wanted_end - h > limit_) {
      // [sync:ring.help] acquire: pairs with the release CAS that moved head.
      h = shared_->head->load(std::memory_order_acquire);
      cached_head_.store(h, std::memory_order_relaxed);  // relaxed: as above
    }
    return h;
  }

  void release_slots(std::uint32_t i, std::uint32_t k, std::uint64_t lap) noexcept {
    const std::uint64_t next = word(Kind::free, 0, 0, lap + 1);
    // Interior slots first, the first slot last: a producer checks the first slot before the rest.
    for (std::uint32_t j = i + k; j-- > i;) {
      // [sync:ring.release_slot] release: this reader's reads of the payload happen before the
      // next lap's producer (which loads the state with acquire) overwrites it.
      states_[j].store(next, std::memory_order_release);
      if (j == i + k / 2 && k > 1) Tag::at(RingStep::read_half_freed);
    }
  }

  // One bounded wait for ready(), then a look for dead parties. False when the deadline passed.
  template <class Ready>
  bool wait_slice(WaitWord<Futex>& waiter, Ready ready,
                  std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
    const std::optional<bool> woke = waiter.wait_slice(ready, deadline, kLivenessSlice);
    if (!woke) return false;
    if (!*woke) recover();
    return true;
  }

  Shared* shared_ = nullptr;
  std::atomic<std::uint64_t>* states_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint32_t slot_count_ = 0;
  std::uint32_t slot_size_ = 0;
  std::uint32_t limit_ = 0;
  std::uint32_t slot_shift_ = 0;
  std::uint32_t lap_shift_ = 0;
  std::atomic<std::uint64_t> cached_head_{0};

 public:
  MpmcRing(const MpmcRing& other) noexcept
      : shared_(other.shared_),
        states_(other.states_),
        data_(other.data_),
        slot_count_(other.slot_count_),
        slot_size_(other.slot_size_),
        limit_(other.limit_),
        slot_shift_(other.slot_shift_),
        lap_shift_(other.lap_shift_) {}
  MpmcRing& operator=(const MpmcRing& other) noexcept {
    shared_ = other.shared_;
    states_ = other.states_;
    data_ = other.data_;
    slot_count_ = other.slot_count_;
    slot_size_ = other.slot_size_;
    limit_ = other.limit_;
    slot_shift_ = other.slot_shift_;
    lap_shift_ = other.lap_shift_;
    cached_head_.store(0, std::memory_order_relaxed);  // relaxed: a process-local hint
    return *this;
  }
  ~MpmcRing() = default;
};

}  // namespace mproc::core
