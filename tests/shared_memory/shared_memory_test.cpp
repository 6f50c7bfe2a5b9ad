// mproc::SharedMemory: CPython's semantics and error cases (api-anchors section 9, item 14 of
// section 17), the counted views, handle copies, the lifetime rules (who unlinks), and use from
// child processes under every start method.
//
// Every segment a test creates is named "mproc-test-<pid>-<n>-<label>" (or is generated and
// guarded by an Unlinker) and unlinked by an RAII guard, also when an assertion fails.
#include "mproc/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/process.hpp"
#include "shm_test_support.hpp"

namespace {

using mproc::SharedMemory;
using mproc_shm_test::segment_exists;
using mproc_shm_test::ShmName;
using mproc_shm_test::Unlinker;

std::string helper(const std::string& command, const std::string& name) {
  return std::string(MPROC_SHM_HELPER) + " " + command + " " + name;
}

// ---------------------------------------------------------------------------------------------
// Creating and attaching

TEST(SharedMemory, CreateNamedAttachAndShareBytes) {
  ShmName name("basic");
  auto shm = SharedMemory::create(4096, name);
  EXPECT_EQ(shm.name(), name.str());
  EXPECT_EQ(shm.size(), 4096U);
  EXPECT_TRUE(segment_exists(name.str()));

  auto other = SharedMemory::attach(name);
  EXPECT_EQ(other.size(), 4096U);
  {
    auto a = shm.buf();
    auto b = other.buf();
    EXPECT_NE(a.data(), b.data()) << "attach maps the segment again";
    for (auto byte : a) ASSERT_EQ(byte, std::byte{0}) << "a new segment is zero-filled";
    a[0] = std::byte{42};
    a[4095] = std::byte{7};
    EXPECT_EQ(b[0], std::byte{42});
    EXPECT_EQ(b[4095], std::byte{7});
  }
  other.close();
  shm.close();
  shm.unlink();
  EXPECT_FALSE(segment_exists(name.str()));
}

TEST(SharedMemory, GeneratedNameLooksLikeCPythons) {
  auto shm = SharedMemory::create(10);
  Unlinker guard(shm.name());
  ASSERT_EQ(shm.name().size(), 12U) << shm.name();
  EXPECT_EQ(shm.name().substr(0, 4), "psm_");
  EXPECT_EQ(shm.name().find_first_not_of("0123456789abcdef", 4), std::string::npos) << shm.name();
  EXPECT_TRUE(segment_exists(shm.name()));
  auto other = SharedMemory::create(10);
  Unlinker other_guard(other.name());
  EXPECT_NE(other.name(), shm.name());
  shm.unlink();
  other.unlink();
}

TEST(SharedMemory, AttachTakesTheSizeFromTheSegment) {
  ShmName name("size");
  auto shm = SharedMemory::create(10, name);
  auto other = SharedMemory::attach(name);
  EXPECT_EQ(other.size(), 10U);  // not page-rounded on Linux, as CPython's fstat size
  EXPECT_EQ(other.buf().size(), 10U);
  shm.unlink();
}

TEST(SharedMemory, LeadingSlashIsOptional) {
  ShmName name("slash");
  auto shm = SharedMemory::create(16, "/" + name.str());
  EXPECT_EQ(shm.name(), name.str());
  auto other = SharedMemory::attach("/" + name.str());
  EXPECT_EQ(other.name(), name.str());
  shm.unlink();
}

TEST(SharedMemory, ReprIsCPythons) {
  ShmName name("repr");
  auto shm = SharedMemory::create(10, name);
  EXPECT_EQ(shm.repr(), "SharedMemory('" + name.str() + "', size=10)");
  shm.unlink();
}

// ---------------------------------------------------------------------------------------------
// Errors, as CPython's

TEST(SharedMemoryErrors, SizeZeroOrNegativeIsValueError) {
  ShmName name("size0");
  try {
    (void)SharedMemory::create(0, name);
    FAIL() << "size 0 was accepted";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "'size' must be a positive number different from zero");
  }
  try {
    (void)SharedMemory::create(-1, name);
    FAIL() << "size -1 was accepted";
  } catch (const mproc::ValueError& e) {
    EXPECT_STREQ(e.what(), "'size' must be a positive integer");
  }
  EXPECT_THROW((void)SharedMemory::create(0), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::create(-4096L), mproc::ValueError);
  EXPECT_FALSE(segment_exists(name.str()));
}

TEST(SharedMemoryErrors, CreatingAnExistingNameIsFileExistsErrorAndLeavesItAlone) {
  ShmName name("exists");
  auto shm = SharedMemory::create(64, name);
  shm.buf()[0] = std::byte{9};
  EXPECT_THROW((void)SharedMemory::create(64, name), mproc::FileExistsError);
  EXPECT_THROW((void)SharedMemory::create(128, name, {.track = false}), mproc::FileExistsError);
  auto other = SharedMemory::attach(name);
  EXPECT_EQ(other.size(), 64U);
  EXPECT_EQ(other.buf()[0], std::byte{9}) << "the existing segment must be untouched";
  shm.unlink();
}

TEST(SharedMemoryErrors, AttachingAMissingNameIsFileNotFoundError) {
  ShmName name("missing");
  try {
    (void)SharedMemory::attach(name);
    FAIL() << "attached a missing segment";
  } catch (const mproc::FileNotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find(name.str()), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
  }
}

TEST(SharedMemoryErrors, SecondUnlinkIsFileNotFoundError) {
  ShmName name("unlink2");
  auto shm = SharedMemory::create(64, name);
  shm.unlink();
  EXPECT_THROW(shm.unlink(), mproc::FileNotFoundError);
  // The mapping outlives the name.
  shm.buf()[3] = std::byte{1};
  EXPECT_THROW((void)SharedMemory::attach(name), mproc::FileNotFoundError);
}

TEST(SharedMemoryErrors, UnlinkThroughAnotherHandleThenUnlinkIsFileNotFoundError) {
  ShmName name("unlink-other");
  auto shm = SharedMemory::create(64, name);
  auto other = SharedMemory::attach(name);
  other.unlink();
  EXPECT_THROW(shm.unlink(), mproc::FileNotFoundError);
}

TEST(SharedMemoryErrors, AttachingAnEmptySegmentIsValueError) {
  // CPython: ValueError("cannot mmap an empty file"). Such a segment is made by a creator that
  // has not sized it yet; mproc never makes one.
  ShmName name("empty");
  const int fd = ::shm_open(("/" + name.str()).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  try {
    (void)SharedMemory::attach(name);
    FAIL() << "attached an empty segment";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot mmap an empty file"), std::string::npos) << e.what();
  }
}

TEST(SharedMemoryErrors, InvalidNamesAreValueError) {
  EXPECT_THROW((void)SharedMemory::create(8, "a/b"), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::create(8, ""), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::create(8, std::string(300, 'x')), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::attach(".."), mproc::ValueError);
  EXPECT_THROW((void)SharedMemory::attach(std::string("a\0b", 3)), mproc::ValueError);
}

TEST(SharedMemoryErrors, CloseWithALiveViewIsBufferError) {
  ShmName name("close-view");
  auto shm = SharedMemory::create(64, name);
  {
    auto view = shm.buf();
    try {
      shm.close();
      FAIL() << "closed with a live view";
    } catch (const mproc::BufferError& e) {
      EXPECT_STREQ(e.what(), "cannot close exported pointers exist");
    }
    view[0] = std::byte{5};  // still mapped after the refused close
    auto copy = view;        // a copy counts too
    view.release();
    EXPECT_TRUE(view.empty());
    EXPECT_THROW(shm.close(), mproc::BufferError);
    EXPECT_EQ(copy[0], std::byte{5});
  }
  shm.close();  // every view gone
  shm.close();  // idempotent
  shm.unlink();
}

TEST(SharedMemoryErrors, MovedViewsCountOnce) {
  ShmName name("move-view");
  auto shm = SharedMemory::create(64, name);
  {
    auto a = shm.buf();
    auto b = std::move(a);
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): documented state
    SharedMemory::View c;
    c = std::move(b);
    EXPECT_THROW(shm.close(), mproc::BufferError);
    c = SharedMemory::View();  // assigning an empty view releases
    shm.close();
  }
  shm.unlink();
}

TEST(SharedMemoryErrors, UseAfterCloseIsValueError) {
  ShmName name("after-close");
  auto shm = SharedMemory::create(64, name);
  shm.close();
  try {
    (void)shm.buf();
    FAIL() << "buf() after close()";
  } catch (const mproc::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("closed"), std::string::npos) << e.what();
  }
  // As in CPython, name and size stay readable and unlink works after close.
  EXPECT_EQ(shm.name(), name.str());
  EXPECT_EQ(shm.size(), 64U);
  shm.unlink();
}

TEST(SharedMemoryErrors, MovedFromHandleIsValueError) {
  ShmName name("moved");
  auto shm = SharedMemory::create(64, name);
  auto moved = std::move(shm);
  EXPECT_THROW((void)shm.buf(), mproc::ValueError);   // NOLINT(bugprone-use-after-move)
  EXPECT_THROW((void)shm.name(), mproc::ValueError);  // NOLINT(bugprone-use-after-move)
  moved.unlink();
}

TEST(SharedMemoryErrors, ViewAtIsChecked) {
  ShmName name("at");
  auto shm = SharedMemory::create(8, name);
  auto view = shm.buf();
  EXPECT_NO_THROW((void)view.at(7));
  EXPECT_THROW((void)view.at(8), mproc::IndexError);
  shm.unlink();
}

// ---------------------------------------------------------------------------------------------
// Handles and views

TEST(SharedMemoryHandles, CopiesShareOneMappingAndCloseTogether) {
  ShmName name("copies");
  auto shm = SharedMemory::create(64, name);
  SharedMemory copy = shm;  // NOLINT(performance-unnecessary-copy-initialization): the point
  EXPECT_EQ(copy.buf().data(), shm.buf().data()) << "copies share the mapping";
  {
    auto view = copy.buf();
    EXPECT_THROW(shm.close(), mproc::BufferError) << "a view through one copy blocks close on all";
  }
  copy.close();
  EXPECT_THROW((void)shm.buf(), mproc::ValueError) << "close() through a copy closes every copy";
  shm.unlink();
}

TEST(SharedMemoryHandles, ViewKeepsTheMappingAliveAfterTheLastHandle) {
  ShmName name("view-outlives");
  SharedMemory::View view;
  {
    auto shm = SharedMemory::create(64, name);
    view = shm.buf();
    shm.unlink();
  }
  view[10] = std::byte{3};  // would fault if the handle's end had unmapped
  EXPECT_EQ(view[10], std::byte{3});
  EXPECT_EQ(view.size(), 64U);
}

TEST(SharedMemoryHandles, SpansConvertFromViews) {
  ShmName name("span");
  auto shm = SharedMemory::create(32, name);
  auto view = shm.buf();
  std::span<std::byte> writable = view;
  std::span<const std::byte> readable = view;
  writable[1] = std::byte{8};
  EXPECT_EQ(readable[1], std::byte{8});
  EXPECT_EQ(readable.size(), 32U);
  // A span is not counted: after the view is released, close() succeeds (and the span dangles).
  view.release();
  EXPECT_NO_THROW(shm.close());
  shm.unlink();
}

TEST(SharedMemoryHandles, CloseRacingWithViewsNeverUnmapsAViewsMemory) {
  // Threads take and drop views while the main thread keeps trying to close: every close either
  // throws BufferError or succeeds with no view alive; a view's access after a successful close
  // would fault (and ASan would report it).
  ShmName name("race");
  auto shm = SharedMemory::create(4096, name);
  std::atomic<bool> closed{false};
  std::vector<std::thread> threads;
  std::atomic<long> views_taken{0};
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      // relaxed: a stop flag; what matters is only that buf() throws once close() has won.
      while (!closed.load(std::memory_order_relaxed)) {
        try {
          auto view = shm.buf();
          view[static_cast<std::size_t>(t)] = std::byte{1};
          volatile auto sink = view[100];
          (void)sink;
          views_taken.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
        } catch (const mproc::ValueError&) {
          return;  // closed
        }
      }
    });
  }
  // relaxed: a statistic read to let the threads get going.
  while (views_taken.load(std::memory_order_relaxed) < 1000) std::this_thread::yield();
  int refused = 0;
  for (;;) {
    try {
      shm.close();
      break;
    } catch (const mproc::BufferError&) {
      ++refused;
    }
  }
  closed.store(true, std::memory_order_relaxed);  // relaxed: the threads stop on buf()'s error anyway
  for (auto& th : threads) th.join();
  EXPECT_THROW((void)shm.buf(), mproc::ValueError);
  shm.unlink();
  RecordProperty("refused_closes", refused);
}

// ---------------------------------------------------------------------------------------------
// Who unlinks: attachers never, a tracked creator at its normal exit (separate processes)

TEST(SharedMemoryLifetime, AProgramThatOnlyAttachesAndExitsLeavesTheSegment) {
  ShmName name("attach-exit");
  auto shm = SharedMemory::create(64, name, {.track = false});
  for (int i = 0; i < 2; ++i) {
    auto result = mproc_shm_test::run_command(helper("attach", name.str()));
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_EQ(result.output, "size 64\n");
    EXPECT_TRUE(segment_exists(name.str())) << "an attacher's exit destroyed the segment (gh-82300)";
  }
  shm.unlink();
}

TEST(SharedMemoryLifetime, ATrackedSegmentIsUnlinkedAtItsCreatorsExitWithAWarning) {
  ShmName name("tracked");
  auto result = mproc_shm_test::run_command(helper("create-tracked", name.str()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_FALSE(segment_exists(name.str())) << "the creator's exit should have unlinked it";
  EXPECT_NE(result.output.find("SharedMemory '" + name.str() + "' was never unlinked"), std::string::npos)
      << result.output;
}

TEST(SharedMemoryLifetime, AnUntrackedSegmentOutlivesItsCreator) {
  ShmName name("untracked");
  auto result = mproc_shm_test::run_command(helper("create-untracked", name.str()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(segment_exists(name.str()));
  EXPECT_EQ(result.output, "");
}

TEST(SharedMemoryLifetime, UnlinkEndsTrackingSoANewSegmentOfTheSameNameSurvives) {
  // The helper creates the name (tracked), unlinks it, then creates it again untracked: its exit
  // must neither warn nor remove the second segment.
  ShmName name("unlinked");
  auto result = mproc_shm_test::run_command(helper("create-unlink", name.str()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(segment_exists(name.str()));
  EXPECT_EQ(result.output, "");
}

TEST(SharedMemoryLifetime, AForkChildsExitDoesNotUnlinkItsParentsSegment) {
  ShmName name("fork-exit");
  auto result = mproc_shm_test::run_command(helper("fork-child-exits", name.str()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "survived\n");
}

// ---------------------------------------------------------------------------------------------
// Child processes, under every start method

void child_writes(SharedMemory shm, int value) {
  auto view = shm.buf();
  std::memset(view.data(), value, view.size());
}

void child_attaches_reads_and_exits(std::string name, int expected) {
  auto shm = SharedMemory::attach(name);
  auto view = shm.buf();
  for (auto b : view) {
    if (b != std::byte(expected)) throw std::runtime_error("child read an unexpected byte");
  }
}

void child_creates_tracked_and_exits(std::string name) {
  auto shm = SharedMemory::create(32, name);
  shm.buf()[0] = std::byte{77};
}

std::string method_name(const testing::TestParamInfo<mproc::StartMethod>& info) {
  return std::string(mproc::to_string(info.param));
}

class SharedMemoryChildren : public testing::TestWithParam<mproc::StartMethod> {
 protected:
  [[nodiscard]] mproc::Context ctx() const { return mproc::get_context(GetParam()); }
};

TEST_P(SharedMemoryChildren, ChildWritesParentReads) {
  ShmName name("child-writes");
  auto shm = SharedMemory::create(1000, name);
  auto p = ctx().Process(child_writes, shm, 0x5a);
  p.start();
  p.join();
  ASSERT_EQ(p.exitcode(), 0);
  auto view = shm.buf();
  for (std::size_t i = 0; i < view.size(); ++i) ASSERT_EQ(view[i], std::byte{0x5a}) << i;
  view.release();
  shm.close();
  shm.unlink();
}

TEST_P(SharedMemoryChildren, AChildThatAttachesAndExitsLeavesTheSegment) {
  ShmName name("child-attach");
  auto shm = SharedMemory::create(64, name);
  std::memset(shm.buf().data(), 3, 64);
  for (int i = 0; i < 2; ++i) {
    auto p = ctx().Process(child_attaches_reads_and_exits, name.str(), 3);
    p.start();
    p.join();
    ASSERT_EQ(p.exitcode(), 0);
    ASSERT_TRUE(segment_exists(name.str())) << "a child's exit destroyed the segment (gh-82300)";
  }
  // A child that received the handle itself (spawn/forkserver: it attached) leaves it too.
  auto p = ctx().Process(child_writes, shm, 4);
  p.start();
  p.join();
  ASSERT_EQ(p.exitcode(), 0);
  EXPECT_TRUE(segment_exists(name.str()));
  EXPECT_NO_THROW(shm.unlink()) << "the creator's unlink must still find the name";
}

TEST_P(SharedMemoryChildren, ASegmentCreatedByAChildOutlivesTheChild) {
  // mproc's children end with _exit, as CPython's end with os._exit: a tracked segment a child
  // created stays for its parent (docs/shared_memory.md, "Who unlinks").
  ShmName name("child-creates");
  auto p = ctx().Process(child_creates_tracked_and_exits, name.str());
  p.start();
  p.join();
  ASSERT_EQ(p.exitcode(), 0);
  ASSERT_TRUE(segment_exists(name.str()));
  auto shm = SharedMemory::attach(name);
  EXPECT_EQ(shm.buf()[0], std::byte{77});
  shm.unlink();
}

TEST_P(SharedMemoryChildren, AnUnlinkedSegmentCannotBeSentToASpawnedChild) {
  // The name travels, not the mapping: a segment unlinked before a spawn/forkserver child
  // attaches is FileNotFoundError in the child (exit code 1), as in CPython. Under fork the
  // child has the mapping already.
  ShmName name("gone");
  auto shm = SharedMemory::create(64, name);
  shm.unlink();
  auto p = ctx().Process(child_writes, shm, 1);
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), GetParam() == mproc::StartMethod::fork ? 0 : 1);
}

INSTANTIATE_TEST_SUITE_P(All, SharedMemoryChildren,
                         testing::Values(mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                         mproc::StartMethod::forkserver),
                         method_name);

}  // namespace
