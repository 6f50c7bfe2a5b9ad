// What the handles in runtime/sync share: a shared object's state lives at the start of its own
// block, and travels as a reference to that block.
#pragma once

#include <cstddef>
#include <utility>

#include "mproc/codec.hpp"
#include "mproc/detail/shared_block.hpp"

namespace mproc::detail {

/// A new zero-filled block of payload_size bytes (at least sizeof(State)) for a State, tagged
/// with State's ABI hash so that a receiver cannot map it as another type.
template <class State>
SharedBlock create_state_block(const char* tag, std::size_t payload_size = sizeof(State)) {
  return SharedBlock::create(payload_size, abi_hash<State>(), tag);
}

/// Encodes a handle whose state sits at the start of its block.
inline void encode_state_ref(Encoder& out, const SharedBlock& block) {
  encode_block_ref(out, block, 0);
}

/// Decodes what encode_state_ref wrote; the State was constructed by the creator of the block.
template <class State>
std::pair<SharedBlock, State*> decode_state_ref(Decoder& in) {
  auto [block, offset] = decode_block_ref(in, sizeof(State), alignof(State));
  if (block.type_hash() != abi_hash<State>() || offset != 0) {
    throw DecodeError("a received shared object is of another type than the handle expects");
  }
  auto* state = reinterpret_cast<State*>(block.payload() + offset);
  return {std::move(block), state};
}

}  // namespace mproc::detail
