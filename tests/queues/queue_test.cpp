// mproc::Queue, SimpleQueue and JoinableQueue: CPython's API and errors, message types, and
// producers and consumers in several processes under fork and spawn.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "children.hpp"
#include "expect_error.hpp"
#include "mproc/process.hpp"
#include "mproc/queues.hpp"
#include "mproc/synchronize.hpp"
#include "shared_memory/shm_test_support.hpp"

using namespace std::chrono_literals;

namespace {

using mproc_test::Children;

const mproc::StartMethod kMethods[] = {mproc::StartMethod::fork, mproc::StartMethod::spawn};

struct Reading {  // an aggregate: encoded by reflection, no user code
  int sensor;
  double value;
  std::string unit;
  bool operator==(const Reading&) const = default;
};

TEST(Queue, CarriesEveryKindOfMessageInOrder) {
  mproc::Queue<int> ints;
  for (int i = 0; i < 100; ++i) ints.put(i);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(ints.get(), i);

  mproc::Queue<std::string> strings;
  strings.put("");
  strings.put(std::string(1000, 'x'));
  strings.put("流水灯");
  EXPECT_EQ(strings.get(), "");
  EXPECT_EQ(strings.get(), std::string(1000, 'x'));
  EXPECT_EQ(strings.get(), "流水灯");

  mproc::Queue<std::optional<int>> with_sentinel;  // seed 001's None sentinel
  with_sentinel.put(7);
  with_sentinel.put(std::nullopt);
  EXPECT_EQ(with_sentinel.get(), 7);
  EXPECT_EQ(with_sentinel.get(), std::nullopt);

  using Mixed = std::tuple<std::map<std::string, std::vector<int>>, std::variant<int, std::string>, Reading>;
  mproc::Queue<Mixed> mixed;
  const Mixed m{{{"a", {1, 2}}, {"b", {}}}, std::string("v"), Reading{3, 21.5, "°C"}};
  mixed.put(m);
  EXPECT_EQ(mixed.get(), m);
}

TEST(Queue, EmptyAndFullAsInCPython) {
  mproc::Queue<int> q(2);
  EXPECT_TRUE(q.empty());
  expect_error<mproc::Empty>([&] { q.get_nowait(); }, "the queue is empty");
  expect_error<mproc::Empty>([&] { q.get(false); }, "the queue is empty");
  EXPECT_EQ(q.try_get(), std::nullopt);
  const auto start = std::chrono::steady_clock::now();
  expect_error<mproc::Empty>([&] { q.get(50ms); }, "the queue is empty");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 45ms);
  expect_error<mproc::Empty>([&] { q.get(-1s); }, "the queue is empty");  // negative: at once

  q.put(1);
  q.put(2);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 2U);
  expect_error<mproc::Full>([&] { q.put_nowait(3); }, "the queue is full");
  expect_error<mproc::Full>([&] { q.put(3, false); }, "the queue is full");
  expect_error<mproc::Full>([&] { q.put(3, 20ms); }, "the queue is full");
  EXPECT_FALSE(q.try_put(3));
  EXPECT_EQ(q.get(), 1);
  EXPECT_TRUE(q.try_put(3));
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
  EXPECT_EQ(q.qsize(), 0U);
}

TEST(Queue, TooLargeMessagesFailBeforeAnythingIsWritten) {
  mproc::Queue<std::string> q(mproc::QueueOptions{.maxsize = 4, .slot_size = 64});
  EXPECT_EQ(q.max_message(), 4 * 64 - 8U);
  q.put("first");
  expect_error<mproc::ValueError>(
      [&] { q.put(std::string(1000, 'x')); },
      "a message of 1008 encoded bytes is larger than this queue's 248-byte limit "
      "(QueueOptions::slot_size and maxsize set it)");
  EXPECT_EQ(q.qsize(), 1U);
  EXPECT_EQ(q.get(), "first");
  expect_error<mproc::ValueError>([] { mproc::Queue<int>(mproc::QueueOptions{.slot_size = 48}); },
                                  "Queue slot_size must be a power of two between 16 and 1 MiB");
}

TEST(Queue, UseAfterCloseIsAnErrorAndWakesABlockedGet) {
  mproc::Queue<int> q;
  mproc::Queue<int> copy = q;  // the same queue object in this process, as a Python reference
  std::thread getter([&] { expect_error<mproc::ValueError>([&] { copy.get(); }, "Queue is closed"); });
  std::this_thread::sleep_for(30ms);
  expect_error<mproc::ValueError>([&] { q.join_thread(); }, "Queue.join_thread() called before close()");
  q.close();
  getter.join();
  expect_error<mproc::ValueError>([&] { q.put(1); }, "Queue is closed");
  expect_error<mproc::ValueError>([&] { q.get_nowait(); }, "Queue is closed");
  q.close();  // idempotent
  q.join_thread();
  q.cancel_join_thread();
}

TEST(Queue, SharedObjectsCannotTravelInsideMessages) {
  mproc::Queue<mproc::Lock> locks;
  mproc::Lock lock;
  expect_error<mproc::ValueError>(
      [&] { locks.put(lock); },
      "a Queue message cannot carry shared objects (Lock, Queue, Value, ...): pass them to the "
      "Process as arguments instead, as CPython requires");
  EXPECT_TRUE(locks.empty());
}

// Seed 001's producer and consumer: the producer puts 0..n-1 then None; the consumer sums.
void produce(mproc::Queue<std::optional<int>> q, int n) {
  for (int i = 0; i < n; ++i) q.put(i);
  q.put(std::nullopt);
}

void consume(mproc::Queue<std::optional<int>> q, mproc::Queue<long> results) {
  long sum = 0;
  while (auto item = q.get()) sum += *item;
  results.put(sum);
}

TEST(Queue, ProducerAndConsumerProcesses) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto ctx = mproc::get_context(method);
    Children children;
    mproc::Queue<std::optional<int>> q(8);  // small: the producer must block and be woken
    mproc::Queue<long> results;
    children.start(ctx.Process(consume, q, results));
    children.start(ctx.Process(produce, q, 10'000));
    EXPECT_EQ(results.get(20s), 10'000L * 9'999 / 2);
    children.expect_all_exit(0);
  }
}

// Several producers and consumers, more processes than cores: every message exactly once, in
// order per producer, checked in the consumers and here.
// `markers` end markers ({-1, id}) after its messages.
void tagged_producer(mproc::Queue<std::pair<int, int>> q, int id, int n, int markers) {
  for (int i = 0; i < n; ++i) q.put({id, i});
  for (int c = 0; c < markers; ++c) q.put({-1, id});
}

// Stops at its `stops`-th end marker and reports, per producer: how many messages it got and the
// sum of their indices.
void checking_consumer(mproc::Queue<std::pair<int, int>> q, mproc::Queue<std::vector<long>> reports,
                       int producers, int stops) {
  std::vector<int> next(producers, 0);
  std::vector<long> report(2 * producers, 0);
  for (int seen = 0; seen < stops;) {
    const auto [id, i] = q.get(20s);
    if (id < 0) {
      ++seen;
      continue;
    }
    if (id >= producers || i < next[id]) throw std::runtime_error("per-producer FIFO broken");
    next[id] = i + 1;
    report[id] += 1;
    report[producers + id] += i;
  }
  reports.put(report);
}

// Every consumer reported, exited 0 (one that saw a message out of order exits 1), and together
// they got each producer's messages once.
void expect_every_message_once(mproc::Queue<std::vector<long>>& reports, Children& children, int producers,
                               int consumers, int each) {
  std::vector<long> total(2 * producers, 0);
  for (int c = 0; c < consumers; ++c) {
    const auto report = reports.get(30s);
    for (int i = 0; i < 2 * producers; ++i) total[i] += report[i];
  }
  children.expect_all_exit(0);
  for (int p = 0; p < producers; ++p) {
    EXPECT_EQ(total[p], each) << "producer " << p << ": messages lost or duplicated";
    EXPECT_EQ(total[producers + p], long{each} * (each - 1) / 2) << "producer " << p;
  }
}

TEST(Queue, ManyProducersManyConsumersExactlyOnce) {
  const int kProducers = 3, kConsumers = 3, kEach = 5'000;
  Children children;
  mproc::Queue<std::pair<int, int>> q(64);
  mproc::Queue<std::vector<long>> reports;
  for (int c = 0; c < kConsumers; ++c)
    children.start(mproc::Process(checking_consumer, q, reports, kProducers, 1));
  std::vector<mproc::Process*> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.push_back(&children.start(mproc::Process(tagged_producer, q, p, kEach, 0)));
  for (auto* p : producers) EXPECT_TRUE(p->join(30s));
  for (int c = 0; c < kConsumers; ++c) q.put({-1, 0});  // after every message: the ring keeps that order
  expect_every_message_once(reports, children, kProducers, kConsumers, kEach);
  EXPECT_TRUE(q.empty());
}

// ---- QueueOptions::lanes: FIFO per producing thread ----------------------------------------

// With lanes, a sentinel put after joining the producers may overtake their messages, so each
// producer puts one per consumer after its own messages, and a consumer stops at its
// `producers`-th: when the last is taken, every lane's messages before it have been.
TEST(LanesQueue, ManyProducersManyConsumersExactlyOnce) {
  // 3 lanes: two producers own one each, the third writes the shared lane.
  const int kProducers = 3, kConsumers = 3, kEach = 5'000;
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto ctx = mproc::get_context(method);
    Children children;
    mproc::Queue<std::pair<int, int>> q(mproc::QueueOptions{.lanes = 3});
    mproc::Queue<std::vector<long>> reports;
    for (int c = 0; c < kConsumers; ++c)
      children.start(ctx.Process(checking_consumer, q, reports, kProducers, kProducers));
    for (int p = 0; p < kProducers; ++p)
      children.start(ctx.Process(tagged_producer, q, p, kEach, kConsumers));
    expect_every_message_once(reports, children, kProducers, kConsumers, kEach);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.qsize(), 0U);
  }
}

// Scalars take the inline paths (an owned lane, the sticky lane); threads of one process each
// get a lane; errors and close() as for the default queue.
TEST(LanesQueue, ThreadsScalarsErrorsAndClose) {
  expect_error<mproc::ValueError>([] { mproc::Queue<int>(mproc::QueueOptions{.maxsize = 4, .lanes = 2}); },
                                  "Queue lanes cannot be combined with maxsize or spsc");
  expect_error<mproc::ValueError>([] { mproc::Queue<int>(mproc::QueueOptions{.lanes = 300}); },
                                  "Queue lanes must be between 1 and 256 (0: no lanes)");
  mproc::Queue<std::uint64_t> q(mproc::QueueOptions{.lanes = 4});
  EXPECT_TRUE(q.empty());
  expect_error<mproc::Empty>([&] { q.get_nowait(); }, "the queue is empty");
  const int kThreads = 5, kEach = 20'000;  // more threads than owned lanes
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < kEach; ++i) q.put((std::uint64_t(t) << 32) | i);
    });
  }
  std::vector<std::uint64_t> next(kThreads, 0);
  for (int n = 0; n < kThreads * kEach; ++n) {
    const std::uint64_t v = q.get(10s);
    const auto t = static_cast<std::size_t>(v >> 32);
    ASSERT_LT(t, next.size());
    ASSERT_EQ(v & 0xffffffffU, next[t]) << "thread " << t << ": lost or out of order";
    ++next[t];
  }
  for (auto& th : producers) th.join();
  EXPECT_TRUE(q.empty());
  mproc::Queue<std::string> strings(mproc::QueueOptions{.lanes = 2});
  EXPECT_EQ(strings.max_message(), 2 * 4096 * 64 / 2 - 8);
  expect_error<mproc::ValueError>(
      [&] { strings.put(std::string(strings.max_message(), 'x')); },
      "a message of 262144 encoded bytes is larger than this queue's 262136-byte limit "
      "(QueueOptions::slot_size and maxsize set it)");
  std::thread getter([&] { expect_error<mproc::ValueError>([&] { q.get(); }, "Queue is closed"); });
  std::this_thread::sleep_for(30ms);
  q.close();
  getter.join();
  expect_error<mproc::ValueError>([&] { q.put(1); }, "Queue is closed");
}

// FIFO per thread holds for a thread that wrote the shared lane and then used another queue (its
// seat forgot this one): it does not move to a freed lane while its earlier message waits in the
// shared one, even when the consumer's next pop starts at the freed lane.
TEST(LanesQueue, AThreadThatWroteTheSharedLaneKeepsItsOrder) {
  mproc::Queue<int> q(mproc::QueueOptions{.lanes = 2});  // one owned lane and the shared one
  mproc::Queue<int> other(mproc::QueueOptions{.lanes = 2});
  std::atomic<int> step{0};
  const auto await = [&](int s) {
    while (step.load() < s) std::this_thread::yield();
  };
  std::thread owner([&] {
    q.put(1);  // takes the owned lane, and keeps it while it runs
    step = 1;
    await(3);
  });
  std::thread writer([&] {
    await(2);
    q.put(2);      // the owned lane's owner runs: the shared lane
    other.put(9);  // the seat moves to the other queue
    step = 3;      // the owner exits, its lane is free to take over
    await(4);
    q.put(3);  // must not overtake 2 through the freed lane
  });
  await(1);
  EXPECT_EQ(q.get(5s), 1);  // this consumer's next pop starts at the owned lane
  step = 2;
  await(3);
  owner.join();
  step = 4;
  writer.join();
  EXPECT_EQ(q.get(5s), 2);
  EXPECT_EQ(q.get(5s), 3);
  EXPECT_EQ(other.get(5s), 9);
}

void work_and_mark_done(mproc::JoinableQueue<int> jobs, mproc::Queue<int> done) {
  for (;;) {
    const int job = jobs.get();
    if (job < 0) {
      jobs.task_done();
      return;
    }
    done.put(job * job);
    jobs.task_done();
  }
}

TEST(JoinableQueue, JoinWaitsForEveryTaskAcrossProcesses) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    Children children;
    mproc::JoinableQueue<int> jobs;
    mproc::Queue<int> done;
    children.start(mproc::get_context(method).Process(work_and_mark_done, jobs, done));
    children.start(mproc::get_context(method).Process(work_and_mark_done, jobs, done));
    for (int i = 1; i <= 200; ++i) jobs.put(i);
    jobs.join();
    long sum = 0;
    for (int i = 1; i <= 200; ++i) sum += done.get_nowait();  // every result is already there
    EXPECT_EQ(sum, 200L * 201 * 401 / 6);
    jobs.put(-1);
    jobs.put(-1);
    jobs.join();
    children.expect_all_exit(0);
  }
}

TEST(JoinableQueue, ExtraTaskDoneIsAnError) {
  mproc::JoinableQueue<int> q(1);
  expect_error<mproc::ValueError>([&] { q.task_done(); }, "task_done() called too many times");
  q.put(1);
  EXPECT_FALSE(q.try_put(2));  // full: the failed put does not count as a task
  EXPECT_EQ(q.get(), 1);
  q.task_done();
  q.join();  // nothing unfinished: returns at once
  expect_error<mproc::ValueError>([&] { q.task_done(); }, "task_done() called too many times");
}

TEST(SimpleQueue, PutGetEmptyClose) {
  mproc::SimpleQueue<std::string> q;
  EXPECT_TRUE(q.empty());
  q.put("a");
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.get(), "a");
  q.close();
  expect_error<mproc::ValueError>([&] { q.put("b"); }, "Queue is closed");
}

}  // namespace

namespace {

using mproc_shm_test::segment_exists;
using mproc_shm_test::ShmName;

void open_by_name_and_answer(std::string name, int base) {
  auto q = mproc::Queue<int>::open(name);
  const int v = q.get(10s);
  q.put(v + base);
}

TEST(NamedQueue, UnrelatedProcessesOpenItByNameAndItsOwnerCleansUp) {
  const ShmName guard("named-queue");  // unlinks the name even if an assertion below fails
  const std::string& name = guard.str();
  {
    auto q = mproc::Queue<int>::create(name, 16);
    EXPECT_EQ(q.name(), name);
    EXPECT_TRUE(segment_exists(name));
    for (auto method : kMethods) {
      SCOPED_TRACE(std::string(mproc::to_string(method)));
      Children children;
      // The child gets only the name, as an unrelated program would.
      children.start(mproc::get_context(method).Process(open_by_name_and_answer, name, 100));
      q.put(1);
      std::this_thread::sleep_for(50ms);  // let the child take it
      EXPECT_EQ(q.get(10s), 101);
      children.expect_all_exit(0);
    }
    // A second handle opened by name in this process reaches the same queue.
    auto again = mproc::Queue<int>::open(name);
    again.put(5);
    EXPECT_EQ(q.get(), 5);
    expect_error<mproc::FileExistsError>([&] { mproc::Queue<int>::create(name); },
                                         "cannot create Queue '" + name + "': File exists");
  }
  EXPECT_FALSE(segment_exists(name)) << "the owner's last handle did not unlink the name";
}

TEST(NamedQueue, OpeningValidatesTheMessageTypeAndTheName) {
  const ShmName guard("typed-queue");
  const std::string& name = guard.str();
  auto q = mproc::Queue<int>::create(name);
  expect_error<mproc::ValueError>([&] { mproc::Queue<std::string>::open(name); },
                                  "cannot open Queue '" + name + "': it carries another message type");
  const std::string missing = mproc_shm_test::unique_name("missing");
  expect_error<mproc::FileNotFoundError>([&] { mproc::Queue<int>::open(missing); },
                                         "cannot open Queue '" + missing + "': No such file or directory");
  expect_error<mproc::ValueError>(
      [] { mproc::Queue<int>::create("bad/name"); },
      "cannot create Queue 'bad/name': invalid shared memory name: use 1 to 253 characters "
      "after an optional leading '/', without '/' or NUL, and not '.' or '..'");
}

// ---- QueueOptions::spsc: one producer process, one consumer process -------------------------

TEST(SpscQueue, FifoFullEmptyAndCloseAsTheDefaultQueue) {
  mproc::Queue<std::uint64_t> q(mproc::QueueOptions{.maxsize = 4, .spsc = true});
  EXPECT_TRUE(q.empty());
  expect_error<mproc::Empty>([&] { q.get_nowait(); }, "the queue is empty");
  for (std::uint64_t i = 0; i < 4; ++i) q.put(i);
  EXPECT_EQ(q.qsize(), 4U);
  EXPECT_TRUE(q.full());
  expect_error<mproc::Full>([&] { q.put(9, 10ms); }, "the queue is full");
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(q.get(), i);
  EXPECT_EQ(q.try_get(), std::nullopt);

  mproc::Queue<std::string> strings(mproc::QueueOptions{.spsc = true});
  strings.put("流水灯");
  strings.put(std::string(10'000, 'x'));
  EXPECT_EQ(strings.get(), "流水灯");
  EXPECT_EQ(strings.get(), std::string(10'000, 'x'));
  expect_error<mproc::ValueError>([&] { strings.put(std::string(strings.max_message() + 1, 'y')); },
                                  "a message of " + std::to_string(strings.max_message() + 9) +
                                      " encoded bytes is larger than this queue's " +
                                      std::to_string(strings.max_message()) +
                                      "-byte limit (QueueOptions::slot_size and maxsize set it)");

  mproc::Queue<std::uint64_t> fresh(mproc::QueueOptions{.spsc = true});
  std::thread getter([&fresh] { expect_error<mproc::ValueError>([&] { fresh.get(); }, "Queue is closed"); });
  std::this_thread::sleep_for(20ms);
  fresh.close();
  getter.join();
}

void spsc_produce(mproc::Queue<std::uint64_t> q, std::uint64_t n) {
  for (std::uint64_t i = 1; i <= n; ++i) q.put(i);
}

TEST(SpscQueue, OneProducerProcessToOneConsumer) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    Children children;
    mproc::Queue<std::uint64_t> q(mproc::QueueOptions{.maxsize = 64, .spsc = true});
    children.start(mproc::get_context(method).Process(spsc_produce, q, std::uint64_t{100'000}));
    for (std::uint64_t i = 1; i <= 100'000; ++i) ASSERT_EQ(q.get(10s), i);
    children.expect_all_exit(0);
  }
}

void put_one(mproc::Queue<std::uint64_t> q) {
  q.put(7);
}

void put_one_then_wait(mproc::Queue<std::uint64_t> q, mproc::Event done) {
  q.put(1);
  done.wait(20s);
}

TEST(SpscQueue, ASecondProducerIsAnErrorUntilTheFirstDies) {
  Children children;
  mproc::Queue<std::uint64_t> q(mproc::QueueOptions{.spsc = true});
  mproc::Event done;
  auto& first = children.start(mproc::Process(put_one_then_wait, q, done));
  EXPECT_EQ(q.get(10s), 1U);
  // While the first producer lives, this process cannot put.
  expect_error<mproc::ValueError>([&] { q.put(2); },
                                  "this Queue has one producer (QueueOptions::spsc), and process " +
                                      std::to_string(first.pid().value()) + " is it");
  done.set();
  EXPECT_TRUE(first.join(10s));
  // Once it is gone, another process takes the role over.
  auto& second = children.start(mproc::Process(put_one, q));
  EXPECT_EQ(q.get(10s), 7U);
  EXPECT_TRUE(second.join(10s));
  q.put(3);  // and so can this one now
  EXPECT_EQ(q.get(), 3U);
}

TEST(SpscQueue, ASecondThreadOfTheProducerProcessIsAnError) {
  mproc::Queue<std::uint64_t> q(mproc::QueueOptions{.spsc = true});
  q.put(1);  // this thread is the producer now
  std::thread other([&q] {
    try {
      q.put(2);
      ADD_FAILURE() << "a second producer thread was accepted";
    } catch (const mproc::ValueError& e) {
      EXPECT_NE(
          std::string(e.what()).find("this Queue has one producer thread (QueueOptions::spsc), and thread "),
          std::string::npos)
          << e.what();
    }
    EXPECT_EQ(q.get(), 1U);  // the consumer role is still free: this thread takes it
  });
  other.join();
  q.put(3);
  try {
    (void)q.get();  // the thread that took the consumer role has ended, but it holds the role
    ADD_FAILURE() << "a second consumer thread was accepted";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("this Queue has one consumer thread (QueueOptions::spsc)"),
              std::string::npos)
        << e.what();
  }
}

// A producer thread streams while another thread of the same process takes the consumer role
// mid-stream: claiming one role must not move the other role's position in the shared view (it
// did: the claim re-read both, and a put racing with it overwrote an unread record or re-sent
// one). Also run under ThreadSanitizer (make test-tsan), which reports the old race.
TEST(SpscQueue, ThreadsTakingTheTwoRolesMidStreamLoseNothing) {
  mproc::Queue<std::uint64_t> q(mproc::QueueOptions{.maxsize = 64, .spsc = true});
  constexpr std::uint64_t kValues = 50'000;
  std::atomic<bool> started{false};
  std::atomic<bool> done{false};
  std::thread producer([&] {
    for (std::uint64_t v = 1; v <= kValues; ++v) {
      q.put(v);
      started.store(true, std::memory_order_release);
    }
    done.store(true, std::memory_order_release);
  });
  while (!started.load(std::memory_order_acquire)) std::this_thread::yield();
  std::uint64_t expected = 1;
  try {
    for (; expected <= kValues; ++expected) {
      const std::uint64_t got = q.get(10s);  // a lost value would leave this waiting: Empty instead
      if (got != expected) break;
    }
  } catch (const std::exception&) {  // Empty after a loss; anything else fails the check below too
  }
  EXPECT_EQ(expected, kValues + 1) << "value " << expected << " was lost, repeated or reordered";
  while (!done.load(std::memory_order_acquire)) (void)q.try_get();  // unblock a producer left waiting
  producer.join();
  EXPECT_FALSE(q.try_get().has_value());
}

}  // namespace
