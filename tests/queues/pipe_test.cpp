// core::SpscRing (a deque model, threads, hostile indices) and Pipe/Connection: CPython's API and
// errors, fragments, zero-copy loans and views, end of file on close and on death, wait().
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "children.hpp"
#include "expect_error.hpp"
#include "mproc/connection.hpp"
#include "mproc/core/spsc_ring.hpp"
#include "mproc/process.hpp"
#include "shared_memory/shm_test_support.hpp"

using namespace std::chrono_literals;

namespace {

using mproc::core::RingStatus;
using mproc::core::SpscRing;
using mproc_shm_test::bytes;
using mproc_shm_test::ShmName;
using mproc_test::Children;

const mproc::StartMethod kMethods[] = {mproc::StartMethod::fork, mproc::StartMethod::spawn};

std::vector<std::byte> pattern(std::size_t size, unsigned seed) {
  std::vector<std::byte> out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::byte>((i * 131 + seed) >> 3);
  return out;
}

// ---- the ring --------------------------------------------------------------------------------

// Storage aligned as a mapping is: the ring's header is alignas(kCacheLine), more than operator
// new gives a std::vector by default.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{mproc::kCacheLine}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{mproc::kCacheLine}); }
  bool operator==(const CacheLineAllocator&) const noexcept { return true; }
};

struct RingRegion {
  explicit RingRegion(std::uint32_t capacity) : memory(SpscRing<>::region_size(capacity)) {
    ring = *SpscRing<>::create(std::span(memory), capacity);
  }
  std::vector<std::byte, CacheLineAllocator<std::byte>> memory;
  SpscRing<> ring;
};

bool push(SpscRing<>& ring, const std::vector<std::byte>& msg, std::uint8_t flags = 0) {
  auto r = ring.try_reserve(msg.size(), flags);
  if (r.status != RingStatus::ok) return false;
  if (!msg.empty()) std::memcpy(r.payload.data(), msg.data(), msg.size());
  ring.commit();
  return true;
}

// A model of the ring's contents: each message and the position where its record ends.
using RingModel = std::deque<std::pair<std::vector<std::byte>, std::uint64_t>>;

// try_peek + release against the model: empty when the model is, else its front message (whose
// end becomes the model's head).
void peek_and_check(SpscRing<>& ring, RingModel& model, std::uint64_t& head) {
  auto p = ring.try_peek();
  if (model.empty()) {
    RC_ASSERT(p.status == RingStatus::empty);
    return;
  }
  RC_ASSERT(p.status == RingStatus::ok);
  RC_ASSERT(std::vector<std::byte>(p.payload.begin(), p.payload.end()) == model.front().first);
  head = model.front().second;
  model.pop_front();
  ring.release();
}

// The ring against a model that counts bytes as the ring does: 8-byte aligned records of a header
// and the payload, and a pad when a record would cross the end.
RC_GTEST_PROP(SpscRingModel, MatchesADequeOfMessages, ()) {
  const std::uint32_t capacity = 1U << *rc::gen::inRange(6, 11);
  RingRegion r(capacity);
  // Both ways of keeping the producer's position (a Pipe's private copy, a Queue's shared index).
  r.ring.use_private_tail(*rc::gen::arbitrary<bool>());
  RingModel model;
  std::uint64_t tail = 0, head = 0;
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 1000));
  unsigned seed = 0;
  for (int op : ops) {
    if (op % 3 != 0) {
      const auto size = static_cast<std::size_t>(op % (capacity / 2));
      const auto msg = pattern(size, seed++);
      const bool ok = push(r.ring, msg);
      if (size > r.ring.max_record()) {
        RC_ASSERT(!ok);
        continue;
      }
      const std::uint64_t need = (8 + size + 7) & ~std::uint64_t{7};
      const std::uint64_t offset = tail % capacity;
      const std::uint64_t pad = offset + need > capacity ? capacity - offset : 0;
      const bool fits = tail + pad + need - head <= capacity;
      RC_ASSERT(ok == fits);
      if (ok) {
        tail += pad + need;
        model.emplace_back(msg, tail);
      }
    } else {
      peek_and_check(r.ring, model, head);
    }
  }
}

// The fixed-size fast paths (try_push_fixed / try_pop_fixed, what Pipe::send<T> and an spsc
// Queue<T> of a plain scalar run inline) mixed with the general ones, against the same model:
// they lay out and accept exactly what try_reserve and try_peek do, and a fixed pop of a record
// of another size consumes nothing.
RC_GTEST_PROP(SpscRingModel, FixedPathsAgreeWithTheGeneralOnes, ()) {
  const std::uint32_t capacity = 1U << *rc::gen::inRange(6, 10);
  RingRegion r(capacity);
  // Both ways of keeping the producer's position (a Pipe's private copy, a Queue's shared index).
  r.ring.use_private_tail(*rc::gen::arbitrary<bool>());
  RingModel model;
  std::uint64_t tail = 0, head = 0;
  const auto ops = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 1000));
  std::uint64_t next = 1;
  for (int op : ops) {
    if (op % 4 < 2) {  // push: an 8-byte value through the fixed path, or a message of 0-23 bytes
      const bool fixed = op % 4 == 0;
      std::vector<std::byte> msg(fixed ? 8 : static_cast<std::size_t>(op % 24));
      std::memcpy(msg.data(), &next, std::min<std::size_t>(msg.size(), 8));
      ++next;
      const bool ok = fixed ? r.ring.try_push_fixed<8>(msg.data()) : push(r.ring, msg);
      const std::uint64_t need = (8 + msg.size() + 7) & ~std::uint64_t{7};
      const std::uint64_t offset = tail % capacity;
      const std::uint64_t pad = offset + need > capacity ? capacity - offset : 0;
      RC_ASSERT(ok == (tail + pad + need - head <= capacity));
      if (ok) {
        tail += pad + need;
        model.emplace_back(msg, tail);
      }
    } else if (op % 4 == 2) {  // a fixed pop: only a whole 8-byte record at the front
      std::uint64_t value = 0;
      const bool ok = r.ring.try_pop_fixed<8>(&value);
      const bool front_is_8 = !model.empty() && model.front().first.size() == 8;
      // A pad before the front record sends the fixed path to the general one: it may say no.
      if (!front_is_8) RC_ASSERT(!ok);
      if (ok) {
        RC_ASSERT(std::memcmp(&value, model.front().first.data(), 8) == 0);
        head = model.front().second;
        model.pop_front();
      }
    } else {
      peek_and_check(r.ring, model, head);
    }
  }
  while (!model.empty()) peek_and_check(r.ring, model, head);  // the rest, in order
  RC_ASSERT(r.ring.try_peek().status == RingStatus::empty);
}

TEST(SpscRing, StreamsBetweenThreadsWithoutLossOrTearing) {
  RingRegion r(4096);
  const int kMessages = 200'000;
  std::thread producer([&] {
    SpscRing<> ring = r.ring;
    for (int i = 0; i < kMessages; ++i) {
      const std::size_t size = 8 + static_cast<std::size_t>(i % 300);
      for (;;) {
        auto res = ring.try_reserve(size, static_cast<std::uint8_t>(i & 0xff));
        if (res.status == RingStatus::ok) {
          std::memset(res.payload.data(), i & 0xff, size);
          std::memcpy(res.payload.data(), &i, sizeof i);
          ring.commit();
          break;
        }
        ASSERT_EQ(res.status, RingStatus::full);
        (void)ring.wait_writable(size, std::nullopt, [] { return false; });
      }
    }
  });
  SpscRing<> ring = r.ring;
  for (int i = 0; i < kMessages; ++i) {
    auto p = ring.try_peek();
    while (p.status == RingStatus::empty) {
      (void)ring.wait_readable(std::nullopt, [] { return false; });
      p = ring.try_peek();
    }
    ASSERT_EQ(p.status, RingStatus::ok);
    ASSERT_EQ(p.payload.size(), 8 + static_cast<std::size_t>(i % 300));
    ASSERT_EQ(p.flags, static_cast<std::uint8_t>(i & 0xff));
    int seen = 0;
    std::memcpy(&seen, p.payload.data(), sizeof seen);
    ASSERT_EQ(seen, i);
    for (std::size_t b = sizeof seen; b < p.payload.size(); ++b) ASSERT_EQ(p.payload[b], std::byte(i & 0xff));
    ring.release();
  }
  producer.join();
}

TEST(SpscRing, HostileIndicesAndHeadersAreCorruptionNotCrashes) {
  RingRegion r(256);
  ASSERT_TRUE(push(r.ring, bytes("hello")));
  auto* tail =
      reinterpret_cast<std::atomic<std::uint64_t>*>(r.memory.data() + offsetof(SpscRing<>::Shared, tail));
  auto* head =
      reinterpret_cast<std::atomic<std::uint64_t>*>(r.memory.data() + offsetof(SpscRing<>::Shared, head));
  // A hostile writer moves tail far ahead of anything a ring of this size can hold.
  tail->store(1ULL << 40);
  SpscRing<> consumer = *SpscRing<>::attach(std::span(r.memory));
  EXPECT_EQ(consumer.try_peek().status, RingStatus::corrupted);
  tail->store(16);
  // A record header claiming more bytes than were published.
  std::uint64_t bogus = 200;
  std::memcpy(r.memory.data() + SpscRing<>::data_offset(), &bogus, sizeof bogus);
  SpscRing<> again = *SpscRing<>::attach(std::span(r.memory));
  EXPECT_EQ(again.try_peek().status, RingStatus::corrupted);
  // A head beyond the tail stops the producer with an error instead of overwriting.
  head->store(1ULL << 50);
  SpscRing<> producer = *SpscRing<>::attach(std::span(r.memory));
  std::vector<std::byte> big(100);
  std::uint32_t attempts = 0;
  RingStatus last = RingStatus::ok;
  for (; attempts < 10 && last == RingStatus::ok; ++attempts) {
    auto res = producer.try_reserve(big.size());
    last = res.status;
    if (last == RingStatus::ok) producer.commit();
  }
  EXPECT_EQ(last, RingStatus::corrupted);
  // The fixed-size fast paths refuse the same hostile indices (the general paths then say why).
  SpscRing<> fixed_producer = *SpscRing<>::attach(std::span(r.memory));
  const std::uint64_t value = 7;
  bool pushed = true;
  for (int i = 0; i < 40 && pushed; ++i) pushed = fixed_producer.try_push_fixed<8>(&value);
  EXPECT_FALSE(pushed);
  EXPECT_EQ(fixed_producer.try_reserve(8).status, RingStatus::corrupted);
  tail->store(1ULL << 40);
  SpscRing<> fixed_consumer = *SpscRing<>::attach(std::span(r.memory));
  std::uint64_t out = 0;
  EXPECT_FALSE(fixed_consumer.try_pop_fixed<8>(&out));
  EXPECT_EQ(fixed_consumer.try_peek().status, RingStatus::corrupted);
  // A header with a capacity that is not a power of two, or beyond the region, is refused.
  auto* geometry = reinterpret_cast<std::uint32_t*>(r.memory.data() + offsetof(SpscRing<>::Shared, geometry));
  *geometry = 1000;
  EXPECT_FALSE(SpscRing<>::attach(std::span(r.memory)));
  *geometry = 1U << 20;
  EXPECT_FALSE(SpscRing<>::attach(std::span(r.memory)));
}

// A side's own position is its shared index, so a hostile peer can move it under a live view:
// the consumer must see corruption, not loop (a head moved past the cached tail once made try_peek
// skip "pads" for 2^58 rounds) or report "empty" forever (a published pad with nothing after it).
TEST(SpscRing, AHeadMovedUnderTheConsumerIsCorruptionNotALoop) {
  RingRegion r(256);
  auto* tail =
      reinterpret_cast<std::atomic<std::uint64_t>*>(r.memory.data() + offsetof(SpscRing<>::Shared, tail));
  auto* head =
      reinterpret_cast<std::atomic<std::uint64_t>*>(r.memory.data() + offsetof(SpscRing<>::Shared, head));
  std::byte* data = r.memory.data() + SpscRing<>::data_offset();
  SpscRing<> consumer = *SpscRing<>::attach(std::span(r.memory));
  // Ahead of the tail the consumer cached, over data that reads as pad records.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(push(r.ring, bytes("abc")));
  ASSERT_EQ(consumer.try_peek().status, RingStatus::ok);  // caches the tail
  const std::uint64_t published = tail->load();
  head->store(published + 8);
  std::memset(data, 0xff, 256);
  EXPECT_EQ(consumer.try_peek().status, RingStatus::corrupted);
  std::uint64_t out = 0;
  EXPECT_FALSE(consumer.try_pop_fixed<8>(&out));
  // Far behind it: more than a ring's worth of bytes behind the tail.
  RingRegion s(256);
  SpscRing<> reader = *SpscRing<>::attach(std::span(s.memory));
  for (std::uint64_t i = 0; i < 40; ++i) {
    ASSERT_TRUE(s.ring.try_push_fixed<8>(&i));
    ASSERT_TRUE(reader.try_pop_fixed<8>(&out));
    ASSERT_EQ(out, i);
  }
  ASSERT_TRUE(s.ring.try_push_fixed<8>(&out));
  ASSERT_EQ(reader.try_peek().status, RingStatus::ok);  // caches a tail of 41 records
  auto* s_head =
      reinterpret_cast<std::atomic<std::uint64_t>*>(s.memory.data() + offsetof(SpscRing<>::Shared, head));
  s_head->store(0);
  EXPECT_EQ(reader.try_peek().status, RingStatus::corrupted);
  EXPECT_FALSE(reader.try_pop_fixed<8>(&out));
  // A published pad with no record after it.
  RingRegion p(256);
  std::memcpy(p.memory.data() + SpscRing<>::data_offset(), &SpscRing<>::kPadRecord, sizeof(std::uint64_t));
  reinterpret_cast<std::atomic<std::uint64_t>*>(p.memory.data() + offsetof(SpscRing<>::Shared, tail))
      ->store(256);
  SpscRing<> padded = *SpscRing<>::attach(std::span(p.memory));
  EXPECT_EQ(padded.try_peek().status, RingStatus::corrupted);
}

// ---- Pipe ------------------------------------------------------------------------------------

struct Point {
  int x;
  int y;
  std::string label;
  bool operator==(const Point&) const = default;
};

TEST(Pipe, DuplexSendAndRecvOfValuesAndBytes) {
  auto [a, b] = mproc::Pipe();
  a.send(42);
  a.send(std::string("hello"));
  a.send(Point{1, 2, "p"});
  EXPECT_EQ(b.recv<int>(), 42);
  EXPECT_EQ(b.recv<std::string>(), "hello");
  EXPECT_EQ(b.recv<Point>(), (Point{1, 2, "p"}));
  b.send(std::vector<double>{1.5, 2.5});
  EXPECT_EQ(a.recv<std::vector<double>>(), (std::vector<double>{1.5, 2.5}));

  const auto msg = bytes("0123456789");
  a.send_bytes(msg);
  a.send_bytes(msg, 2, 3);
  a.send_bytes(msg, 8);
  a.send_bytes({});
  EXPECT_EQ(b.recv_bytes(), msg);
  EXPECT_EQ(b.recv_bytes(), bytes("234"));
  EXPECT_EQ(b.recv_bytes(), bytes("89"));
  EXPECT_EQ(b.recv_bytes(), std::vector<std::byte>{});
  expect_error<mproc::ValueError>([&] { a.send_bytes(msg, 11); }, "buffer length < offset");
  expect_error<mproc::ValueError>([&] { a.send_bytes(msg, 5, 6); }, "buffer length < offset + size");
}

TEST(Pipe, PollAndTimeouts) {
  auto [a, b] = mproc::Pipe();
  EXPECT_FALSE(b.poll());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(b.poll(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 25ms);
  expect_error<mproc::TimeoutError>([&] { (void)b.recv<int>(10ms); }, "recv() timed out");
  a.send(1);
  EXPECT_TRUE(b.poll());
  EXPECT_TRUE(b.poll(0s));
  EXPECT_EQ(b.recv<int>(1s), 1);
}

TEST(Pipe, OneWayPipeHasAReadOnlyAndAWriteOnlyEnd) {
  auto [r, w] = mproc::Pipe(false);
  EXPECT_TRUE(r.readable());
  EXPECT_FALSE(r.writable());
  EXPECT_TRUE(w.writable());
  EXPECT_FALSE(w.readable());
  expect_error<mproc::OSError>([&] { r.send(1); }, "connection is read-only: Bad file descriptor");
  expect_error<mproc::OSError>([&] { (void)w.recv<int>(); }, "connection is write-only: Bad file descriptor");
  w.send(7);
  EXPECT_EQ(r.recv<int>(), 7);
}

TEST(Pipe, UseAfterCloseIsAnOSError) {
  auto [a, b] = mproc::Pipe();
  mproc::Connection copy = a;
  a.close();
  EXPECT_TRUE(copy.closed());  // the same connection
  expect_error<mproc::OSError>([&] { copy.send(1); }, "handle is closed: Bad file descriptor");
  expect_error<mproc::OSError>([&] { (void)a.recv<int>(); }, "handle is closed: Bad file descriptor");
  a.close();  // idempotent
}

TEST(Pipe, RecvAfterThePeerClosedGivesTheRestThenEOFError) {
  auto [a, b] = mproc::Pipe();
  a.send(1);
  a.send(2);
  a.close();
  EXPECT_EQ(b.recv<int>(), 1);
  EXPECT_EQ(b.recv<int>(), 2);
  EXPECT_TRUE(b.poll());  // end of file is "ready": recv will not block
  expect_error<mproc::EOFError>([&] { (void)b.recv<int>(); }, "the other end of the connection is closed");
  expect_error<mproc::OSError>([&] { b.send(3); },
                               "cannot send: the other end of the connection is closed: Broken pipe");
}

TEST(Pipe, ABlockedRecvWakesWithEOFErrorWhenThePeerCloses) {
  auto [a, b] = mproc::Pipe();
  std::thread closer([&a] {
    std::this_thread::sleep_for(30ms);
    a.close();
  });
  expect_error<mproc::EOFError>([&] { (void)b.recv<int>(); }, "the other end of the connection is closed");
  closer.join();
}

TEST(Pipe, MessagesLargerThanTheRingTravelInFragments) {
  auto [a, b] = mproc::Pipe(true, mproc::PipeOptions{.capacity = 4096});
  const auto big = pattern(100'000, 7);
  std::thread sender([&a, &big] { a.send_bytes(big); });
  EXPECT_EQ(b.recv_bytes(), big);
  sender.join();
  std::string text(50'000, 'z');
  std::thread sender2([&a, &text] { a.send(text); });
  EXPECT_EQ(b.recv<std::string>(), text);
  sender2.join();
  expect_error<mproc::ValueError>(
      [] {
        auto [x, y] = mproc::Pipe(true, mproc::PipeOptions{.capacity = 4096, .max_message = 1000});
        x.send_bytes(pattern(1001, 1));
      },
      "message of 1001 bytes is longer than this pipe's limit of 1000 bytes (PipeOptions::max_message)");
}

TEST(Pipe, RecvBytesIntoAShortBufferRaisesBufferTooShortWithTheMessage) {
  auto [a, b] = mproc::Pipe();
  const auto msg = bytes("a message of some length");
  a.send_bytes(msg);
  std::vector<std::byte> small(4);
  try {
    (void)b.recv_bytes_into(small);
    FAIL() << "no BufferTooShort";
  } catch (const mproc::BufferTooShort& e) {
    EXPECT_EQ(e.message(), msg);
  }
  a.send_bytes(msg);
  std::vector<std::byte> room(64);
  EXPECT_EQ(b.recv_bytes_into(room, 10), msg.size());
  EXPECT_TRUE(std::equal(msg.begin(), msg.end(), room.begin() + 10));
  a.send_bytes(msg);
  expect_error<mproc::OSError>([&] { (void)b.recv_bytes(3); }, "bad message length: Message too long");
}

TEST(Pipe, LoanAndViewAreZeroCopy) {
  auto [a, b] = mproc::Pipe(true, mproc::PipeOptions{.capacity = 1U << 22});
  EXPECT_EQ(a.max_loan(), (1U << 21) - 8U);
  {
    auto loan = a.loan(1 << 20);
    ASSERT_EQ(loan.data().size(), 1U << 20);
    std::memset(loan.data().data(), 0x5a, loan.data().size());
    loan.commit();
    expect_error<mproc::ValueError>([&] { loan.commit(); }, "this loan was already committed");
  }
  {
    auto abandoned = a.loan(10);  // destroyed without commit: nothing is sent
  }
  {
    auto view = b.recv_view();
    ASSERT_EQ(view.bytes().size(), 1U << 20);
    EXPECT_EQ(view.bytes()[12345], std::byte{0x5a});
    expect_error<mproc::ValueError>([&] { (void)b.recv_view(); }, "a View of this connection is still held");
  }
  EXPECT_FALSE(b.poll());
  expect_error<mproc::ValueError>([&] { (void)a.loan(1U << 22); },
                                  "loan of 4194304 bytes is larger than this pipe's 2097144-byte records "
                                  "(PipeOptions::capacity / 2 - 8)");
}

TEST(Pipe, WaitReturnsTheReadyConnections) {
  auto [a1, b1] = mproc::Pipe();
  auto [a2, b2] = mproc::Pipe();
  EXPECT_TRUE(mproc::wait({&b1, &b2}, 20ms).empty());
  a2.send(1);
  auto ready = mproc::wait({&b1, &b2}, 1s);
  ASSERT_EQ(ready.size(), 1U);
  EXPECT_EQ(ready[0], &b2);
  std::thread later([&a1] {
    std::this_thread::sleep_for(20ms);
    a1.send(2);
  });
  (void)b2.recv<int>();
  ready = mproc::wait({&b1, &b2});
  ASSERT_EQ(ready.size(), 1U);
  EXPECT_EQ(ready[0], &b1);
  later.join();
}

// Across processes: a child echoes until an empty message or end of file. The parent closes its
// copy of the child's end, as CPython requires. (Under fork the child also inherits the parent's
// end, as a CPython child inherits its descriptor, so only spawn can show end of file here; the
// dead-peer test below shows it under both.)
void echo(mproc::Connection conn) {
  try {
    for (std::string s; !(s = conn.recv<std::string>()).empty();) conn.send(s + "!");
  } catch (const mproc::EOFError&) {
  }
}

TEST(Pipe, EchoAcrossProcessesUntilEndOfFile) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    Children children;
    auto [parent_end, child_end] = mproc::Pipe();
    auto& child = children.start(mproc::get_context(method).Process(echo, child_end));
    child_end.close();
    for (int i = 0; i < 100; ++i) {
      parent_end.send(std::to_string(i));
      EXPECT_EQ(parent_end.recv<std::string>(), std::to_string(i) + "!");
    }
    if (method == mproc::StartMethod::fork) parent_end.send(std::string());
    parent_end.close();
    EXPECT_TRUE(child.join(10s));
    EXPECT_EQ(child.exitcode(), 0);
  }
}

void send_three(mproc::Connection conn, std::uint64_t first) {
  for (std::uint64_t v = first; v < first + 3; ++v) conn.send(v);
  conn.send(std::string("and a string"));
}

// One end used by a child and then by its parent (and a second child), one after the other, as
// CPython allows: each sender's view keeps a private copy of its position, and must take the
// position over from the ring when another view sent in between, or it overwrites unread
// messages (or sees its own reader's head as corruption).
TEST(Pipe, AnEndUsedByAChildThenByItsParentLosesNothing) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    Children children;
    auto [reader, writer] = mproc::Pipe(false);
    writer.send(std::uint64_t{1});  // the parent's view produces first
    auto& first = children.start(mproc::get_context(method).Process(send_three, writer, std::uint64_t{2}));
    ASSERT_TRUE(first.join(10s));
    ASSERT_EQ(first.exitcode(), 0);
    writer.send(std::uint64_t{5});  // nothing read yet: the parent must not write over the child's
    auto& second = children.start(mproc::get_context(method).Process(send_three, writer, std::uint64_t{6}));
    ASSERT_TRUE(second.join(10s));
    ASSERT_EQ(second.exitcode(), 0);
    writer.send(std::uint64_t{9});
    EXPECT_EQ(reader.recv<std::uint64_t>(), 1U);
    for (std::uint64_t v = 2; v < 5; ++v) EXPECT_EQ(reader.recv<std::uint64_t>(), v);
    EXPECT_EQ(reader.recv<std::string>(), "and a string");
    EXPECT_EQ(reader.recv<std::uint64_t>(), 5U);
    for (std::uint64_t v = 6; v < 9; ++v) EXPECT_EQ(reader.recv<std::uint64_t>(), v);
    EXPECT_EQ(reader.recv<std::string>(), "and a string");
    // Drained: the parent sends again after its reader caught up with the children's messages.
    writer.send(std::uint64_t{10});
    EXPECT_EQ(reader.recv<std::uint64_t>(), 9U);
    EXPECT_EQ(reader.recv<std::uint64_t>(), 10U);
    EXPECT_FALSE(reader.poll());
  }
}

void send_then_hang(mproc::Connection conn) {
  conn.send(std::string("last words"));
  ::pause();
}

TEST(Pipe, ADeadPeerIsEndOfFileNotAHang) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    Children children;
    auto [mine, theirs] = mproc::Pipe();
    auto& child = children.start(mproc::get_context(method).Process(send_then_hang, theirs));
    theirs.close();
    EXPECT_EQ(mine.recv<std::string>(), "last words");
    child.kill();
    child.join();
    const auto start = std::chrono::steady_clock::now();
    expect_error<mproc::EOFError>([&] { (void)mine.recv<int>(); },
                                  "the other end of the connection is closed");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  }
}

// A sender killed at random times, mid-message or not: the receiver gets a prefix of the stream,
// every message whole (its checksum holds) and in order, then end of file; never a hang.
void stream_forever(mproc::Connection conn) {
  std::vector<std::uint64_t> msg;
  for (std::uint64_t i = 0;; ++i) {
    msg.assign(1 + i % 97, i);
    msg.back() = ~i;
    conn.send(msg);
  }
}

TEST(Pipe, ASenderKilledAtRandomTimesLeavesWholeMessagesThenEOF) {
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 8; ++round) {
    Children children;
    auto [mine, theirs] = mproc::Pipe(true, mproc::PipeOptions{.capacity = 1U << 14});
    auto& child =
        children.start(mproc::get_context(mproc::StartMethod::fork).Process(stream_forever, theirs));
    theirs.close();
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<>(100, 5000)(rng)));
    child.kill();
    child.join();
    std::uint64_t next = 0;
    try {
      for (;;) {
        const auto msg = mine.recv<std::vector<std::uint64_t>>();
        ASSERT_EQ(msg.size(), 1 + next % 97) << "round " << round;
        for (std::size_t k = 0; k + 1 < msg.size(); ++k) ASSERT_EQ(msg[k], next);
        ASSERT_EQ(msg.back(), ~next) << "a torn message";
        ++next;
      }
    } catch (const mproc::EOFError&) {
    }
  }
}

// ---- named connections ----------------------------------------------------------------------

void named_echo(std::string name) {
  auto conn = mproc::Connection::open(name);
  try {
    for (;;) conn.send(conn.recv<std::string>() + "!");
  } catch (const mproc::EOFError&) {
  }
}

TEST(NamedPipe, AnUnrelatedProcessOpensTheOtherEndByName) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const ShmName guard("named-pipe");  // unlinks the name even if an assertion below fails
    const std::string& name = guard.str();
    {
      auto server = mproc::Connection::create(name);
      EXPECT_EQ(server.name(), name);
      Children children;
      auto& child = children.start(mproc::get_context(method).Process(named_echo, name));
      for (int i = 0; i < 50; ++i) {
        server.send(std::to_string(i));
        EXPECT_EQ(server.recv<std::string>(), std::to_string(i) + "!");
      }
      server.close();  // the child sees end of file and ends
      EXPECT_TRUE(child.join(10s));
      EXPECT_EQ(child.exitcode(), 0);
    }
    EXPECT_FALSE(mproc_shm_test::segment_exists(name)) << "the creator did not unlink the name";
  }
}

void open_and_die(std::string name) {
  auto conn = mproc::Connection::open(name);
  conn.send(std::string("hello"));
  ::kill(::getpid(), SIGKILL);
}

TEST(NamedPipe, EachEndHasOneHolderAndADeadHoldersEndIsEndOfFile) {
  const ShmName guard("named-ends");
  const std::string& name = guard.str();
  auto server = mproc::Connection::create(name);
  {
    auto client = mproc::Connection::open(name);
    try {
      (void)mproc::Connection::open(name);
      ADD_FAILURE() << "a second holder of the second end was accepted";
    } catch (const mproc::FileExistsError& e) {
      EXPECT_NE(std::string(e.what()).find("its second end is open in process " + std::to_string(::getpid())),
                std::string::npos)
          << e.what();
    }
    client.send(1);
    EXPECT_EQ(server.recv<int>(), 1);
    client.close();  // closed: the end can be opened again
    expect_error<mproc::EOFError>([&] { (void)server.recv<int>(); },
                                  "the other end of the connection is closed");
  }
  // A fresh pipe for the death: an end never opened yet is not end of file, while a closed one
  // is, so reopening the pipe above would race the child's open against this recv.
  const ShmName fresh_guard("named-death");
  const std::string& fresh_name = fresh_guard.str();
  auto fresh = mproc::Connection::create(fresh_name);
  Children children;
  auto& child =
      children.start(mproc::get_context(mproc::StartMethod::spawn).Process(open_and_die, fresh_name));
  EXPECT_EQ(fresh.recv<std::string>(), "hello");
  child.join();
  const auto start = std::chrono::steady_clock::now();
  expect_error<mproc::EOFError>([&] { (void)fresh.recv<int>(); },
                                "the other end of the connection is closed");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  expect_error<mproc::FileNotFoundError>(
      [] { (void)mproc::Connection::open("mproc-test-no-such-pipe"); },
      "cannot open Connection 'mproc-test-no-such-pipe': No such file or directory");
  std::vector<std::byte> bytes;
  mproc::Encoder out(bytes);  // what passing it to a spawned Process does
  expect_error<mproc::ValueError>(
      [&] { out.put(server); },
      "a named Connection is held by one process: pass its name, and open() it in the "
      "other");
}

}  // namespace
