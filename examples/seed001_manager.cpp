// Seed 001, multiprocessing.Manager: four workers append their names to one shared list that a
// server process holds.
//
//   def worker(shared_list):
//       shared_list.append(multiprocessing.current_process().name)
//   if __name__ == '__main__':
//       with multiprocessing.Manager() as manager:
//           shared_list = manager.list()
//           processes = [multiprocessing.Process(target=worker, args=(shared_list,)) for i in range(4)]
//           for process in processes:
//               process.start()
//           for process in processes:
//               process.join()
//           print(f"Result: {shared_list}")
#include <iostream>
#include <string>
#include <vector>

#include <mproc/mproc.hpp>

void worker(mproc::ListProxy<std::string> shared_list) {
  shared_list.append(mproc::current_process().name());
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Manager manager;  // with multiprocessing.Manager() as manager:
  auto shared_list = manager.list<std::string>();
  std::vector<mproc::Process> processes;
  for (int i = 0; i < 4; ++i) processes.emplace_back(worker, shared_list);
  for (auto& process : processes) process.start();
  for (auto& process : processes) process.join();
  std::cout << "Result: [";
  const auto names = shared_list.to_vector();
  for (std::size_t i = 0; i < names.size(); ++i) std::cout << (i ? ", " : "") << "'" << names[i] << "'";
  std::cout << "]\n";
  return 0;
}
