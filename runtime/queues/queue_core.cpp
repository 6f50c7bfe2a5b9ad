// detail::QueueCore (include/mproc/queues.hpp): a queue's memory, its ring and this process's
// state, and Queue's errors.
//
// Memory: a QueueHeader on the first cache line (which ring, and for the single-producer ring
// who holds the producer and consumer roles), the ring region after it. The header's geometry is
// copied and validated once per attach; the role words are atomics that any party may rewrite,
// and a rewritten role only makes a put or get fail with ValueError.
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "mproc/core/spsc_ring.hpp"
#include "mproc/queues.hpp"
#include "queues/named.hpp"

namespace mproc::detail {

namespace {

using Mpmc = core::MpmcRing<>;
using Spsc = core::SpscRing<>;
using Lanes = core::LaneQueue<>;

enum : std::uint32_t { kMpmcKind = 0, kSpscKind = 1, kLanesKind = 2 };

struct QueueHeader {
  std::uint32_t kind;
  std::uint32_t reserved;
  std::atomic<std::uint32_t> producer;  // spsc: the producer's role word (0: nobody)
  std::atomic<std::uint32_t> consumer;  // spsc: the consumer's role word
};
MPROC_SHM_LAYOUT(QueueHeader);

constexpr std::size_t kRingOffset = kCacheLine;

// Polls of a full or empty single-producer ring before the full wait (as Connection's).
constexpr int kQuickPolls = 64;

// A role word: the holder's pid (22 bits) and a number telling apart the handles of one process
// that were attached separately (each has its own view of the ring, so only one may use a role).
constexpr std::uint32_t kPidBits = 22;
std::atomic<std::uint32_t> g_next_instance{1};
std::atomic<std::uint64_t> g_next_serial{0};

// What the block or segment of a queue of this message type is tagged with: the message type and
// the layouts of the header and both rings, so that another build's queue is refused.
std::uint64_t layout_hash(std::uint64_t type_hash) {
  std::uint64_t h = fnv1a(type_hash, abi_hash<QueueHeader>());
  h = fnv1a(h, abi_hash<Mpmc::Shared>());
  h = fnv1a(h, abi_hash<Lanes::Shared>());
  h = fnv1a(h, abi_hash<Lanes::LaneWords>());
  return fnv1a(h, abi_hash<Spsc::Shared>());
}

struct Geometry {
  std::uint32_t kind;
  std::uint32_t slots;      // mpmc
  std::uint32_t slot_size;  // mpmc
  std::uint32_t limit;      // mpmc
  std::uint32_t capacity;   // spsc, and each lane's
  std::uint32_t lanes;      // lanes
  [[nodiscard]] std::size_t ring_bytes() const {
    switch (kind) {
      case kSpscKind:
        return Spsc::region_size(capacity);
      case kLanesKind:
        return Lanes::region_size(lanes, capacity);
      default:
        return Mpmc::region_size(slots, slot_size);
    }
  }
};

// A lane holds twice the default queue's slots, so that its largest message (half a lane) is
// as large as the multi-producer ring's; at most 256 MiB (virtual: pages are used as written).
constexpr std::uint64_t kMaxLaneBytes = std::uint64_t{1} << 28;

Geometry geometry_for(const QueueOptions& o) {
  if (o.maxsize > Mpmc::kMaxSlotCount) throw ValueError("Queue maxsize is too large");
  const std::uint32_t records =
      o.maxsize == 0 ? QueueOptions::kDefaultSlots : static_cast<std::uint32_t>(o.maxsize);
  if (!std::has_single_bit(o.slot_size) || o.slot_size < 16 || o.slot_size > (1U << 20)) {
    throw ValueError("Queue slot_size must be a power of two between 16 and 1 MiB");
  }
  if (o.lanes != 0) {
    if (o.lanes > Lanes::kMaxLanes) throw ValueError("Queue lanes must be between 1 and 256 (0: no lanes)");
    if (o.maxsize != 0 || o.spsc) throw ValueError("Queue lanes cannot be combined with maxsize or spsc");
    const std::uint64_t bytes =
        std::min(std::uint64_t{2} * QueueOptions::kDefaultSlots * o.slot_size, kMaxLaneBytes);
    return {kLanesKind, 0, 0, 0, static_cast<std::uint32_t>(bytes), o.lanes};
  }
  if (o.spsc) {
    const std::uint64_t bytes = std::uint64_t{std::bit_ceil(records)} * o.slot_size;
    if (bytes > Spsc::kMaxCapacity) throw ValueError("Queue maxsize * slot_size is over 1 GiB");
    const auto capacity = std::max<std::uint32_t>(Spsc::kMinCapacity, static_cast<std::uint32_t>(bytes));
    return {kSpscKind, 0, 0, 0, capacity, 0};
  }
  const std::uint32_t slots = std::bit_ceil(records);
  if (!Mpmc::valid_geometry(slots, o.slot_size, records)) throw ValueError("invalid Queue geometry");
  return {kMpmcKind, slots, o.slot_size, records, 0, 0};
}

}  // namespace

struct QueueState {
  SharedBlock block;                   // an anonymous queue's memory, or
  std::shared_ptr<NamedRegion> named;  // a named queue's
  QueueHeader* header = nullptr;
  std::uint32_t kind = kMpmcKind;
  std::optional<Mpmc> mpmc;
  std::optional<Spsc> spsc;
  std::unique_ptr<Lanes> lanes;
  // This state's number among the queues this process attached: the key of the calling thread's
  // LaneSeat (an address could be reused by the next queue).
  std::uint64_t serial = g_next_serial.fetch_add(1, std::memory_order_relaxed) + 1;  // relaxed: a counter
  std::atomic<bool> closed{false};
  // spsc only. The ring has one producer and one consumer: a role is held by one process (the
  // role word in the header) and, in it, by one thread (the first to use it), so that the hot
  // path takes no lock: a locked instruction per message would wait for the previous message's
  // stores to reach the other core.
  std::uint32_t instance = 0;
  std::atomic<std::uint32_t> producer_word{0};  // the role word this state holds, 0: none
  std::atomic<std::uint32_t> consumer_word{0};
  SpscSeat producer_seat;  // the thread of this process that holds it
  SpscSeat consumer_seat;
  std::mutex claim_mutex;  // the slow path: claiming a role

  [[nodiscard]] std::uint32_t self_word() const noexcept {
    return core::ProcessTag::self() | (instance << kPidBits);
  }

  // Makes the calling thread the holder of the role, or throws ValueError.
  // The seat says which thread of which process holds the role here; a forked child's copy names
  // its parent, so the child claims the role for itself.
  void enter(std::atomic<std::uint32_t>& role, std::atomic<std::uint32_t>& held, SpscSeat& seat,
             const char* what) {
    if (seat.mine()) return;
    const std::uint32_t tid = cached_thread_id();
    const std::uint64_t process = cached_process_identity();
    const std::lock_guard guard(claim_mutex);
    // relaxed (all three): under claim_mutex.
    const std::uint32_t owner = seat.thread.load(std::memory_order_relaxed);
    if (owner != 0 && owner != tid && seat.process.load(std::memory_order_relaxed) == process &&
        held.load(std::memory_order_relaxed) == self_word()) {
      throw ValueError(std::string("this Queue has one ") + what +
                       " thread (QueueOptions::spsc), and thread " + std::to_string(owner) +
                       " of this process is it");
    }
    claim(role, held, what);
    // relaxed (both): under claim_mutex; read back by this thread's fast path (SpscSeat::mine).
    seat.thread.store(tid, std::memory_order_relaxed);
    seat.process.store(process, std::memory_order_relaxed);
  }

  // Takes the role for this handle in the header: free, already ours, or held by a dead process.
  void claim(std::atomic<std::uint32_t>& role, std::atomic<std::uint32_t>& held, const char* what) {
    const std::uint32_t mine = self_word();
    if (held.load(std::memory_order_relaxed) == mine) return;  // relaxed: under claim_mutex
    // relaxed: the word only names the holder; the ring's indices order the data.
    std::uint32_t seen = role.load(std::memory_order_relaxed);
    for (;;) {
      if (seen != 0 && seen != mine && core::ProcessTag::alive(seen & ((1U << kPidBits) - 1))) {
        throw ValueError(std::string("this Queue has one ") + what + " (QueueOptions::spsc), and process " +
                         std::to_string(seen & ((1U << kPidBits) - 1)) + " is it" +
                         ((seen & ((1U << kPidBits) - 1)) == core::ProcessTag::self()
                              ? " through another handle: use copies of one handle in a process"
                              : ""));
      }
      // relaxed: as above.
      if (role.compare_exchange_weak(seen, mine, std::memory_order_relaxed)) break;
    }
    held.store(mine, std::memory_order_relaxed);  // relaxed: under claim_mutex
    // Take over where the ring is, whoever used the role before: this role's half only, since
    // another thread of this process may be using the other role's half of the same view.
    if (&role == &header->producer) {
      spsc->resync_producer();
    } else {
      spsc->resync_consumer();
    }
  }

  void attach(std::span<std::byte> payload) {
    if (payload.size() < kRingOffset) throw DecodeError("a Queue's memory is too small for its header");
    header = reinterpret_cast<QueueHeader*>(payload.data());
    std::uint32_t k = 0;
    std::memcpy(&k, payload.data(), sizeof k);  // a private copy of the kind, checked once
    kind = k;
    const auto ring = payload.subspan(kRingOffset);
    if (kind == kMpmcKind) {
      mpmc = Mpmc::attach(ring);
      if (!mpmc) throw DecodeError("a Queue's ring header is invalid");
    } else if (kind == kSpscKind) {
      spsc = Spsc::attach(ring);
      if (!spsc) throw DecodeError("a Queue's ring header is invalid");
    } else if (kind == kLanesKind) {
      lanes = Lanes::attach(ring);
      if (!lanes) throw DecodeError("a Queue's lanes header is invalid");
    } else {
      throw DecodeError("a Queue's header names an unknown ring");
    }
    instance = g_next_instance.fetch_add(1, std::memory_order_relaxed) % 1023 + 1;  // relaxed: a counter
  }

  void initialise(std::span<std::byte> payload, const Geometry& g) {
    auto* h = new (payload.data()) QueueHeader{g.kind, 0, {}, {}};
    (void)h;
    const auto ring = payload.subspan(kRingOffset);
    const bool ok = g.kind == kSpscKind    ? Spsc::create(ring, g.capacity).has_value()
                    : g.kind == kLanesKind ? Lanes::create(ring, g.lanes, g.capacity) != nullptr
                                           : Mpmc::create(ring, g.slots, g.slot_size, g.limit).has_value();
    if (!ok) throw ValueError("invalid Queue geometry");
    attach(payload);
  }

  void check_open() const {
    // relaxed: this process's own flag.
    if (closed.load(std::memory_order_relaxed)) throw ValueError("Queue is closed");
  }
};

void QueueCore::cache_pointers() noexcept {
  lanes_ = state_->lanes.get();
  serial_ = state_->serial;
  mpmc_ = state_->mpmc ? &*state_->mpmc : nullptr;
  spsc_ = state_->spsc ? &*state_->spsc : nullptr;
  producer_seat_ = &state_->producer_seat;
  consumer_seat_ = &state_->consumer_seat;
  closed_ = &state_->closed;
}

QueueCore::QueueCore(const QueueOptions& options, std::uint64_t type_hash) {
  const Geometry g = geometry_for(options);
  state_ = std::make_shared<QueueState>();
  state_->block = SharedBlock::create(kRingOffset + g.ring_bytes(), layout_hash(type_hash), "Queue");
  state_->initialise(std::span(state_->block.payload(), state_->block.payload_size()), g);
  cache_pointers();
}

QueueCore QueueCore::create_named(std::string_view name, const QueueOptions& options,
                                  std::uint64_t type_hash) {
  const Geometry g = geometry_for(options);
  QueueCore q;
  q.state_ = std::make_shared<QueueState>();
  q.state_->named = create_named_region(name, kRingOffset + g.ring_bytes(), layout_hash(type_hash),
                                        kNamedQueueKind, "Queue");
  q.state_->initialise(q.state_->named->payload(), g);
  q.state_->named->segment().publish();
  q.cache_pointers();
  return q;
}

QueueCore QueueCore::open_named(std::string_view name, std::uint64_t type_hash) {
  QueueCore q;
  q.state_ = std::make_shared<QueueState>();
  q.state_->named = open_named_region(name, layout_hash(type_hash), kNamedQueueKind, kRingOffset, "Queue");
  try {
    q.state_->attach(q.state_->named->payload());
  } catch (const DecodeError& e) {
    throw ValueError("cannot open Queue '" + std::string(name) + "': " + e.what());
  }
  q.cache_pointers();
  return q;
}

core::RingStatus QueueCore::put(std::size_t size, Fill fill, void* context,
                                std::optional<std::chrono::steady_clock::time_point> deadline, bool block) {
  QueueState& s = *state_;
  s.check_open();
  if (s.kind == kLanesKind) {
    const auto f = [&](std::span<std::byte> out) noexcept { fill(context, out); };
    std::uint32_t lane = producer_lane();
    const std::uint64_t self = core::LanePolicy::producer_self();
    // relaxed: this process's own flag.
    const auto closed = [&] { return s.closed.load(std::memory_order_relaxed); };
    const auto status =
        block ? s.lanes->push(lane, self, size, f, deadline, closed) : s.lanes->try_push(lane, self, size, f);
    t_lane_seat.lane = lane;  // producer_lane() made the seat this queue's; try_push may have moved it
    if (block) s.check_open();
    return status;
  }
  if (s.kind == kMpmcKind) {
    const auto f = [&](std::span<std::byte> out) noexcept { fill(context, out); };
    return block ? s.mpmc->push(size, f, deadline) : s.mpmc->try_push(size, f);
  }
  s.enter(s.header->producer, s.producer_word, s.producer_seat, "producer");
  for (int polls = 0;;) {
    auto r = s.spsc->try_reserve(size);
    if (r.status == core::RingStatus::ok) {
      fill(context, r.payload);
      s.spsc->commit();
      return core::RingStatus::ok;
    }
    if (r.status != core::RingStatus::full || !block) return r.status;
    if (++polls <= kQuickPolls) {
      core::cpu_relax();
      continue;
    }
    // relaxed: this process's own flag.
    const bool in_time =
        s.spsc->wait_writable(size, deadline, [&] { return s.closed.load(std::memory_order_relaxed); });
    s.check_open();
    if (!in_time) {
      r = s.spsc->try_reserve(size);
      if (r.status != core::RingStatus::ok) return r.status;
      fill(context, r.payload);
      s.spsc->commit();
      return core::RingStatus::ok;
    }
  }
}

core::RingStatus QueueCore::get(Consume consume, void* context,
                                std::optional<std::chrono::steady_clock::time_point> deadline, bool block) {
  QueueState& s = *state_;
  s.check_open();
  if (s.kind == kLanesKind) {
    const auto c = [&](std::span<const std::byte> in) { consume(context, in); };
    if (!block) return s.lanes->try_pop(c);
    // relaxed: this process's own flag.
    const auto status = s.lanes->pop(c, deadline, [&] { return s.closed.load(std::memory_order_relaxed); });
    s.check_open();
    return status;
  }
  if (s.kind == kMpmcKind) {
    const auto c = [&](std::span<const std::byte> in) { consume(context, in); };
    core::RingStatus status{};
    if (block) {
      // relaxed: this process's own flag.
      status = s.mpmc->pop(c, deadline, [&] { return s.closed.load(std::memory_order_relaxed); });
      s.check_open();
    } else {
      status = s.mpmc->try_pop(c);
    }
    return status;
  }
  s.enter(s.header->consumer, s.consumer_word, s.consumer_seat, "consumer");
  for (int polls = 0;;) {
    const auto p = s.spsc->try_peek();
    if (p.status == core::RingStatus::ok) {
      struct Release {
        Spsc& ring;
        ~Release() { ring.release(); }
      } release{*s.spsc};
      consume(context, p.payload);
      return core::RingStatus::ok;
    }
    if (p.status == core::RingStatus::corrupted) {
      s.spsc->skip_to_tail();
      return p.status;
    }
    if (!block) return p.status;
    if (++polls <= kQuickPolls) {  // a running producer answers sooner than the wait's set-up
      core::cpu_relax();
      continue;
    }
    // relaxed: this process's own flag.
    const bool in_time =
        s.spsc->wait_readable(deadline, [&] { return s.closed.load(std::memory_order_relaxed); });
    s.check_open();
    if (!in_time && !s.spsc->readable()) return core::RingStatus::empty;
  }
}

constinit thread_local LaneSeat t_lane_seat;

std::uint32_t QueueCore::producer_lane() {
  if (const std::uint32_t lane = owned_lane(); lane != 0) return lane;
  LaneSeat& seat = t_lane_seat;
  const std::uint64_t process = cached_process_identity();
  const std::uint64_t self = core::LanePolicy::producer_self();
  const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  const bool known = seat.queue == serial_ && seat.process == process && seat.self == self;
  // A thread on the shared lane stays there until the retry time; then lane_for lets it leave only
  // once the shared lane is empty (its own earlier messages first). A thread whose seat is not
  // this queue's (new, or it has used another queue or handle since) may have written the shared
  // lane: lane_for treats it so.
  if (known && seat.lane == 0 && now < seat.retry_at) return 0;
  const std::uint32_t lane = lanes_->lane_for(self, !known || seat.lane == 0);
  constexpr auto kRetry =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::milliseconds(10));
  seat = LaneSeat{serial_, process, self, lane, now + kRetry.count()};
  return lane;
}

void QueueCore::begin_put() {
  QueueState& s = *state_;
  s.enter(s.header->producer, s.producer_word, s.producer_seat, "producer");
}

void QueueCore::begin_get() {
  QueueState& s = *state_;
  s.enter(s.header->consumer, s.consumer_word, s.consumer_seat, "consumer");
}

std::size_t QueueCore::qsize() const {
  const QueueState& s = *state_;
  if (s.kind == kLanesKind) return s.lanes->approximate_size();
  return s.kind == kMpmcKind ? s.mpmc->approximate_size() : s.spsc->approximate_count();
}

bool QueueCore::empty() const {
  const QueueState& s = *state_;
  if (s.kind == kLanesKind) return !s.lanes->any_unread();
  return s.kind == kMpmcKind ? !s.mpmc->readable() : s.spsc->approximate_count() == 0;
}

bool QueueCore::full() const {
  const QueueState& s = *state_;
  if (s.kind == kLanesKind) return !s.lanes->has_room(owned_lane(), 1);  // the calling thread's lane
  return s.kind == kMpmcKind ? !s.mpmc->writable(1) : !s.spsc->has_room(1);
}

std::size_t QueueCore::max_message() const {
  const QueueState& s = *state_;
  if (s.kind == kLanesKind) return s.lanes->max_message();
  return s.kind == kMpmcKind ? s.mpmc->max_message() : s.spsc->max_record();
}

std::string QueueCore::name() const {
  return state_->named ? state_->named->name() : std::string();
}

bool QueueCore::closed() const noexcept {
  return state_->closed.load();
}

void QueueCore::close() noexcept {
  state_->closed.store(true);
  if (state_->mpmc) state_->mpmc->wake_all();
  if (state_->spsc) state_->spsc->wake_all();
  if (state_->lanes) state_->lanes->wake_all();
}

void QueueCore::encode(Encoder& out) const {
  out.put(state_->named != nullptr);
  if (state_->named) {
    out.put(state_->named->name());
  } else {
    encode_block_ref(out, state_->block, 0);
  }
}

QueueCore QueueCore::decode(Decoder& in, std::uint64_t type_hash) {
  if (in.get<bool>()) return open_named(in.get<std::string>(), type_hash);
  auto [block, offset] = decode_block_ref(in, kRingOffset, kCacheLine);
  if (block.type_hash() != layout_hash(type_hash) || offset != 0) {
    throw DecodeError("a received Queue holds another type");
  }
  QueueCore q;
  q.state_ = std::make_shared<QueueState>();
  q.state_->block = std::move(block);
  q.state_->attach(std::span(q.state_->block.payload(), q.state_->block.payload_size()));
  q.cache_pointers();
  return q;
}

// ---- errors and buffers ---------------------------------------------------------------------

void throw_queue_status(core::RingStatus status, std::size_t message_size, std::size_t max_message) {
  switch (status) {
    case core::RingStatus::empty:
      throw Empty("the queue is empty");
    case core::RingStatus::full:
      throw Full("the queue is full");
    case core::RingStatus::too_large:
      throw ValueError("a message of " + std::to_string(message_size) +
                       " encoded bytes is larger than this queue's " + std::to_string(max_message) +
                       "-byte limit (QueueOptions::slot_size and maxsize set it)");
    case core::RingStatus::corrupted:
      throw Error(
          "the queue's shared memory is corrupted (a state word or length no correct process writes)");
    case core::RingStatus::ok:
      break;
  }
  throw Error("unexpected queue status");
}

void throw_queue_has_fds() {
  throw ValueError(
      "a Queue message cannot carry shared objects (Lock, Queue, Value, ...): pass them to the Process "
      "as arguments instead, as CPython requires");
}

std::vector<std::byte>& encode_scratch() noexcept {
  thread_local std::vector<std::byte> scratch;
  return scratch;
}

}  // namespace mproc::detail
