// Seed 004: four processes run task(name), each sleeping a random 1-5 seconds; the main process
// prints 主 at once, without waiting. Both ways of the seed: a target function, and a subclass
// of Process that overrides run().
//
//   def task(name):
//       print('%s runing' % name)
//       time.sleep(random.randint(1, 5))
//       print('%s run end' % name)
//   p1 = Process(target=task, args=('p1',)) ... p1.start() ... print("主")
//
// Options: --scale S multiplies every sleep (the tests run with 0.01); --subclass uses class Pro.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <thread>

#include <mproc/mproc.hpp>

namespace {

double g_scale = 1.0;

void sleep_random_seconds() {
  std::random_device rd;
  std::uniform_int_distribution<int> seconds(1, 5);  // random.randint(1, 5)
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds(rd) * g_scale));
}

void task(std::string name, double scale) {
  g_scale = scale;  // under spawn the child starts afresh: the scale travels as an argument
  std::cout << name << " runing" << std::endl;
  sleep_random_seconds();
  std::cout << name << " run end" << std::endl;
}

// 方式二: a subclass whose run() is the task. Subclasses need the fork start method.
class Pro : public mproc::Process {
 public:
  explicit Pro(std::string name) : Process({.name = std::move(name)}) {}
  void run() override {
    std::cout << name() << " runing" << std::endl;
    sleep_random_seconds();
    std::cout << name() << " end" << std::endl;
  }
};

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  bool subclass = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--scale") == 0 && i + 1 < argc) g_scale = std::atof(argv[++i]);
    if (std::strcmp(argv[i], "--subclass") == 0) subclass = true;
  }

  if (!subclass) {
    // 方式一: 实例化得到四个对象
    mproc::Process p1(task, std::string("p1"), g_scale);
    mproc::Process p2(task, std::string("p2"), g_scale);
    mproc::Process p3(task, std::string("p3"), g_scale);
    mproc::Process p4(task, std::string("p4"), g_scale);
    // 调用对象下的方法，开启四个进程
    p1.start();
    p2.start();
    p3.start();
    p4.start();
    std::cout << "主" << std::endl;
    // The seed does not join: its children finish after 主, and so do these (mproc joins
    // non-daemon children at exit, as Python does).
    return 0;
  }

  mproc::set_start_method(mproc::StartMethod::fork, /*force=*/true);
  Pro p1("p1");
  Pro p2("p2");
  Pro p3("p3");
  Pro p4("p4");
  p1.start();  // start会自动调用run
  p2.start();
  p3.start();
  p4.start();
  std::cout << "主" << std::endl;
  return 0;
}
