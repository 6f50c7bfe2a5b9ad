// Process lifecycle beyond the per-method matrix: what happens at the parent's exit, dropped
// handles, descriptors and zombies, descriptor passing, a dying forkserver, hostile boot
// payloads, threads sharing a Process, and the warning for fork in a threaded process.
#include "mproc/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace {

const mproc::StartMethod kMethods[] = {mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                       mproc::StartMethod::forkserver};

struct ProgramRun {
  int status = -1;
  std::string output;  // stdout and stderr
};

// Runs a helper program with its output in a file, not a pipe: a child that outlived the
// program (a daemon that was not terminated) must not make the test wait for it.
ProgramRun run_program(const std::string& program, const std::string& mode, mproc::StartMethod method) {
  char path[] = "/tmp/mproc-test-output-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return {-1, "mkstemp failed"};
  close(fd);
  const std::string command = "MPROC_START_METHOD=" + std::string(mproc::to_string(method)) + " timeout 60 " +
                              program + " " + mode + " >" + path + " 2>&1";
  ProgramRun run;
  run.status = std::system(command.c_str());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  run.output = text.str();
  unlink(path);
  return run;
}

bool exited_zero(const ProgramRun& run) {
  return WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0;
}

// Whether a process runs (a zombie does not count).
bool process_runs(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] != 'Z';
}

std::vector<int> open_descriptors() {
  std::vector<int> fds;
  if (DIR* dir = opendir("/proc/self/fd")) {
    const int own = dirfd(dir);
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      const int fd = std::atoi(e->d_name);
      if (fd != own) fds.push_back(fd);
    }
    closedir(dir);
  }
  return fds;
}

// This process's direct children: {pid, state letter, command name}.
struct ChildInfo {
  int pid;
  char state;
  std::string comm;
};

std::vector<ChildInfo> direct_children() {
  std::vector<ChildInfo> out;
  std::ifstream children("/proc/self/task/" + std::to_string(getpid()) + "/children");
  int pid = 0;
  while (children >> pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const auto open = line.find('(');
    const auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || line.size() < close + 3) continue;
    out.push_back({pid, line[close + 2], line.substr(open + 1, close - open - 1)});
  }
  return out;
}

void returns_normally() {}
void sleeps_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

TEST(ProcessLifecycle, DaemonChildrenAreTerminatedAndOthersJoinedAtExit) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto run = run_program(MPROC_EXIT_SEMANTICS_PROGRAM, "daemon-at-exit", method);
    EXPECT_TRUE(exited_zero(run)) << run.output;
    const auto done = run.output.find("non-daemon done");
    const auto exit = run.output.find("parent exit");
    ASSERT_NE(done, std::string::npos) << run.output;
    ASSERT_NE(exit, std::string::npos) << run.output;
    EXPECT_LT(done, exit) << "the parent ended before joining its child:\n" << run.output;
    int daemon_pid = 0;
    ASSERT_EQ(std::sscanf(run.output.c_str(), "daemon pid %d", &daemon_pid), 1) << run.output;
    // The parent has exited, so the daemon must be gone (allow the reaper a moment).
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
      gone = !process_runs(daemon_pid);
      if (!gone) std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(gone) << "daemon " << daemon_pid << " outlived its parent";
    if (!gone) kill(daemon_pid, SIGKILL);
  }
}

TEST(ProcessLifecycle, DroppingTheHandleOfARunningChildLetsItFinish) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto run = run_program(MPROC_EXIT_SEMANTICS_PROGRAM, "dropped-handle", method);
    EXPECT_TRUE(exited_zero(run)) << run.output;
    EXPECT_EQ(run.output, "handle dropped\ndropped child done\nparent exit\n");
  }
}

TEST(ProcessLifecycle, AThrowingTargetReportsItsExceptionOnStderr) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    const auto run = run_program(MPROC_EXIT_SEMANTICS_PROGRAM, "throws", method);
    EXPECT_TRUE(exited_zero(run)) << run.output;
    EXPECT_EQ(run.output, "Process Process-1:\nstd::runtime_error: boom\nexitcode 1\nparent exit\n");
  }
}

TEST(ProcessLifecycle, ForkInAThreadedProcessWarnsOnce) {
  const auto run = run_program(MPROC_EXIT_SEMANTICS_PROGRAM, "threads-warning", mproc::StartMethod::fork);
  EXPECT_TRUE(exited_zero(run)) << run.output;
  const std::string warning = "is multi-threaded, use of fork() may lead to deadlocks in the child";
  const auto first = run.output.find(warning);
  EXPECT_NE(first, std::string::npos) << run.output;
  EXPECT_EQ(run.output.find(warning, first + 1), std::string::npos) << "warned more than once:\n"
                                                                    << run.output;

  const auto quiet = run_program(MPROC_EXIT_SEMANTICS_PROGRAM, "threads-warning", mproc::StartMethod::spawn);
  EXPECT_EQ(quiet.output.find(warning), std::string::npos) << quiet.output;
}

TEST(ProcessLifecycle, SpawnWithoutInitIsRefusedWithAnExplanation) {
  const auto run = run_program(MPROC_NO_INIT_PROGRAM, "", mproc::StartMethod::fork);
  EXPECT_TRUE(exited_zero(run)) << run.output;
  EXPECT_NE(run.output.find(
                "refused: the spawn start method needs mproc::init(argc, argv) as the first line of main()"),
            std::string::npos)
      << run.output;
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
    const auto before = open_descriptors();
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
    for (const auto& child : direct_children()) EXPECT_NE(child.state, 'Z') << "zombie child " << child.pid;
  }
}

// The descriptors a child holds, other than 0-2: spawn and forkserver children get their
// parent's pidfd (4) and nothing else unless their arguments carry descriptors.
void count_foreign_descriptors() {
  int foreign = 0;
  for (int fd : open_descriptors()) foreign += fd > 2 && fd != 4;
  throw mproc::SystemExit(foreign);
}

TEST(ProcessLifecycle, SpawnAndForkserverChildrenGetOnlyTheirDescriptors) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);  // without close-on-exec: the children must not get it anyway
  for (auto method : {mproc::StartMethod::spawn, mproc::StartMethod::forkserver}) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    auto p = mproc::get_context(method).Process(count_foreign_descriptors);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
  }
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

TEST(ProcessLifecycle, ChildrenOfAForkChildAreItsOwn) {
  // A fork child inherits the parent's registry in memory; it must start with none of the
  // parent's children (or it would try to join them at exit).
  mproc::Process sleeper(sleeps_ms, 10'000);
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

TEST(ProcessLifecycle, ThreadsMayJoinPollAndSignalOneProcessAtOnce) {
  for (auto method : kMethods) {
    SCOPED_TRACE(std::string(mproc::to_string(method)));
    auto p = mproc::get_context(method).Process(sleeps_ms, 10'000);
    p.start();
    std::atomic<int> joined{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
      threads.emplace_back([&] {
        p.join();
        joined.fetch_add(1);
      });
    }
    threads.emplace_back([&] {
      for (int i = 0; i < 1000 && p.is_alive(); ++i) (void)p.exitcode();
    });
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(joined.load(), 0);
    p.terminate();  // while three threads are blocked in join
    for (auto& t : threads) t.join();
    EXPECT_EQ(joined.load(), 3);
    EXPECT_EQ(p.exitcode(), -SIGTERM);
  }
}

TEST(ProcessLifecycle, JoinWithDurationMaxMeansForever) {
  mproc::Process p(sleeps_ms, 20);
  p.start();
  EXPECT_TRUE(p.join(std::chrono::seconds::max()));
  EXPECT_TRUE(p.join(std::chrono::hours::max()));
  EXPECT_EQ(p.exitcode(), 0);
}

int forkserver_pid() {
  for (const auto& child : direct_children()) {
    if (child.comm == "mproc-forksrv") return child.pid;
  }
  return -1;
}

TEST(ProcessLifecycle, ADyingForkserverNeitherHangsJoinNorLosesTrack) {
  const auto ctx = mproc::get_context(mproc::StartMethod::forkserver);
  auto p = ctx.Process(sleeps_ms, 300);
  p.start();
  const int server = forkserver_pid();
  ASSERT_GT(server, 0) << "no forkserver among this process's children";
  ASSERT_EQ(kill(server, SIGKILL), 0);
  // The status pipe hit end of file; join must still honour its timeout and the child's life.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(p.join(50ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
  EXPECT_TRUE(p.is_alive());
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), 255) << "the documented code for a status the dead server could not report";
  // The next start brings up a new server.
  auto q = ctx.Process(returns_normally);
  q.start();
  q.join();
  EXPECT_EQ(q.exitcode(), 0);
  EXPECT_NE(forkserver_pid(), server);
  waitpid(server, nullptr, 0);  // the killed server is this process's child: reap it
}

TEST(ProcessLifecycle, ForkserverIgnoresInterrupts) {
  auto p = mproc::get_context(mproc::StartMethod::forkserver).Process(sleeps_ms, 100);
  p.start();
  const int server = forkserver_pid();
  ASSERT_GT(server, 0);
  ASSERT_EQ(kill(server, SIGINT), 0);  // Ctrl-C reaches the whole process group
  p.join();
  EXPECT_EQ(p.exitcode(), 0) << "the server died of SIGINT and lost the status";
  EXPECT_EQ(forkserver_pid(), server);
}

// Runs this test binary as a spawn child by hand, with payload bytes of our choosing at fd 3.
ProgramRun boot_with_payload(const std::string& payload) {
  int err[2];
  if (pipe(err) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    const int blob = memfd_create("mproc-test-hostile", 0);
    if (!payload.empty() && write(blob, payload.data(), payload.size()) < 0) _exit(99);
    dup2(blob, 3);
    dup2(err[1], 2);
    execl("/proc/self/exe", "hostile", "--mproc-spawn", nullptr);
    _exit(98);
  }
  close(err[1]);
  ProgramRun run;
  char buf[256];
  ssize_t n = 0;
  while ((n = read(err[0], buf, sizeof buf)) > 0) run.output.append(buf, static_cast<std::size_t>(n));
  close(err[0]);
  waitpid(pid, &run.status, 0);
  return run;
}

TEST(ProcessLifecycle, HostileBootPayloadsAreRefused) {
  const std::string payloads[] = {
      "",                                                                       // empty
      "garbage that is not a payload at all",                                   // short and wrong
      std::string(64, '\xff'),                                                  // huge counts
      std::string("\x6f\x72\x70\x6d\x01\0\0\0", 8) + std::string(200, '\x7f'),  // right magic, then junk
  };
  for (const auto& payload : payloads) {
    const auto run = boot_with_payload(payload);
    EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 1) << run.status << "\n" << run.output;
    EXPECT_NE(run.output.find("mproc: cannot start the child process"), std::string::npos) << run.output;
  }
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

TEST(ProcessLifecycle, TooManyDescriptorsAreRefusedBeforeStarting) {
  auto p = mproc::get_context(mproc::StartMethod::spawn)
               .Process([](std::vector<WriteEnd>) {}, std::vector<WriteEnd>(16, WriteEnd{1}));
  EXPECT_THROW(p.start(), mproc::ValueError);
  EXPECT_EQ(p.pid(), std::nullopt);
}

}  // namespace
