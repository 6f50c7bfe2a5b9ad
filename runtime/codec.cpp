#include "mproc/codec.hpp"

#include <string>

namespace mproc {

void Decoder::fail_short(std::size_t wanted) const {
  throw DecodeError("mproc codec: input truncated: needed " + std::to_string(wanted) + " bytes at offset " +
                    std::to_string(pos_) + ", " + std::to_string(remaining()) + " remain");
}

void Decoder::fail_count(std::uint64_t count) const {
  throw DecodeError("mproc codec: element count " + std::to_string(count) + " at offset " +
                    std::to_string(pos_) + " exceeds what the remaining " + std::to_string(remaining()) +
                    " bytes can hold");
}

void Decoder::fail_fd(std::uint32_t index) const {
  throw DecodeError("mproc codec: file descriptor #" + std::to_string(index) + " was not transferred (" +
                    std::to_string(fds_.size()) + " arrived)");
}

void Decoder::fail_trailing() const {
  throw DecodeError("mproc codec: " + std::to_string(remaining()) + " unexpected trailing bytes");
}

}  // namespace mproc
