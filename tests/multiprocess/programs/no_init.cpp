// A program that forgets mproc::init(): spawn must refuse with a message that says what to do,
// instead of starting a child that would run main() again from the top. fork still works.
#include <cstdio>

#include "mproc/process.hpp"

void target() {}

int main() {
  mproc::Process forked(target);
  forked.start();
  forked.join();
  try {
    mproc::get_context(mproc::StartMethod::spawn).Process(target).start();
    std::printf("spawn started without init\n");
    return 1;
  } catch (const mproc::ProcessError& e) {
    std::printf("refused: %s\n", e.what());
  }
  return *forked.exitcode();
}
