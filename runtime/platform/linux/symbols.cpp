#include "platform/linux/symbols.hpp"

#include <link.h>

#include <cerrno>
#include <cstring>

namespace mproc::platform {
namespace {

// True when [bias + offset] lies in an executable PT_LOAD segment of the module.
bool in_executable_segment(const dl_phdr_info& info, std::uintptr_t address) {
  for (ElfW(Half) i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info.dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    const std::uintptr_t start = info.dlpi_addr + ph.p_vaddr;
    if (address >= start && address - start < ph.p_memsz) return true;
  }
  return false;
}

struct LocateQuery {
  std::uintptr_t address;
  bool first = true;  // dl_iterate_phdr reports the main program first
  bool found = false;
  CodeAddress result;
};

struct ResolveQuery {
  const CodeAddress* where;
  bool first = true;
  bool module_found = false;
  bool found = false;
  std::uintptr_t address = 0;
};

}  // namespace

Expected<CodeAddress> locate_code(const void* address) noexcept {
  LocateQuery q{reinterpret_cast<std::uintptr_t>(address), true, false, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) -> int {
        auto& query = *static_cast<LocateQuery*>(data);
        const bool main_program = std::exchange(query.first, false);
        if (!in_executable_segment(*info, query.address)) return 0;
        try {
          query.result.module = main_program ? std::string() : std::string(info->dlpi_name);
        } catch (...) {
          return 1;  // out of memory: found stays false
        }
        query.result.offset = query.address - info->dlpi_addr;
        query.found = true;
        return 1;
      },
      &q);
  if (!q.found) return unexpected_errno(ENOENT);
  return std::move(q.result);
}

Expected<const void*> resolve_code(const CodeAddress& where) noexcept {
  ResolveQuery q{&where, true, false, false, 0};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) -> int {
        auto& query = *static_cast<ResolveQuery*>(data);
        const bool main_program = std::exchange(query.first, false);
        const char* name = main_program ? "" : info->dlpi_name;
        if (name == nullptr || std::strcmp(name, query.where->module.c_str()) != 0) return 0;
        query.module_found = true;
        const std::uintptr_t address = info->dlpi_addr + query.where->offset;
        if (address < info->dlpi_addr || !in_executable_segment(*info, address)) return 1;
        query.address = address;
        query.found = true;
        return 1;
      },
      &q);
  if (!q.module_found) return unexpected_errno(ENOENT);
  if (!q.found) return unexpected_errno(EFAULT);
  return reinterpret_cast<const void*>(q.address);
}

}  // namespace mproc::platform
