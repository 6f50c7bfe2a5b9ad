// Fuzz target: mproc's rings reading shared memory that a hostile or crashed process wrote.
//
// The input is a ring region as another process left it: the first byte picks the ring (MpmcRing
// or SpscRing) and a small geometry, the rest overwrites the region (header, state words, indices,
// record headers, payload) after a valid ring was created there. The oracle, from the rings'
// contract (include/mproc/core/mpmc_ring.hpp, spsc_ring.hpp): attach() refuses an invalid
// geometry, and every operation on what it accepts either works or reports RingStatus::corrupted,
// without reading or writing outside the region (ASan), undefined behaviour (UBSan) or a hang (a
// bounded number of operations, none of which may block: only try_* calls are made).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "mproc/core/mpmc_ring.hpp"
#include "mproc/core/spsc_ring.hpp"

namespace {

// A liveness policy for which every claimant is dead: recover() then acts on everything it finds.
struct AllDead {
  static std::uint32_t self() noexcept { return 1; }
  static bool alive(std::uint32_t) noexcept { return false; }
  static void at(mproc::core::RingStep) noexcept {}
};

void fuzz_mpmc(std::span<const std::uint8_t> input, std::uint32_t slots, std::uint32_t slot_size) {
  using Ring = mproc::core::MpmcRing<mproc::detail::SharedFutex, AllDead>;
  std::vector<std::byte> region(Ring::region_size(slots, slot_size));
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

void fuzz_spsc(std::span<const std::uint8_t> input, std::uint32_t capacity) {
  using Ring = mproc::core::SpscRing<>;
  std::vector<std::byte> region(Ring::region_size(capacity));
  if (!Ring::create(region, capacity)) return;
  std::memcpy(region.data(), input.data(), std::min(input.size(), region.size()));
  auto ring = Ring::attach(region);
  if (!ring) return;
  if (Ring::region_size(ring->capacity()) > region.size()) __builtin_trap();
  std::size_t sink = 0;
  for (int i = 0; i < 8; ++i) {
    auto p = ring->try_peek();
    if (p.status == mproc::core::RingStatus::ok) {
      for (std::byte b : p.payload) sink += static_cast<std::size_t>(b);
      ring->release();
    } else if (p.status == mproc::core::RingStatus::corrupted) {
      ring->skip_to_tail();
    }
    auto r = ring->try_reserve(static_cast<std::size_t>(i) * 21, static_cast<std::uint8_t>(i));
    if (r.status == mproc::core::RingStatus::ok) {
      std::memset(r.payload.data(), 0xa5, r.payload.size());
      ring->commit();
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
  } else {
    fuzz_spsc(rest, 1U << (6 + (choice >> 1) % 4));
  }
  return 0;
}
