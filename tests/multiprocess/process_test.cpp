// Process lifecycle beyond the per-method matrix: what happens at the parent's exit, dropped
// handles, descriptors and zombies, descriptor passing to spawn children, and the warning for
// fork in a threaded process.
#include "mproc/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace {

const mproc::StartMethod kMethods[] = {mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                       mproc::StartMethod::forkserver};

// Runs the exit-semantics helper program; returns its combined stdout and stderr.
std::string run_program(const std::string& mode, mproc::StartMethod method, int* status) {
  const std::string command = "MPROC_START_METHOD=" + std::string(mproc::to_string(method)) + " " +
                              MPROC_EXIT_SEMANTICS_PROGRAM + " " + mode + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  *status = pclose(pipe);
  return out;
}

bool process_exists(int pid) {
  // A zombie still "exists" for kill(); read its state to tell.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] != 'Z';
}

int open_descriptors() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(dir)) count += e->d_name[0] != '.';
    closedir(dir);
  }
  return count;
}

// The pids of this process's children that are zombies.
std::vector<int> zombie_children() {
  std::vector<int> zombies;
  std::ifstream children("/proc/self/task/" + std::to_string(getpid()) + "/children");
  int pid = 0;
  while (children >> pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z')
      zombies.push_back(pid);
  }
  return zombies;
}

void returns_normally() {}

TEST(ProcessLifecycle, DaemonChildrenAreTerminatedAndOthersJoinedAtExit) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    int status = -1;
    const std::string out = run_program("daemon-at-exit", method, &status);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    EXPECT_NE(out.find("non-daemon done"), std::string::npos) << "the parent did not wait for its child:\n"
                                                              << out;
    int daemon_pid = 0;
    ASSERT_EQ(std::sscanf(out.c_str(), "daemon pid %d", &daemon_pid), 1) << out;
    // The parent has exited, so the daemon must be gone (allow the reaper a moment).
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
      gone = !process_exists(daemon_pid);
      if (!gone) std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(gone) << "daemon " << daemon_pid << " outlived its parent";
    if (!gone) kill(daemon_pid, SIGKILL);
  }
}

TEST(ProcessLifecycle, DroppingTheHandleOfARunningChildLetsItFinish) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    int status = -1;
    const std::string out = run_program("dropped-handle", method, &status);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    EXPECT_NE(out.find("handle dropped\n"), std::string::npos) << out;
    EXPECT_NE(out.find("dropped child done\n"), std::string::npos) << out;
  }
}

TEST(ProcessLifecycle, ForkInAThreadedProcessWarnsOnce) {
  int status = -1;
  const std::string out = run_program("threads-warning", mproc::StartMethod::fork, &status);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  const std::string warning = "is multi-threaded, use of fork() may lead to deadlocks in the child";
  const auto first = out.find(warning);
  EXPECT_NE(first, std::string::npos) << out;
  EXPECT_EQ(out.find(warning, first + 1), std::string::npos) << "warned more than once:\n" << out;

  const std::string quiet = run_program("threads-warning", mproc::StartMethod::spawn, &status);
  EXPECT_EQ(quiet.find(warning), std::string::npos) << quiet;
}

TEST(ProcessLifecycle, NoDescriptorsOrZombiesLeak) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto ctx = mproc::get_context(method);
    {  // the first start may open long-lived descriptors (this process's pidfd, the forkserver)
      auto warm = ctx.Process(returns_normally);
      warm.start();
      warm.join();
    }
    const int before = open_descriptors();
    for (int i = 0; i < 20; ++i) {
      auto p = ctx.Process(returns_normally);
      p.start();
      p.join();
      p.close();
    }
    for (int i = 0; i < 5; ++i) {  // joined but never closed: the handle's destructor releases
      auto p = ctx.Process(returns_normally);
      p.start();
      p.join();
    }
    EXPECT_EQ(open_descriptors(), before);
    EXPECT_TRUE(zombie_children().empty());
  }
}

TEST(ProcessLifecycle, ChildrenOfAForkChildAreItsOwn) {
  // A fork child inherits the parent's registry in memory; it must start with none of the
  // parent's children (or it would try to join them at exit).
  mproc::Process sleeper(+[] { std::this_thread::sleep_for(10s); });
  sleeper.start();
  auto p = mproc::get_context(mproc::StartMethod::fork).Process([] {
    throw mproc::SystemExit(static_cast<int>(mproc::active_children().size()));
  });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  sleeper.kill();
  sleeper.join();
}

// A type with a custom codec that carries a descriptor: the spawn/forkserver transport must
// deliver it to the child.
struct WriteEnd {
  int fd;
};

}  // namespace

template <>
struct mproc::codec<WriteEnd> {
  static void encode(Encoder& out, const WriteEnd& w) { out.put(out.add_fd(w.fd)); }
  static WriteEnd decode(Decoder& in) { return WriteEnd{in.fd(in.get<std::uint32_t>())}; }
};

namespace {

void write_through(WriteEnd w, std::string text) {
  const auto n = write(w.fd, text.data(), text.size());
  throw mproc::SystemExit(n == static_cast<ssize_t>(text.size()) ? 0 : 1);
}

TEST(ProcessLifecycle, DescriptorsTravelWithArguments) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    auto p =
        mproc::get_context(method).Process(write_through, WriteEnd{fds[1]}, std::string("through the pipe"));
    p.start();
    p.join();
    close(fds[1]);
    EXPECT_EQ(p.exitcode(), 0);
    char buf[64] = {};
    const auto n = read(fds[0], buf, sizeof buf);
    close(fds[0]);
    EXPECT_EQ(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0), "through the pipe");
  }
}

}  // namespace
