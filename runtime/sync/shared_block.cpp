#include "mproc/detail/shared_block.hpp"

#include <cstring>
#include <string>

#include "platform/linux/fd.hpp"
#include "platform/linux/shm.hpp"

namespace mproc::detail {

struct SharedBlock::Holder {
  platform::AnonymousSegment segment;
};

SharedBlock SharedBlock::create(std::size_t payload_size, std::uint64_t type_hash, const char* tag) {
  auto segment = platform::create_anonymous(kBlockPayloadOffset + payload_size, tag);
  if (!segment) throw_os_error(segment.error(), std::string("shared memory for ") + tag);
  // Written before any handle (or descriptor) leaves this process: fork, exec and SCM_RIGHTS
  // all order it before the receiver's first read.
  const BlockHeader header{kBlockMagic, type_hash, payload_size};
  std::memcpy(segment->data(), &header, sizeof header);
  SharedBlock block;
  block.payload_ = segment->data() + kBlockPayloadOffset;
  block.payload_size_ = payload_size;
  block.type_hash_ = type_hash;
  block.holder_ = std::make_shared<Holder>(Holder{std::move(*segment)});
  return block;
}

SharedBlock SharedBlock::adopt(int fd, std::uint64_t type_hash, std::size_t min_payload) {
  auto copy = platform::dup_cloexec(fd);
  if (!copy) throw_os_error(copy.error(), "dup of a shared block's descriptor");
  auto segment = platform::map_anonymous_fd(std::move(*copy));
  if (!segment)
    throw DecodeError("a received shared object is not a shared block: " + segment.error().message());
  if (segment->size() < kBlockPayloadOffset) throw DecodeError("a received shared block is too small");
  BlockHeader header{};
  std::memcpy(&header, segment->data(), sizeof header);  // a private copy: validate once, use the copy
  if (header.magic != kBlockMagic) throw DecodeError("a received shared block has no mproc header");
  if (header.type_hash != type_hash) {
    throw DecodeError("a received shared block holds another type of object than the handle expects");
  }
  if (header.payload_size < min_payload || header.payload_size > segment->size() - kBlockPayloadOffset) {
    throw DecodeError("a received shared block's size does not match its type");
  }
  SharedBlock block;
  block.payload_ = segment->data() + kBlockPayloadOffset;
  block.payload_size_ = static_cast<std::size_t>(header.payload_size);
  block.type_hash_ = type_hash;
  block.holder_ = std::make_shared<Holder>(Holder{std::move(*segment)});
  return block;
}

int SharedBlock::fd() const noexcept {
  return holder_ ? holder_->segment.fd() : -1;
}

void encode_block_ref(Encoder& out, const SharedBlock& block, std::size_t offset) {
  if (!block) throw ValueError("cannot send an empty shared-object handle");
  out.put(out.add_fd(block.fd()));
  out.put(block.type_hash());
  out.put(static_cast<std::uint64_t>(offset));
}

std::pair<SharedBlock, std::size_t> decode_block_ref(Decoder& in, std::size_t object_size,
                                                     std::size_t object_align) {
  const int fd = in.fd(in.get<std::uint32_t>());
  const auto type_hash = in.get<std::uint64_t>();
  const auto offset = in.get<std::uint64_t>();
  SharedBlock block = SharedBlock::adopt(fd, type_hash, 0);
  if (offset > block.payload_size() || object_size > block.payload_size() - offset ||
      (kBlockPayloadOffset + offset) % object_align != 0) {
    throw DecodeError("a received shared-object reference points outside its block");
  }
  return {std::move(block), static_cast<std::size_t>(offset)};
}

}  // namespace mproc::detail
