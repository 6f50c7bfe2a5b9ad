// core::MpmcRing with threads and with processes: a std::deque model (rapidcheck), FIFO and
// exactly-once delivery under stress, a hostile header and state words, and processes killed at
// every crash point of push and pop (RingStep) and at random times.
#include "mproc/core/mpmc_ring.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "queues/ring_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc::core::MpmcRing;
using mproc::core::RingStatus;
using mproc::core::RingStep;

using mproc_test::Region;

template <class Ring = MpmcRing<>>
struct TestRing {
  TestRing(std::uint32_t slots, std::uint32_t slot_size, std::uint32_t limit)
      : region(Ring::region_size(slots, slot_size)),
        ring(*Ring::create(region.span(), slots, slot_size, limit)) {}
  Region region;
  Ring ring;
};

RingStatus push_bytes(MpmcRing<>& ring, const std::vector<std::byte>& msg) {
  return ring.try_push(msg.size(), [&](std::span<std::byte> out) {
    if (!msg.empty()) std::memcpy(out.data(), msg.data(), msg.size());
  });
}

std::optional<std::vector<std::byte>> pop_bytes(MpmcRing<>& ring, RingStatus* status = nullptr) {
  std::vector<std::byte> got;
  const RingStatus s = ring.try_pop([&](std::span<const std::byte> in) { got.assign(in.begin(), in.end()); });
  if (status) *status = s;
  if (s != RingStatus::ok) return std::nullopt;
  return got;
}

std::vector<std::byte> message(std::size_t size, std::uint8_t seed) {
  std::vector<std::byte> m(size);
  for (std::size_t i = 0; i < size; ++i) m[i] = static_cast<std::byte>(seed + i * 7);
  return m;
}

TEST(MpmcRing, RejectsBadGeometry) {
  Region region(1 << 16);
  EXPECT_FALSE(MpmcRing<>::create(region.span(), 3, 64, 3));      // not a power of two
  EXPECT_FALSE(MpmcRing<>::create(region.span(), 8, 8, 8));       // slot too small
  EXPECT_FALSE(MpmcRing<>::create(region.span(), 8, 64, 9));      // limit above the slot count
  EXPECT_FALSE(MpmcRing<>::create(region.span(), 8, 64, 0));      // no room at all
  EXPECT_FALSE(MpmcRing<>::create(region.span(), 4096, 64, 16));  // region too small
  EXPECT_TRUE(MpmcRing<>::create(region.span(), 8, 64, 8));
}

TEST(MpmcRing, FifoEmptyFullAndTooLarge) {
  TestRing t(8, 32, 8);
  RingStatus status{};
  EXPECT_FALSE(pop_bytes(t.ring, &status));
  EXPECT_EQ(status, RingStatus::empty);
  for (std::uint8_t i = 0; i < 8; ++i) ASSERT_EQ(push_bytes(t.ring, message(8, i)), RingStatus::ok);
  EXPECT_EQ(push_bytes(t.ring, message(8, 99)), RingStatus::full);
  EXPECT_EQ(t.ring.approximate_size(), 8U);
  for (std::uint8_t i = 0; i < 8; ++i) EXPECT_EQ(pop_bytes(t.ring), message(8, i));
  EXPECT_EQ(t.ring.approximate_size(), 0U);
  // The largest message spans every slot; one byte more can never fit and writes nothing.
  EXPECT_EQ(t.ring.max_message(), 8 * 32 - 8U);
  EXPECT_EQ(push_bytes(t.ring, message(t.ring.max_message() + 1, 1)), RingStatus::too_large);
  EXPECT_EQ(push_bytes(t.ring, message(t.ring.max_message(), 1)), RingStatus::ok);
  EXPECT_EQ(pop_bytes(t.ring), message(t.ring.max_message(), 1));
  EXPECT_EQ(push_bytes(t.ring, {}), RingStatus::ok);  // an empty message is a message
  EXPECT_EQ(pop_bytes(t.ring), std::vector<std::byte>{});
}

TEST(MpmcRing, RecordsThatWouldWrapGoAfterAPad) {
  TestRing t(8, 16, 8);
  // 3 slots each (8 + 30 bytes over 16-byte slots): the third would wrap, so it starts at slot 0.
  ASSERT_EQ(push_bytes(t.ring, message(30, 1)), RingStatus::ok);
  ASSERT_EQ(push_bytes(t.ring, message(30, 2)), RingStatus::ok);
  EXPECT_EQ(pop_bytes(t.ring), message(30, 1));
  ASSERT_EQ(push_bytes(t.ring, message(30, 3)), RingStatus::ok);
  EXPECT_EQ(pop_bytes(t.ring), message(30, 2));
  EXPECT_EQ(pop_bytes(t.ring), message(30, 3));
  RingStatus status{};
  EXPECT_FALSE(pop_bytes(t.ring, &status));
  EXPECT_EQ(status, RingStatus::empty);
}

TEST(MpmcRing, LimitBoundsSlotsInFlight) {
  TestRing t(8, 32, 5);  // Queue(maxsize=5): 5 one-slot messages, then full
  for (std::uint8_t i = 0; i < 5; ++i) ASSERT_EQ(push_bytes(t.ring, message(4, i)), RingStatus::ok);
  EXPECT_EQ(push_bytes(t.ring, message(4, 5)), RingStatus::full);
  EXPECT_TRUE(pop_bytes(t.ring));
  EXPECT_EQ(push_bytes(t.ring, message(4, 5)), RingStatus::ok);
}

// The ring against a std::deque, single-threaded: every push and pop, and whether it was full,
// is predicted exactly by slot arithmetic (pads included).
RC_GTEST_PROP(MpmcRingModel, MatchesADequeOfMessages, ()) {
  const std::uint32_t slots = 1U << *rc::gen::inRange(1, 7);
  const std::uint32_t slot_size = 1U << *rc::gen::inRange(4, 7);
  const std::uint32_t limit = *rc::gen::inRange<std::uint32_t>(1, slots + 1);
  TestRing t(slots, slot_size, limit);
  std::deque<std::vector<std::byte>> model;
  std::uint64_t tail = 0, head = 0;
  std::deque<std::pair<std::uint64_t, std::uint32_t>> records;  // (position, slots), pads included
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 200));
  std::uint8_t seed = 0;
  for (int op : ops) {
    if (op % 3 != 0) {
      const auto size = static_cast<std::size_t>(op % (slot_size * 3));
      const auto msg = message(size, seed++);
      const RingStatus s = push_bytes(t.ring, msg);
      const std::uint64_t k = (size + 8 + slot_size - 1) / slot_size;
      if (k > std::min<std::uint32_t>(limit, 4095)) {
        RC_ASSERT(s == RingStatus::too_large);
        continue;
      }
      // The model's claim: a pad first if the record would wrap (it stays even if the record
      // then does not fit), then the record.
      bool full = false;
      if (tail % slots + k > slots) {
        const std::uint64_t pad = slots - tail % slots;
        if (tail + pad - head > limit) {
          full = true;
        } else {
          records.emplace_back(tail, 0);
          tail += pad;
        }
      }
      if (!full && tail + k - head > limit) full = true;
      RC_ASSERT((s == RingStatus::full) == full);
      if (!full) {
        RC_ASSERT(s == RingStatus::ok);
        records.emplace_back(tail, static_cast<std::uint32_t>(k));
        tail += k;
        model.push_back(msg);
      }
    } else {
      RingStatus s{};
      const auto got = pop_bytes(t.ring, &s);
      while (!records.empty() && records.front().second == 0) {  // pads are skipped
        records.pop_front();
        head = records.empty() ? tail : records.front().first;
      }
      if (model.empty()) {
        RC_ASSERT(s == RingStatus::empty);
        head = tail;
      } else {
        RC_ASSERT(s == RingStatus::ok);
        RC_ASSERT(*got == model.front());
        model.pop_front();
        records.pop_front();
        head = records.empty() ? tail : records.front().first;
      }
    }
    RC_ASSERT(t.ring.approximate_size() == model.size());
  }
}

// Producers send (id, sequence) pairs with a checksum; consumers check per-producer FIFO, and the
// union of what they got is every message exactly once.
void stress_with_threads(int producers, int consumers, int per_producer, std::uint32_t slots) {
  TestRing t(slots, 32, slots);
  // Each thread has its own view, as each process does.
  const auto make_pusher = [&] {
    return [ring = t.ring](std::size_t size, const auto& fill) mutable {
      return ring.push(size, fill, std::nullopt) == RingStatus::ok;
    };
  };
  const auto make_popper = [&] {
    return [ring = t.ring](const auto& consume, auto deadline, const auto& stop) mutable {
      const auto s = ring.pop(consume, deadline, stop);
      EXPECT_NE(s, RingStatus::corrupted);
      return s == RingStatus::ok;
    };
  };
  mproc_test::run_stress(
      producers, consumers, per_producer, make_pusher, make_popper, [&] { t.ring.wake_all(); },
      [&] { return !t.ring.readable(); });
}

TEST(MpmcRing, ThreadsOneToOne) {
  stress_with_threads(1, 1, 20'000, 64);
}
TEST(MpmcRing, ThreadsManyToMany) {
  stress_with_threads(3, 3, 10'000, 32);
}
TEST(MpmcRing, ThreadsTinyRing) {
  stress_with_threads(2, 2, 5'000, 8);
}

// A hostile peer rewrites the header or a state word: attach refuses the geometry, and pop
// reports corruption instead of reading out of bounds.
TEST(MpmcRing, HostileHeaderAndStates) {
  Region region(MpmcRing<>::region_size(8, 64));
  auto ring = *MpmcRing<>::create(region.span(), 8, 64, 8);
  auto* geometry =
      reinterpret_cast<std::uint32_t*>(region.span().data() + offsetof(MpmcRing<>::Shared, geometry));
  geometry[0] = 1U << 30;  // slot count far beyond the region
  EXPECT_FALSE(MpmcRing<>::attach(region.span()));
  geometry[0] = 8;
  geometry[2] = 0;  // a limit of 0
  EXPECT_FALSE(MpmcRing<>::attach(region.span()));
  geometry[2] = 8;
  ASSERT_TRUE(MpmcRing<>::attach(region.span()));

  ASSERT_EQ(push_bytes(ring, message(16, 1)), RingStatus::ok);
  // The states array follows the header's cache lines (the documented layout).
  const std::size_t header = (sizeof(MpmcRing<>::Shared) + 127) / 128 * 128;
  auto* states = reinterpret_cast<std::uint64_t*>(region.span().data() + header);
  const std::uint64_t good = states[0];
  states[0] = (good & ~(std::uint64_t{0xFFF} << 3)) | (std::uint64_t{4000} << 3);  // k beyond the ring
  RingStatus status{};
  EXPECT_FALSE(pop_bytes(ring, &status));
  EXPECT_EQ(status, RingStatus::corrupted);
  states[0] = good;
  // A length beyond the record.
  std::byte* data = region.span().data() + header + 8 * sizeof(std::uint64_t);
  const std::uint64_t huge = 1ULL << 40;
  std::memcpy(data, &huge, sizeof huge);
  EXPECT_FALSE(pop_bytes(ring, &status));
  EXPECT_EQ(status, RingStatus::corrupted);
  // The corrupted message was dropped; the ring goes on.
  ASSERT_EQ(push_bytes(ring, message(16, 2)), RingStatus::ok);
  EXPECT_EQ(pop_bytes(ring), message(16, 2));
}

// ---- processes killed inside push and pop ----------------------------------------------------

// A ProcessTag whose crash point kills the calling process at the armed step.
struct KillingTag : mproc::core::ProcessTag {
  static inline std::optional<RingStep> kill_at;
  static void at(RingStep step) noexcept {
    if (kill_at == step) ::kill(::getpid(), SIGKILL);
  }
};
using KillRing = MpmcRing<mproc::detail::SharedFutex, KillingTag>;

template <class F>
pid_t fork_child(F body) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

std::uint64_t read_u64(std::span<const std::byte> in) {
  std::uint64_t v = 0;
  std::memcpy(&v, in.data(), sizeof v);
  return v;
}

class KilledAtStep : public testing::TestWithParam<RingStep> {};

// One process dies at the step; the others go on: at most the victim's message is lost, never
// another's, and nothing waits forever.
TEST_P(KilledAtStep, OthersGoOn) {
  TestRing<KillRing> t(16, 64, 16);
  const RingStep step = GetParam();
  const bool producer_step =
      step == RingStep::write_claimed || step == RingStep::write_tail_moved || step == RingStep::write_filled;
  // The first message spans two slots, so that a consumer has a middle to die in.
  ASSERT_EQ(t.ring.try_push(100, [](std::span<std::byte> out) { std::memset(out.data(), 0, out.size()); }),
            RingStatus::ok);
  // the victim: a producer sending 77 (a 2-slot record, so that read_half_freed has a middle), or
  // a consumer taking the first message
  const pid_t victim = fork_child([&] {
    KillingTag::kill_at = step;
    if (producer_step) {
      (void)t.ring.try_push(100, [](std::span<std::byte> out) {
        const std::uint64_t v = 77;
        std::memset(out.data(), 0x77, out.size());
        std::memcpy(out.data(), &v, sizeof v);
      });
    } else {
      (void)t.ring.try_pop([](std::span<const std::byte>) {});
    }
    _exit(3);  // the step was not reached
  });
  const int status = wait_status(victim);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the victim did not reach the step";
  // Survivors: another producer sends 1000 more, a consumer takes everything within a deadline.
  const int kMore = 1000;
  const pid_t producer = fork_child([&] {
    for (std::uint64_t v = 100; v < 100 + kMore; ++v) {
      const auto s = t.ring.push(
          8, [&](std::span<std::byte> out) { std::memcpy(out.data(), &v, 8); },
          std::chrono::steady_clock::now() + 10s);
      if (s != RingStatus::ok) _exit(1);
    }
  });
  std::vector<std::uint64_t> got;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (got.size() < static_cast<std::size_t>(kMore) && std::chrono::steady_clock::now() < deadline) {
    (void)t.ring.pop([&](std::span<const std::byte> in) { got.push_back(read_u64(in)); },
                     std::chrono::steady_clock::now() + 100ms, [] { return false; });
  }
  EXPECT_EQ(wait_status(producer), 0);
  // Drain what is left.
  while (t.ring.try_pop([&](std::span<const std::byte> in) { got.push_back(read_u64(in)); }) ==
         RingStatus::ok) {
  }
  std::vector<std::uint64_t> others;
  for (auto v : got) {
    if (v >= 100) others.push_back(v);
  }
  ASSERT_EQ(others.size(), static_cast<std::size_t>(kMore)) << "a survivor's message was lost";
  for (std::size_t i = 0; i < others.size(); ++i) EXPECT_EQ(others[i], 100 + i);
  const auto count = [&](std::uint64_t v) { return std::count(got.begin(), got.end(), v); };
  // The victim's own message: lost or delivered whole, never twice.
  EXPECT_LE(count(77), 1);
  // The first message (0) was taken by the consumer victim, or is still delivered once.
  EXPECT_EQ(count(0), producer_step ? 1 : 0);
}

INSTANTIATE_TEST_SUITE_P(MpmcRing, KilledAtStep,
                         testing::Values(RingStep::write_claimed, RingStep::write_tail_moved,
                                         RingStep::write_filled, RingStep::read_claimed, RingStep::read_done,
                                         RingStep::read_half_freed));

// Producers and consumers killed at random times under load: the survivors' messages all arrive,
// in order per producer, none torn.
TEST(MpmcRing, ProcessesKilledAtRandomTimes) {
  TestRing t(64, 32, 64);
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 10; ++round) {
    // two victims (a producer and a consumer of random messages) run while we kill them
    const pid_t vp = fork_child([&] {
      for (std::uint64_t v = 1;; ++v) {
        const std::uint64_t msg[2] = {1'000'000 + v, ~(1'000'000 + v)};
        (void)t.ring.push(
            16, [&](std::span<std::byte> out) { std::memcpy(out.data(), msg, 16); },
            std::chrono::steady_clock::now() + 1s);
      }
    });
    const pid_t vc = fork_child([&] {
      for (;;) {
        (void)t.ring.pop([](std::span<const std::byte>) {}, std::chrono::steady_clock::now() + 1s,
                         [] { return false; });
      }
    });
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<>(50, 3000)(rng)));
    kill(vp, SIGKILL);
    kill(vc, SIGKILL);
    wait_status(vp);
    wait_status(vc);
    // A survivor pair moves 500 messages through the same ring.
    const pid_t sp = fork_child([&] {
      for (std::uint64_t v = 0; v < 500; ++v) {
        const std::uint64_t msg[2] = {v, ~v};
        if (t.ring.push(
                16, [&](std::span<std::byte> out) { std::memcpy(out.data(), msg, 16); },
                std::chrono::steady_clock::now() + 10s) != RingStatus::ok) {
          _exit(1);
        }
      }
    });
    std::uint64_t next = 0;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (next < 500 && std::chrono::steady_clock::now() < deadline) {
      (void)t.ring.pop(
          [&](std::span<const std::byte> in) {
            std::uint64_t msg[2];
            std::memcpy(msg, in.data(), 16);
            ASSERT_EQ(msg[1], ~msg[0]) << "torn message";
            if (msg[0] < 1'000'000) {
              ASSERT_EQ(msg[0], next) << "survivor lost a message or broke FIFO";
              ++next;
            }
          },
          std::chrono::steady_clock::now() + 100ms, [] { return false; });
    }
    ASSERT_EQ(wait_status(sp), 0);
    ASSERT_EQ(next, 500U) << "round " << round;
    while (t.ring.try_pop([](std::span<const std::byte>) {}) == RingStatus::ok) {
    }
  }
}

}  // namespace
