// Seed 001, multiprocessing.Process: a child runs worker(), then f('hello') prints the name of
// the process it runs in and its argument.
//
//   def f(x):
//       print(f"Worker process: {multiprocessing.current_process().name}")
//       print(f"Argument: {x}")
//   if __name__ == '__main__':
//       p = multiprocessing.Process(target=f, args=('hello',))
//       p.start()
//       p.join()
#include <iostream>
#include <string>

#include <mproc/mproc.hpp>

void worker() {
  std::cout << "Worker process\n";  // 子进程的执行逻辑
}

void f(std::string x) {
  std::cout << "Worker process: " << mproc::current_process().name() << "\n";
  std::cout << "Argument: " << x << "\n";
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // Python's `if __name__ == '__main__':`

  mproc::Process process(worker);  // 创建子进程
  process.start();                 // 启动子进程
  process.join();                  // 等待子进程结束
  std::cout << "Main process\n";

  mproc::Process p(f, std::string("hello"));
  p.start();
  p.join();
  return 0;
}
