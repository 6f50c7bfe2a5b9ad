// Seed 001, multiprocessing.Pool: map a function over a list on a pool of cpu_count() workers.
//
//   def f(x):
//       return x * x
//   if __name__ == '__main__':
//       with multiprocessing.Pool() as p:
//           result = p.map(f, [1, 2, 3, 4, 5])
//           print(result)
//
// Leaving Python's `with` block terminates the pool; so does the end of the C++ scope.
#include <iostream>
#include <vector>

#include <mproc/mproc.hpp>

int f(int x) {
  return x * x;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);  // if __name__ == '__main__':
  {
    mproc::Pool p;
    const std::vector<int> result = p.map(f, {1, 2, 3, 4, 5});
    std::cout << "[";
    for (std::size_t i = 0; i < result.size(); ++i) std::cout << (i ? ", " : "") << result[i];
    std::cout << "]\n";  // [1, 4, 9, 16, 25]
  }
  return 0;
}
