// main() of every mproc test binary. mproc::init() comes first: spawn and forkserver children of
// the tests re-run this binary and take over there. After each test a listener checks that the
// test left no child process and no shared-memory segment behind, and cleans up if it did, so
// one failing test cannot poison the next or leave strays on the machine.
//
// Tests run in parallel (ctest -j), so the segment check only looks at names that carry this
// process's pid as a dash-separated token ("mproc-test-<pid>-..."): every test names the
// segments it creates that way, and another process's segments are none of its business.
#include <dirent.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mproc/process.hpp"

namespace {

std::vector<std::string> mproc_segments() {
  std::vector<std::string> names;
  const std::string token = "-" + std::to_string(getpid()) + "-";
  if (DIR* dir = opendir("/dev/shm")) {
    while (dirent* e = readdir(dir)) {
      const std::string name = std::string(e->d_name) + "-";
      if (name.find("mproc") != std::string::npos && name.find(token) != std::string::npos) {
        names.push_back(e->d_name);
      }
    }
    closedir(dir);
  }
  return names;
}

class LeakCheck : public testing::EmptyTestEventListener {
 public:
  void OnTestStart(const testing::TestInfo&) override { segments_before_ = mproc_segments(); }

  void OnTestEnd(const testing::TestInfo& info) override {
    auto children = mproc::active_children();
    if (!children.empty()) {
      ADD_FAILURE() << info.name() << " left " << children.size()
                    << " child process(es) running; killing them";
      for (auto& child : children) {
        child.kill();
        child.join();
      }
    }
    for (const auto& name : mproc_segments()) {
      bool existed = false;
      for (const auto& before : segments_before_) existed = existed || before == name;
      if (!existed) {
        ADD_FAILURE() << info.name() << " left /dev/shm/" << name << " behind; removing it";
        std::remove(("/dev/shm/" + name).c_str());
      }
    }
  }

 private:
  std::vector<std::string> segments_before_;
};

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new LeakCheck);
  return RUN_ALL_TESTS();
}
