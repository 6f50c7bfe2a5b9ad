// Fuzz target: mproc's rings reading shared memory that a hostile or crashed process wrote.
//
// The input is a ring region as another process left it: the first byte picks the ring (MpmcRing
// or SpscRing) and a small geometry, the rest overwrites the region (header, state words, indices,
// record headers, payload) after a valid ring was created there. With the first byte's top bit set
// (and the SpscRing), the rest is instead a script of a peer's writes between the ring's own
// operations (fuzz_spsc_scripted), in the producer mode that bit 6 picks. The oracle, from the rings'
// contract (include/mproc/core/mpmc_ring.hpp, spsc_ring.hpp): attach() refuses an invalid
// geometry, and every operation on what it accepts either works or reports RingStatus::corrupted,
// without reading or writing outside the region (ASan), undefined behaviour (UBSan) or a hang (a
// bounded number of operations, none of which may block: only try_* calls are made).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <vector>

#include "fuzz_region.hpp"
#include "mproc/core/mpmc_ring.hpp"
#include "mproc/core/spsc_ring.hpp"

namespace {

using mproc_fuzz::Region;

// A liveness policy for which every claimant is dead: recover() then acts on everything it finds.
struct AllDead {
  static std::uint32_t self() noexcept { return 1; }
  static bool alive(std::uint32_t) noexcept { return false; }
  static void at(mproc::core::RingStep) noexcept {}
};

void fuzz_mpmc(std::span<const std::uint8_t> input, std::uint32_t slots, std::uint32_t slot_size) {
  using Ring = mproc::core::MpmcRing<mproc::detail::SharedFutex, AllDead>;
  Region region(Ring::region_size(slots, slot_size));
  if (!Ring::create(region, slots, slot_size, slots)) return;
  std::memcpy(region.data(), input.data(), std::min(input.size(), region.size()));
  auto ring = Ring::attach(region);
  if (!ring) return;
  // The geometry was accepted: it must describe memory inside the region.
  if (Ring::region_size(ring->slot_count(), ring->slot_size()) > region.size()) __builtin_trap();
  std::size_t sink = 0;
  for (int i = 0; i < 8; ++i) {
    (void)ring->try_pop([&](std::span<const std::byte> m) {
      for (std::byte b : m) sink += static_cast<std::size_t>(b);
    });
    (void)ring->try_push(static_cast<std::size_t>(i) * 13,
                         [](std::span<std::byte> out) { std::memset(out.data(), 0x5a, out.size()); });
    (void)ring->approximate_size();
    (void)ring->readable();
    (void)ring->writable(1);
  }
  (void)ring->recover();
  (void)ring->try_pop([&](std::span<const std::byte> m) { sink += m.size(); });
  if (sink == 1) std::memset(region.data(), 0, 1);  // keeps sink alive
}

// One record through the general consumer path: its bytes summed, or a resync after corruption.
std::size_t consume_one(mproc::core::SpscRing<>& ring) {
  std::size_t sum = 0;
  auto p = ring.try_peek();
  if (p.status == mproc::core::RingStatus::ok) {
    for (std::byte b : p.payload) sum += static_cast<std::size_t>(b);
    ring.release();
  } else if (p.status == mproc::core::RingStatus::corrupted) {
    ring.skip_to_tail();
  }
  return sum;
}

// One record of `size` bytes through the general producer path, if there is room.
void produce_one(mproc::core::SpscRing<>& ring, std::size_t size, std::uint8_t flags) {
  auto r = ring.try_reserve(size, flags);
  if (r.status == mproc::core::RingStatus::ok) {
    std::memset(r.payload.data(), 0xa5, r.payload.size());
    ring.commit();
  }
}

void fuzz_spsc(std::span<const std::uint8_t> input, std::uint32_t capacity) {
  using Ring = mproc::core::SpscRing<>;
  Region region(Ring::region_size(capacity));
  if (!Ring::create(region, capacity)) return;
  std::memcpy(region.data(), input.data(), std::min(input.size(), region.size()));
  auto ring = Ring::attach(region);
  if (!ring) return;
  if (Ring::region_size(ring->capacity()) > region.size()) __builtin_trap();
  std::size_t sink = 0;
  for (int i = 0; i < 8; ++i) {
    sink += consume_one(*ring);
    produce_one(*ring, static_cast<std::size_t>(i) * 21, static_cast<std::uint8_t>(i));
  }
  if (sink == 1) std::memset(region.data(), 0, 1);
}

// The same ring with a hostile peer acting between this side's operations: a side's own position
// is its shared index (the consumer's always; the producer's unless it keeps a private copy, which
// the first byte's bit 6 picks), so a peer can move it under a live view (the consumer once
// looped 2^58 times on a head moved past its cached tail). The script is `steps` records of 9
// bytes: an action and a 64-bit value (little-endian); actions write head, tail or 8 data bytes,
// or run one operation.
void fuzz_spsc_scripted(std::span<const std::uint8_t> input, std::uint32_t capacity, bool private_tail) {
  using Ring = mproc::core::SpscRing<>;
  if (input.empty()) return;
  const std::size_t steps = std::min<std::size_t>(input[0], (input.size() - 1) / 9);
  const std::span<const std::uint8_t> script = input.subspan(1, steps * 9);
  Region region(Ring::region_size(capacity));
  if (!Ring::create(region, capacity)) return;
  auto ring = Ring::attach(region);
  if (!ring) return;
  ring->use_private_tail(private_tail);  // a Pipe's mode, or a Queue's
  auto word = [&](std::size_t offset) {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(region.data() + offset);
  };
  std::size_t sink = 0;
  for (std::size_t i = 0; i < steps; ++i) {
    const std::uint8_t action = script[i * 9];
    std::uint64_t value = 0;
    std::memcpy(&value, script.data() + i * 9 + 1, sizeof value);
    switch (action % 9) {
      case 0:
        word(offsetof(Ring::Shared, head))->store(value, std::memory_order_relaxed);
        break;
      case 1:
        word(offsetof(Ring::Shared, tail))->store(value, std::memory_order_relaxed);
        break;
      case 2:
        std::memcpy(region.data() + Ring::data_offset() + (value >> 32) % (capacity - 7), &value, 8);
        break;
      case 3:
        sink += consume_one(*ring);
        break;
      case 4:
        produce_one(*ring, value % capacity, static_cast<std::uint8_t>(value >> 56));
        break;
      case 5:
        (void)ring->try_push_fixed<8>(&value);
        break;
      case 6: {
        std::uint64_t out = 0;
        if (ring->try_pop_fixed<8>(&out)) sink += out;
        break;
      }
      case 7: {
        std::uint8_t value16[16] = {};  // the step's 9 bytes; a step may end the input
        std::memcpy(value16, script.data() + i * 9, 9);
        (void)ring->try_push_fixed<16>(value16);
        break;
      }
      default:
        sink += ring->approximate_count() + ring->readable() + ring->has_room(value % capacity);
        break;
    }
  }
  if (sink == 1) std::memset(region.data(), 0, 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t choice = data[0];
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  if ((choice & 1) == 0) {
    fuzz_mpmc(rest, 1U << (2 + (choice >> 1) % 4), 1U << (4 + (choice >> 3) % 3));
  } else if ((choice & 0x80) == 0) {
    fuzz_spsc(rest, 1U << (6 + (choice >> 1) % 4));
  } else {
    fuzz_spsc_scripted(rest, 1U << (6 + (choice >> 1) % 4), (choice & 0x40) != 0);
  }
  return 0;
}
