// Shared-memory segments (runtime/platform/linux/shm.hpp) and the layout vocabulary
// (include/mproc/core/layout.hpp).
//
// Every named segment a test creates has a unique name "mproc-test-<pid>-<n>-<label>" and is
// unlinked by an RAII guard, also when an assertion fails; every child is SIGKILLed and reaped by
// an RAII guard. The last test and a global environment check that none of this process's
// segments, and none of a dead test process's, remain in /dev/shm.
#include "platform/linux/shm.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/core/layout.hpp"
#include "platform/linux/fd.hpp"

// Named types (outside the unnamed namespace, which GCC and Clang spell differently) whose ABI
// hashes are pinned in Layout.AbiHashSeparatesTypesAndIsStable.
namespace mproc_shm_test_pinned {
struct Pinned {
  std::uint64_t a;
  std::uint32_t b;
};
struct Versioned {
  static constexpr std::uint32_t kShmVersion = 2;
  std::uint64_t a;
  std::uint32_t b;
};
}  // namespace mproc_shm_test_pinned

namespace {

namespace pl = mproc::platform;
using pl::SegmentErrc;
using pl::SegmentHeader;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Helpers

const std::string kTestPrefix = "mproc-test-";

std::string unique_name(std::string_view label) {
  static std::atomic<int> counter{0};
  // relaxed is enough since the counter only needs distinct values, no ordering.
  const int n = counter.fetch_add(1, std::memory_order_relaxed);
  return kTestPrefix + std::to_string(::getpid()) + "-" + std::to_string(n) + "-" + std::string(label);
}

/// A unique segment name, unlinked when the guard goes out of scope (ENOENT ignored).
class ShmName {
 public:
  explicit ShmName(std::string_view label) : name_(unique_name(label)) {}
  ShmName(const ShmName&) = delete;
  ShmName& operator=(const ShmName&) = delete;
  ~ShmName() { ::shm_unlink(path().c_str()); }
  [[nodiscard]] const std::string& str() const { return name_; }  // without the '/'
  [[nodiscard]] std::string path() const { return "/" + name_; }
  [[nodiscard]] std::string dev_shm_path() const { return "/dev/shm/" + name_; }

 private:
  std::string name_;
};

/// A forked child, SIGKILLed and reaped on scope exit unless wait() reaped it already.
class Child {
 public:
  /// Runs body in a child that exits with body's return value (never returning into gtest).
  template <class F>
  explicit Child(F&& body) {
    pid_ = ::fork();
    if (pid_ == 0) ::_exit(body());
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  [[nodiscard]] bool started() const { return pid_ > 0; }
  /// The exit code, or 128 + signal number.
  int wait() {
    int status = 0;
    pid_t got = pl::retry_eintr([&] { return ::waitpid(pid_, &status, 0); });
    pid_ = -1;
    if (got < 0) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }
  void kill() const { ::kill(pid_, SIGKILL); }

 private:
  pid_t pid_ = -1;
};

/// Burns a little time without a system call (a volatile store per iteration).
void busy_wait(int iterations) {
  static volatile unsigned sink = 0;  // unsigned: wraps instead of overflowing
  for (int i = 0; i < iterations; ++i) sink = sink + 1u;
}

std::error_code segment_error(SegmentErrc e) {
  return pl::make_error_code(e);
}
std::error_code system_error(int errnum) {
  return {errnum, std::system_category()};
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A payload type and kinds for the named-segment tests.
struct Payload {
  std::uint64_t values[4];
  std::uint64_t answer;
};
MPROC_SHM_LAYOUT(Payload);
struct OtherPayload {
  std::uint64_t values[4];
  std::uint64_t answer;
};
constexpr std::uint32_t kKind = 0x51554555;  // arbitrary, "QUEU"
constexpr std::uint32_t kOtherKind = 0x4c4f434b;

pl::SegmentSpec payload_spec() {
  return pl::segment_spec_for<Payload>(kKind);
}

/// A header that open_named(payload_spec()) accepts, as create_named() + publish() write it.
SegmentHeader valid_header(std::uint32_t state) {
  SegmentHeader h{};
  h.magic = pl::kSegmentMagic;
  h.layout_version = pl::kSegmentLayoutVersion;
  h.header_size = sizeof(SegmentHeader);
  h.abi_hash = payload_spec().abi_hash;
  h.kind = kKind;
  h.payload_size = sizeof(Payload);
  h.state = state;
  return h;
}

/// Creates and publishes a named Payload segment.
pl::NamedSegment create_published(const ShmName& name) {
  auto segment = pl::create_named(name.str(), sizeof(Payload), payload_spec());
  if (!segment) throw std::system_error(segment.error(), "create_named " + name.str());
  segment->publish();
  return std::move(*segment);
}

/// Writes value at offset into the header of a named segment through a raw mapping (as a
/// corrupting or hostile peer would).
template <class T>
void poke_header(const ShmName& name, std::size_t offset, T value) {
  auto raw = pl::open_raw_named(name.str());
  ASSERT_TRUE(raw) << raw.error().message();
  std::memcpy(raw->data() + offset, &value, sizeof value);
}

/// Names in /dev/shm that start with prefix.
std::vector<std::string> dev_shm_entries(const std::string& prefix) {
  std::vector<std::string> names;
  if (DIR* dir = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(dir)) {
      std::string entry = e->d_name;
      if (entry.rfind(prefix, 0) == 0) names.push_back(entry);
    }
    ::closedir(dir);
  }
  return names;
}

/// This process's test segments, and those of test processes that died without cleaning up
/// (names are "mproc-test-<pid>-..."; a live other pid is a test running in parallel).
std::vector<std::string> leaked_test_segments() {
  std::vector<std::string> leaked;
  for (const auto& entry : dev_shm_entries(kTestPrefix)) {
    const char* digits = entry.c_str() + kTestPrefix.size();
    char* end = nullptr;
    const long pid = std::strtol(digits, &end, 10);
    if (end == digits || *end != '-') continue;  // another naming scheme: not ours to judge
    if (pid == ::getpid() || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH))
      leaked.push_back(entry);
  }
  return leaked;
}

class NoLeftoverSegments : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& name : leaked_test_segments())
      ADD_FAILURE() << "left behind: /dev/shm/" << name << " (stale ones from a killed run: rm /dev/shm/"
                    << name << ")";
  }
};
[[maybe_unused]] ::testing::Environment* const kNoLeftoverSegments =
    ::testing::AddGlobalTestEnvironment(new NoLeftoverSegments);

// ---------------------------------------------------------------------------------------------
// layout.hpp

struct alignas(16) Aligned16 {
  char c;
};
struct WithVirtual {
  virtual ~WithVirtual() = default;
};
struct NonTrivialDtor {
  ~NonTrivialDtor() {}
};
struct TwoSides {
  mproc::CachePadded<std::atomic<std::uint64_t>> head;
  mproc::CachePadded<std::atomic<std::uint64_t>> tail;
};
MPROC_SHM_LAYOUT(TwoSides);
struct NotLockFree {
  char bytes[64];
};

TEST(Layout, CachePaddedPutsEachValueOnItsOwnLine) {
  static_assert(mproc::kCacheLine == 128);
  static_assert(sizeof(mproc::CachePadded<char>) == 128 && alignof(mproc::CachePadded<char>) == 128);
  static_assert(sizeof(mproc::CachePadded<char[129]>) == 256, "the tail is padded to a whole line");
  static_assert(offsetof(TwoSides, tail) - offsetof(TwoSides, head) == 128,
                "head and tail must be a cache line apart");
  TwoSides sides{};
  sides.head->store(7, std::memory_order_relaxed);  // relaxed is enough since single-threaded
  EXPECT_EQ((*sides.head).load(std::memory_order_relaxed), 7u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&sides.tail) % mproc::kCacheLine, 0u);
}

TEST(Layout, ShmLayoutRefusesWhatCannotLiveInSharedMemory) {
  static_assert(mproc::ShmLayout<Payload>);
  static_assert(mproc::ShmLayout<TwoSides>);
  static_assert(mproc::ShmLayout<SegmentHeader>);
  static_assert(mproc::ShmLayout<std::atomic<std::uint32_t>[4]>);
  static_assert(mproc::ShmLayout<Aligned16>);
  static_assert(!mproc::ShmLayout<std::string>, "not trivially destructible, holds a pointer");
  static_assert(!mproc::ShmLayout<int*>);
  static_assert(!mproc::ShmLayout<int* [3]>);
  static_assert(!mproc::ShmLayout<int Payload::*>);
  static_assert(!mproc::ShmLayout<WithVirtual>);
  static_assert(!mproc::ShmLayout<NonTrivialDtor>);
  static_assert(!mproc::ShmLayout<mproc::CachePadded<std::atomic<int*>>>);
  static_assert(!mproc::ShmLayout<std::atomic<NotLockFree>>, "a lock-based atomic's lock is per-process");
  static_assert(!mproc::ShmLayout<mproc::CachePadded<std::atomic<NotLockFree>>>);
  static_assert(mproc::kLockFreeAtomic<std::uint64_t> && mproc::kLockFreeAtomic<std::uint32_t>);
  static_assert(!mproc::kLockFreeAtomic<NotLockFree>);
  SUCCEED();  // the assertions above are the test
}

TEST(Layout, AbiHashSeparatesTypesAndIsStable) {
  constexpr auto h_payload = mproc::abi_hash<Payload>();
  static_assert(h_payload == mproc::abi_hash<Payload>(), "a compile-time constant");
  EXPECT_NE(h_payload, mproc::abi_hash<OtherPayload>()) << "same size and members, other name";
  EXPECT_NE(mproc::abi_hash<int>(), mproc::abi_hash<unsigned>());
  EXPECT_NE(mproc::abi_hash<std::uint32_t>(), mproc::abi_hash<std::uint64_t>());
  EXPECT_NE(mproc::abi_hash<mproc_shm_test_pinned::Pinned>(),
            mproc::abi_hash<mproc_shm_test_pinned::Versioned>());
  EXPECT_NE(mproc::abi_hash<mproc::CachePadded<int>>(), mproc::abi_hash<int>());
  // Pinned values: the hash is an ABI between separately built programs, so it must not change
  // between builds, compilers (GCC and Clang spell "unsigned long" differently; the hash
  // canonicalises) or mproc versions. If one of these fails, old and new builds would refuse
  // each other's segments.
  EXPECT_EQ(mproc::abi_hash<mproc_shm_test_pinned::Pinned>(), 0x6d1c360683934b5bULL);
  EXPECT_EQ(mproc::abi_hash<mproc_shm_test_pinned::Versioned>(), 0xd71e9ea49e6697e8ULL);
  EXPECT_EQ(mproc::abi_hash<std::uint64_t>(), 0x1c4512bfd3ccfafcULL);
  EXPECT_EQ(mproc::abi_hash<mproc::CachePadded<std::atomic<unsigned long long>>>(), 0xe9ff9380cc2ef7dbULL);
  // kShmVersion is part of the hash: name, size and alignment alone give another value.
  using V = mproc_shm_test_pinned::Versioned;
  namespace d = mproc::detail;
  const std::uint64_t unversioned =
      d::fnv1a(d::fnv1a(d::fnv1a_type_name(d::kFnvOffsetBasis, d::type_name<V>()), std::uint64_t{sizeof(V)}),
               std::uint64_t{alignof(V)});
  EXPECT_NE(mproc::abi_hash<V>(), unversioned);
  using P = mproc_shm_test_pinned::Pinned;
  EXPECT_EQ(mproc::abi_hash<P>(), d::fnv1a(d::fnv1a(d::fnv1a_type_name(d::kFnvOffsetBasis, d::type_name<P>()),
                                                    std::uint64_t{sizeof(P)}),
                                           std::uint64_t{alignof(P)}));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(SegmentErrors, CategoryAndConversions) {
  std::error_code ec = SegmentErrc::truncated;  // is_error_code_enum
  EXPECT_EQ(&ec.category(), &pl::segment_category());
  EXPECT_STREQ(ec.category().name(), "mproc.segment");
  EXPECT_EQ(ec.value(), static_cast<int>(SegmentErrc::truncated));
  std::vector<std::string> messages;
  for (auto e : {SegmentErrc::bad_name, SegmentErrc::bad_magic, SegmentErrc::version_mismatch,
                 SegmentErrc::type_mismatch, SegmentErrc::kind_mismatch, SegmentErrc::truncated,
                 SegmentErrc::not_ready, SegmentErrc::too_large, SegmentErrc::not_sealed}) {
    const std::string message = segment_error(e).message();
    EXPECT_FALSE(message.empty());
    for (const auto& seen : messages) EXPECT_NE(message, seen);
    messages.push_back(message);
  }
  EXPECT_TRUE(segment_error(SegmentErrc::bad_name) == std::errc::invalid_argument);
  EXPECT_FALSE(segment_error(SegmentErrc::bad_magic) == std::errc::invalid_argument);
  EXPECT_NE(segment_error(SegmentErrc::bad_name), system_error(EINVAL));
}

// ---------------------------------------------------------------------------------------------
// Anonymous segments

TEST(AnonymousSegment, ChildWritesParentReadsAfterWaitpid) {
  auto segment = pl::create_anonymous(3 * 4096, "fork");
  ASSERT_TRUE(segment) << segment.error().message();
  ASSERT_EQ(segment->size(), 3u * 4096);
  ASSERT_EQ(segment->bytes().size(), segment->size());
  for (std::byte b : segment->bytes()) ASSERT_EQ(b, std::byte{0}) << "a new segment is zero-filled";
  std::byte* data = segment->data();
  Child child([&] {
    for (std::size_t i = 0; i < 3 * 4096; ++i) data[i] = static_cast<std::byte>(i * 7 + 1);
    return 0;
  });
  ASSERT_TRUE(child.started());
  ASSERT_EQ(child.wait(), 0);
  for (std::size_t i = 0; i < 3 * 4096; ++i) {
    ASSERT_EQ(data[i], static_cast<std::byte>(i * 7 + 1)) << "at " << i;
  }
}

TEST(AnonymousSegment, IsAMemfdNotVisibleInDevShm) {
  const std::string tag = unique_name("memfd");
  auto segment = pl::create_anonymous(4096, tag);
  ASSERT_TRUE(segment) << segment.error().message();
  EXPECT_TRUE(dev_shm_entries(tag).empty());
  char link[512] = {};
  const std::string fd_path = "/proc/self/fd/" + std::to_string(segment->fd());
  const ssize_t n = ::readlink(fd_path.c_str(), link, sizeof link - 1);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(link).rfind("/memfd:mproc:" + tag, 0), 0u) << link;
  EXPECT_NE(::fcntl(segment->fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(AnonymousSegment, CannotBeShrunkOrResealed) {
  auto segment = pl::create_anonymous(8192, "sealed");
  ASSERT_TRUE(segment) << segment.error().message();
  const int seals = ::fcntl(segment->fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_NE(::ftruncate(segment->fd(), 4096), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::fcntl(segment->fd(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
  struct stat st {};
  ASSERT_EQ(::fstat(segment->fd(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
}

TEST(AnonymousSegment, MapAnonymousFdSharesTheSamePages) {
  auto first = pl::create_anonymous(4096, "round-trip");
  ASSERT_TRUE(first) << first.error().message();
  std::memcpy(first->data(), "hello", 5);
  auto copy = pl::dup_cloexec(first->fd());
  ASSERT_TRUE(copy);
  auto second = pl::map_anonymous_fd(std::move(*copy));
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->size(), 4096u);
  EXPECT_NE(second->data(), first->data()) << "a second mapping of the same pages";
  EXPECT_EQ(std::memcmp(second->data(), "hello", 5), 0);
  std::memcpy(second->data() + 100, "world", 5);
  EXPECT_EQ(std::memcmp(first->data() + 100, "world", 5), 0);
}

TEST(AnonymousSegment, MapAnonymousFdInAChild) {
  auto segment = pl::create_anonymous(4096, "child-map");
  ASSERT_TRUE(segment) << segment.error().message();
  const int fd = segment->fd();
  Child child([fd] {
    auto copy = pl::dup_cloexec(fd);  // the child's own mapping, as after SCM_RIGHTS
    if (!copy) return 1;
    auto mapped = pl::map_anonymous_fd(std::move(*copy));
    if (!mapped) return 2;
    std::memcpy(mapped->data() + 10, "child", 5);
    return 0;
  });
  ASSERT_EQ(child.wait(), 0);
  EXPECT_EQ(std::memcmp(segment->data() + 10, "child", 5), 0);
}

TEST(AnonymousSegment, MapAnonymousFdRefusesUnsealedAndForeignDescriptors) {
  {
    pl::UniqueFd plain(::memfd_create("mproc-test-unsealed", MFD_CLOEXEC));
    ASSERT_TRUE(plain.valid());
    ASSERT_EQ(::ftruncate(plain.get(), 4096), 0);
    auto r = pl::map_anonymous_fd(std::move(plain));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), segment_error(SegmentErrc::not_sealed));
  }
  {
    pl::UniqueFd sealable(::memfd_create("mproc-test-sealable", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    ASSERT_TRUE(sealable.valid());
    ASSERT_EQ(::ftruncate(sealable.get(), 4096), 0);
    ASSERT_EQ(::fcntl(sealable.get(), F_ADD_SEALS, F_SEAL_GROW), 0);
    auto r = pl::map_anonymous_fd(std::move(sealable));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), segment_error(SegmentErrc::not_sealed)) << "F_SEAL_GROW alone is not enough";
  }
  {
    ShmName name("foreign");
    auto raw = pl::create_raw_named(name.str(), 4096);
    ASSERT_TRUE(raw) << raw.error().message();
    pl::UniqueFd fd(::shm_open(name.path().c_str(), O_RDWR | O_CLOEXEC, 0));
    ASSERT_TRUE(fd.valid());
    auto r = pl::map_anonymous_fd(std::move(fd));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), segment_error(SegmentErrc::not_sealed)) << "a /dev/shm file is not a memfd";
  }
  {
    auto pipe = pl::make_pipe();
    ASSERT_TRUE(pipe);
    auto r = pl::map_anonymous_fd(std::move(pipe->first));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), segment_error(SegmentErrc::not_sealed));
  }
}

TEST(AnonymousSegment, MapAnonymousFdRefusesAnEmptyMemfd) {
  pl::UniqueFd empty(::memfd_create("mproc-test-empty", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_TRUE(empty.valid());
  ASSERT_EQ(::fcntl(empty.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  auto r = pl::map_anonymous_fd(std::move(empty));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), segment_error(SegmentErrc::truncated));
}

TEST(AnonymousSegment, CreateRefusesZeroAndHugeSizes) {
  auto zero = pl::create_anonymous(0, "zero");
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error(), system_error(EINVAL));
  auto huge = pl::create_anonymous(SIZE_MAX, "huge");
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error(), segment_error(SegmentErrc::too_large));
}

// ---------------------------------------------------------------------------------------------
// Names

TEST(SegmentNames, CanonicalFormAndRefusals) {
  EXPECT_EQ(pl::canonical_segment_name("abc").value(), "/abc");
  EXPECT_EQ(pl::canonical_segment_name("/abc").value(), "/abc");
  EXPECT_EQ(pl::canonical_segment_name(std::string(253, 'x')).value(), "/" + std::string(253, 'x'));
  EXPECT_EQ(pl::canonical_segment_name("/" + std::string(253, 'x')).value(), "/" + std::string(253, 'x'));
  for (std::string_view bad :
       {std::string_view(""), std::string_view("/"), std::string_view("a/b"), std::string_view("//a"),
        std::string_view("a/"), std::string_view("."), std::string_view(".."), std::string_view("/.."),
        std::string_view("a\0b", 3)}) {
    auto r = pl::canonical_segment_name(bad);
    ASSERT_FALSE(r) << "'" << bad << "' accepted";
    EXPECT_EQ(r.error(), segment_error(SegmentErrc::bad_name)) << bad;
  }
  const std::string too_long(254, 'x');
  EXPECT_EQ(pl::canonical_segment_name(too_long).error(), segment_error(SegmentErrc::bad_name));
  // Every entry point validates.
  EXPECT_EQ(pl::create_named("a/b", 64, payload_spec()).error(), segment_error(SegmentErrc::bad_name));
  EXPECT_EQ(pl::open_named("a/b", payload_spec()).error(), segment_error(SegmentErrc::bad_name));
  EXPECT_EQ(pl::create_raw_named("", 64).error(), segment_error(SegmentErrc::bad_name));
  EXPECT_EQ(pl::open_raw_named(too_long).error(), segment_error(SegmentErrc::bad_name));
  EXPECT_EQ(pl::unlink_named("..").error(), segment_error(SegmentErrc::bad_name));
}

TEST(SegmentNames, LongestValidNameWorksWithShmOpen) {
  ShmName prefix("x");
  const std::string name = prefix.str() + std::string(253 - prefix.str().size(), 'y');
  auto raw = pl::create_raw_named(name, 64);
  ASSERT_TRUE(raw) << raw.error().message();
  EXPECT_TRUE(pl::unlink_named(name));
}

// ---------------------------------------------------------------------------------------------
// Named segments with a header

TEST(NamedSegment, CreateHeaderAndAlignedPayload) {
  ShmName name("layout");
  auto segment = pl::create_named(name.str(), sizeof(Payload), payload_spec());
  ASSERT_TRUE(segment) << segment.error().message();
  EXPECT_EQ(segment->name(), name.path());
  EXPECT_FALSE(segment->published());
  const SegmentHeader& h = segment->header();
  EXPECT_EQ(h.magic, pl::kSegmentMagic);
  EXPECT_EQ(h.layout_version, pl::kSegmentLayoutVersion);
  EXPECT_EQ(h.header_size, sizeof(SegmentHeader));
  EXPECT_EQ(h.abi_hash, mproc::abi_hash<Payload>());
  EXPECT_EQ(h.kind, kKind);
  EXPECT_EQ(h.payload_size, sizeof(Payload));
  EXPECT_EQ(segment->payload().size(), sizeof(Payload));
  EXPECT_EQ(segment->payload().data() - segment->mapping().data(),
            static_cast<std::ptrdiff_t>(mproc::kCacheLine));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(segment->payload().data()) % mproc::kCacheLine, 0u);
  // The bytes in the segment say the same, and the state is "initialising" until publish().
  SegmentHeader shared{};
  std::memcpy(&shared, segment->mapping().data(), sizeof shared);
  EXPECT_EQ(std::memcmp(shared.magic.data(), "MPROCSEG", 8), 0);
  EXPECT_EQ(shared.payload_size, sizeof(Payload));
  EXPECT_EQ(shared.state, pl::kSegmentInitialising);
  segment->publish();
  std::memcpy(&shared, segment->mapping().data(), sizeof shared);
  EXPECT_EQ(shared.state, pl::kSegmentReady);
  EXPECT_TRUE(segment->published());
  struct stat st {};
  ASSERT_EQ(::stat(name.dev_shm_path().c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), sizeof(SegmentHeader) + sizeof(Payload));
  EXPECT_GE(static_cast<std::size_t>(st.st_blocks) * 512, sizeof(SegmentHeader) + sizeof(Payload))
      << "the pages are allocated up front";
}

TEST(NamedSegment, OpenerInAChildWaitsForPublishAndSeesThePayload) {
  ShmName name("fork");
  auto created = pl::create_named(name.str(), sizeof(Payload), payload_spec());
  ASSERT_TRUE(created) << created.error().message();
  const std::string segment_name = name.str();
  auto flag_segment = pl::create_anonymous(sizeof(std::uint32_t), "opening");
  ASSERT_TRUE(flag_segment) << flag_segment.error().message();
  std::atomic_ref<std::uint32_t> opening(*reinterpret_cast<std::uint32_t*>(flag_segment->data()));
  Child child([&] {
    // relaxed is enough since the flag only starts the parent's clock; no data goes with it.
    opening.store(1, std::memory_order_relaxed);
    const auto start = std::chrono::steady_clock::now();
    auto opened = pl::open_named(segment_name, payload_spec(), 10s);
    if (!opened) return 10 + opened.error().value();
    if (seconds_since(start) < 0.02) return 3;  // did not wait for publish()
    if (!opened->published() || opened->payload().size() != sizeof(Payload)) return 4;
    auto* p = reinterpret_cast<Payload*>(opened->payload().data());
    // The values were written before publish(): the acquire in open_named() makes them visible.
    if (p->values[0] != 11 || p->values[1] != 22 || p->values[2] != 33 || p->values[3] != 44) return 5;
    p->answer = p->values[0] + p->values[1] + p->values[2] + p->values[3];
    return 0;
  });
  ASSERT_TRUE(child.started());
  // relaxed is enough since the flag carries no data (see the child).
  for (int i = 0; i < 10'000 && opening.load(std::memory_order_relaxed) == 0; ++i)
    std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(100ms);  // the child is polling by now
  auto* p = reinterpret_cast<Payload*>(created->payload().data());
  p->values[0] = 11;
  p->values[1] = 22;
  p->values[2] = 33;
  p->values[3] = 44;
  created->publish();
  ASSERT_EQ(child.wait(), 0);
  EXPECT_EQ(p->answer, 110u);
}

TEST(NamedSegment, OpenReturnsTheValidatedCopy) {
  ShmName name("copy");
  auto created = create_published(name);
  auto opened = pl::open_named(name.str(), payload_spec());
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(std::memcmp(&opened->header(), &created.header(), sizeof(SegmentHeader)), 0);
  EXPECT_EQ(opened->name(), name.path());
  EXPECT_NE(opened->payload().data(), created.payload().data());
  created.payload()[0] = std::byte{42};
  EXPECT_EQ(opened->payload()[0], std::byte{42});
  // A name given with its '/' opens the same segment.
  auto slash = pl::open_named(name.path(), payload_spec());
  ASSERT_TRUE(slash) << slash.error().message();
  EXPECT_EQ(slash->payload()[0], std::byte{42});
}

TEST(NamedSegment, SecondCreateFailsWithEexistAndLeavesTheFirstAlone) {
  ShmName name("excl");
  auto first = create_published(name);
  first.payload()[0] = std::byte{7};
  auto second = pl::create_named(name.str(), sizeof(Payload), payload_spec());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), system_error(EEXIST));
  EXPECT_EQ(&second.error().category(), &std::system_category());
  auto raw = pl::create_raw_named(name.str(), 64);
  ASSERT_FALSE(raw);
  EXPECT_EQ(raw.error(), system_error(EEXIST));
  auto reopened = pl::open_named(name.str(), payload_spec());
  ASSERT_TRUE(reopened) << reopened.error().message();
  EXPECT_EQ(reopened->payload()[0], std::byte{7});
}

TEST(NamedSegment, MissingNamesAreEnoent) {
  const std::string missing = unique_name("missing");
  EXPECT_EQ(pl::open_named(missing, payload_spec()).error(), system_error(ENOENT));
  EXPECT_EQ(pl::open_raw_named(missing).error(), system_error(ENOENT));
  EXPECT_EQ(pl::unlink_named(missing).error(), system_error(ENOENT));
  ShmName name("unlink-twice");
  auto segment = create_published(name);
  EXPECT_TRUE(pl::unlink_named(name.str()));
  EXPECT_EQ(pl::unlink_named(name.str()).error(), system_error(ENOENT));
  EXPECT_EQ(pl::open_named(name.str(), payload_spec()).error(), system_error(ENOENT));
  segment.payload()[0] = std::byte{1};  // the mapping outlives the name
}

TEST(NamedSegment, CreatedWithMode0600WhateverTheUmask) {
  ShmName named("mode");
  ShmName raw("mode-raw");
  const mode_t old_umask = ::umask(0);  // 0600 must come from us, not from the umask
  auto segment = pl::create_named(named.str(), sizeof(Payload), payload_spec());
  auto mapping = pl::create_raw_named(raw.str(), 10);
  ::umask(old_umask);
  ASSERT_TRUE(segment) << segment.error().message();
  ASSERT_TRUE(mapping) << mapping.error().message();
  for (const ShmName* name : {&named, &raw}) {
    struct stat st {};
    ASSERT_EQ(::stat(name->dev_shm_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << name->str();
    EXPECT_EQ(st.st_uid, ::geteuid());
  }
}

TEST(NamedSegment, CreateRefusesBadSizes) {
  ShmName name("sizes");
  EXPECT_EQ(pl::create_named(name.str(), 0, payload_spec()).error(), system_error(EINVAL));
  EXPECT_EQ(pl::create_named(name.str(), sizeof(Payload) - 1, payload_spec()).error(), system_error(EINVAL))
      << "smaller than spec.min_payload_size";
  EXPECT_EQ(pl::create_named(name.str(), SIZE_MAX, payload_spec()).error(),
            segment_error(SegmentErrc::too_large));
  EXPECT_EQ(pl::create_named(name.str(), SIZE_MAX - 100, payload_spec()).error(),
            segment_error(SegmentErrc::too_large));
  EXPECT_EQ(pl::create_raw_named(name.str(), 0).error(), system_error(EINVAL));
  EXPECT_EQ(pl::create_raw_named(name.str(), SIZE_MAX).error(), segment_error(SegmentErrc::too_large));
  EXPECT_TRUE(dev_shm_entries(name.str()).empty()) << "no failed create leaves a segment behind";
}

TEST(NamedSegment, WrongTypeKindOrSizeIsRefused) {
  ShmName name("mismatch");
  auto created = create_published(name);
  auto other_type = pl::open_named(name.str(), pl::segment_spec_for<OtherPayload>(kKind));
  ASSERT_FALSE(other_type);
  EXPECT_EQ(other_type.error(), segment_error(SegmentErrc::type_mismatch));
  auto other_kind = pl::open_named(name.str(), pl::segment_spec_for<Payload>(kOtherKind));
  ASSERT_FALSE(other_kind);
  EXPECT_EQ(other_kind.error(), segment_error(SegmentErrc::kind_mismatch));
  auto bigger = payload_spec();
  bigger.min_payload_size = sizeof(Payload) + 1;
  auto too_small = pl::open_named(name.str(), bigger);
  ASSERT_FALSE(too_small);
  EXPECT_EQ(too_small.error(), segment_error(SegmentErrc::truncated));
}

TEST(NamedSegment, ZeroFilledSegmentIsNeverAccepted) {
  ShmName name("zeros");
  pl::UniqueFd fd(::shm_open(name.path().c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 4096), 0);
  const auto start = std::chrono::steady_clock::now();
  auto opened = pl::open_named(name.str(), payload_spec(), 50ms);
  ASSERT_FALSE(opened) << "a zero-filled segment was accepted";
  EXPECT_TRUE(opened.error() == segment_error(SegmentErrc::bad_magic) ||
              opened.error() == segment_error(SegmentErrc::not_ready))
      << opened.error().message();
  EXPECT_LT(seconds_since(start), 1.0);
  // With every header field right except the state, it is still not ready.
  SegmentHeader h = valid_header(pl::kSegmentInitialising);
  ASSERT_EQ(::pwrite(fd.get(), &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
  auto unpublished = pl::open_named(name.str(), payload_spec(), 50ms);
  ASSERT_FALSE(unpublished);
  EXPECT_EQ(unpublished.error(), segment_error(SegmentErrc::not_ready));
  // The same header with state = ready opens: the test above failed for the right reason.
  h.state = pl::kSegmentReady;
  ASSERT_EQ(::pwrite(fd.get(), &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
  auto ready = pl::open_named(name.str(), payload_spec(), 50ms);
  EXPECT_TRUE(ready) << ready.error().message();
}

// A creator between shm_open and sizing the file: the opener waits for the size, then for the
// header, instead of failing at once.
TEST(NamedSegment, OpenerWaitsForACreatorThatHasNotSizedTheFileYet) {
  ShmName name("slow-creator");
  pl::UniqueFd fd(::shm_open(name.path().c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  std::thread creator([&] {
    std::this_thread::sleep_for(60ms);
    // As create_named() + publish(): size, header, and the state last (a separate write).
    const SegmentHeader h = valid_header(pl::kSegmentInitialising);
    const std::uint32_t ready = pl::kSegmentReady;
    if (::ftruncate(fd.get(), sizeof(SegmentHeader) + sizeof(Payload)) == 0 &&
        ::pwrite(fd.get(), &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h)) {
      [[maybe_unused]] ssize_t n = ::pwrite(fd.get(), &ready, sizeof ready, offsetof(SegmentHeader, state));
    }
  });
  const auto start = std::chrono::steady_clock::now();
  auto opened = pl::open_named(name.str(), payload_spec(), 10s);
  const double waited = seconds_since(start);
  creator.join();
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_GE(waited, 0.05);
  EXPECT_EQ(opened->payload().size(), sizeof(Payload));
}

TEST(NamedSegment, EmptyOrTinyFilesAreRefused) {
  ShmName empty("empty");
  pl::UniqueFd fd(::shm_open(empty.path().c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  auto opened = pl::open_named(empty.str(), payload_spec(), 30ms);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error(), segment_error(SegmentErrc::not_ready))
      << "size 0: a creator has not sized it yet";
  EXPECT_EQ(pl::open_raw_named(empty.str()).error(), segment_error(SegmentErrc::truncated));
  ASSERT_EQ(::ftruncate(fd.get(), 64), 0);
  auto tiny = pl::open_named(empty.str(), payload_spec(), 30ms);
  ASSERT_FALSE(tiny);
  EXPECT_EQ(tiny.error(), segment_error(SegmentErrc::truncated));
}

TEST(NamedSegment, HeaderClaimingMoreThanTheFileIsTruncated) {
  ShmName name("claims");
  auto created = create_published(name);
  ASSERT_TRUE(pl::open_named(name.str(), payload_spec()));
  const std::size_t at = offsetof(SegmentHeader, payload_size);
  for (std::uint64_t claim : {std::uint64_t{sizeof(Payload) + 1}, std::uint64_t{1} << 40, UINT64_MAX,
                              UINT64_MAX - sizeof(SegmentHeader) + 1, std::uint64_t{0}}) {
    poke_header(name, at, claim);
    auto opened = pl::open_named(name.str(), payload_spec());
    ASSERT_FALSE(opened) << "payload_size " << claim;
    EXPECT_EQ(opened.error(), segment_error(SegmentErrc::truncated)) << claim;
  }
  poke_header(name, at, std::uint64_t{sizeof(Payload)});
  EXPECT_TRUE(pl::open_named(name.str(), payload_spec()));
}

TEST(NamedSegment, CorruptedHeaderFieldsAreTypedErrors) {
  ShmName name("corrupt");
  auto created = create_published(name);
  const SegmentHeader good = created.header();
  struct Case {
    std::size_t offset;
    std::uint32_t value;
    SegmentErrc expected;
  };
  for (const Case& c : {Case{0, 0x4d50524f, SegmentErrc::bad_magic},  // "MPRO" -> "ORPM"
                        Case{4, 0, SegmentErrc::bad_magic},
                        Case{offsetof(SegmentHeader, layout_version), pl::kSegmentLayoutVersion + 1,
                             SegmentErrc::version_mismatch},
                        Case{offsetof(SegmentHeader, layout_version), 0, SegmentErrc::version_mismatch},
                        Case{offsetof(SegmentHeader, header_size), 64, SegmentErrc::version_mismatch},
                        Case{offsetof(SegmentHeader, header_size), 256, SegmentErrc::version_mismatch},
                        Case{offsetof(SegmentHeader, abi_hash), 12345, SegmentErrc::type_mismatch},
                        Case{offsetof(SegmentHeader, kind), kOtherKind, SegmentErrc::kind_mismatch}}) {
    std::uint32_t before = 0;
    std::memcpy(&before, reinterpret_cast<const char*>(&good) + c.offset, sizeof before);
    poke_header(name, c.offset, c.value);
    auto opened = pl::open_named(name.str(), payload_spec());
    ASSERT_FALSE(opened) << "offset " << c.offset;
    EXPECT_EQ(opened.error(), segment_error(c.expected))
        << "offset " << c.offset << ": " << opened.error().message();
    poke_header(name, c.offset, before);
    EXPECT_TRUE(pl::open_named(name.str(), payload_spec())) << "restored offset " << c.offset;
  }
  // A state that is neither "initialising" nor "ready" is refused without waiting.
  poke_header(name, offsetof(SegmentHeader, state), std::uint32_t{0xdeadbeef});
  const auto start = std::chrono::steady_clock::now();
  auto garbage_state = pl::open_named(name.str(), payload_spec(), 5s);
  ASSERT_FALSE(garbage_state);
  EXPECT_EQ(garbage_state.error(), segment_error(SegmentErrc::not_ready));
  EXPECT_LT(seconds_since(start), 1.0);
}

TEST(NamedSegment, CreatorThatNeverPublishesIsNotReadyWithinTheBoundedWait) {
  ShmName name("unpublished");
  auto created = pl::create_named(name.str(), sizeof(Payload), payload_spec());
  ASSERT_TRUE(created) << created.error().message();
  const auto start = std::chrono::steady_clock::now();
  auto opened = pl::open_named(name.str(), payload_spec());  // the default wait: 1 s
  const double waited = seconds_since(start);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error(), segment_error(SegmentErrc::not_ready));
  EXPECT_GE(waited, 0.99);
  EXPECT_LT(waited, 3.0);
  const auto zero_start = std::chrono::steady_clock::now();
  EXPECT_EQ(pl::open_named(name.str(), payload_spec(), 0ns).error(), segment_error(SegmentErrc::not_ready));
  EXPECT_LT(seconds_since(zero_start), 0.5);
}

// A peer rewriting header bytes while we open, over and over: every open must either succeed
// with a header equal to the real one or fail with a segment error; none may crash.
TEST(NamedSegment, HostileHeaderWriterNeverCrashesOpen) {
  ShmName name("hostile");
  auto created = create_published(name);
  const SegmentHeader good = created.header();
  const pid_t parent = ::getpid();
  const std::string segment_name = name.str();
  Child scribbler([&] {
    auto raw = pl::open_raw_named(segment_name);  // its own mapping, as an unrelated process
    if (!raw) return 1;
    auto* header = reinterpret_cast<volatile unsigned char*>(raw->data());
    std::uint64_t x = 0x9e3779b97f4a7c15ULL ^ static_cast<std::uint64_t>(::getpid());
    for (std::uint64_t i = 0;; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const std::size_t offset = x % (offsetof(SegmentHeader, state) + 4);
      const auto mask = static_cast<unsigned char>((x >> 32) | 1);
      header[offset] = static_cast<unsigned char>(header[offset] ^ mask);
      busy_wait(300);
      header[offset] = static_cast<unsigned char>(header[offset] ^ mask);
      busy_wait(300);
      if (i % 1024 == 0 && ::getppid() != parent) return 0;
    }
  });
  ASSERT_TRUE(scribbler.started());
  int successes = 0;
  int errors = 0;
  int opens = 0;
  const auto start = std::chrono::steady_clock::now();
  while ((opens < 2000 || successes == 0 || errors == 0) && seconds_since(start) < 20.0) {
    ++opens;
    auto opened = pl::open_named(segment_name, payload_spec(), 1ms);
    if (opened) {
      ++successes;
      const SegmentHeader& h = opened->header();
      EXPECT_EQ(h.magic, good.magic);
      EXPECT_EQ(h.layout_version, good.layout_version);
      EXPECT_EQ(h.header_size, good.header_size);
      EXPECT_EQ(h.abi_hash, good.abi_hash);
      EXPECT_EQ(h.kind, good.kind);
      EXPECT_EQ(h.payload_size, good.payload_size);
      EXPECT_EQ(opened->payload().size(), sizeof(Payload));
      EXPECT_LE(opened->payload().data() + opened->payload().size(),
                opened->mapping().data() + opened->mapping().size());
    } else {
      ++errors;
      ASSERT_EQ(&opened.error().category(), &pl::segment_category()) << opened.error().message();
    }
  }
  scribbler.kill();
  EXPECT_EQ(scribbler.wait(), 128 + SIGKILL) << "the scribbler failed to start";
  EXPECT_GT(successes, 0) << opens << " opens";
  EXPECT_GT(errors, 0) << opens << " opens: the scribbler never hit a validated field";
  std::printf("[          ] %d opens: %d succeeded, %d refused\n", opens, successes, errors);
}

// ---------------------------------------------------------------------------------------------
// Raw named segments

TEST(RawNamedSegment, CreateOpenShareBytesAndSizeFromFstat) {
  ShmName name("raw");
  auto created = pl::create_raw_named(name.str(), 10);
  ASSERT_TRUE(created) << created.error().message();
  EXPECT_EQ(created->size(), 10u);
  std::memcpy(created->data(), "0123456789", 10);
  auto opened = pl::open_raw_named(name.path());
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->size(), 10u) << "the size is the file's, like CPython on Linux";
  EXPECT_EQ(std::memcmp(opened->data(), "0123456789", 10), 0);
  opened->data()[0] = std::byte{'x'};
  EXPECT_EQ(created->data()[0], std::byte{'x'});
  // A raw segment is no mproc segment.
  auto as_named = pl::open_named(name.str(), payload_spec(), 10ms);
  ASSERT_FALSE(as_named);
  EXPECT_EQ(as_named.error(), segment_error(SegmentErrc::truncated));
  EXPECT_TRUE(pl::unlink_named(name.str()));
}

bool have_python3() {
  return std::system("command -v python3 >/dev/null 2>&1") == 0;
}

// CPython's SharedMemory attaches to our raw segments and we attach to its. The Python side
// unregisters from its resource tracker so that its exit does not unlink the segment (gh-82300).
TEST(RawNamedSegment, InteroperatesWithCPythonSharedMemory) {
  if (!have_python3()) GTEST_SKIP() << "python3 not found";
  const std::string prelude = "import sys; from multiprocessing import shared_memory, resource_tracker; ";
  {
    ShmName name("py-attach");
    auto ours = pl::create_raw_named(name.str(), 10);
    ASSERT_TRUE(ours) << ours.error().message();
    std::memcpy(ours->data(), "hello", 5);
    const std::string script = prelude +
                               "m = shared_memory.SharedMemory(name=sys.argv[1]); "
                               "resource_tracker.unregister(m._name, 'shared_memory'); "
                               "ok = bytes(m.buf[:5]) == b'hello' and m.size == 10; "
                               "m.buf[5:10] = b'world'; m.close(); sys.exit(0 if ok else 3)";
    const int rc = std::system(("python3 -c \"" + script + "\" " + name.str()).c_str());
    ASSERT_TRUE(WIFEXITED(rc)) << rc;
    ASSERT_EQ(WEXITSTATUS(rc), 0) << "Python did not see our bytes and size";
    EXPECT_EQ(std::memcmp(ours->data() + 5, "world", 5), 0);
  }
  {
    ShmName name("py-create");
    const std::string script = prelude +
                               "m = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=16); "
                               "resource_tracker.unregister(m._name, 'shared_memory'); "
                               "m.buf[:6] = b'python'; m.close()";
    const int rc = std::system(("python3 -c \"" + script + "\" " + name.str()).c_str());
    ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << rc;
    auto theirs = pl::open_raw_named(name.str());
    ASSERT_TRUE(theirs) << theirs.error().message();
    EXPECT_EQ(theirs->size(), 16u);
    EXPECT_EQ(std::memcmp(theirs->data(), "python", 6), 0);
    struct stat st {};
    ASSERT_EQ(::stat(name.dev_shm_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "CPython creates with 0600 too";
  }
}

// ---------------------------------------------------------------------------------------------
// Last: nothing left behind (also checked by the global environment after all tests).

TEST(ShmZzCleanup, NoTestSegmentsRemainInDevShm) {
  const auto leaked = leaked_test_segments();
  for (const auto& name : leaked)
    ADD_FAILURE() << "left behind: /dev/shm/" << name << " (stale ones from a killed run: rm /dev/shm/"
                  << name << ")";
  EXPECT_TRUE(leaked.empty());
}

}  // namespace
