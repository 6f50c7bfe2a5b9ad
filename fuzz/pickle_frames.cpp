// Fuzz target: what a hostile peer can send to a Listener/Client connection.
//
// The first input byte picks the decoder:
//   even: mproc::pickle::loads, the plain-data pickle codec. Oracle: it returns a Value or throws
//         DecodeError, nothing else (no crash, no other exception, no unbounded allocation: every
//         length is checked against the input, nesting is capped); a Value it returns dumps to
//         bytes that load and dump to the same bytes.
//   odd:  SocketConnection's framing: the rest of the input is written into a socketpair and
//         recv_bytes(1 MiB) reads frames until the end. Oracle: messages, then EOFError or OSError
//         ("bad message length", "got end of file during message"), and never more memory than
//         the bytes sent (ASan would see a huge allocation).
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "mproc/listener.hpp"
#include "mproc/pickle.hpp"

namespace {

void fuzz_pickle(std::span<const std::byte> in) {
  mproc::pickle::Value v;
  try {
    v = mproc::pickle::loads(in);
  } catch (const mproc::DecodeError&) {
    return;
  }
  // Compared as dumped bytes, not as Values: a float NaN is not equal to itself.
  const auto once = mproc::pickle::dumps(v);
  if (mproc::pickle::dumps(mproc::pickle::loads(once)) != once) std::abort();  // dumps and loads disagree
}

void fuzz_frames(std::span<const std::byte> in) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
  // Inputs are small (libFuzzer's -max_len), well under the socket buffer: one write, no reader
  // needed meanwhile.
  if (::write(sv[1], in.data(), in.size()) != static_cast<ssize_t>(in.size())) std::abort();
  ::close(sv[1]);
  mproc::SocketConnection conn(sv[0]);
  for (;;) {
    try {
      (void)conn.recv_bytes(std::size_t{1} << 20);
    } catch (const mproc::EOFError&) {
      return;
    } catch (const mproc::OSError&) {
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    fuzz_pickle(rest);
  } else if (rest.size() <= 64 * 1024) {
    fuzz_frames(rest);
  }
  return 0;
}
