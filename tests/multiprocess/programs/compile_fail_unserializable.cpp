// Must fail to compile: a raw pointer cannot cross to another process, so a Process argument
// holding one is rejected at compile time, naming the type, whatever the start method.
#include "mproc/process.hpp"

struct NotSerializable {
  int* pointer;
};

void target(NotSerializable) {}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  int x = 0;
  mproc::Process p(target, NotSerializable{&x});
  p.start();
  p.join();
}
