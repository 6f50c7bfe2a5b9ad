// The Pool's spill area (runtime/pool/spill.hpp): regions handed out and given back, the file
// growing under a reader's older mapping, and references outside the file refused.
#include "pool/spill.hpp"

#include <cstring>
#include <span>
#include <vector>

#include <gtest/gtest.h>

namespace {

using mproc::detail::SpillArena;
using mproc::detail::SpillView;

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return v;
}

std::uint64_t store(SpillArena& arena, const std::vector<std::byte>& bytes) {
  const std::span<const std::byte> parts[] = {bytes};
  return arena.store(parts);
}

TEST(SpillArena, StoresReleasesAndReuses) {
  SpillArena arena;
  const auto a = pattern(10'000, 1);
  const auto b = pattern(3 << 20, 2);
  const std::uint64_t ra = store(arena, a);
  const std::uint64_t rb = store(arena, b);
  EXPECT_NE(ra, rb);
  EXPECT_EQ(arena.in_use(), 12'288U + (3U << 20)) << "whole pages";
  SpillView view(arena.fd());
  auto got_a = view.bytes(ra, a.size());
  auto got_b = view.bytes(rb, b.size());
  ASSERT_TRUE(got_a && got_b);
  EXPECT_EQ(std::memcmp(got_a->data(), a.data(), a.size()), 0);
  EXPECT_EQ(std::memcmp(got_b->data(), b.data(), b.size()), 0);
  arena.release(ra);
  arena.release(rb);
  arena.release(rb);  // twice: ignored
  EXPECT_EQ(arena.in_use(), 0U);
  // The freed space coalesced: a region as large as both fits without growing.
  const auto c = pattern((3 << 20) + 10'000, 3);
  EXPECT_EQ(store(arena, c), 0U);
}

TEST(SpillArena, ReaderFollowsTheGrowingFile) {
  SpillArena arena;
  SpillView view(arena.fd());
  const auto small = pattern(100, 4);
  const std::uint64_t r1 = store(arena, small);
  ASSERT_TRUE(view.bytes(r1, small.size()));  // maps the file at its first size
  const auto large = pattern(16 << 20, 5);
  const std::uint64_t r2 = store(arena, large);  // the file grows past the reader's mapping
  auto got = view.bytes(r2, large.size());
  ASSERT_TRUE(got);
  EXPECT_EQ(std::memcmp(got->data(), large.data(), large.size()), 0);
  auto again = view.bytes(r1, small.size());
  ASSERT_TRUE(again);
  EXPECT_EQ(std::memcmp(again->data(), small.data(), small.size()), 0);
}

TEST(SpillArena, ReferencesOutsideTheFileAreRefused) {
  SpillArena arena;
  SpillView view(arena.fd());
  const auto bytes = pattern(100, 6);
  const std::uint64_t r = store(arena, bytes);
  EXPECT_FALSE(view.bytes(r, 1ULL << 40));
  EXPECT_FALSE(view.bytes(~0ULL - 10, 100)) << "offset + size overflows";
  EXPECT_FALSE(view.bytes(1ULL << 50, 1));
  SpillView not_sealed(0);  // stdin: not a memfd sealed against shrinking
  EXPECT_FALSE(not_sealed.bytes(0, 1));
}

}  // namespace
