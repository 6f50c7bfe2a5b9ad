// How a child begins and ends: mproc::init(), the boot payload of spawn and forkserver children,
// and the exit path every child takes.
#include <cxxabi.h>
#include <stdio_ext.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#if defined(__GLIBCXX__)
#include <ext/stdio_sync_filebuf.h>
#endif

#include "platform/linux/process.hpp"
#include "mproc/detail/barrier.hpp"
#include "process/state.hpp"

namespace mproc {
namespace detail {

std::string demangle(const char* mangled) {
  int status = 0;
  char* plain = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || plain == nullptr) return mangled;
  std::string out(plain);
  std::free(plain);
  return out;
}

// True when the stream writes straight through a C FILE (libstdc++'s stdio_sync_filebuf, the
// default while sync_with_stdio is on), so that flushing the FILE flushes the stream.
static bool writes_through_stdio(std::ostream& stream) {
#if defined(__GLIBCXX__)
  return dynamic_cast<__gnu_cxx::stdio_sync_filebuf<char>*>(stream.rdbuf()) != nullptr;
#else
  (void)stream;
  return false;
#endif
}

// Flushes what a child may have written. Only stdout and stderr, and only when they hold
// something: fflush(nullptr) or a flush of an empty stream still locks FILEs, writing (and so,
// in a fork child, copying) pages the child never otherwise touches.
void flush_standard_streams_of_child() noexcept {
  try {
    for (std::ostream* stream : {&std::cout, &std::cerr, &std::clog}) {
      if (!writes_through_stdio(*stream)) stream->flush();
    }
  } catch (...) {
  }
  if (__fpending(stdout) != 0) std::fflush(stdout);
  if (__fpending(stderr) != 0) std::fflush(stderr);
}

namespace {

[[noreturn]] void boot_failure(const std::string& what, const std::string& detail) noexcept {
  std::fprintf(stderr, "mproc: cannot start the child process: %s: %s\n", what.c_str(), detail.c_str());
  flush_standard_streams_of_child();
  platform::exit_now(1);
}

platform::CodeAddress locate_or_throw(const void* address, const char* what) {
  auto where = platform::locate_code(address);
  if (!where) {
    throw ProcessError(std::string("cannot find the module that holds the ") + what +
                       " (is it a function of this program or of a loaded library?)");
  }
  return std::move(*where);
}

}  // namespace

void run_child_and_exit(const std::string& name, void (*body)(void*), void* context) noexcept {
  int code = 0;
  try {
    body(context);
  } catch (const SystemExit& e) {
    code = e.code();
  } catch (const std::exception& e) {
    flush_standard_streams_of_child();
    std::fprintf(stderr, "Process %s:\n%s: %s\n", name.c_str(), demangle(typeid(e).name()).c_str(), e.what());
    code = 1;
  } catch (...) {
    flush_standard_streams_of_child();
    const std::type_info* type = abi::__cxa_current_exception_type();
    std::fprintf(stderr, "Process %s:\n%s\n", name.c_str(),
                 type != nullptr ? demangle(type->name()).c_str() : "unknown exception");
    code = 1;
  }
  flush_standard_streams_of_child();
  Runtime::get().exit_function();  // the child's own children: terminate daemons, join the rest
  flush_standard_streams_of_child();
  platform::exit_now(code);
}

BootPayload make_boot_payload(const ProcessState& child, const TargetEntry& entry, std::vector<int>& fds) {
  auto& rt = Runtime::get();
  BootPayload p;
  p.magic = kBootMagic;
  p.version = kBootVersion;
  p.name = child.name;
  p.daemon = child.daemon;
  p.identity = child.identity;
  p.parent_pid = static_cast<int>(platform::current_pid());
  p.parent_name = current_process().name();
  if (auto method = get_start_method_if_set()) {
    p.default_method_fixed = true;
    p.default_method = static_cast<std::uint8_t>(*method);
  }
  if (entry.trampoline != nullptr) {
    auto where = locate_or_throw(entry.trampoline, "process target's trampoline");
    p.trampoline_module = std::move(where.module);
    p.trampoline_offset = where.offset;
  }
  if (entry.function != nullptr) {
    auto where = locate_or_throw(entry.function, "process target");
    p.has_function = true;
    p.function_module = std::move(where.module);
    p.function_offset = where.offset;
  }
  if (child.target) {
    Encoder out(p.arguments);
    child.target->encode_arguments(out);
    if (out.fds().size() > kMaxArgumentFds) {
      throw ValueError("a child's arguments may carry at most " + std::to_string(kMaxArgumentFds) +
                       " file descriptors, these carry " + std::to_string(out.fds().size()));
    }
    fds.insert(fds.end(), out.fds().begin(), out.fds().end());
    p.argument_fds = static_cast<std::uint32_t>(out.fds().size());
  }
  (void)rt;
  return p;
}

namespace {

struct BootBody {
  const BootPayload* payload;
  Trampoline trampoline;
  const void* function;
};

}  // namespace

void boot_from_payload() noexcept {
  auto& rt = Runtime::get();
  BootPayload p;
  try {
    auto bytes = platform::read_blob(kPayloadFd, kMaxBootPayload);
    if (!bytes) boot_failure("reading the boot payload", bytes.error().message());
    platform::UniqueFd(kPayloadFd).reset();
    p = loads<BootPayload>(*bytes);
  } catch (const std::exception& e) {
    boot_failure("decoding the boot payload", e.what());
  }
  if (p.magic != kBootMagic || p.version != kBootVersion) {
    boot_failure("boot payload", "written by another version of mproc (or not by mproc at all)");
  }
  if (p.argument_fds > kMaxArgumentFds) boot_failure("boot payload", "too many argument descriptors");
  // The parent's pidfd and the argument descriptors arrived without close-on-exec (that is how
  // they crossed exec); they are this process's own and must not leak into what it runs.
  for (int fd = kParentPidFd; fd < kFirstArgumentFd + static_cast<int>(p.argument_fds); ++fd) {
    if (auto r = platform::set_cloexec(fd); !r) {
      boot_failure("descriptor " + std::to_string(fd) + " of the boot layout", r.error().message());
    }
  }

  // Become the child: its name, identity and parent.
  auto state = std::make_shared<ProcessState>();
  state->kind = ProcessState::Kind::self;
  state->name = p.name;
  state->daemon = p.daemon;
  state->identity = p.identity;
  state->creator = platform::current_pid();
  state->started = true;
  state->pid = platform::current_pid();
  rt.become(std::move(state));
  auto parent = std::make_shared<ParentState>();
  parent->pid = p.parent_pid;
  parent->name = p.parent_name;
  parent->pidfd = platform::UniqueFd(kParentPidFd);
  rt.parent = std::move(parent);
  if (p.default_method_fixed && p.default_method <= static_cast<std::uint8_t>(StartMethod::forkserver)) {
    rt.default_method = static_cast<StartMethod>(p.default_method);
  }

  BootBody body{&p, nullptr, nullptr};
  if (!p.trampoline_module.empty() || p.trampoline_offset != 0) {
    auto trampoline = platform::resolve_code({p.trampoline_module, p.trampoline_offset});
    if (!trampoline) boot_failure("locating the target's trampoline", trampoline.error().message());
    body.trampoline = reinterpret_cast<Trampoline>(const_cast<void*>(*trampoline));
  }
  if (p.has_function) {
    auto function = platform::resolve_code({p.function_module, p.function_offset});
    if (!function) boot_failure("locating the target function", function.error().message());
    body.function = *function;
  }
  run_child_and_exit(
      p.name,
      [](void* ctx) {
        const auto& b = *static_cast<BootBody*>(ctx);
        if (b.trampoline == nullptr) return;  // a Process without a target
        std::vector<int> fds;
        for (std::uint32_t i = 0; i < b.payload->argument_fds; ++i)
          fds.push_back(kFirstArgumentFd + static_cast<int>(i));
        Decoder in(b.payload->arguments, fds);
        b.trampoline(b.function, in);
      },
      &body);
}

}  // namespace detail

void init(int argc, char** argv) {
  auto& rt = detail::Runtime::get();
  if (rt.initialized) return;
  rt.initialized = true;
  rt.argv0 = argc > 0 && argv[0] != nullptr ? argv[0] : "mproc";
  (void)detail::enable_light_barriers();  // before any thread of the caller notifies a WaitWord
  (void)current_process();
  if (argc >= 2 && argv[1] != nullptr) {
    if (std::strcmp(argv[1], detail::kSpawnFlag) == 0) detail::boot_from_payload();
    if (std::strcmp(argv[1], detail::kForkserverFlag) == 0) detail::forkserver_main();
  }
  rt.register_exit_handler();
}

}  // namespace mproc
