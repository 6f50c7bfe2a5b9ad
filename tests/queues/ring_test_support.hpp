// Shared pieces of the ring tests (mpmc_ring_test, lane_queue_test): a shared anonymous region,
// and the ledger that checks what the consumers of a stress test received.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace mproc_test {

/// A zero-filled MAP_SHARED region (shared with forked children), unmapped at scope exit.
class Region {
 public:
  explicit Region(std::size_t size) : size_(size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<std::byte*>(p);
  }
  ~Region() { munmap(data_, size_); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  std::span<std::byte> span() noexcept { return {data_, size_}; }

 private:
  std::byte* data_;
  std::size_t size_;
};

/// A stress test's message: (producer, sequence, checksum), padded with 0xAB up to its size.
struct StressMessage {
  std::uint64_t v[3] = {};
  static StressMessage of(int producer, int sequence) {
    const auto p = static_cast<std::uint64_t>(producer);
    const auto i = static_cast<std::uint64_t>(sequence);
    return {{p, i, p * 1'000'003 + i}};
  }
};

/// What the consumers of a stress test received: each message checked as it arrives (whole,
/// from a known producer, after that producer's previous one), and all of them at the end
/// (every message exactly once). Each consumer writes only its own row.
class StressLedger {
 public:
  StressLedger(int producers, int consumers, int per_producer)
      : producers_(producers),
        per_producer_(per_producer),
        seen_(static_cast<std::size_t>(consumers)),
        last_(static_cast<std::size_t>(consumers),
              std::vector<int>(static_cast<std::size_t>(producers), -1)) {}

  /// Checks one message consumer `c` received; false (with the failure reported) when it is wrong.
  bool record(int c, const StressMessage& m, bool intact) {
    const auto [p, i, sum] = m.v;
    if (!intact || sum != p * 1'000'003 + i || p >= static_cast<std::uint64_t>(producers_)) {
      ADD_FAILURE() << "a torn message (" << p << ", " << i << ", " << sum << ")";
      return false;
    }
    int& last = last_[static_cast<std::size_t>(c)][p];
    if (static_cast<int>(i) <= last) {
      ADD_FAILURE() << "per-producer FIFO broken: " << i << " after " << last << " from producer " << p;
      return false;
    }
    last = static_cast<int>(i);
    seen_[static_cast<std::size_t>(c)].push_back(p * static_cast<std::uint64_t>(per_producer_) + i);
    return true;
  }

  /// Every message of every producer was received once.
  void expect_exactly_once() const {
    std::vector<std::uint64_t> all;
    for (const auto& s : seen_) all.insert(all.end(), s.begin(), s.end());
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), static_cast<std::size_t>(producers_) * static_cast<std::size_t>(per_producer_));
    for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i) << "lost or duplicated";
  }

 private:
  int producers_;
  int per_producer_;
  std::vector<std::vector<std::uint64_t>> seen_;
  std::vector<std::vector<int>> last_;
};

/// A stress test with threads: `producers` threads each send per_producer StressMessages (sizes
/// 24-88 bytes, so that records of several sizes and pads occur) through a pusher that
/// make_pusher() returns in the thread (`status push(size, fill)`, blocking); `consumers` threads
/// take them through make_popper()'s popper (`status pop(consume, deadline, stop)`, blocking until
/// the deadline or stop) until every producer is done and drained() holds. wake_all() is called
/// as each producer finishes. Then every message must have arrived once, in order per producer.
template <class MakePusher, class MakePopper, class WakeAll, class Drained>
void run_stress(int producers, int consumers, int per_producer, MakePusher make_pusher,
                MakePopper make_popper, WakeAll wake_all, Drained drained) {
  using namespace std::chrono_literals;
  std::atomic<int> producers_left{producers};
  StressLedger ledger(producers, consumers, per_producer);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      auto push = make_pusher();
      for (int i = 0; i < per_producer; ++i) {
        const auto m = StressMessage::of(p, i);
        const std::size_t size = 24 + static_cast<std::size_t>(i % 5) * 16;
        const bool ok = push(size, [&](std::span<std::byte> out) noexcept {
          std::memset(out.data(), 0xAB, out.size());
          std::memcpy(out.data(), m.v, sizeof m.v);
        });
        ASSERT_TRUE(ok) << "producer " << p << " could not send " << i;
      }
      producers_left.fetch_sub(1);
      wake_all();
    });
  }
  for (int c = 0; c < consumers; ++c) {
    threads.emplace_back([&, c] {
      auto pop = make_popper();
      for (;;) {
        StressMessage m;
        bool intact = true;
        const auto got = pop(
            [&](std::span<const std::byte> in) {
              std::memcpy(m.v, in.data(), sizeof m.v);
              for (std::size_t b = sizeof m.v; b < in.size(); ++b)
                intact = intact && in[b] == std::byte{0xAB};
            },
            std::chrono::steady_clock::now() + 50ms, [&] { return producers_left.load() == 0; });
        if (!got) {
          if (producers_left.load() == 0 && drained()) break;
          continue;
        }
        if (!ledger.record(c, m, intact)) return;
      }
    });
  }
  for (auto& th : threads) th.join();
  ledger.expect_exactly_once();
}

}  // namespace mproc_test
