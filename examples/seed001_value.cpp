// Seed 001, multiprocessing.Value: four processes each add 1 to a shared int.
//
//   def increment(count):
//       count.value += 1
//   count = multiprocessing.Value('i', 0)
//   processes = [multiprocessing.Process(target=increment, args=(count,)) for i in range(4)]
//
// The seed increments without the lock; with four single increments a lost update is unlikely
// but possible, as in Python. This version takes the Value's own lock (CPython's get_lock()),
// which makes the 4 certain.
#include <iostream>
#include <mutex>
#include <vector>

#include <mproc/mproc.hpp>

void increment(mproc::Value<int> count) {
  std::lock_guard guard(count.get_lock());
  count.value() += 1;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Value<int> count(0);
  std::vector<mproc::Process> processes;
  for (int i = 0; i < 4; ++i) processes.emplace_back(increment, count);
  for (auto& process : processes) process.start();
  for (auto& process : processes) process.join();
  std::cout << "Result: " << count.value() << "\n";
  return 0;
}
