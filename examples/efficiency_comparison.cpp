// Seeds 000 and 002, the efficiency comparison (from 莫烦Python's tutorial): the sum of
// i + i**2 + i**3 for i below 1,000,000, computed the normal way, with two threads, and with two
// processes; C++ edition, with mproc::Pool as a fourth way, every result checked against the
// closed form. `make demo` runs it.
//
//   def job(q):
//       res = 0
//       for i in range(1000000):
//           res += i + i**2 + i**3
//       q.put(res) # queue
//   def normal():
//       res = 0
//       for _ in range(2):
//           for i in range(1000000):
//               res += i + i**2 + i**3
//       print('normal:', res)
//   def multithread():                        # multicore(): the same with mp.Process
//       q = mp.Queue() # thread可放入process同样的queue中
//       t1 = td.Thread(target=job, args=(q,))
//       t2 = td.Thread(target=job, args=(q,))
//       t1.start(); t2.start(); t1.join(); t2.join()
//       res1 = q.get(); res2 = q.get()
//       print('multithread:', res1 + res2)
//
// The workload is the seed's: two passes over range(n). normal() runs both passes one after the
// other; multithread() and multicore() give one whole pass to each of their two workers (they do
// not split the range). So every method does the same work and prints the same number, twice the
// single sum: 2 * 249999833333583333000000 = 499999666667166666000000, the seed's answer. This
// edition keeps that workload in every method, so its answer is the seed's, and gives the pool the
// same two passes cut into 64 pieces.
//
// The seed concludes (结论) that multicore is fastest and that multithread is even a little slower
// than normal (多线程的运行时间居然比什么都不做的程序还要慢一点). The second half holds for Python
// only: CPython's GIL runs one thread at a time. C++ threads run on both cores, so here multithread
// is about as fast as multicore; that row is the one place where this table differs from the
// seed's. When python3 is on PATH the program also runs the seed's own code
// (examples/python/efficiency_comparison.py) and shows its times in the table.
//
// Python's integers grow without bound; here the sums are exact in unsigned __int128, which holds
// the answer for every n up to kMaxN (see there).
//
// Options: --n N       the heavy run's n (default kHeavyN, a few seconds in one process)
//          --quick     only the seed's n (the test suite runs --quick --no-python)
//          --no-python do not run the seed's Python code
// Exit status: 0 when every result equals the closed form, 1 when one does not or a worker
// failed, 2 for bad options.
#include <stdio.h>   // popen, pclose
#include <unistd.h>  // access, isatty

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <mproc/mproc.hpp>

namespace {

__extension__ using u128 = unsigned __int128;
using Range = std::pair<std::uint64_t, std::uint64_t>;  // [first, second), Python's range(lo, hi)
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kSeedN = 1'000'000;  // range(1000000)
// About 2.8 s for normal on one core of the 2-core machine this was written on (-O2, 1.7 ns a number).
constexpr std::uint64_t kHeavyN = 800'000'000;
// The answer, 2 * (sum of i + i**2 + i**3) ~ n**4 / 2, stays below 2**128 ~ 3.4e38 up to here
// (1.3e38), and so do the closed form's terms and every i**3.
constexpr std::uint64_t kMaxN = 4'000'000'000;
// Workers report progress after each stretch of this many numbers (about 8 ms of work).
constexpr std::uint64_t kStride = std::uint64_t{1} << 22;
constexpr std::size_t kPiecesPerPass = 32;  // the pool's 64 pieces: two passes of 32

std::string to_string(u128 v) {
  if (v == 0) return "0";
  std::string digits;
  for (; v != 0; v /= 10) digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
  return digits;
}

// What every method must print: two passes of the seed's loop, in closed form.
u128 expected_answer(std::uint64_t n) {
  const u128 m = n;
  const u128 sum_i = m * (m - 1) / 2;
  const u128 sum_i2 = (m - 1) * m * (2 * m - 1) / 6;
  const u128 sum_i3 = sum_i * sum_i;
  return 2 * (sum_i + sum_i2 + sum_i3);
}

// The seed's loop over one range:  for i in range(lo, hi): res += i + i**2 + i**3
// Never inlined, so that every method runs this same machine code: the table then compares ways of
// running it, not what the optimizer made of each caller's copy (the inlined copies ran about a
// quarter slower than this one on the machine this was written on).
[[gnu::noinline]] u128 partial_sum(Range range) {
  u128 res = 0;
  for (u128 i = range.first; i < range.second; ++i) res += i + i * i + i * i * i;
  return res;
}

// ---------------------------------------------------------------------------------------------
// Progress of one method in the heavy run: a bar redrawn in place on a terminal, a line at each
// quarter otherwise (a log, a pipe), nothing at the seed's n (a few milliseconds a method).

class Progress {
 public:
  enum class Style { off, bar, lines };

  Progress(Style style, std::string label) : style_(style), label_(std::move(label)) {}

  [[nodiscard]] bool on() const { return style_ != Style::off; }

  // Called often; draws at most every 100 ms (bar) or once per quarter (lines).
  void update(double fraction) {
    if (style_ == Style::bar) {
      const auto now = Clock::now();
      if (now - last_draw_ < std::chrono::milliseconds(100)) return;
      last_draw_ = now;
      draw_bar(fraction);
      std::cout << std::flush;
    } else if (style_ == Style::lines) {
      const int quarter = static_cast<int>(fraction * 4);
      if (quarter <= quarters_shown_ || quarter >= 4) return;
      quarters_shown_ = quarter;
      std::cout << "  " << label_ << ": " << quarter * 25 << "%" << std::endl;
    }
  }

  void finish(double seconds) {
    if (style_ == Style::off) return;
    if (style_ == Style::bar) {
      draw_bar(1.0);
    } else {
      std::cout << "  " << label_ << ": 100%";
    }
    std::cout << ", " << format_seconds(seconds) << std::endl;
  }

  static std::string format_seconds(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%.4f s", seconds);
    return text;
  }

 private:
  void draw_bar(double fraction) const {
    constexpr int kWidth = 30;
    const int filled = std::clamp(static_cast<int>(fraction * kWidth), 0, kWidth);
    std::cout << "\r  " << label_ << " [" << std::string(static_cast<std::size_t>(filled), '#')
              << std::string(static_cast<std::size_t>(kWidth - filled), '.') << "] "
              << static_cast<int>(fraction * 100) << "%";
  }

  Style style_;
  std::string label_;
  Clock::time_point last_draw_{};
  int quarters_shown_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The four ways. Each returns the sum of its two passes over range(n).

// def normal(): one process, both passes in turn.
u128 normal(std::uint64_t n, Progress& progress) {
  u128 res = 0;
  for (int pass = 0; pass < 2; ++pass) {                 // for _ in range(2):
    for (std::uint64_t lo = 0; lo < n; lo += kStride) {  //     for i in range(1000000):
      const std::uint64_t hi = std::min(n, lo + kStride);
      res += partial_sum({lo, hi});  //         res += i + i**2 + i**3
      progress.update(static_cast<double>(static_cast<std::uint64_t>(pass) * n + hi) /
                      static_cast<double>(2 * n));
    }
  }
  return res;
}

// def job(q): one whole pass, its sum put on the queue. The C++ job also takes n, and adds the
// numbers it has summed to `done`, which the parent reads for the progress bar.
void job(mproc::Queue<u128> q, std::uint64_t n, mproc::Value<std::uint64_t> done) {
  u128 res = 0;
  for (std::uint64_t lo = 0; lo < n; lo += kStride) {  // for i in range(1000000):
    const std::uint64_t hi = std::min(n, lo + kStride);
    res += partial_sum({lo, hi});  //     res += i + i**2 + i**3
    done.fetch_add(hi - lo);
  }
  q.put(res);  // queue
}

double fraction_done(const mproc::Value<std::uint64_t>& done, std::uint64_t n) {
  return static_cast<double>(done.load()) / static_cast<double>(2 * n);
}

// def multithread(): two threads run job, as in the seed, and put on the same kind of queue the
// processes use (thread可放入process同样的queue中). Unlike Python's, they run at the same time.
u128 multithread(std::uint64_t n, Progress& progress) {
  mproc::Queue<u128> q;  // q = mp.Queue()
  mproc::Value<std::uint64_t> done(0);
  std::thread t1(job, q, n, done);  // t1 = td.Thread(target=job, args=(q,)); t1.start()
  std::thread t2(job, q, n, done);
  // While they run, the main thread draws the bar; std::thread has no join(timeout), so it
  // watches the count instead (both threads have only q.put left once it is full).
  while (progress.on() && done.load() < 2 * n) {
    progress.update(fraction_done(done, n));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  t1.join();
  t2.join();
  const u128 res1 = q.get();
  const u128 res2 = q.get();
  return res1 + res2;
}

// def multicore(): the same with two processes.
u128 multicore(std::uint64_t n, Progress& progress) {
  mproc::Queue<u128> q;  // q = mp.Queue()
  mproc::Value<std::uint64_t> done(0);
  mproc::Process p1(job, q, n, done);  // p1 = mp.Process(target=job, args=(q,))
  mproc::Process p2(job, q, n, done);
  p1.start();
  p2.start();
  for (mproc::Process* p : {&p1, &p2}) {  // p1.join(); p2.join(), drawing the bar meanwhile
    while (!p->join(std::chrono::milliseconds(progress.on() ? 10 : 60'000))) {
      progress.update(fraction_done(done, n));
    }
    if (p->exitcode() != 0) {
      // Without this check a dead worker would leave q.get() below waiting forever.
      throw std::runtime_error("multicore: " + p->name() + " ended with exit code " +
                               std::to_string(p->exitcode().value_or(-1)) + " (see its message above)");
    }
  }
  const u128 res1 = q.get();
  const u128 res2 = q.get();
  return res1 + res2;
}

// The two passes, each cut into kPiecesPerPass ranges: the pool's tasks.
std::vector<Range> pieces(std::uint64_t n) {
  std::vector<Range> ranges;
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t k = 0; k < kPiecesPerPass; ++k) {
      ranges.emplace_back(n * k / kPiecesPerPass, n * (k + 1) / kPiecesPerPass);
    }
  }
  return ranges;
}

// The pool, as seed 002 section 四 uses it: map hands out the pieces and returns their sums in
// order. Like multicore's, its time includes starting and joining the workers.
u128 pool_map(std::uint64_t n) {
  mproc::Pool pool;  // Pool(): cpu_count() workers
  const std::vector<u128> sums = pool.map(partial_sum, pieces(n));
  pool.close();
  pool.join();
  u128 res = 0;
  for (const u128 sum : sums) res += sum;
  return res;
}

// The same with imap_unordered, which yields each piece's sum as soon as it is done: the heavy
// run's progress.
u128 pool_imap_unordered(std::uint64_t n, Progress& progress) {
  const std::vector<Range> ranges = pieces(n);
  mproc::Pool pool;
  u128 res = 0;
  std::size_t finished = 0;
  for (const u128 sum : pool.imap_unordered(partial_sum, ranges)) {
    res += sum;
    progress.update(static_cast<double>(++finished) / static_cast<double>(ranges.size()));
  }
  pool.close();
  pool.join();
  return res;
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Row {
  std::string method;
  double seconds = 0;
  double baseline = 0;  // the normal row of the same language, for the speed-up
  std::string result;   // decimal
  bool ok = false;
};

void print_table(const std::string& title, const std::string& answer, const std::vector<Row>& rows) {
  int width = 6;  // "method"
  for (const Row& row : rows) width = std::max(width, static_cast<int>(row.method.size()));
  std::cout << "\n" << title << "\nclosed form: " << answer << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-*s %12s %9s  %s\n", width, "method", "time", "speed-up", "result");
  std::cout << line;
  for (const Row& row : rows) {
    std::snprintf(line, sizeof line, "  %-*s %12s %8.2fx  %s\n", width, row.method.c_str(),
                  Progress::format_seconds(row.seconds).c_str(), row.baseline / row.seconds,
                  row.ok ? "OK" : "WRONG");
    std::cout << line;
    if (!row.ok) std::cout << "    got " << row.result << "\n";
  }
  std::cout << std::flush;
}

// Runs one method, timed, and checks its result.
template <class Method>
Row measure(std::string method, Progress::Style style, u128 expected, Method&& run) {
  Progress progress(style, method);
  std::cout << std::flush;  // nothing buffered may be copied into forked children
  const auto start = Clock::now();
  const u128 result = run(progress);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  progress.finish(seconds);
  return Row{
      .method = std::move(method), .seconds = seconds, .result = to_string(result), .ok = result == expected};
}

std::vector<Row> run_cpp(std::uint64_t n, Progress::Style style) {
  const u128 expected = expected_answer(n);
  const std::string workers = std::to_string(mproc::cpu_count());
  std::vector<Row> rows;
  rows.push_back(measure("C++ normal", style, expected, [n](Progress& p) { return normal(n, p); }));
  rows.push_back(measure("C++ multithread (2 threads)", style, expected,
                         [n](Progress& p) { return multithread(n, p); }));
  rows.push_back(
      measure("C++ multicore (2 processes)", style, expected, [n](Progress& p) { return multicore(n, p); }));
  if (style == Progress::Style::off) {
    rows.push_back(measure("C++ pool.map (" + workers + " workers, 64 pieces)", style, expected,
                           [n](Progress&) { return pool_map(n); }));
  } else {
    rows.push_back(measure("C++ pool.imap_unordered (" + workers + " workers, 64 pieces)", style, expected,
                           [n](Progress& p) { return pool_imap_unordered(n, p); }));
  }
  for (Row& row : rows) row.baseline = rows.front().seconds;
  return rows;
}

// ---------------------------------------------------------------------------------------------
// The seed's own Python program, for the python rows.

std::optional<std::filesystem::path> find_on_path(std::string_view program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

std::string shell_quote(const std::string& s) {
  std::string quoted = "'";
  for (const char c : s) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Runs the script and reads what the seed prints: "normal: <result>", "normal time: <seconds>",
// and the same for multithread and multicore. Returns the rows, or nullopt after saying why not.
std::optional<std::vector<Row>> run_python(const std::string& answer) {
  const std::optional<std::filesystem::path> python = find_on_path("python3");
  if (!python) {
    std::cout << "\npython3 not found: skipped (the python rows)\n";
    return std::nullopt;
  }
  const std::filesystem::path script = MPROC_EFFICIENCY_COMPARISON_PY;
  if (!std::filesystem::exists(script)) {
    std::cout << "\n" << script.string() << " not found: python skipped\n";
    return std::nullopt;
  }
  std::cout << "\nrunning the seed's Python code: " << python->string() << " " << script.string()
            << std::endl;
  const std::string command = shell_quote(python->string()) + " " + shell_quote(script.string()) + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    std::cout << "python3 could not be started (" << std::strerror(errno) << "): skipped\n";
    return std::nullopt;
  }
  std::string output;
  char buffer[4096];
  for (std::size_t got; (got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, got);
  const int status = ::pclose(pipe);

  std::vector<Row> rows;
  for (const std::string method : {"normal", "multithread", "multicore"}) {
    Row row;
    row.method = "python " + method;
    bool has_result = false;
    bool has_time = false;
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with(method + ": ")) {  // print('normal:', res)
        row.result = line.substr(method.size() + 2);
        has_result = true;
      } else if (line.starts_with(method + " time: ")) {  // print('normal time:', st1 - st)
        row.seconds = std::strtod(line.c_str() + method.size() + 7, nullptr);
        has_time = row.seconds > 0;
      }
    }
    if (status != 0 || !has_result || !has_time) {
      std::cout << "python3 did not print what the seed prints (status " << status << "); its output:\n"
                << output << "python skipped\n";
      return std::nullopt;
    }
    row.ok = row.result == answer;
    rows.push_back(std::move(row));
  }
  for (Row& row : rows) row.baseline = rows.front().seconds;
  return rows;
}

// ---------------------------------------------------------------------------------------------

struct Options {
  std::uint64_t heavy_n = kHeavyN;
  bool quick = false;
  bool python = true;
};

// A decimal count, also as <digits>e<digits> (8e8).
std::optional<std::uint64_t> parse_count(std::string_view text) {
  const std::size_t e = text.find_first_of("eE");
  const std::string_view mantissa = text.substr(0, e);
  const std::string_view exponent = e == std::string_view::npos ? "0" : text.substr(e + 1);
  const auto digits = [](std::string_view s) {
    return !s.empty() && s.size() <= 10 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(mantissa) || !digits(exponent)) return std::nullopt;
  u128 value = std::stoull(std::string(mantissa));
  for (unsigned long k = std::stoul(std::string(exponent)); k > 0; --k) {
    value *= 10;
    if (value > kMaxN) return std::nullopt;
  }
  if (value == 0 || value > kMaxN) return std::nullopt;
  return static_cast<std::uint64_t>(value);
}

std::optional<Options> parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--no-python") {
      options.python = false;
    } else if (arg == "--n" && i + 1 < argc) {
      const std::optional<std::uint64_t> n = parse_count(argv[++i]);
      if (!n) {
        std::cerr << "efficiency_comparison: --n takes a count from 1 to " << kMaxN
                  << " (the answer must fit in 128 bits), e.g. --n 800000000 or --n 8e8; got '" << argv[i]
                  << "'\n";
        return std::nullopt;
      }
      options.heavy_n = *n;
    } else {
      std::cerr << "efficiency_comparison: unknown option '" << arg << "'\n"
                << "usage: efficiency_comparison [--n N] [--quick] [--no-python]\n";
      return std::nullopt;
    }
  }
  return options;
}

// How busy the cores are, from /proc/stat over a quarter of a second: the heavy run's speed-ups
// need idle cores (the load average lags by minutes, so it would not tell). nullopt if unknown.
std::optional<double> busy_fraction() {
  struct Sample {
    std::uint64_t total = 0;
    std::uint64_t idle = 0;  // idle + iowait
  };
  const auto sample = []() -> std::optional<Sample> {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    if (!(stat >> cpu) || cpu != "cpu") return std::nullopt;
    Sample s;
    // The fields: user nice system idle iowait irq softirq steal.
    std::uint64_t ticks = 0;
    for (int field = 0; field < 8 && stat >> ticks; ++field) {
      s.total += ticks;
      if (field == 3 || field == 4) s.idle += ticks;
    }
    return s;
  };
  const std::optional<Sample> before = sample();
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  const std::optional<Sample> after = sample();
  if (!before || !after || after->total <= before->total) return std::nullopt;
  return 1.0 -
         static_cast<double>(after->idle - before->idle) / static_cast<double>(after->total - before->total);
}

void print_machine() {
  std::cout << mproc::cpu_count() << " cores";
  if (const std::optional<double> busy = busy_fraction()) {
    char text[64];
    std::snprintf(text, sizeof text, ", %.0f%% busy just before", *busy * 100);
    std::cout << text;
    if (*busy > 0.25) std::cout << " (other programs use the cores: expect smaller speed-ups)";
  }
  std::cout << std::endl;
}

// python_normal: the python normal row's time, when Python ran.
void print_notes(bool heavy_run, double cpp_normal, std::optional<double> python_normal) {
  std::cout << "\nnotes:\n"
               "  * Every method does the seed's work, two passes over range(n): normal runs them in turn,\n"
               "    the two threads, the two processes and the pool's pieces share them out.\n"
               "  * The seed concludes 多线程的运行时间居然比什么都不做的程序还要慢一点:\n"
               "    multithread is even a little slower than normal. That holds for Python, whose GIL runs\n"
               "    one thread at a time (the python rows). C++ has no GIL: its two threads use both cores\n"
               "    and, on an idle machine, speed up like the two processes. This is the one place where\n"
               "    the C++ table differs from the seed's claim.\n"
               "  * At the seed's n the C++ loop takes milliseconds, so starting processes costs as much as\n"
               "    it saves; ";
  std::cout << (heavy_run ? "the heavy n shows what the cores give.\n"
                          : "run without --quick to see what the cores give at a heavier n.\n");
  std::cout << "  * Speed-up is against the normal row of the same language.\n";
  if (python_normal) {
    char text[160];
    std::snprintf(text, sizeof text,
                  "  * At the seed's n, C++ normal takes 1/%.0f of python normal's time: a compiled loop on\n"
                  "    128-bit integers against CPython's bytecode on big integers.\n",
                  *python_normal / cpp_normal);
    std::cout << text;
  }
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const std::optional<Options> options = parse_options(argc, argv);
  if (!options) return 2;

  bool all_ok = true;
  try {
    // The seed's n, no progress shown: each C++ method takes milliseconds.
    const std::string seed_answer = to_string(expected_answer(kSeedN));
    std::vector<Row> rows = run_cpp(kSeedN, Progress::Style::off);
    const double cpp_normal = rows.front().seconds;
    std::optional<double> python_normal;
    if (options->python) {
      if (std::optional<std::vector<Row>> python_rows = run_python(seed_answer)) {
        python_normal = python_rows->front().seconds;
        rows.insert(rows.end(), python_rows->begin(), python_rows->end());
      }
    }
    print_table("the seed's n = 1000000 (two passes over range(n))", seed_answer, rows);
    for (const Row& row : rows) all_ok = all_ok && row.ok;

    if (!options->quick) {
      const std::uint64_t n = options->heavy_n;
      std::cout << "\nheavy run, n = " << n << " (two passes over range(n)), on ";
      print_machine();
      const auto style = ::isatty(STDOUT_FILENO) != 0 ? Progress::Style::bar : Progress::Style::lines;
      const std::vector<Row> heavy_rows = run_cpp(n, style);
      print_table("n = " + std::to_string(n) + " (two passes over range(n))", to_string(expected_answer(n)),
                  heavy_rows);
      for (const Row& row : heavy_rows) all_ok = all_ok && row.ok;
    }
    print_notes(!options->quick, cpp_normal, python_normal);
  } catch (const std::exception& e) {
    std::cout << std::flush;
    std::cerr << "efficiency_comparison: " << e.what() << "\n";
    return 1;
  }
  if (!all_ok) std::cout << "\nWRONG: a method's result differs from the closed form\n";
  return all_ok ? 0 : 1;
}
