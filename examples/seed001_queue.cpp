// Seed 001, multiprocessing.Queue: a producer puts 0..4, a consumer prints what it gets until the
// parent puts None.
//
//   def producer(q):
//       for i in range(5):
//           q.put(i)
//   def consumer(q):
//       while True:
//           item = q.get()
//           if item is None:
//               break
//           print(f"Consumed: {item}")
//   q = multiprocessing.Queue()
//   p1 = multiprocessing.Process(target=producer, args=(q,))
//   p2 = multiprocessing.Process(target=consumer, args=(q,))
//   p1.start(); p2.start(); p1.join(); q.put(None); p2.join()
//
// Python's None is std::nullopt: the queue carries std::optional<int>.
#include <iostream>
#include <optional>

#include <mproc/mproc.hpp>

void producer(mproc::Queue<std::optional<int>> q) {
  for (int i = 0; i < 5; ++i) q.put(i);
}

void consumer(mproc::Queue<std::optional<int>> q) {
  while (true) {
    const std::optional<int> item = q.get();
    if (!item) break;
    std::cout << "Consumed: " << *item << std::endl;
  }
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Queue<std::optional<int>> q;
  mproc::Process p1(producer, q);
  mproc::Process p2(consumer, q);
  p1.start();
  p2.start();
  p1.join();
  q.put(std::nullopt);
  p2.join();
  return 0;
}
