// Seed 001, multiprocessing.Lock: four processes each add 100000 to a shared counter, taking the
// lock around every increment, so that the result is exactly 400000.
//
//   def increment(count, lock):
//       for i in range(100000):
//           lock.acquire()
//           count.value += 1
//           lock.release()
//   count = multiprocessing.Value('i', 0)
//   lock = multiprocessing.Lock()
//   processes = [multiprocessing.Process(target=increment, args=(count, lock)) for i in range(4)]
#include <iostream>
#include <vector>

#include <mproc/mproc.hpp>

void increment(mproc::Value<int> count, mproc::Lock lock) {
  for (int i = 0; i < 100000; ++i) {
    lock.acquire();
    count.value() += 1;
    lock.release();
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Value<int> count(0);
  mproc::Lock lock;
  std::vector<mproc::Process> processes;
  for (int i = 0; i < 4; ++i) processes.emplace_back(increment, count, lock);
  for (auto& process : processes) process.start();
  for (auto& process : processes) process.join();
  std::cout << "Result: " << count.value() << "\n";
  return count.value() == 400000 ? 0 : 1;
}
