// Fuzz target: mproc's LaneQueue (the lanes of QueueOptions::lanes) reading shared memory that a
// hostile or crashed process wrote.
//
// The input's first byte picks a small geometry (1 to 4 lanes, 128 B to 1 KiB per lane) and a
// mode. Overwrite mode (bit 7 clear): the rest overwrites a valid queue's region (geometry, `used`,
// owner and consumer lock words, each lane's ring header, indices, records), then every
// non-blocking operation runs a few times. Script mode (bit 7 set): the rest is a script of 9-byte
// steps, an action and a 64-bit value (little-endian), that interleave a peer's 8-byte writes
// anywhere in the region with the queue's own operations; until the first such write, a model
// checks that records come back whole and in order and that every lock word is left free.
//
// The oracle, from lane_queue.hpp's contract ("a hostile peer can write anything"): attach()
// refuses an invalid geometry, and every operation on what it accepts works or reports
// RingStatus::corrupted or full/empty, without reading or writing outside the region (ASan),
// undefined behaviour (UBSan) or a hang (only try_* calls, a bounded number of them; a lock word
// held by a stranger costs a try at most LaneQueue::kHolderPatience). Every party but this one is
// dead, so lock words and lanes left by strangers are taken over once they have been seen held
// for the patience.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <utility>

#include "fuzz_region.hpp"
#include "mproc/core/lane_queue.hpp"

namespace {

using mproc_fuzz::Region;

// This process is producer thread 7 of pid 1 and consumer 1; every other identity is dead, so a
// lock word a stranger holds is taken at its second sighting, without waiting for the wall clock.
struct OnlyMeAlive {
  static constexpr std::chrono::milliseconds kHolderPatience{0};
  static constexpr std::uint64_t kProducer = (std::uint64_t{7} << 32) | 1;
  static std::uint64_t producer_self() noexcept { return kProducer; }
  static bool producer_alive(std::uint64_t owner) noexcept { return owner == kProducer; }
  static std::uint64_t consumer_self() noexcept { return 1; }
  static bool consumer_alive(std::uint64_t holder) noexcept { return holder == 1; }
  static void at(mproc::core::LaneStep) noexcept {}
};

using Queue = mproc::core::LaneQueue<mproc::detail::SharedFutex, OnlyMeAlive>;

// The one producer and consumer. Until a peer has written anything (`model` true), the queue must
// behave exactly: records come back in the order they went in (one producer), whole, never
// `corrupted`, and every lock word is free between operations. Each record carries its sequence
// number in its first bytes (all of them for a record shorter than 8).
struct Party {
  Queue& queue;
  std::uint32_t lane = Queue::kSharedLane;
  std::size_t sink = 0;
  bool model = false;
  bool wrote_shared = false;  // FIFO: leave the shared lane only once it is empty (lane_for)
  std::uint64_t next = 1;
  std::deque<std::pair<std::uint64_t, std::size_t>> expected;  // (sequence, size) in flight

  static void stamp(std::span<std::byte> out, std::uint64_t seq) {
    std::memset(out.data(), static_cast<int>(seq & 0xff), out.size());
    std::memcpy(out.data(), &seq, std::min(out.size(), sizeof seq));
  }
  void check(bool ok) const {
    if (model && !ok) __builtin_trap();
  }
  void check_words() const {
    if (!model) return;
    check(queue.locks_free_snapshot());
  }
  void push(std::size_t size) {
    const std::uint64_t seq = next;
    if (!queue.holds(lane, OnlyMeAlive::kProducer))
      lane = queue.lane_for(OnlyMeAlive::kProducer, wrote_shared);
    const auto status = queue.try_push(lane, OnlyMeAlive::kProducer, size,
                                       [seq](std::span<std::byte> out) { stamp(out, seq); });
    check(status != mproc::core::RingStatus::corrupted);
    if (status == mproc::core::RingStatus::ok) {
      expected.emplace_back(seq, size);
      ++next;
      wrote_shared = wrote_shared || lane == Queue::kSharedLane;
    }
    check_words();
  }
  void push_fixed(std::uint64_t) {
    // The fast path's contract: an owned lane the caller holds (never the shared one).
    if (lane == Queue::kSharedLane || !queue.holds(lane, OnlyMeAlive::kProducer)) {
      lane = queue.lane_for(OnlyMeAlive::kProducer, wrote_shared);
      if (lane == Queue::kSharedLane) return;
    }
    const std::uint64_t seq = next;
    if (queue.try_push_fixed<8>(lane, &seq)) {
      expected.emplace_back(seq, 8);
      ++next;
    }
    check_words();
  }
  void pop() {
    std::optional<std::pair<std::uint64_t, std::size_t>> got;
    const auto status = queue.try_pop([&](std::span<const std::byte> m) {
      std::uint64_t seq = 0;
      std::memcpy(&seq, m.data(), std::min(m.size(), sizeof seq));
      if (m.size() < sizeof seq) seq = m.empty() ? 0 : static_cast<std::uint64_t>(m[0]);
      got.emplace(seq, m.size());
      for (std::byte b : m) sink += static_cast<std::size_t>(b);
    });
    check(status != mproc::core::RingStatus::corrupted);
    take(got);
    check_words();
  }
  void pop_fixed() {
    std::uint64_t out = 0;
    std::optional<std::pair<std::uint64_t, std::size_t>> got;
    if (queue.try_pop_fixed<8>(&out)) {
      got.emplace(out, 8);
      sink += out;
    }
    take(got);
    check_words();
  }
  // What came out must be the oldest record in flight (a short record's number is its low byte).
  void take(const std::optional<std::pair<std::uint64_t, std::size_t>>& got) {
    if (!got || !model) return;
    check(!expected.empty());
    const auto [seq, size] = expected.front();
    expected.pop_front();
    check(got->second == size);
    check(size >= 8 ? got->first == seq : size == 0 || got->first == (seq & 0xff));
  }
  void observe(std::uint64_t value) {
    sink += queue.approximate_size() + queue.any_unread() + queue.has_room(lane, value % 1024);
  }
};

std::unique_ptr<Queue> make(Region& region, std::uint32_t lanes, std::uint32_t capacity) {
  if (!Queue::create(region, lanes, capacity)) return nullptr;
  return Queue::attach(region);
}

void fuzz_overwrite(std::span<const std::uint8_t> input, std::uint32_t lanes, std::uint32_t capacity) {
  Region region(Queue::region_size(lanes, capacity));
  if (!Queue::create(region, lanes, capacity)) return;
  std::memcpy(region.data(), input.data(), std::min(input.size(), region.size()));
  auto queue = Queue::attach(region);
  if (!queue) return;
  // The geometry was accepted: it must describe memory inside the region.
  if (Queue::region_size(queue->lanes(), queue->capacity()) > region.size()) __builtin_trap();
  Party party{*queue};
  for (int i = 0; i < 6; ++i) {
    party.pop();
    party.pop_fixed();
    party.push(static_cast<std::size_t>(i) * 13);
    party.push_fixed(static_cast<std::uint64_t>(i));
    party.observe(static_cast<std::uint64_t>(i) * 97);
  }
  if (party.sink == 1) std::memset(region.data(), 0, 1);  // keeps sink alive
}

void fuzz_script(std::span<const std::uint8_t> input, std::uint32_t lanes, std::uint32_t capacity) {
  if (input.empty()) return;
  const std::size_t steps = std::min<std::size_t>(input[0], (input.size() - 1) / 9);
  const std::span<const std::uint8_t> script = input.subspan(1, steps * 9);
  Region region(Queue::region_size(lanes, capacity));
  auto queue = make(region, lanes, capacity);
  if (!queue) return;
  Party party{*queue};
  party.lane = queue->lane_for(OnlyMeAlive::kProducer);
  party.model = true;  // exact until a peer writes
  for (std::size_t i = 0; i < steps; ++i) {
    const std::uint8_t action = script[i * 9];
    std::uint64_t value = 0;
    std::memcpy(&value, script.data() + i * 9 + 1, sizeof value);
    switch (action % 6) {
      case 0: {
        // A peer's write: 8 bytes at an 8-aligned offset anywhere in the region.
        const std::size_t offset = ((value >> 32) % (region.size() / 8)) * 8;
        std::memcpy(region.data() + offset, &value, sizeof value);
        party.model = false;
        break;
      }
      case 1:
        party.push(value % (capacity + 16));
        break;
      case 2:
        party.push_fixed(value);
        break;
      case 3:
        party.pop();
        break;
      case 4:
        party.pop_fixed();
        break;
      default:
        party.observe(value);
        break;
    }
  }
  if (party.sink == 1) std::memset(region.data(), 0, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t choice = data[0];
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  const std::uint32_t lanes = 1 + (choice & 3);
  const std::uint32_t capacity = 1U << (7 + ((choice >> 2) & 3));
  if ((choice & 0x80) == 0) {
    fuzz_overwrite(rest, lanes, capacity);
  } else {
    fuzz_script(rest, lanes, capacity);
  }
  return 0;
}
