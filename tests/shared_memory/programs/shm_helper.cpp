// A separate program for the SharedMemory lifetime tests: what happens to a segment when a
// process that created or attached it exits normally (through exit handlers), which a test
// cannot observe from inside its own process.
//
//   mproc_shm_helper create-tracked <name>     create (track = true), never unlink, return
//   mproc_shm_helper create-untracked <name>   create (track = false), never unlink, return
//   mproc_shm_helper create-unlink <name>      create (track = true), unlink, create the name again
//                                              with track = false, return (it must survive)
//   mproc_shm_helper attach <name>             attach, print the size, return
//   mproc_shm_helper attach-list <name>        attach a ShareableList, print it, return
//   mproc_shm_helper fork-child-exits <name>   create (track = true); a raw fork child calls
//                                              exit(0); print whether the segment survived it;
//                                              unlink; return
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "mproc/process.hpp"
#include "mproc/shared_memory.hpp"

namespace {

bool exists(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

int run(const std::string& command, const std::string& name) {
  if (command == "create-tracked") {
    auto shm = mproc::SharedMemory::create(64, name);
    return 0;
  }
  if (command == "create-untracked") {
    auto shm = mproc::SharedMemory::create(64, name, {.track = false});
    return 0;
  }
  if (command == "create-unlink") {
    auto shm = mproc::SharedMemory::create(64, name);
    shm.unlink();
    auto again = mproc::SharedMemory::create(64, name, {.track = false});
    return 0;
  }
  if (command == "attach") {
    auto shm = mproc::SharedMemory::attach(name);
    std::printf("size %zu\n", shm.size());
    return 0;
  }
  if (command == "attach-list") {
    auto list = mproc::ShareableList::attach(name);
    std::printf("%s\n", list.repr().c_str());
    return 0;
  }
  if (command == "fork-child-exits") {
    auto shm = mproc::SharedMemory::create(64, name);
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child == 0) std::exit(0);  // runs the exit handlers the child inherited
    int status = 0;
    ::waitpid(child, &status, 0);
    std::printf("%s\n", exists(name) ? "survived" : "gone");
    shm.unlink();
    return 0;
  }
  std::fprintf(stderr, "unknown command %s\n", command.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <command> <name>\n", argv[0]);
    return 2;
  }
  try {
    return run(argv[1], argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
