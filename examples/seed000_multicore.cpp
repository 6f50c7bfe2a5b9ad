// Seed 000, the result collection of the efficiency comparison: two processes each compute the
// sum of i + i**2 + i**3 for i below 1,000,000 and put it on a Queue; the parent adds the two.
//
//   def job(q):
//       res = 0
//       for i in range(1000000):
//           res += i + i**2 + i**3
//       q.put(res) # queue
//   def multicore():
//       q = mp.Queue()
//       p1 = mp.Process(target=job, args=(q,))
//       p2 = mp.Process(target=job, args=(q,))
//       p1.start(); p2.start(); p1.join(); p2.join()
//       res1 = q.get(); res2 = q.get()
//       print('multicore:', res1 + res2)
//
// Python's integers grow without bound; the answer, 499999666667166666000000, needs more than
// 64 bits, so this version sums in unsigned __int128 (which the queue carries as is). The whole
// comparison (normal, multithread, multicore, and the pool) is the Pool issue's main job.
#include <iostream>
#include <string>

#include <mproc/mproc.hpp>

__extension__ using u128 = unsigned __int128;

std::string to_string(u128 v) {
  if (v == 0) return "0";
  std::string digits;
  for (; v != 0; v /= 10) digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
  return digits;
}

void job(mproc::Queue<u128> q) {
  u128 res = 0;
  for (u128 i = 0; i < 1'000'000; ++i) res += i + i * i + i * i * i;
  q.put(res);  // queue
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Queue<u128> q;
  mproc::Process p1(job, q);
  mproc::Process p2(job, q);
  p1.start();
  p2.start();
  p1.join();
  p2.join();
  const u128 res1 = q.get();
  const u128 res2 = q.get();
  std::cout << "multicore: " << to_string(res1 + res2) << "\n";
  return 0;
}
