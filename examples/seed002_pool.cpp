// Seed 002, 进程池 pool: map returns every result at once; apply_async returns one, fetched with
// get(); several apply_async results are collected by iterating over them.
//
//   def job(x):
//       return x*x
//   def multicore():
//       pool = mp.Pool(processes=2)
//       res = pool.map(job, range(10))
//       print(res)
//       res = pool.apply_async(job, (2,))
//       print(res.get())
//       multi_res = [pool.apply_async(job, (i,)) for i in range(10)]
//       print([res.get() for res in multi_res])
#include <iostream>
#include <numeric>
#include <vector>

#include <mproc/mproc.hpp>

int job(int x) {
  return x * x;
}

void print(const std::vector<int>& values) {
  std::cout << "[";
  for (std::size_t i = 0; i < values.size(); ++i) std::cout << (i ? ", " : "") << values[i];
  std::cout << "]\n";
}

void multicore() {
  mproc::Pool pool({.processes = 2});
  std::vector<int> range(10);
  std::iota(range.begin(), range.end(), 0);  // range(10)
  print(pool.map(job, range));               // [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
  auto res = pool.apply_async(job, 2);       // pool.apply_async(job, (2,))
  std::cout << res.get() << "\n";            // 4
  std::vector<mproc::AsyncResult<int>> multi_res;
  for (int i = 0; i < 10; ++i) multi_res.push_back(pool.apply_async(job, i));
  std::vector<int> got;
  for (auto& r : multi_res) got.push_back(r.get());
  print(got);
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  multicore();
  return 0;
}
