// The descriptor helpers of the platform layer.
#include "platform/linux/fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "platform/linux/process.hpp"

using namespace std::chrono_literals;

namespace {

TEST(Fd, UniqueFdClosesOnDestructionAndMove) {
  auto pipe = mproc::platform::make_pipe();
  ASSERT_TRUE(pipe);
  const int raw = pipe->first.get();
  {
    mproc::platform::UniqueFd moved(std::move(pipe->first));
    EXPECT_FALSE(pipe->first.valid());
    EXPECT_EQ(moved.get(), raw);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1) << "descriptor still open after its owner died";
}

TEST(Fd, WaitReadableTimesOutThenSeesData) {
  auto pipe = mproc::platform::make_pipe();
  ASSERT_TRUE(pipe);
  const auto t0 = std::chrono::steady_clock::now();
  auto ready = mproc::platform::wait_readable(pipe->first.get(), 50'000'000);
  ASSERT_TRUE(ready);
  EXPECT_FALSE(*ready);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  ASSERT_TRUE(mproc::platform::write_all(pipe->second.get(), "x", 1));
  ready = mproc::platform::wait_readable(pipe->first.get(), -1);
  ASSERT_TRUE(ready);
  EXPECT_TRUE(*ready);
}

TEST(Fd, ReadFullStopsAtEndOfFile) {
  auto pipe = mproc::platform::make_pipe();
  ASSERT_TRUE(pipe);
  ASSERT_TRUE(mproc::platform::write_all(pipe->second.get(), "abc", 3));
  pipe->second.reset();
  char buf[8] = {};
  auto got = mproc::platform::read_full(pipe->first.get(), buf, sizeof buf);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 3u);
  EXPECT_EQ(std::string(buf, 3), "abc");
}

TEST(Fd, SealedBlobIsImmutableAndBounded) {
  const char text[] = "payload bytes";
  auto blob = mproc::platform::make_sealed_blob(std::as_bytes(std::span(text)));
  ASSERT_TRUE(blob);
  EXPECT_EQ(write(blob->get(), "x", 1), -1) << "a sealed blob accepted a write";
  auto back = mproc::platform::read_blob(blob->get(), 1024);
  ASSERT_TRUE(back);
  EXPECT_EQ(std::memcmp(back->data(), text, sizeof text), 0);
  auto too_big = mproc::platform::read_blob(blob->get(), 4);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error(), std::errc::file_too_large);
}

TEST(Fd, SeqpacketCarriesDescriptors) {
  auto pair = mproc::platform::make_seqpacket_pair();
  ASSERT_TRUE(pair);
  auto pipe = mproc::platform::make_pipe();
  ASSERT_TRUE(pipe);
  const char msg[] = "hi";
  const int fds[] = {pipe->second.get()};
  ASSERT_TRUE(mproc::platform::send_message(pair->first.get(), std::as_bytes(std::span(msg)), fds));
  auto got = mproc::platform::receive_message(pair->second.get(), 64, 4);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->fds.size(), 1u);
  EXPECT_EQ(got->bytes.size(), sizeof msg);
  // The received descriptor is a working copy of the pipe's write end.
  ASSERT_TRUE(mproc::platform::write_all(got->fds[0].get(), "z", 1));
  char c = 0;
  EXPECT_EQ(read(pipe->first.get(), &c, 1), 1);
  EXPECT_EQ(c, 'z');
  // A message larger than the receiver allows is reported as truncated, not passed off as whole.
  const char big[100] = {};
  ASSERT_TRUE(mproc::platform::send_message(pair->first.get(), std::as_bytes(std::span(big)), {}));
  auto truncated = mproc::platform::receive_message(pair->second.get(), 10, 0);
  ASSERT_TRUE(truncated);
  EXPECT_TRUE(truncated->truncated);
  EXPECT_EQ(truncated->bytes.size(), 10u);
}

TEST(Fd, ThreadCountSeesThreads) {
  EXPECT_EQ(mproc::platform::thread_count(), 1);
  std::thread t([] { std::this_thread::sleep_for(200ms); });
  EXPECT_EQ(mproc::platform::thread_count(), 2);
  t.join();
}

}  // namespace
