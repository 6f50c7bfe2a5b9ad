// The program every packaging test builds (tests/packaging/Packaging.cmake): it includes mproc the
// way a user does and starts a real child process, so a broken package fails to compile, to link
// or to run. The child aborts unless its argument arrived intact, and then the exit code is not 0.
#include <cstdlib>
#include <optional>

#include <mproc/mproc.hpp>

void child(int x) {
  if (x != 7) std::abort();
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  mproc::Process p(child, 7);
  p.start();
  p.join();
  return p.exitcode() == std::optional<int>(0) ? 0 : 1;
}
