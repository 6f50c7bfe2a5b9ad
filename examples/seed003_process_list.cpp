// Seed 003: start every process of a list first, then join them all ("一般来说有多少个start就有
// 多少个join"). The list holds Process objects, as Python's p_list does.
//
//   p_list = []
//   for i in range(5):
//       p = Process(target=xxx, args=(xxx,))
//       p_list.append(p)
//       p.start()
//   for p in p_list:
//       p.join()
#include <chrono>
#include <iostream>
#include <thread>
#include <vector>

#include <mproc/mproc.hpp>

void work(int i) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100 * (5 - i)));  // the last started ends first
  std::cout << mproc::current_process().name() << " finished task " << i << "\n";
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);

  std::vector<mproc::Process> p_list;
  for (int i = 0; i < 5; ++i) {
    mproc::Process p(work, i);
    p_list.push_back(std::move(p));
    p_list.back().start();
  }
  for (auto& p : p_list) std::cout << p.repr() << "\n";
  for (auto& p : p_list) p.join();
  for (auto& p : p_list) std::cout << p.repr() << "\n";
  return 0;
}
