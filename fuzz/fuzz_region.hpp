// The fuzz targets' shared memory: a zero-filled region aligned as mproc's shared headers are
// (alignas(kCacheLine)), as a mapping is, but on the heap, so that ASan sees every byte past it.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>

#include "mproc/core/layout.hpp"

namespace mproc_fuzz {

struct Region {
  explicit Region(std::size_t n) : bytes(static_cast<std::byte*>(::operator new(n, kAlign))), size_(n) {
    std::memset(bytes.get(), 0, n);
  }
  std::byte* data() const noexcept { return bytes.get(); }
  std::size_t size() const noexcept { return size_; }
  operator std::span<std::byte>() const noexcept { return {bytes.get(), size_}; }
  static constexpr std::align_val_t kAlign{mproc::kCacheLine};
  struct Free {
    void operator()(std::byte* p) const noexcept { ::operator delete(p, kAlign); }
  };
  std::unique_ptr<std::byte, Free> bytes;
  std::size_t size_;
};

}  // namespace mproc_fuzz
