// Seed 000's running light (流水灯) on the SAKS board's LED row, started as a Process and stopped
// with Ctrl-C:
//
//   #流水灯任务定义
//   def waterlight(task_name, delay_ts):
//       print(task_name + "任务启动")
//       try:
//           while True:
//               for i in range(0,8):
//                   SAKS.ledrow.on_for_index(i)
//                   time.sleep(delay_ts)
//                   SAKS.ledrow.off_for_index(i)
//       except KeyboardInterrupt:
//           print(task_name + "任务被终止")
//
//   #创建led闪烁任务
//   led_flash = Process(target=waterlight, args=("流水灯", WATERLIGHT_DELAY))
//   # 启动任务
//   led_flash.start()
//
// C++ has no KeyboardInterrupt: SIGINT sets a flag that the task checks between steps (and while
// it sleeps, in short slices). A Ctrl-C in a terminal reaches every process of the group; a
// SIGINT sent to the parent alone is passed on to the task. Either way the task turns every LED
// off, prints 流水灯任务被终止 and ends with exit code 0, and so does the parent.
//
// Options: --delay SECONDS (0.1), --cycles N (0: forever), --gpio sim|sim:NAME|gpiochipN (or
// MPROC_GPIO; default sim), --lang zh|en, --watch (a second process attaches to the simulated
// board and draws the row: ● on, ○ off).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include <mproc/hal/gpio.hpp>
#include <mproc/hal/led_74hc595.hpp>
#include <mproc/hal/sim.hpp>
#include <mproc/mproc.hpp>

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
pid_t g_main_pid = 0;
volatile std::sig_atomic_t g_task_pid = 0;

// The parent passes SIGINT on to the task; any other process (the task, the watcher, or a fork
// child before it installed its own handler) takes it as its KeyboardInterrupt.
void on_sigint(int) {
  if (getpid() == g_main_pid && g_task_pid > 0) {
    (void)kill(static_cast<pid_t>(g_task_pid), SIGINT);
  } else {
    g_interrupted = 1;
  }
}

void handle(int signal) {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(signal, &sa, nullptr);
}

// time.sleep(delay_ts), cut short by Ctrl-C.
void sleep_interruptibly(double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                          std::chrono::duration<double>(seconds));
  while (g_interrupted == 0) {
    const auto left = end - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) break;
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(left, std::chrono::milliseconds(10)));
  }
}

struct Words {
  std::string task_name, started, stopped;
};

Words words(const std::string& lang) {
  if (lang == "en") return {"running light", " task started", " task terminated"};
  return {"流水灯", "任务启动", "任务被终止"};
}

// 流水灯任务定义: the seed's task. cycles 0 runs forever, as the seed's `while True`.
void waterlight(std::string task_name, double delay_ts, int cycles, std::string gpio, std::string lang) {
  handle(SIGINT);
  const Words w = words(lang);
  auto chip = mproc::hal::open_gpio(gpio);
  mproc::hal::Led74HC595 ledrow(*chip);  // SAKS.ledrow: DS 6, SHCP 19, STCP 13
  std::cout << task_name + w.started << std::endl;
  for (int cycle = 0; g_interrupted == 0 && (cycles == 0 || cycle < cycles); ++cycle) {
    for (std::size_t i = 0; i < 8 && g_interrupted == 0; ++i) {
      ledrow.on_for_index(i);
      sleep_interruptibly(delay_ts);
      ledrow.off_for_index(i);
    }
  }
  ledrow.off();
  if (g_interrupted != 0) std::cout << task_name + w.stopped << std::endl;
}

// --watch: draws the simulated board's row at each latch since `seen`, from the board's latch
// log (so a late wake-up still draws every step), until SIGTERM or SIGINT, or until its parent
// is gone.
void watch(std::string board_name, std::uint64_t seen) {
  handle(SIGINT);
  handle(SIGTERM);
  auto board = mproc::hal::SimBoard::attach(board_name);
  const bool tty = isatty(STDOUT_FILENO) != 0;
  auto draw = [&] {
    for (const auto& change : board.changes(seen)) {
      std::string row;
      for (unsigned i = 0; i < 8; ++i) row += ((change.leds >> i) & 1U) != 0 ? "● " : "○ ";
      row.pop_back();
      std::cout << (tty ? "\r" : "") << row << (tty ? "" : "\n") << std::flush;
      seen = change.latch;
    }
  };
  while (g_interrupted == 0) {
    (void)board.wait_change(seen, std::chrono::milliseconds(100));
    draw();
    auto parent = mproc::parent_process();
    if (parent && !parent->is_alive()) break;
  }
  draw();  // what happened before the stop
  if (tty) std::cout << "\n";
}

struct Options {
  double delay = 0.1;
  int cycles = 0;
  std::string gpio;
  std::string lang = "zh";
  bool watch = false;
};

[[noreturn]] void usage(const char* argv0, const std::string& problem) {
  std::cerr << argv0 << ": " << problem << "\nusage: " << argv0
            << " [--delay SECONDS] [--cycles N] [--gpio sim|sim:NAME|gpiochipN] [--lang zh|en] [--watch]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0], a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--delay") {
        o.delay = std::stod(value());
        if (!(o.delay >= 0)) usage(argv[0], "--delay must be 0 or more");
      } else if (a == "--cycles") {
        o.cycles = std::stoi(value());
        if (o.cycles < 0) usage(argv[0], "--cycles must be 0 (forever) or more");
      } else if (a == "--gpio") {
        o.gpio = value();
      } else if (a == "--lang") {
        o.lang = value();
        if (o.lang != "zh" && o.lang != "en") usage(argv[0], "--lang is zh or en");
      } else if (a == "--watch") {
        o.watch = true;
      } else {
        usage(argv[0], "unknown option " + a);
      }
    } catch (const std::logic_error&) {
      usage(argv[0], "bad number for " + a);
    }
  }
  if (o.gpio.empty()) {
    const char* env = std::getenv("MPROC_GPIO");
    o.gpio = env != nullptr && *env != '\0' ? env : "sim";
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  // Before init(): a spawn child runs its target inside init(), and must not die of a Ctrl-C
  // that comes before the target installs the handler itself.
  g_main_pid = getpid();
  handle(SIGINT);
  mproc::init(argc, argv);
  const Options o = parse(argc, argv);
  const bool sim = o.gpio == "sim" || o.gpio.starts_with("sim:");
  if (o.watch && !sim) usage(argv[0], "--watch draws the simulated board only (--gpio sim)");

  try {
    // Open the board here first: the simulated one then lives as long as this program, for the
    // task and the watcher to attach to, and is removed when it ends.
    auto chip = mproc::hal::open_gpio(o.gpio);

    std::optional<mproc::Process> watcher;
    if (o.watch) {
      const std::string board_name = o.gpio == "sim" ? std::string("sim") : o.gpio.substr(4);
      const std::uint64_t seen = mproc::hal::SimBoard::attach(board_name).latches();
      watcher.emplace(mproc::ProcessOptions{.name = "watch", .daemon = true}, watch, board_name, seen);
      watcher->start();
    }
    // led_flash = Process(target=waterlight, args=("流水灯", WATERLIGHT_DELAY))
    mproc::Process led_flash(waterlight, words(o.lang).task_name, o.delay, o.cycles, o.gpio, o.lang);
    led_flash.start();  // led_flash.start()
    g_task_pid = *led_flash.pid();
    if (g_interrupted != 0)
      (void)kill(static_cast<pid_t>(g_task_pid), SIGINT);  // came before we knew the task
    led_flash.join();
    g_task_pid = 0;
    if (watcher) {
      watcher->terminate();  // it draws what it has not drawn yet, then ends
      watcher->join();
    }
    const int code = led_flash.exitcode().value_or(1);
    return code == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << "\n";
    return 1;
  }
}
