// SharedBlock: the shared memory behind every synchronization object and shared value.
//
// Each Lock, Semaphore, Value, ... is a cheap, copyable handle to one block: an anonymous
// shared-memory segment (a memfd, never visible in /dev/shm). Copies in one process share the
// mapping; a fork child inherits it; a spawn or forkserver child receives the memfd with its
// arguments (the codec attaches the descriptor) and maps it. The block lives as long as any
// process holds a handle (or a descriptor) to it, and the kernel frees it after the last one, so
// nothing is leaked even when every holder crashes.
//
// Layout: a BlockHeader on the first cache line, the payload from kCacheLine on. The creator
// writes the header once, before any handle leaves the process; a receiver validates a private
// copy of it (magic, the payload type's hash, the size) before trusting the block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "mproc/codec.hpp"
#include "mproc/core/layout.hpp"
#include "mproc/export.hpp"

namespace mproc::detail {

struct BlockHeader {
  std::uint64_t magic;         ///< kBlockMagic
  std::uint64_t type_hash;     ///< abi_hash of the payload type: a Value<int> is not a Lock
  std::uint64_t payload_size;  ///< bytes from kCacheLine on
};
MPROC_SHM_LAYOUT(BlockHeader);

inline constexpr std::uint64_t kBlockMagic = 0x4b4c42434f52504dULL;  // "MPROCBLK" little-endian
inline constexpr std::size_t kBlockPayloadOffset = kCacheLine;

class MPROC_API SharedBlock {
 public:
  SharedBlock() noexcept = default;

  /// A new zero-filled block with room for payload_size bytes. Throws OSError.
  static SharedBlock create(std::size_t payload_size, std::uint64_t type_hash, const char* tag);

  /// Maps a block received as a descriptor (which it duplicates; the caller keeps fd). Throws
  /// DecodeError when the descriptor is not a block of this type with at least min_payload bytes.
  static SharedBlock adopt(int fd, std::uint64_t type_hash, std::size_t min_payload);

  [[nodiscard]] std::byte* payload() const noexcept { return payload_; }
  [[nodiscard]] std::size_t payload_size() const noexcept { return payload_size_; }
  [[nodiscard]] std::uint64_t type_hash() const noexcept { return type_hash_; }
  /// The memfd (owned by the block; valid while any copy of this handle lives).
  [[nodiscard]] int fd() const noexcept;
  explicit operator bool() const noexcept { return payload_ != nullptr; }

 private:
  struct Holder;
  std::shared_ptr<Holder> holder_;
  std::byte* payload_ = nullptr;
  std::size_t payload_size_ = 0;
  std::uint64_t type_hash_ = 0;
};

/// Encodes a reference to an object at `offset` inside a block: the block travels as a
/// descriptor, the offset and type as bytes.
MPROC_API void encode_block_ref(Encoder& out, const SharedBlock& block, std::size_t offset);

/// Decodes what encode_block_ref wrote, checking that an object of object_size bytes and
/// alignment object_align fits at the offset. Returns the block and the offset.
MPROC_API std::pair<SharedBlock, std::size_t> decode_block_ref(Decoder& in, std::size_t object_size,
                                                               std::size_t object_align);

}  // namespace mproc::detail
