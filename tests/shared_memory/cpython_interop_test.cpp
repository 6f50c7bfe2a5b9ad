// SharedMemory and ShareableList against real CPython processes: for each of python3 (3.11),
// python3.12 and python3.13, C++ creates and Python attaches, reads and writes; Python creates and
// C++ attaches, reads and writes; and the bytes of a list are identical whichever side built it.
// A Python version that is not installed makes its tests SKIP with the reason.
//
// The Python side never unlinks what it attaches: 3.13's SharedMemory takes track=False, and
// everything else (older versions, ShareableList, which has no track argument) is unregistered
// from Python's resource tracker right after attaching or creating, so that the tracker does not
// destroy the segment at Python's exit (CPython gh-82300). C++ unlinks every segment; the guards
// do it even when an assertion fails.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/shared_memory.hpp"
#include "shm_test_support.hpp"

namespace {

using mproc::Bytes;
using mproc::ShareableList;
using mproc::SharedMemory;
using Item = ShareableList::Item;
using mproc_shm_test::bytes;
using mproc_shm_test::CommandResult;
using mproc_shm_test::hex;
using mproc_shm_test::segment_exists;
using mproc_shm_test::ShmName;

struct PythonVersion {
  const char* label;    // the test name's suffix
  const char* command;  // how to run it (pyenv shims)
  const char* version;  // what sys.version_info must say
};

void PrintTo(const PythonVersion& py, std::ostream* out) {
  *out << py.command;
}

const PythonVersion kPythons[] = {
    {"Python311", "python3", "3.11"},
    {"Python312", "PYENV_VERSION=3.12.1 python3.12", "3.12"},
    {"Python313", "PYENV_VERSION=3.13.0 python3.13", "3.13"},
};

/// What every script starts with: attach without ever unlinking at exit.
constexpr const char* kPrelude = R"PY(
import sys
from multiprocessing import shared_memory, resource_tracker

def untrack(shm):
    # Python's resource tracker would unlink the segment when this process exits (gh-82300).
    resource_tracker.unregister(shm._name, "shared_memory")

def attach(name):
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name, track=False)
    shm = shared_memory.SharedMemory(name)
    untrack(shm)
    return shm

def attach_list(name):
    sl = shared_memory.ShareableList(name=name)
    untrack(sl.shm)
    return sl
)PY";

/// The text after "key: " on the line that starts with it; nullopt if no line does.
std::optional<std::string> field(const std::string& output, const std::string& key) {
  const std::string prefix = key + ": ";
  std::size_t at = output.rfind("\n" + prefix);
  if (output.compare(0, prefix.size(), prefix) == 0 && at == std::string::npos) {
    at = 0;
  } else if (at == std::string::npos) {
    return std::nullopt;
  } else {
    at += 1;
  }
  const std::size_t start = at + prefix.size();
  const std::size_t end = output.find('\n', start);
  return output.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

class CPythonInterop : public testing::TestWithParam<PythonVersion> {
 protected:
  void SetUp() override {
    const auto& py = GetParam();
    auto probe = mproc_shm_test::run_command(std::string(py.command) +
                                             " -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'");
    while (!probe.output.empty() && probe.output.back() == '\n') probe.output.pop_back();
    if (probe.exit_code != 0) {
      GTEST_SKIP() << "Python " << py.version << " is not available ('" << py.command
                   << "' failed: " << probe.output << ")";
    }
    if (probe.output != py.version) {
      GTEST_SKIP() << "'" << py.command << "' runs Python " << probe.output << ", not " << py.version;
    }
  }

  /// Runs kPrelude + body with args; the result's exit code must be checked by the caller.
  CommandResult python(const std::string& body, const std::vector<std::string>& args) {
    static std::atomic<int> counter{0};
    // relaxed: only distinct values are needed.
    const std::string path = "/tmp/mproc-test-" + std::to_string(::getpid()) + "-" +
                             std::to_string(counter.fetch_add(1, std::memory_order_relaxed)) + ".py";
    {
      std::ofstream script(path);
      script << kPrelude << body;
    }
    std::string command = std::string("PYTHONIOENCODING=utf-8 ") + GetParam().command + " " + path;
    for (const auto& a : args) command += " '" + a + "'";
    auto result = mproc_shm_test::run_command(command);
    std::remove(path.c_str());
    return result;
  }
};

// ---------------------------------------------------------------------------------------------
// SharedMemory

TEST_P(CPythonInterop, CppCreatesSharedMemoryPythonAttachesReadsAndWrites) {
  ShmName name("py-attach");
  auto shm = SharedMemory::create(256, name);
  {
    auto view = shm.buf();
    for (std::size_t i = 0; i < view.size(); ++i) view[i] = static_cast<std::byte>(i % 251);
  }
  auto result = python(R"PY(
shm = attach(sys.argv[1])
print("size:", shm.size)
assert bytes(shm.buf) == bytes(i % 251 for i in range(256)), bytes(shm.buf).hex()
shm.buf[100:105] = b"hello"
shm.close()
print("done: yes")
)PY",
                       {name.str()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(field(result.output, "size"), "256");
  EXPECT_EQ(field(result.output, "done"), "yes");
  auto view = shm.buf();
  EXPECT_EQ(hex(view.span().subspan(98, 9)), "6263" + hex(bytes("hello")) + "696a");
  EXPECT_TRUE(segment_exists(name.str())) << "Python's exit destroyed the segment";
  view.release();
  shm.close();
  EXPECT_NO_THROW(shm.unlink());
}

TEST_P(CPythonInterop, PythonCreatesSharedMemoryCppAttachesReadsAndWrites) {
  ShmName name("py-create");
  auto created = python(R"PY(
kw = {"track": False} if sys.version_info >= (3, 13) else {}
shm = shared_memory.SharedMemory(sys.argv[1], create=True, size=1000, **kw)
if not kw:
    untrack(shm)
shm.buf[:6] = b"python"
print("name:", shm.name)
shm.close()
)PY",
                        {name.str()});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  EXPECT_EQ(field(created.output, "name"), name.str());
  ASSERT_TRUE(segment_exists(name.str())) << "the Python creator's exit destroyed it";

  auto shm = SharedMemory::attach(name);
  EXPECT_EQ(shm.size(), 1000U);
  {
    auto view = shm.buf();
    EXPECT_EQ(hex(view.span().first(7)), hex(bytes("python")) + "00");
    std::memcpy(view.data() + 10, "c++", 3);
  }
  auto read = python(R"PY(
shm = attach(sys.argv[1])
print("seen:", bytes(shm.buf[10:13]).decode())
shm.close()
)PY",
                     {name.str()});
  ASSERT_EQ(read.exit_code, 0) << read.output;
  EXPECT_EQ(field(read.output, "seen"), "c++");
  shm.close();
  EXPECT_NO_THROW(shm.unlink()) << "someone else unlinked the segment";
}

// ---------------------------------------------------------------------------------------------
// ShareableList

TEST_P(CPythonInterop, CppCreatesListPythonReadsAndWrites) {
  ShmName name("py-list");
  const std::string text = "h\xc3\xa9llo \xf0\x9f\x92\xa5 w\xc3\xb6rld";  // 18 UTF-8 bytes
  auto list = ShareableList::create({1, 2.5, true, "str", bytes(std::string("by\0tes", 6)), nullptr, text,
                                     bytes(std::string("ends\0", 5)), -7, 1e100, ""},
                                    name);
  auto result = python(R"PY(
sl = attach_list(sys.argv[1])
print("before:", repr(list(sl)))
print("format:", sl.format)
sl[0] = 42
sl[1] = "xy"
sl[2] = None
sl[3] = b"abc"
sl[5] = -0.5
sl[7] = b"longer!"
sl[10] = True
print("after:", repr(list(sl)))
print("format after:", sl.format)
sl.shm.close()
)PY",
                       {name.str()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // Python strips the trailing NUL of b"ends\0" on read (its own rule, gh-96779); the rest is exact.
  EXPECT_EQ(field(result.output, "before"),
            "[1, 2.5, True, 'str', b'by\\x00tes', None, '" + text + "', b'ends', -7, 1e+100, '']");
  EXPECT_EQ(field(result.output, "format"), "qdxxxxxxx?8s8sxxxxxx?x24s5sxqd8s");
  EXPECT_EQ(field(result.output, "format after"), list.format());
  EXPECT_EQ(list.format(), "q8sxxxxxx?x8s8sd24s8sqdxxxxxxx?");

  EXPECT_EQ(list[0], 42);
  EXPECT_EQ(list[1].as<std::string>(), "xy");
  EXPECT_TRUE(std::holds_alternative<std::nullptr_t>(list[2].get()));
  EXPECT_EQ(list[3].as<Bytes>(), bytes("abc"));
  EXPECT_EQ(list[4].as<Bytes>(), bytes(std::string("by\0tes", 6)));
  EXPECT_EQ(list[5].as<double>(), -0.5);
  EXPECT_EQ(list[6].as<std::string>(), text) << "str slots sized in bytes (gh-88336 avoided)";
  EXPECT_EQ(list[7].as<Bytes>(), bytes("longer!")) << "Python's write over a '<n>sx' slot is whole";
  EXPECT_EQ(list[10].as<bool>(), true);
  EXPECT_TRUE(segment_exists(name.str()));
  list.shm().close();
  EXPECT_NO_THROW(list.shm().unlink());
}

TEST_P(CPythonInterop, PythonCreatesListCppReadsWritesAndBuildsTheSameBytes) {
  ShmName name("py-made-list");
  ShmName twin("cpp-made-list");
  auto created = python(R"PY(
values = [1, 2.5, True, "str", b"bytes", None, "", b"", -9223372036854775808, 1e-05, "a" * 8,
          b"\x00mid\x00dle", 0.1]
sl = shared_memory.ShareableList(values, name=sys.argv[1])
untrack(sl.shm)
print("hex:", bytes(sl.shm.buf).hex())
print("format:", sl.format)
print("repr:", repr(sl))
sl.shm.close()
)PY",
                        {name.str()});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  ASSERT_TRUE(segment_exists(name.str()));

  auto list = ShareableList::attach(name);
  EXPECT_EQ(field(created.output, "repr"), list.repr());
  EXPECT_EQ(field(created.output, "format"), list.format());
  const std::vector<Item> values{1,
                                 2.5,
                                 true,
                                 "str",
                                 bytes("bytes"),
                                 nullptr,
                                 "",
                                 Bytes{},
                                 std::numeric_limits<std::int64_t>::min(),
                                 1e-05,
                                 "aaaaaaaa",
                                 bytes(std::string("\0mid\0dle", 8)),
                                 0.1};
  EXPECT_EQ(list.to_vector(), values);
  {
    auto same = ShareableList::create(values, twin);
    auto view = same.shm().buf();
    EXPECT_EQ(field(created.output, "hex"), hex(view.span())) << "C++ must build CPython's exact bytes";
    view.release();
    same.shm().close();
    same.shm().unlink();
  }

  list[0] = "xy";
  list[1] = 3.25;
  list[5] = 7;
  list[10] = bytes(std::string("ab\0", 3));
  list[12] = nullptr;
  auto read = python(R"PY(
sl = attach_list(sys.argv[1])
print("seen:", repr(list(sl)))
print("format:", sl.format)
sl[10] = "longer!!"
print("format after:", sl.format)
sl.shm.close()
)PY",
                     {name.str()});
  ASSERT_EQ(read.exit_code, 0) << read.output;
  EXPECT_EQ(field(read.output, "seen"),
            "['xy', 3.25, True, 'str', b'bytes', 7, '', b'', -9223372036854775808, 1e-05, b'ab', "
            "b'\\x00mid\\x00dle', None]");
  EXPECT_EQ(field(read.output, "format"), "8sdxxxxxxx?8s8sq8s8sqd3sx16sxxxxxx?x");
  EXPECT_EQ(field(read.output, "format after"), "8sdxxxxxxx?8s8sq8s8sqd16s16sxxxxxx?x");
  EXPECT_EQ(list[10].as<std::string>(), "longer!!");
  list.shm().close();
  EXPECT_NO_THROW(list.shm().unlink());
}

TEST_P(CPythonInterop, NoPythonProcessDestroysWhatItOnlyAttached) {
  // The bug to beat, from the other side: C++ keeps a tracked segment; three Python attachers
  // come and go; the segment is still there and C++'s unlink still finds it.
  ShmName name("py-attachers");
  auto shm = SharedMemory::create(64, name);
  for (int i = 0; i < 3; ++i) {
    auto result = python("shm = attach(sys.argv[1]); shm.close()\n", {name.str()});
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_EQ(result.output.find("leaked"), std::string::npos) << result.output;
    ASSERT_TRUE(segment_exists(name.str()));
  }
  EXPECT_NO_THROW(shm.unlink());
}

std::string version_name(const testing::TestParamInfo<PythonVersion>& info) {
  return info.param.label;
}

INSTANTIATE_TEST_SUITE_P(Versions, CPythonInterop, testing::ValuesIn(kPythons), version_name);

}  // namespace
