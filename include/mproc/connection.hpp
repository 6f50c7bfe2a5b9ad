// Pipe and Connection: CPython's multiprocessing.Pipe / connection.Connection, on single-producer
// rings in shared memory (core::SpscRing), with zero-copy sends (loan/commit) and receives (views).
//
//   auto [a, b] = mproc::Pipe();                    // duplex; Pipe(false): (receive-only, send-only)
//   a.send(std::string("hello"));  auto s = b.recv<std::string>();
//   a.send_bytes(bytes);  std::vector<std::byte> m = b.recv_bytes();
//   auto loan = a.loan(n);  /* write n bytes */  loan.commit();      // no copy on the way in
//   { auto view = b.recv_view();  use(view.bytes()); }               // nor on the way out
//
// End of file as in CPython: recv() raises EOFError once the other end's every handle is closed
// (in every process holding it) and the messages it sent are read; a process that dies closes
// its handles, so a dead peer is an EOF too, never a hang. Each connection holds one end of a
// socketpair as the liveness token: the kernel reports the hang-up when the last descriptor of
// the other end goes, whoever held it and however it ended.
//
// A Connection is a cheap handle; copies in one process are the same connection (close() closes
// them all). Connections pass to Process targets under every start method; as in CPython, the
// parent should close() its copy of the end it gave away, or the child never sees EOF.
//
// CPython's multiprocessing.connection module also has Listener, Client, deliver_challenge and
// answer_challenge: they are in mproc/listener.hpp, which this header includes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/core/spsc_ring.hpp"
#include "mproc/errors.hpp"
#include "mproc/export.hpp"
#include "mproc/listener.hpp"
#include "mproc/synchronize.hpp"

namespace mproc {

/// How a Pipe is sized.
struct PipeOptions {
  /// Ring bytes per direction (a power of two, 64 B to 1 GiB). A message of up to capacity / 2
  /// bytes (less 8) travels as one record and can be loaned; a larger one is sent in fragments.
  std::uint32_t capacity = 1U << 20;
  /// The largest message send_bytes() accepts (ValueError before anything is written above it) and
  /// recv_bytes() allocates for (an error, not an allocation, when a peer announces more).
  std::size_t max_message = std::size_t{1} << 30;
};

class Connection;

namespace detail {

/// The part of a connection's process-local state that send<T>() and recv<T>() of a plain scalar
/// read inline: the rings and the flags that send_raw()/recv_raw() would check. A message that
/// fits at once and an end that is open, unencumbered (no Loan, no View) and whose peer has not
/// closed a handle since this end last looked takes no call at all; everything else (waiting,
/// errors, end of file) goes through the out-of-line path. (Measured: the calls and re-checks
/// cost a Pipe of 8-byte values more than half its throughput; docs/benchmarks.md, issue 4.)
struct ConnectionHot {
  std::optional<core::SpscRing<>> send_ring;                // the ring this end writes, if any
  std::optional<core::SpscRing<>> recv_ring;                // the ring it reads, if any
  const std::atomic<std::uint32_t>* peer_closes = nullptr;  // the other end's close count (header)
  std::uint32_t peer_closes_seen = 0;                       // its value when this end last asked the socket
  bool closed = false;
  bool viewing = false;  // a View is outstanding
  bool loaning = false;  // a Loan is outstanding

  /// Whether send may write a record without send_raw()'s checks.
  [[nodiscard]] bool send_ready() const noexcept {
    // relaxed: a hint that makes the slow path ask the socket, which is the truth.
    return send_ring && !closed && !loaning &&
           peer_closes->load(std::memory_order_relaxed) == peer_closes_seen;
  }
  /// Whether recv may read a record without recv_raw()'s checks.
  [[nodiscard]] bool recv_ready() const noexcept { return recv_ring && !closed && !viewing; }
};

struct ConnectionState;
MPROC_API std::pair<Connection, Connection> make_pipe(bool duplex, const PipeOptions& options);
MPROC_API std::vector<std::byte>& connection_scratch() noexcept;
}  // namespace detail

/// multiprocessing.Pipe(duplex=True): two connected connections.
inline std::pair<Connection, Connection> Pipe(bool duplex = true, const PipeOptions& options = {});

/// One end of a Pipe. @concurrent one thread per direction at a time, as CPython's.
class MPROC_API Connection {
 public:
  /// A message being written in place (zero-copy send). Commit it to send it; destroyed without
  /// commit, nothing is sent.
  class MPROC_API Loan {
   public:
    Loan(Loan&& other) noexcept;
    Loan& operator=(Loan&&) = delete;
    ~Loan();
    /// The bytes to fill: exactly the size asked for.
    [[nodiscard]] std::span<std::byte> data() const noexcept { return data_; }
    /// Sends the message. Only once.
    void commit();

   private:
    friend class Connection;
    Loan(std::shared_ptr<detail::ConnectionState> state, std::span<std::byte> data) noexcept
        : state_(std::move(state)), data_(data) {}
    std::shared_ptr<detail::ConnectionState> state_;
    std::span<std::byte> data_;
  };

  /// A received message read in place (zero-copy receive); it leaves the ring when the view is
  /// destroyed. Only one view at a time per connection.
  class MPROC_API View {
   public:
    View(View&& other) noexcept;
    View& operator=(View&&) = delete;
    ~View();
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }

   private:
    friend class Connection;
    View(std::shared_ptr<detail::ConnectionState> state, std::span<const std::byte> bytes) noexcept
        : state_(std::move(state)), bytes_(bytes) {}
    std::shared_ptr<detail::ConnectionState> state_;
    std::span<const std::byte> bytes_;
  };

  /// A duplex connection that an unrelated program reaches by name: create() returns the first
  /// end (this process owns the name, unlinked when its last handle goes) and open() the second.
  /// Each end is held by one process at a time (FileExistsError while its holder lives; a closed
  /// or dead holder's end can be opened again). End of file is the other end's close() or its
  /// holder's death. A named connection is not passed to a Process: pass the name.
  static Connection create(std::string_view name, const PipeOptions& options = {});
  static Connection open(std::string_view name);
  /// The name of a named connection; empty for an anonymous one.
  [[nodiscard]] std::string name() const;

  /// Encodes and sends one value (the codec's types; a value that carries a shared object is a
  /// ValueError, as in Queue).
  template <class T>
  MPROC_ALWAYS_INLINE void send(const T& value) {
    static_assert(require_encodable<T>);
    if constexpr (detail::is_plain_scalar_v<T> && !detail::UserCodec<T>) {
      // Its encoding is its bytes: no encoder, no scratch; and inline when there is room (plain
      // scalars are at most 16 bytes, try_push_fixed's limit).
      if (hot_ != nullptr && hot_->send_ready() &&
          hot_->send_ring->template try_push_fixed<sizeof(T)>(&value))
        return;
      // A copy: only it escapes to the out-of-line call, so a caller's value need not live in
      // memory for the fast path's sake (a loop counter sent by reference was a store per send).
      // Copied as bytes: a long double copied as a value (through the x87 unit) would take its
      // six padding bytes from this stack, and they go to the peer.
      T copy;
      std::memcpy(&copy, &value, sizeof copy);
      send_raw(&copy, sizeof copy);
    } else {
      send_encoded(value);
    }
  }
  /// Receives and decodes one value; DecodeError if the bytes are not a T (the message is gone).
  template <class T>
  MPROC_ALWAYS_INLINE T recv() {
    if constexpr (detail::is_plain_scalar_v<T> && !detail::UserCodec<T>) {
      T value;
      // Inline when a whole record of T is there.
      if (hot_ != nullptr && hot_->recv_ready() && hot_->recv_ring->template try_pop_fixed<sizeof(T)>(&value))
        return value;
      recv_raw(&value, sizeof value);
      return value;
    } else {
      return recv_decoded<T>();
    }
  }
  /// recv() with a timeout: TimeoutError when nothing arrives in time.
  template <class T, class Rep, class Period>
  T recv(std::chrono::duration<Rep, Period> timeout) {
    if (!poll(timeout)) throw TimeoutError("recv() timed out");
    return recv<T>();
  }

  /// send_bytes(buf, offset, size): sends buf[offset, offset + size). ValueError for a range
  /// outside buf or a message over PipeOptions::max_message; OSError (EPIPE) when the other end
  /// is closed everywhere. Blocks while the ring is full.
  void send_bytes(std::span<const std::byte> buf, std::size_t offset = 0, std::size_t size = SIZE_MAX);
  /// The next message; EOFError when the other end is closed and nothing is left. OSError
  /// ("bad message length") for a message over maxlength, which is then dropped.
  std::vector<std::byte> recv_bytes(std::size_t maxlength = SIZE_MAX);
  /// Reads the next message into buffer[offset...] and returns its size; BufferTooShort carrying
  /// the whole message if it does not fit.
  std::size_t recv_bytes_into(std::span<std::byte> buffer, std::size_t offset = 0);

  /// Reserves n bytes for a message written in place; n up to max_loan().
  Loan loan(std::size_t n);
  /// The largest message loan() accepts: half the ring, less 8 bytes.
  [[nodiscard]] std::size_t max_loan() const;
  /// The next message, read in place (EOFError as recv_bytes). Whole messages only: one sent in
  /// fragments (over max_loan()) is an error here; use recv_bytes.
  View recv_view();

  /// Whether a message (or end of file) is ready: poll() does not wait, poll(timeout) waits.
  bool poll();
  template <class Rep, class Period>
  bool poll(std::chrono::duration<Rep, Period> timeout) {
    return poll_until(detail::deadline_after(detail::to_timeout(timeout)));
  }
  /// Closes this connection in this process (all copies of the handle). Idempotent.
  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept;
  [[nodiscard]] bool readable() const noexcept;
  [[nodiscard]] bool writable() const noexcept;

  Connection() = default;
  explicit Connection(std::shared_ptr<detail::ConnectionState> state) noexcept;
  Connection(const Connection&) = default;
  Connection& operator=(const Connection&) = default;
  Connection(Connection&& other) noexcept
      : state_(std::move(other.state_)), hot_(std::exchange(other.hot_, nullptr)) {}
  Connection& operator=(Connection&& other) noexcept {
    state_ = std::move(other.state_);
    hot_ = std::exchange(other.hot_, nullptr);
    return *this;
  }
  ~Connection() = default;
  /// Internal: the shared state (for codec<Connection> and wait()).
  [[nodiscard]] const std::shared_ptr<detail::ConnectionState>& state() const noexcept { return state_; }
  /// Internal: poll with an absolute deadline (nullopt: forever).
  bool poll_until(std::optional<std::chrono::steady_clock::time_point> deadline);

 private:
  [[noreturn]] static void throw_has_fds();
  // One whole message of exactly `size` bytes: the fast path of send<T> / recv<T> for plain
  // scalars (DecodeError when the message has another size; it is dropped).
  void send_raw(const void* data, std::size_t size);
  // send() and recv() of a type that is encoded: out of the forced-inline scalar paths.
  template <class T>
  void send_encoded(const T& value) {
    std::vector<std::byte>& scratch = detail::connection_scratch();
    scratch.clear();
    Encoder out(scratch);
    out.put(value);
    if (!out.fds().empty()) throw_has_fds();
    send_bytes(scratch);
  }
  template <class T>
  T recv_decoded() {
    View view = recv_view();
    Decoder in(view.bytes());
    T value = in.get<T>();
    in.expect_end();
    return value;
  }
  void recv_raw(void* data, std::size_t size);
  detail::ConnectionState& live(bool need_send, bool need_recv) const;
  std::shared_ptr<detail::ConnectionState> state_;
  detail::ConnectionHot* hot_ = nullptr;  // the same state, for the inline paths
};

inline std::pair<Connection, Connection> Pipe(bool duplex, const PipeOptions& options) {
  return detail::make_pipe(duplex, options);
}

/// multiprocessing.connection.wait: the connections (of those given) that are ready to read (a
/// message or end of file), waiting until at least one is or the timeout passes (then empty).
MPROC_API std::vector<Connection*> wait(std::initializer_list<Connection*> connections,
                                        std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
MPROC_API std::vector<Connection*> wait(std::span<Connection* const> connections,
                                        std::optional<std::chrono::nanoseconds> timeout = std::nullopt);

template <>
struct MPROC_API codec<Connection> {
  static void encode(Encoder& out, const Connection& c);
  static Connection decode(Decoder& in);
};

}  // namespace mproc
