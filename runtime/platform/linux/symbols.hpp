// Code addresses that survive exec: a function is named by its module and its offset inside it.
//
// Under ASLR a function's address differs between two runs of the same binary, but its offset
// from its module's load bias does not. spawn and forkserver children run the same binary with
// the same libraries, so (module, offset) names the same function in both processes.
#pragma once

#include <cstdint>
#include <string>

#include "mproc/expected.hpp"

namespace mproc::platform {

/// A code address as a module path ("" for the main program) and an offset from its load bias.
struct CodeAddress {
  std::string module;
  std::uint64_t offset = 0;
};

/// The module and offset of a function's entry point in this process. Fails (ENOENT) for an
/// address outside every executable segment of a loaded module.
Expected<CodeAddress> locate_code(const void* address) noexcept;

/// The address a CodeAddress names in this process. Fails with ENOENT when the module is not
/// loaded here, and EFAULT when the offset does not land inside one of its executable segments
/// (a corrupt or hostile payload cannot make us jump outside code).
Expected<const void*> resolve_code(const CodeAddress& where) noexcept;

}  // namespace mproc::platform
