// The GPIO layer (issue 6): the simulated 74HC595 against hand-made waveforms, the SAKS LED-row
// driver, one contract test for both backends (the libgpiod half skips, visibly, on a machine
// without /dev/gpiochip*), a task terminated while it holds the lines, and the running-light
// example under SIGINT.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "children.hpp"
#include "expect_error.hpp"
#include "mproc/hal/gpio.hpp"
#include "mproc/hal/led_74hc595.hpp"
#include "mproc/hal/sim.hpp"
#include "mproc/process.hpp"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using mproc::hal::kSimDs;
using mproc::hal::kSimShcp;
using mproc::hal::kSimStcp;

// A board of this test process only (its name carries the pid, as the leak check expects).
std::string board_name(const std::string& what) {
  return "test-" + std::to_string(getpid()) + "-" + what;
}

// Drives DS/SHCP/STCP by hand, as a driver would.
struct Wires {
  std::unique_ptr<mproc::hal::OutputLines> lines;
  explicit Wires(mproc::hal::GpioChip& chip)
      : lines(chip.request_output({kSimDs, kSimShcp, kSimStcp}, "test")) {}
  void shift(bool bit) {
    lines->set(0, bit);
    lines->set(1, false);
    lines->set(1, true);
  }
  void latch() {
    lines->set(2, false);
    lines->set(2, true);
  }
};

TEST(Sim74HC595, BitZeroShiftedFirstIsLedZero) {
  const std::string name = board_name("lsb");
  auto chip = mproc::hal::open_gpio("sim:" + name);
  auto board = mproc::hal::SimBoard::attach(name);
  Wires w(*chip);
  const std::uint8_t data = 0b0000'0101;  // LEDs 0 and 2
  for (unsigned i = 0; i < 8; ++i) w.shift(((data >> i) & 1U) != 0);
  EXPECT_EQ(board.led_byte(), 0) << "nothing shows before the latch";
  w.latch();
  EXPECT_EQ(board.led_byte(), data);
  EXPECT_EQ(board.leds(), (std::array<bool, 8>{true, false, true, false, false, false, false, false}));
  EXPECT_EQ(board.shifts(), 8U);
  EXPECT_EQ(board.latches(), 1U);
}

TEST(Sim74HC595, TheWrongBitOrderShowsMirrored) {
  const std::string name = board_name("msb");
  auto chip = mproc::hal::open_gpio("sim:" + name);
  auto board = mproc::hal::SimBoard::attach(name);
  Wires w(*chip);
  const std::uint8_t data = 0b0000'0101;
  for (int i = 7; i >= 0; --i) w.shift(((data >> i) & 1U) != 0);  // WiringPi's sr595 order
  w.latch();
  EXPECT_EQ(board.led_byte(), 0b1010'0000) << "LEDs 7 and 5: the row is mirrored";
}

TEST(Sim74HC595, OnlyRisingEdgesCount) {
  const std::string name = board_name("edges");
  auto chip = mproc::hal::open_gpio("sim:" + name);
  auto board = mproc::hal::SimBoard::attach(name);
  Wires w(*chip);
  for (int i = 0; i < 8; ++i) w.shift(true);
  w.latch();
  ASSERT_EQ(board.led_byte(), 0xff);
  // Shifting zeros without a latch changes nothing that shows.
  for (int i = 0; i < 8; ++i) w.shift(false);
  EXPECT_EQ(board.led_byte(), 0xff) << "a missing latch leaves the old row";
  // DS moving while the clock stays high, and the clock falling, clock nothing in.
  w.lines->set(0, true);
  w.lines->set(1, false);
  w.lines->set(0, false);
  EXPECT_EQ(board.shifts(), 16U);
  w.lines->set(1, true);  // a rising edge with DS low
  w.latch();
  EXPECT_EQ(board.led_byte(), 0x00);
  EXPECT_EQ(board.shifts(), 17U);
  // A second rising edge of STCP without a falling one in between is no edge.
  w.lines->set(2, true);
  EXPECT_EQ(board.latches(), 2U);
}

TEST(Led74HC595, TheSaksApiOnTheWaveform) {
  const std::string name = board_name("ledrow");
  auto chip = mproc::hal::open_gpio("sim:" + name);
  auto board = mproc::hal::SimBoard::attach(name);
  mproc::hal::Led74HC595 ledrow(*chip, {.ds = 6, .shcp = 19, .stcp = 13});
  EXPECT_EQ(board.led_byte(), 0) << "all off after construction";
  const std::uint64_t latches = board.latches();
  ledrow.on_for_index(3);
  EXPECT_EQ(board.led_byte(), 1U << 3);
  EXPECT_TRUE(ledrow.is_on(3));
  EXPECT_FALSE(ledrow.is_on(8)) << "the SDK answers false past the row";
  ledrow.on_for_index(0);
  ledrow.off_for_index(3);
  EXPECT_EQ(board.led_byte(), 1U);
  ledrow.set_row({true, false, true, std::nullopt, std::nullopt, false, false, true});
  EXPECT_EQ(board.leds(), (std::array<bool, 8>{true, false, true, false, false, false, false, true}));
  EXPECT_EQ(ledrow.row_status(), board.leds());
  ledrow.on();
  EXPECT_EQ(board.led_byte(), 0xff);
  ledrow.off();
  EXPECT_EQ(board.led_byte(), 0);
  EXPECT_EQ(board.latches(), latches + 6) << "one latch per change";
  EXPECT_EQ(board.shifts() % 8, 0U) << "eight clock pulses per byte";
  expect_error<mproc::ValueError>([&] { ledrow.on_for_index(8); }, "LED index must be 0 to 7, not 8");
}

// --- the contract both backends keep ---------------------------------------------------------

class GpioContract : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sim") {
      chip_ = mproc::hal::open_gpio("sim:" + board_name("contract"));
      return;
    }
    // Only on a chip named on purpose: the test drives lines 2 to 9 as outputs, which on a real
    // board are wired to something (I2C, SAKS's display).
    const char* chip = std::getenv("MPROC_GPIO_TEST_CHIP");
    if (chip == nullptr || *chip == '\0') {
      GTEST_SKIP() << (mproc::hal::have_gpio_chips()
                           ? "set MPROC_GPIO_TEST_CHIP to a chip whose lines 2-9 may be driven (a gpio-sim "
                             "chip) to run the libgpiod backend's contract"
                           : "no /dev/gpiochip* on this machine: the libgpiod backend is not exercised here "
                             "(run with MPROC_GPIO_TEST_CHIP on a kernel with gpio-sim, or on a test board)");
    }
    chip_ = mproc::hal::open_gpio(chip);
  }
  std::unique_ptr<mproc::hal::GpioChip> chip_;
};

TEST_P(GpioContract, ASecondRequestOfAHeldLineIsBusy) {
  auto held = chip_->request_output({2U, 3U}, "first");
  EXPECT_THROW((void)chip_->request_output({3U}, "second"), mproc::hal::LineBusy);
  try {
    (void)chip_->request_output({3U}, "second");
  } catch (const mproc::hal::LineBusy& e) {
    EXPECT_EQ(e.code().value(), EBUSY);
  }
  EXPECT_EQ(chip_->consumer(2), "first");
  held.reset();
  EXPECT_EQ(chip_->consumer(2), std::nullopt) << "released with its OutputLines";
  EXPECT_NO_THROW((void)chip_->request_output({3U}, "second"));
}

TEST_P(GpioContract, ConsumerLabelsAreCutTo31Characters) {
  const std::string label(40, 'x');
  auto held = chip_->request_output({4U}, label);
  EXPECT_EQ(chip_->consumer(4), std::string(31, 'x'));
}

TEST_P(GpioContract, MissingLinesAndChips) {
  EXPECT_THROW((void)chip_->request_output({chip_->num_lines()}, "t"), mproc::hal::LineNotFound);
  EXPECT_THROW((void)chip_->request_output({std::string("NO_SUCH_LINE")}, "t"), mproc::hal::LineNotFound);
  EXPECT_THROW((void)chip_->find_line("NO_SUCH_LINE"), mproc::hal::LineNotFound);
  EXPECT_THROW((void)mproc::hal::open_gpio("gpiochip99"), mproc::hal::ChipNotFound);
  EXPECT_THROW((void)chip_->request_output({5U, 5U}, "t"), mproc::ValueError);
}

TEST_P(GpioContract, InitialValuesApplyAtRequest) {
  auto lines = chip_->request_output({7U, 8U}, "init", {true, false});
  EXPECT_TRUE(lines->get(0));
  EXPECT_FALSE(lines->get(1));
  if (GetParam() == "sim") {
    auto board = mproc::hal::SimBoard::attach(board_name("contract"));
    EXPECT_TRUE(board.level(7));
    EXPECT_FALSE(board.level(8));
  }
  lines->set(1, true);
  EXPECT_TRUE(lines->get(1));
}

TEST_P(GpioContract, ADeadHoldersLinesAreFree) {
  mproc_test::Children children;
  const std::string spec = chip_->name();
  auto& p = children.start(mproc::Process([spec] {
    auto chip = mproc::hal::open_gpio(spec);
    auto lines = chip->request_output({9U}, "doomed");
    ::kill(getpid(), SIGKILL);  // dies holding the line
  }));
  ASSERT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_NO_THROW((void)chip_->request_output({9U}, "next"));
}

INSTANTIATE_TEST_SUITE_P(Backends, GpioContract, testing::Values("sim", "gpiod"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(SimBoard, LinesByName) {
  auto chip = mproc::hal::open_gpio("sim:" + board_name("names"));
  EXPECT_EQ(chip->find_line("GPIO6"), 6U);
  EXPECT_EQ(chip->find_line("GPIO27"), 27U);
  EXPECT_THROW((void)chip->find_line("GPIO28"), mproc::hal::LineNotFound);
  EXPECT_THROW((void)chip->find_line("GPIO06"), mproc::hal::LineNotFound);
  auto lines = chip->request_output({std::string("GPIO6"), std::string("GPIO19")}, "named");
  EXPECT_EQ(chip->consumer(19), "named");
  EXPECT_THROW(mproc::hal::SimBoard::attach(board_name("nobody-made-this")), mproc::FileNotFoundError);
}

// A task terminated while it drives the LEDs: it ends at once, and its lines are free again.
TEST(SimBoard, TerminatedTaskReleasesItsLines) {
  const std::string spec = "sim:" + board_name("terminate");
  auto chip = mproc::hal::open_gpio(spec);
  auto board = mproc::hal::SimBoard::attach(board_name("terminate"));
  mproc_test::Children children;
  auto& task = children.start(mproc::Process([spec] {
    auto c = mproc::hal::open_gpio(spec);
    mproc::hal::Led74HC595 ledrow(*c);
    for (std::size_t i = 0;; i = (i + 1) % 8) {
      ledrow.on_for_index(i);
      std::this_thread::sleep_for(1ms);
      ledrow.off_for_index(i);
    }
  }));
  ASSERT_TRUE(mproc_test::eventually([&] { return board.latches() > 10; }));
  task.terminate();
  ASSERT_TRUE(task.join(10s));
  EXPECT_EQ(task.exitcode(), -SIGTERM);
  EXPECT_NO_THROW(mproc::hal::Led74HC595 next(*chip));
}

// --- the running-light example ---------------------------------------------------------------

std::string example(const char* name) {
  return std::string(MPROC_EXAMPLES_DIR) + "/" + name;
}

#define REQUIRE_EXAMPLE(name)                                                    \
  if (::access(example(name).c_str(), X_OK) != 0) {                              \
    GTEST_SKIP() << example(name) << " is not built (MPROC_BUILD_EXAMPLES=OFF)"; \
  }

struct Run {
  pid_t pid = -1;
  int out = -1;
};

// Starts the program in a process group of its own, so that a stuck run is killed whole.
Run spawn_example(const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return {};
  }
  return {pid, fds[0]};
}

// Waits (bounded) for the program and returns its exit status and output.
std::pair<int, std::string> finish(const Run& r, std::chrono::seconds limit = 20s) {
  if (r.pid <= 0) return {-1, "the example could not be started"};
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(r.pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-r.pid, SIGKILL);  // the program and its task
      ::waitpid(r.pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  ::kill(-r.pid, SIGKILL);  // nothing of the group outlives the test, whatever happened
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(r.out, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(r.out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

std::optional<pid_t> child_of(pid_t parent) {
  std::ifstream in("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
  pid_t child = 0;
  if (in >> child) return child;
  return std::nullopt;
}

// The LEDs over time: each on alone, in order 0..7, then all off; the board outlives the program
// because this test made it first.
TEST(Waterlight, OneLedAtATimeInOrderThenAllOff) {
  REQUIRE_EXAMPLE("waterlight");
  const std::string name = board_name("waterlight");
  auto chip = mproc::hal::open_gpio("sim:" + name);
  auto board = mproc::hal::SimBoard::attach(name);
  const std::uint64_t before = board.latches();
  auto r =
      spawn_example({example("waterlight"), "--cycles", "2", "--delay", "0.01", "--gpio", "sim:" + name});
  const auto [code, out] = finish(r);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "流水灯任务启动\n");
  const auto changes = board.changes(before);
  std::vector<int> lit;
  for (const auto& c : changes) {
    EXPECT_LE(__builtin_popcount(c.leds), 1) << "two LEDs on at once: " << int{c.leds};
    if (c.leds != 0) lit.push_back(__builtin_ctz(c.leds));
  }
  EXPECT_EQ(lit, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7}));
  ASSERT_FALSE(changes.empty());
  EXPECT_EQ(changes.back().leds, 0) << "all off at the end";
  // Each LED stays on for about the delay.
  for (std::size_t i = 0; i + 1 < changes.size(); ++i) {
    if (changes[i].leds == 0) continue;
    EXPECT_GE(changes[i + 1].time_ns - changes[i].time_ns, 9'000'000U)
        << "LED " << __builtin_ctz(changes[i].leds);
  }
}

TEST(Waterlight, SigintToTheParentEndsTheTaskCleanly) {
  REQUIRE_EXAMPLE("waterlight");
  const std::string name = board_name("sigint-parent");
  auto chip = mproc::hal::open_gpio("sim:" + name);
  auto board = mproc::hal::SimBoard::attach(name);
  auto r = spawn_example({example("waterlight"), "--delay", "0.01", "--gpio", "sim:" + name});
  ASSERT_GT(r.pid, 0);
  const bool running = mproc_test::eventually([&] { return board.latches() > 5; });
  if (!running) (void)finish(r, 0s);
  ASSERT_TRUE(running);
  ::kill(r.pid, SIGINT);  // to the parent only, while it waits in join()
  const auto [code, out] = finish(r);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "流水灯任务启动\n流水灯任务被终止\n");
  EXPECT_EQ(board.led_byte(), 0) << "all LEDs off";
}

TEST(Waterlight, SigintToTheTaskEndsItCleanly) {
  REQUIRE_EXAMPLE("waterlight");
  const std::string name = board_name("sigint-task");
  auto chip = mproc::hal::open_gpio("sim:" + name);
  auto board = mproc::hal::SimBoard::attach(name);
  auto r = spawn_example({example("waterlight"), "--delay", "0.01", "--lang", "en", "--gpio", "sim:" + name});
  ASSERT_GT(r.pid, 0);
  const bool running = mproc_test::eventually([&] { return board.latches() > 5; });
  const auto task = child_of(r.pid);
  if (!running || !task) (void)finish(r, 0s);
  ASSERT_TRUE(running);
  ASSERT_TRUE(task) << "no task process under " << r.pid;
  ::kill(*task, SIGINT);
  const auto [code, out] = finish(r);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "running light task started\nrunning light task terminated\n");
  EXPECT_EQ(board.led_byte(), 0);
}

}  // namespace
