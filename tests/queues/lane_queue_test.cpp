// core::LaneQueue (the default Queue's core): against a model of per-producer deques (rapidcheck),
// FIFO per producer and exactly-once delivery with threads (more producers than lanes, so the
// shared lane is used too), lanes taken over from producers that exited, a hostile header and
// words, and processes killed at every crash point (LaneStep).
#include "mproc/core/lane_queue.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "queues/ring_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using mproc::core::LaneStep;
using mproc::core::RingStatus;

using mproc_test::Region;

// A policy whose identities the test chooses (one thread plays several producers and consumers)
// and whose deaths it declares.
struct ModelPolicy {
  static inline std::uint64_t producer = 1;
  static inline std::uint64_t consumer = 1;
  static inline std::set<std::uint64_t> dead;
  static std::uint64_t producer_self() noexcept { return producer; }
  static bool producer_alive(std::uint64_t id) noexcept { return !dead.contains(id); }
  static std::uint64_t consumer_self() noexcept { return consumer; }
  static bool consumer_alive(std::uint64_t id) noexcept { return !dead.contains(id); }
  static void at(LaneStep /*step*/) noexcept {}
};

template <class Queue>
struct TestQueue {
  TestQueue(std::uint32_t lanes, std::uint32_t capacity)
      : region(Queue::region_size(lanes, capacity)), queue(Queue::create(region.span(), lanes, capacity)) {}
  Region region;
  std::unique_ptr<Queue> queue;
};

// The owner and consumer words of a test queue's lane, as a peer sees them in shared memory.
template <class Queue>
typename Queue::LaneWords* lane_words(TestQueue<Queue>& t, std::uint32_t lane, std::uint32_t capacity) {
  return reinterpret_cast<typename Queue::LaneWords*>(
      t.region.span().data() + sizeof(typename Queue::Shared) + lane * Queue::lane_stride(capacity));
}

template <class Queue>
RingStatus push_u64(Queue& q, std::uint32_t& lane, std::uint64_t self, std::uint64_t v,
                    std::size_t size = 8) {
  return q.try_push(lane, self, size, [&](std::span<std::byte> out) {
    std::memset(out.data(), 0x5A, out.size());
    std::memcpy(out.data(), &v, sizeof v);
  });
}

template <class Queue>
std::optional<std::uint64_t> pop_u64(Queue& q, RingStatus* status = nullptr) {
  std::uint64_t v = 0;
  const RingStatus s =
      q.try_pop([&](std::span<const std::byte> in) { std::memcpy(&v, in.data(), sizeof v); });
  if (status) *status = s;
  if (s != RingStatus::ok) return std::nullopt;
  return v;
}

TEST(LaneQueue, RejectsBadGeometry) {
  using Q = mproc::core::LaneQueue<>;
  Region r(Q::region_size(4, 1024));
  EXPECT_EQ(Q::create(r.span(), 0, 1024), nullptr);
  EXPECT_EQ(Q::create(r.span(), 300, 1024), nullptr);
  EXPECT_EQ(Q::create(r.span(), 4, 1000), nullptr);
  EXPECT_EQ(Q::create(r.span().first(Q::region_size(4, 1024) - 1), 4, 1024), nullptr);
  EXPECT_NE(Q::create(r.span(), 4, 1024), nullptr);
}

// One thread plays producers and consumers (ModelPolicy): every message comes out once, each
// producer's in order; a full lane, a too-large message and an empty queue are reported as such;
// producers that die leave their lanes to newcomers without losing what they published.
RC_GTEST_PROP(LaneQueueModel, MatchesPerProducerDeques, ()) {
  using Q = mproc::core::LaneQueue<mproc::detail::SharedFutex, ModelPolicy>;
  const std::uint32_t lanes = *rc::gen::inRange<std::uint32_t>(1, 5);
  const std::uint32_t capacity = 1U << *rc::gen::inRange(7, 10);
  TestQueue<Q> t(lanes, capacity);
  ModelPolicy::dead.clear();
  std::map<std::uint64_t, std::deque<std::uint64_t>> model;  // per producer
  std::map<std::uint64_t, std::uint32_t> lane_of;
  std::uint64_t next_producer = 1;
  std::vector<std::uint64_t> live{next_producer++};
  std::uint64_t next_value = 0;
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 100));
  for (const int op : ops) {
    if (op < 45) {  // a put by a live producer
      const std::uint64_t p = live[static_cast<std::size_t>(op) % live.size()];
      ModelPolicy::producer = p;
      auto [it, fresh] = lane_of.try_emplace(p, 0);
      if (fresh) it->second = t.queue->lane_for(p);
      const std::size_t size = op == 44 ? capacity : 8 + static_cast<std::size_t>(op % 4) * 24;
      const std::uint64_t v = (p << 32) | next_value++;
      const RingStatus s = push_u64(*t.queue, it->second, p, v, size);
      if (size > t.queue->max_message()) {
        RC_ASSERT(s == RingStatus::too_large);
      } else if (s == RingStatus::ok) {
        model[p].push_back(v);
      } else {
        RC_ASSERT(s == RingStatus::full);
        RC_ASSERT(!t.queue->has_room(it->second, size));
      }
    } else if (op < 90) {  // a get by one of two consumers
      ModelPolicy::consumer = 1000 + static_cast<std::uint64_t>(op % 2);
      RingStatus s{};
      const auto got = pop_u64(*t.queue, &s);
      const bool any =
          std::any_of(model.begin(), model.end(), [](const auto& m) { return !m.second.empty(); });
      if (!any) {
        RC_ASSERT(s == RingStatus::empty);
      } else {
        RC_ASSERT(s == RingStatus::ok);
        auto& q = model[*got >> 32];
        RC_ASSERT(!q.empty());
        RC_ASSERT(q.front() == *got);  // the oldest of its producer's
        q.pop_front();
      }
    } else if (op < 95) {  // a new producer
      live.push_back(next_producer++);
    } else if (live.size() > 1) {  // a producer dies (between operations: it published whole records)
      const std::size_t k = static_cast<std::size_t>(op) % live.size();
      ModelPolicy::dead.insert(live[k]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
    std::size_t total = 0;
    for (const auto& [p, q] : model) total += q.size();
    RC_ASSERT(t.queue->approximate_size() == total);
    RC_ASSERT(t.queue->any_unread() == (total != 0));
  }
  // Everything left comes out, each producer's in order.
  ModelPolicy::consumer = 1000;
  while (const auto got = pop_u64(*t.queue)) {
    auto& q = model[*got >> 32];
    RC_ASSERT(!q.empty());
    RC_ASSERT(q.front() == *got);
    q.pop_front();
  }
  for (const auto& [p, q] : model) RC_ASSERT(q.empty());
}

// Producers claim lanes in turn; the one past the last lane writes the shared lane; a dead
// owner's lane goes to the next producer that needs one, and what the dead one published is
// still delivered. A producer that wrote the shared lane leaves it only once it is empty.
TEST(LaneQueue, LanesAreClaimedSharedAndTakenFromTheDead) {
  using Q = mproc::core::LaneQueue<mproc::detail::SharedFutex, ModelPolicy>;
  TestQueue<Q> t(3, 1024);
  ModelPolicy::dead.clear();
  std::uint32_t a = t.queue->lane_for(11);
  std::uint32_t b = t.queue->lane_for(12);
  std::uint32_t c = t.queue->lane_for(13);
  EXPECT_EQ(a, 1U);
  EXPECT_EQ(b, 2U);
  EXPECT_EQ(c, Q::kSharedLane);
  EXPECT_EQ(t.queue->lane_for(11), a) << "a producer's lane is found again";
  ASSERT_EQ(push_u64(*t.queue, a, 11, 1), RingStatus::ok);
  ASSERT_EQ(push_u64(*t.queue, c, 13, 3), RingStatus::ok);
  EXPECT_EQ(t.queue->lane_for(14), Q::kSharedLane) << "no lane is free";
  ModelPolicy::dead.insert(11);
  // 13 wrote the shared lane, which still holds its message: it stays.
  EXPECT_EQ(t.queue->lane_for(13, true), Q::kSharedLane);
  // 15 never wrote it: it takes the dead 11's lane at once.
  std::uint32_t d = t.queue->lane_for(15);
  EXPECT_EQ(d, a);
  ASSERT_EQ(push_u64(*t.queue, d, 15, 5), RingStatus::ok);
  // 11's identity no longer holds it: a push through its old lane number goes elsewhere.
  EXPECT_FALSE(t.queue->holds(a, 11));
  ModelPolicy::consumer = 1;
  std::multiset<std::uint64_t> got;
  while (const auto v = pop_u64(*t.queue)) got.insert(*v);
  EXPECT_EQ(got, (std::multiset<std::uint64_t>{1, 3, 5})) << "the dead producer's message was lost";
  // The shared lane is empty now: 13 may leave it, for 12's lane once 12 is dead.
  EXPECT_EQ(t.queue->lane_for(13, true), Q::kSharedLane) << "no lane is free";
  ModelPolicy::dead.insert(12);
  EXPECT_EQ(t.queue->lane_for(13, true), b);
}

// A lane that never empties does not starve the others: after kStreak pops (here on the general
// path, try_pop) a consumer moves to the next lane that has records.
TEST(LaneQueue, ABusyLaneDoesNotStarveTheOthers) {
  using Q = mproc::core::LaneQueue<mproc::detail::SharedFutex, ModelPolicy>;
  TestQueue<Q> t(3, 1U << 14);
  ModelPolicy::dead.clear();
  ModelPolicy::consumer = 1;
  std::uint32_t busy = t.queue->lane_for(21);
  std::uint32_t quiet = t.queue->lane_for(22);
  for (std::uint64_t v = 1; v <= 500; ++v) ASSERT_EQ(push_u64(*t.queue, busy, 21, v), RingStatus::ok);
  ASSERT_EQ(push_u64(*t.queue, quiet, 22, 1'000'000), RingStatus::ok);
  for (int pops = 1; pops <= 500; ++pops) {
    const auto v = pop_u64(*t.queue);
    ASSERT_TRUE(v);
    if (*v == 1'000'000) {
      EXPECT_LE(pops, static_cast<int>(Q::kStreak) + 2);
      return;
    }
  }
  FAIL() << "the quiet lane's message waited behind the whole busy lane";
}

// The shared lane's producer lock and the consumer locks are waited for within the caller's
// deadline, and by a non-blocking call for kHolderPatience at most. (Each duration is the shortest of three
// tries, so that a preempted test does not fail; the faults it catches cost every try 10 ms.)
TEST(LaneQueue, LockedLanesHonourDeadlines) {
  using Q = mproc::core::LaneQueue<mproc::detail::SharedFutex, ModelPolicy>;
  TestQueue<Q> t(1, 1024);  // the shared lane only
  ModelPolicy::dead.clear();
  auto* words = lane_words(t, 0, 1024);
  std::uint32_t lane = t.queue->lane_for(5);
  ASSERT_EQ(lane, Q::kSharedLane);
  const auto shortest = [](auto call) {
    auto best = std::chrono::steady_clock::duration::max();
    for (int i = 0; i < 3; ++i) {
      const auto start = std::chrono::steady_clock::now();
      call(start);
      best = std::min(best, std::chrono::steady_clock::now() - start);
    }
    return best;
  };
  const auto fill = [](std::span<std::byte> out) { std::memset(out.data(), 0, out.size()); };
  words->owner->store(77);  // a live producer holds the shared lane's lock
  EXPECT_LT(shortest([&](auto) { EXPECT_EQ(push_u64(*t.queue, lane, 5, 1), RingStatus::full); }), 5ms)
      << "a non-blocking push waited for the lock";
  EXPECT_LT(shortest([&](auto start) {
              EXPECT_EQ(t.queue->push(lane, 5, 8, fill, start + 30ms, [] { return false; }),
                        RingStatus::full);
            }),
            30ms + 8ms)
      << "a push overran its deadline";
  words->owner->store(0);
  ASSERT_EQ(push_u64(*t.queue, lane, 5, 1), RingStatus::ok);
  words->consumer->store(78);  // a live consumer holds the lane
  EXPECT_LT(shortest([&](auto start) {
              EXPECT_EQ(t.queue->pop([](std::span<const std::byte>) {}, start + 30ms, [] { return false; }),
                        RingStatus::empty);
            }),
            30ms + 8ms)
      << "a pop overran its deadline";
  words->consumer->store(0);
  EXPECT_EQ(pop_u64(*t.queue), 1U);
}

// A pop whose records wait behind a live holder's lock (a stopped or descheduled consumer) naps
// after kHolderPatience instead of spinning until its deadline: the thread's CPU time stays well
// under the time it waited.
TEST(LaneQueue, APopBehindALiveHolderNaps) {
  using Q = mproc::core::LaneQueue<mproc::detail::SharedFutex, ModelPolicy>;
  TestQueue<Q> t(1, 1024);
  ModelPolicy::dead.clear();
  std::uint32_t lane = t.queue->lane_for(5);
  ASSERT_EQ(push_u64(*t.queue, lane, 5, 1), RingStatus::ok);
  auto* words = lane_words(t, 0, 1024);
  words->consumer->store(78);  // a live consumer holds the lane
  const auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  const auto cpu_before = cpu_now();
  EXPECT_EQ(t.queue->pop([](std::span<const std::byte>) {}, std::chrono::steady_clock::now() + 200ms,
                         [] { return false; }),
            RingStatus::empty);
  EXPECT_LT(cpu_now() - cpu_before, 100ms) << "the pop spun for its whole wait";
  words->consumer->store(0);
  EXPECT_EQ(pop_u64(*t.queue), 1U);
}

// Records wait behind a consumer lock whose holder died: the next consumer takes the lock over
// (after kHolderPatience) and gets the record; a live holder's lock is left alone.
TEST(LaneQueue, AConsumerLockHeldByTheDeadIsTakenOver) {
  using Q = mproc::core::LaneQueue<mproc::detail::SharedFutex, ModelPolicy>;
  TestQueue<Q> t(2, 1024);
  ModelPolicy::dead.clear();
  std::uint32_t lane = t.queue->lane_for(7);
  ASSERT_EQ(push_u64(*t.queue, lane, 7, 42), RingStatus::ok);
  // A consumer (id 99) holds the lane's lock, as if it died between taking it and releasing it.
  auto* words = lane_words(t, lane, 1024);
  words->consumer->store(99);
  ModelPolicy::consumer = 1;
  const auto until = std::chrono::steady_clock::now() + 200ms;
  std::optional<std::uint64_t> got;
  while (!got && std::chrono::steady_clock::now() < until) got = pop_u64(*t.queue);
  EXPECT_FALSE(got) << "a live holder's lock was taken";
  ModelPolicy::dead.insert(99);
  got = t.queue->pop([](std::span<const std::byte>) {}, std::chrono::steady_clock::now() + 2s,
                     [] { return false; }) == RingStatus::ok
            ? std::optional<std::uint64_t>(42)
            : std::nullopt;
  EXPECT_EQ(got, 42U);
  EXPECT_EQ(words->consumer->load(), 0U) << "the lock is released after the pop";
}

// A hostile peer rewrites the header and the words: attach refuses a bad geometry; `used` out of
// range, foreign owners and garbage indices give errors or waits, never a crash.
TEST(LaneQueue, HostileHeaderAndWords) {
  using Q = mproc::core::LaneQueue<mproc::detail::SharedFutex, ModelPolicy>;
  TestQueue<Q> t(2, 1024);
  ModelPolicy::dead.clear();
  auto* shared = reinterpret_cast<Q::Shared*>(t.region.span().data());
  {
    const auto saved = *shared->geometry;
    shared->geometry->lanes = 1000;
    EXPECT_EQ(Q::attach(t.region.span()), nullptr);
    shared->geometry->lanes = saved.lanes;
    shared->geometry->capacity = 1U << 20;
    EXPECT_EQ(Q::attach(t.region.span()), nullptr) << "a capacity the region cannot hold";
    *shared->geometry = saved;
  }
  shared->used->store(0);
  EXPECT_EQ(pop_u64(*t.queue), std::nullopt);
  shared->used->store(~0U);
  EXPECT_EQ(pop_u64(*t.queue), std::nullopt);
  EXPECT_EQ(t.queue->approximate_size(), 0U);
  std::uint32_t lane = t.queue->lane_for(5);
  ASSERT_EQ(lane, 1U);
  ASSERT_EQ(push_u64(*t.queue, lane, 5, 9), RingStatus::ok);
  // The lane's tail moved far ahead by a peer: corruption, and the lane goes on afterwards.
  auto* ring = reinterpret_cast<mproc::core::SpscRing<>::Shared*>(
      t.region.span().data() + sizeof(Q::Shared) + Q::lane_stride(1024) + sizeof(Q::LaneWords));
  ring->tail->store(ring->tail->load() + (1U << 30));
  RingStatus s{};
  EXPECT_EQ(pop_u64(*t.queue, &s), std::nullopt);
  EXPECT_EQ(s, RingStatus::corrupted);
  // The lane's owner word rewritten: the owner looks its lane up again and goes on.
  auto* words = lane_words(t, 1, 1024);
  words->owner->store(12345);
  EXPECT_FALSE(t.queue->holds(lane, 5));
  EXPECT_EQ(push_u64(*t.queue, lane, 5, 10), RingStatus::ok);
  EXPECT_EQ(lane, Q::kSharedLane) << "the only owned lane is someone else's now";
  EXPECT_EQ(pop_u64(*t.queue), 10U);
}

// ---- threads (also under ThreadSanitizer) ----------------------------------------------------

// Producers (each a thread: the production policy) send (id, sequence, checksum) with sizes that
// make pads; consumers check per-producer FIFO, and the union of what they got is every message
// exactly once. More producers than lanes: some share lane 0.
void stress_with_threads(int producers, int consumers, int per_producer, std::uint32_t lanes) {
  using Q = mproc::core::LaneQueue<>;
  TestQueue<Q> t(lanes, 1024);
  // One view for every thread, as in a process; each producer looks up its lane.
  const auto make_pusher = [&] {
    return [&q = *t.queue, self = mproc::core::LanePolicy::producer_self(), lane = std::uint32_t{~0U}](
               std::size_t size, const auto& fill) mutable {
      if (lane == ~0U) lane = q.lane_for(self);
      return q.push(lane, self, size, fill, std::nullopt, [] { return false; }) == RingStatus::ok;
    };
  };
  const auto make_popper = [&] {
    return [&q = *t.queue](const auto& consume, auto deadline, const auto& stop) {
      const auto s = q.pop(consume, deadline, stop);
      EXPECT_NE(s, RingStatus::corrupted);
      return s == RingStatus::ok;
    };
  };
  mproc_test::run_stress(
      producers, consumers, per_producer, make_pusher, make_popper, [&] { t.queue->wake_all(); },
      [&] { return !t.queue->any_unread(); });
}

TEST(LaneQueue, ThreadsOneToOne) {
  stress_with_threads(1, 1, 20'000, 4);
}
TEST(LaneQueue, ThreadsManyToMany) {
  stress_with_threads(4, 3, 5'000, 8);
}
TEST(LaneQueue, ThreadsMoreProducersThanLanes) {
  stress_with_threads(6, 2, 3'000, 3);
}

// A thread that exits leaves its lane to the next thread that needs one.
TEST(LaneQueue, AnExitedThreadsLaneIsTakenOver) {
  using Q = mproc::core::LaneQueue<>;
  TestQueue<Q> t(2, 1024);
  std::uint32_t first = 0;
  std::thread([&] {
    const std::uint64_t self = mproc::core::LanePolicy::producer_self();
    first = t.queue->lane_for(self);
    ASSERT_EQ(push_u64(*t.queue, first, self, 1), RingStatus::ok);
  }).join();
  ASSERT_EQ(first, 1U);
  ASSERT_EQ(pop_u64(*t.queue), 1U);
  std::uint32_t second = 0;
  std::thread([&] { second = t.queue->lane_for(mproc::core::LanePolicy::producer_self()); }).join();
  EXPECT_EQ(second, first) << "the exited thread's lane was not taken over";
}

// ---- processes killed inside push and pop ----------------------------------------------------

struct KillingPolicy : mproc::core::LanePolicy {
  static inline std::optional<LaneStep> kill_at;
  static void at(LaneStep step) noexcept {
    if (kill_at == step) ::kill(::getpid(), SIGKILL);
  }
};
using KillQueue = mproc::core::LaneQueue<mproc::detail::SharedFutex, KillingPolicy>;

// Forked children, killed and reaped at scope exit whatever the test's outcome.
class Forked {
 public:
  Forked() = default;
  Forked(const Forked&) = delete;
  Forked& operator=(const Forked&) = delete;
  ~Forked() {
    for (const pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  template <class F>
  pid_t start(F body) {
    const pid_t pid = fork();
    if (pid == 0) {
      body();
      _exit(0);
    }
    pids_.push_back(pid);
    return pid;
  }
  int wait(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
    return status;
  }

 private:
  std::vector<pid_t> pids_;
};

struct KillCase {
  LaneStep step;
  std::uint32_t lanes;  // 1: the victim producer writes the shared lane, under its lock
};

class LaneKilledAtStep : public testing::TestWithParam<KillCase> {};

// One process dies at the step; the others go on: at most the victim's message is lost (a
// consumer that dies before giving its record back loses nothing), never another's, and nothing
// waits forever.
TEST_P(LaneKilledAtStep, OthersGoOn) {
  const auto [step, lanes] = GetParam();
  TestQueue<KillQueue> t(lanes, 1024);
  const bool producer_step = step == LaneStep::push_filled;
  {
    const std::uint64_t self = KillingPolicy::producer_self();
    std::uint32_t lane = t.queue->lane_for(self);
    ASSERT_EQ(push_u64(*t.queue, lane, self, 0), RingStatus::ok);
  }
  Forked children;
  const pid_t victim = children.start([&] {
    KillingPolicy::kill_at = step;
    if (producer_step) {
      const std::uint64_t self = KillingPolicy::producer_self();
      std::uint32_t lane = t.queue->lane_for(self);
      (void)push_u64(*t.queue, lane, self, 77);
    } else {
      (void)t.queue->try_pop([](std::span<const std::byte>) {});
    }
    _exit(3);  // the step was not reached
  });
  const int status = children.wait(victim);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the victim did not reach the step";
  const int kMore = 1000;
  const pid_t producer = children.start([&] {
    const std::uint64_t self = KillingPolicy::producer_self();
    std::uint32_t lane = t.queue->lane_for(self);
    for (std::uint64_t v = 100; v < 100 + kMore; ++v) {
      if (push_u64(*t.queue, lane, self, v) == RingStatus::ok) continue;
      const auto s = t.queue->push(
          lane, self, 8, [&](std::span<std::byte> out) { std::memcpy(out.data(), &v, 8); },
          std::chrono::steady_clock::now() + 10s, [] { return false; });
      if (s != RingStatus::ok) _exit(1);
    }
  });
  std::vector<std::uint64_t> got;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::uint64_t v = 0;
  const auto take = [&](std::span<const std::byte> in) {
    std::memcpy(&v, in.data(), 8);
    got.push_back(v);
  };
  // The first message comes back when a consumer victim died before giving it back; it waits
  // behind the dead victim's lock for kHolderPatience first.
  const std::ptrdiff_t first_expected = step == LaneStep::pop_released ? 0 : 1;
  while ((std::count_if(got.begin(), got.end(), [](std::uint64_t x) { return x >= 100; }) < kMore ||
          std::count(got.begin(), got.end(), 0U) < first_expected) &&
         std::chrono::steady_clock::now() < deadline) {
    (void)t.queue->pop(take, std::chrono::steady_clock::now() + 100ms, [] { return false; });
  }
  EXPECT_EQ(children.wait(producer), 0);
  while (t.queue->try_pop(take) == RingStatus::ok) {
  }
  std::vector<std::uint64_t> others;
  for (auto x : got) {
    if (x >= 100) others.push_back(x);
  }
  ASSERT_EQ(others.size(), static_cast<std::size_t>(kMore)) << "a survivor's message was lost";
  for (std::size_t i = 0; i < others.size(); ++i) EXPECT_EQ(others[i], 100 + i);
  const auto count = [&](std::uint64_t x) { return std::count(got.begin(), got.end(), x); };
  EXPECT_EQ(count(77), 0) << "a record the victim never published was delivered";
  // The first message: a consumer victim that died before giving it back lost nothing.
  EXPECT_EQ(count(0), first_expected);
}

std::string kill_case_name(const testing::TestParamInfo<KillCase>& param) {
  static constexpr std::array<const char*, 3> kSteps = {"push_filled", "pop_read", "pop_released"};
  return std::string(kSteps.at(static_cast<std::size_t>(param.param.step))) +
         (param.param.lanes == 1 ? "_shared_lane" : "_own_lane");
}

INSTANTIATE_TEST_SUITE_P(LaneQueue, LaneKilledAtStep,
                         testing::Values(KillCase{LaneStep::push_filled, 4},
                                         KillCase{LaneStep::push_filled, 1}, KillCase{LaneStep::pop_read, 4},
                                         KillCase{LaneStep::pop_released, 4}),
                         kill_case_name);

}  // namespace
