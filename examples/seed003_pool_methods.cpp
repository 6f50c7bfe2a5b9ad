// Seed 003, the methods of multiprocessing.pool.Pool it lists, one after another:
//
//   apply(func[, args])            blocks until the result is there
//   apply_async(func[, args[, callback[, error_callback]]])   does not block; returns a result
//   map(func, iterable[, chunksize])                          blocks until every result is there
//   map_async / starmap / starmap_async
//   close()      no more tasks            join()   wait for the workers (after close or terminate)
//   terminate()  stop the workers now
//
// The callbacks run in the pool's collector thread, as CPython runs them in its result thread.
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <mproc/mproc.hpp>

using namespace std::chrono_literals;

int square(int x) {
  return x * x;
}
int add(int a, int b) {
  return a + b;
}
int fails(int x) {
  if (x < 0) throw std::invalid_argument("negative: " + std::to_string(x));
  return x;
}
int sleepy(int seconds) {
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return seconds;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Pool pool(2);

  std::cout << "apply: " << pool.apply(add, 1, 2) << "\n";  // 3

  auto async =
      pool.apply_async(add, std::tuple{20, 22}, [](const int& r) { std::cout << "callback: " << r << "\n"; });
  async.wait();
  std::cout << "apply_async: " << async.get() << "\n";  // 42

  auto failed = pool.apply_async(fails, std::tuple{-1}, nullptr, [](const mproc::Error& e) {
    std::cout << "error_callback: " << e.what() << "\n";
  });
  failed.wait();
  std::cout << "successful: " << std::boolalpha << failed.successful() << "\n";  // false

  const auto squares = pool.map(square, {1, 2, 3, 4});
  std::cout << "map:";
  for (int v : squares) std::cout << " " << v;
  std::cout << "\n";

  auto later = pool.map_async(square, std::vector<int>{5, 6});
  std::cout << "map_async:";
  for (int v : later.get()) std::cout << " " << v;
  std::cout << "\n";

  const auto sums = pool.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}});
  std::cout << "starmap: " << sums[0] << " " << sums[1] << "\n";  // 3 7

  auto star_later = pool.starmap_async(add, std::vector<std::pair<int, int>>{{5, 6}});
  std::cout << "starmap_async: " << star_later.get()[0] << "\n";  // 11

  pool.close();  // no more tasks
  pool.join();   // the workers finish what was submitted, then exit
  std::cout << "closed and joined\n";

  mproc::Pool other(2);
  auto stuck = other.apply_async(sleepy, 30);
  other.terminate();  // stops the workers now; the pending result fails instead of waiting forever
  try {
    stuck.get(1s);
  } catch (const mproc::ProcessError& e) {
    std::cout << "terminate: " << e.what() << "\n";
  }
  other.join();
  return 0;
}
