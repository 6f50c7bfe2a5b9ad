// Pipe and Connection (include/mproc/connection.hpp): the rings of one pipe in one shared block,
// fragments for messages larger than a record, and end of file through a socketpair token.
#include "mproc/connection.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "mproc/core/spsc_ring.hpp"
#include "mproc/detail/shared_block.hpp"
#include "platform/linux/fd.hpp"
#include "queues/named.hpp"

namespace mproc {
namespace detail {

namespace {

using Ring = core::SpscRing<>;

// A record's flags: a whole message, or the first, a middle or the last fragment of one. The
// first fragment starts with the message's total size (8 bytes).
enum : std::uint8_t { kWhole = 0, kFirst = 1, kMore = 2, kLast = 3 };

// The pipe's block: this header, then one ring (Pipe(false)) or two (duplex).
struct PipeHeader {
  std::uint32_t rings;
  std::uint32_t capacity;
  std::uint64_t max_message;
  std::atomic<std::uint32_t> closes[2];  // per end (a, b): bumped by its close(); peers re-check EOF
  // Named pipes only (anonymous ones use the socketpair token): who holds each end. 0: never
  // opened; kEndClosed: closed; otherwise the holder's pid (22 bits) and handle number.
  std::atomic<std::uint32_t> holders[2];
};
MPROC_SHM_LAYOUT(PipeHeader);

constexpr std::size_t kRingsOffset = kCacheLine;

constexpr std::uint32_t kEndClosed = ~std::uint32_t{0};
constexpr std::uint32_t kHolderPidBits = 22;
std::atomic<std::uint32_t> g_next_holder{1};

// What a named connection's segment holds (SegmentHeader::kind).
constexpr std::uint32_t kNamedPipeKind = 0x45504950;  // "PIPE"

[[nodiscard]] bool holder_alive(std::uint32_t word) noexcept {
  return word != 0 && word != kEndClosed && core::ProcessTag::alive(word & ((1U << kHolderPidBits) - 1));
}

std::size_t block_size(std::uint32_t rings, std::uint32_t capacity) {
  return kRingsOffset + rings * Ring::region_size(capacity);
}

std::span<std::byte> ring_region(const SharedBlock& block, std::uint32_t index, std::uint32_t capacity) {
  return {block.payload() + kRingsOffset + index * Ring::region_size(capacity), Ring::region_size(capacity)};
}

// A connection's send ring: it keeps a private copy of its position, since a Pipe's two ends
// usually take turns (SpscRing::produced() says why that matters).
std::optional<Ring> attach_send_ring(std::span<std::byte> region) {
  std::optional<Ring> ring = Ring::attach(region);
  if (ring) ring->use_private_tail(true);
  return ring;
}

}  // namespace

struct ConnectionState : ConnectionHot {
  SharedBlock block;                   // an anonymous pipe's memory, or
  std::shared_ptr<NamedRegion> named;  // a named one's
  PipeHeader* header = nullptr;
  std::uint32_t capacity = 0;
  std::size_t max_message = 0;
  int send_index = -1;               // which ring of the block this end writes, -1: none
  int recv_index = -1;               // which ring it reads, -1: none
  int end = 0;                       // 0 for the first connection Pipe() returns, 1 for the second
  platform::UniqueFd token;          // this end of the liveness socketpair
  std::vector<std::byte> assembled;  // a fragmented message, put together for a View

  // Points the state at its pipe header, as end `e` (0 or 1).
  void bind(PipeHeader* h, int e) noexcept {
    header = h;
    end = e;
    peer_closes = &h->closes[1 - e];
  }

  // Whether every handle of the other end, in every process, is closed (anonymous pipes: the
  // socket says; named ones: the other end's holder word says closed, or names a dead process).
  [[nodiscard]] bool peer_gone() const noexcept {
    if (!named) return platform::peer_hung_up(token.get());
    // relaxed: a holder word only names a process; the rings order the data.
    const std::uint32_t peer = header->holders[1 - end].load(std::memory_order_relaxed);
    return peer == kEndClosed || (peer != 0 && !holder_alive(peer));
  }

  // How many times a handle of the other end was closed, in any process.
  [[nodiscard]] std::uint32_t closes() const noexcept {
    // relaxed: a hint that makes this end re-check the socket, which is the truth.
    return peer_closes->load(std::memory_order_relaxed);
  }

  // Whether a handle of the other end was closed since this end last checked, and the other end
  // is now closed everywhere: one socket check per close, not per message.
  [[nodiscard]] bool peer_closed_since_checked() noexcept {
    const std::uint32_t now = closes();
    if (now == peer_closes_seen) return false;
    peer_closes_seen = now;
    return peer_gone();
  }
};

std::vector<std::byte>& connection_scratch() noexcept {
  thread_local std::vector<std::byte> scratch;
  return scratch;
}

std::pair<Connection, Connection> make_pipe(bool duplex, const PipeOptions& options) {
  if (!Ring::valid_capacity(options.capacity)) {
    throw ValueError("Pipe capacity must be a power of two between 64 bytes and 1 GiB");
  }
  const std::uint32_t rings = duplex ? 2 : 1;
  auto block = SharedBlock::create(block_size(rings, options.capacity), abi_hash<PipeHeader>(), "Pipe");
  auto* header = new (block.payload()) PipeHeader{rings, options.capacity, options.max_message, {}, {}};
  (void)header;
  for (std::uint32_t i = 0; i < rings; ++i)
    (void)Ring::create(ring_region(block, i, options.capacity), options.capacity);
  auto tokens = platform::make_socketpair();
  if (!tokens) throw_os_error(tokens.error(), "cannot create Pipe");

  auto make_end = [&](SharedBlock b, int end, int send_index, int recv_index, platform::UniqueFd token) {
    auto state = std::make_shared<ConnectionState>();
    state->bind(reinterpret_cast<PipeHeader*>(b.payload()), end);
    state->block = std::move(b);
    state->capacity = options.capacity;
    state->max_message = options.max_message;
    state->send_index = send_index;
    state->recv_index = recv_index;
    if (send_index >= 0)
      state->send_ring = attach_send_ring(ring_region(state->block, send_index, options.capacity));
    if (recv_index >= 0)
      state->recv_ring = Ring::attach(ring_region(state->block, recv_index, options.capacity));
    state->token = std::move(token);
    return Connection(std::move(state));
  };
  SharedBlock second = block;  // a second handle to the same block
  if (duplex) {
    // a writes ring 0 and reads ring 1; b the other way round.
    return {make_end(std::move(block), 0, 0, 1, std::move(tokens->first)),
            make_end(std::move(second), 1, 1, 0, std::move(tokens->second))};
  }
  // (receive-only, send-only), as CPython's Pipe(False).
  return {make_end(std::move(block), 0, -1, 0, std::move(tokens->first)),
          make_end(std::move(second), 1, 0, -1, std::move(tokens->second))};
}

}  // namespace detail

using detail::ConnectionState;

namespace {

[[noreturn]] void throw_eof() {
  throw EOFError("the other end of the connection is closed");
}

[[noreturn]] void throw_broken_pipe() {
  throw_os_error(EPIPE, "cannot send: the other end of the connection is closed");
}

[[noreturn]] void throw_corrupted(detail::ConnectionState& s) {
  s.recv_ring->skip_to_tail();
  throw Error("the connection's shared memory is corrupted (a record no correct sender writes)");
}

// Polls before the full wait: a partner that is running answers within a few hundred
// nanoseconds, and the wait's clock reads and predicate calls would cost more than that.
constexpr int kQuickPolls = 64;

// Reserves one record, waiting while the ring is full; EPIPE once the reader is gone.
std::span<std::byte> reserve(ConnectionState& s, std::size_t size, std::uint8_t flags) {
  for (int i = 0; i < kQuickPolls; ++i) {
    const auto r = s.send_ring->try_reserve(size, flags);
    if (r.status == core::RingStatus::ok) return r.payload;
    if (r.status != core::RingStatus::full) break;
    core::cpu_relax();
  }
  for (;;) {
    const auto r = s.send_ring->try_reserve(size, flags);
    if (r.status == core::RingStatus::ok) return r.payload;
    if (r.status == core::RingStatus::corrupted) {
      throw Error("the connection's shared memory is corrupted (an index no correct reader writes)");
    }
    const std::uint32_t seen = s.closes();
    (void)s.send_ring->wait_writable(size, std::nullopt, [&] { return s.closes() != seen; });
    if (s.send_ring->try_reserve(size, flags).status == core::RingStatus::full && s.peer_gone())
      throw_broken_pipe();
  }
}

// The next record, waiting for it; EOFError once the writer is gone and nothing is left.
core::SpscRing<>::Peek next_record(ConnectionState& s) {
  for (int i = 0; i < kQuickPolls; ++i) {
    auto p = s.recv_ring->try_peek();
    if (p.status != core::RingStatus::empty) {
      if (p.status == core::RingStatus::corrupted) throw_corrupted(s);
      return p;
    }
    core::cpu_relax();
  }
  for (;;) {
    auto p = s.recv_ring->try_peek();
    if (p.status == core::RingStatus::ok) return p;
    if (p.status == core::RingStatus::corrupted) throw_corrupted(s);
    const std::uint32_t seen = s.closes();
    if (s.recv_ring->wait_readable(std::nullopt, [&] { return s.closes() != seen; })) {
      if (s.recv_ring->readable()) continue;
    }
    if (s.peer_gone()) {
      // What the writer published before it went is still delivered.
      p = s.recv_ring->try_peek();
      if (p.status == core::RingStatus::ok) return p;
      throw_eof();
    }
  }
}

}  // namespace

// ---- Loan and View ------------------------------------------------------------------------------

Connection::Loan::Loan(Loan&& other) noexcept : state_(std::move(other.state_)), data_(other.data_) {}

Connection::Loan::~Loan() {
  if (state_) state_->loaning = false;  // not committed: the reservation is simply not published
}

void Connection::Loan::commit() {
  if (!state_) throw ValueError("this loan was already committed");
  if (state_->closed) throw OSError(EBADF, "handle is closed");
  state_->send_ring->commit();
  state_->loaning = false;
  state_.reset();
}

Connection::View::View(View&& other) noexcept : state_(std::move(other.state_)), bytes_(other.bytes_) {}

Connection::View::~View() {
  if (!state_) return;
  if (state_->assembled.empty() || bytes_.data() != state_->assembled.data()) {
    if (!state_->closed) state_->recv_ring->release();
  } else {
    state_->assembled.clear();
  }
  state_->viewing = false;
}

// ---- Connection ---------------------------------------------------------------------------------

Connection::Connection(std::shared_ptr<ConnectionState> state) noexcept
    : state_(std::move(state)), hot_(state_.get()) {}

void Connection::throw_has_fds() {
  throw ValueError(
      "a Connection message cannot carry shared objects (Lock, Queue, Value, ...): pass them to the "
      "Process as arguments instead");
}

inline ConnectionState& Connection::live(bool need_send, bool need_recv) const {
  if (!state_ || state_->closed) throw OSError(EBADF, "handle is closed");
  if (need_send && !state_->send_ring) throw OSError(EBADF, "connection is read-only");
  if (need_recv && !state_->recv_ring) throw OSError(EBADF, "connection is write-only");
  return *state_;
}

void Connection::send_bytes(std::span<const std::byte> buf, std::size_t offset, std::size_t size) {
  ConnectionState& s = live(true, false);
  if (offset > buf.size()) throw ValueError("buffer length < offset");
  if (size == SIZE_MAX) size = buf.size() - offset;
  if (size > buf.size() - offset) throw ValueError("buffer length < offset + size");
  if (size > s.max_message) {
    throw ValueError("message of " + std::to_string(size) + " bytes is longer than this pipe's limit of " +
                     std::to_string(s.max_message) + " bytes (PipeOptions::max_message)");
  }
  if (s.loaning) throw ValueError("a loan on this connection is not committed yet");
  if (s.peer_closed_since_checked()) throw_broken_pipe();
  const std::byte* data = buf.data() + offset;
  const std::size_t max_record = s.send_ring->max_record();
  if (size <= max_record) {
    const auto out = reserve(s, size, detail::kWhole);
    if (size != 0) std::memcpy(out.data(), data, size);
    s.send_ring->commit();
    return;
  }
  // Fragments: the first carries the total size, then chunks of up to a record each.
  std::size_t sent = 0;
  const std::size_t first = max_record - sizeof(std::uint64_t);
  {
    const auto out = reserve(s, max_record, detail::kFirst);
    const auto total = static_cast<std::uint64_t>(size);
    std::memcpy(out.data(), &total, sizeof total);
    std::memcpy(out.data() + sizeof total, data, first);
    s.send_ring->commit();
    sent = first;
  }
  while (sent < size) {
    const std::size_t chunk = std::min(max_record, size - sent);
    const auto out = reserve(s, chunk, sent + chunk == size ? detail::kLast : detail::kMore);
    std::memcpy(out.data(), data + sent, chunk);
    s.send_ring->commit();
    sent += chunk;
  }
}

void Connection::send_raw(const void* data, std::size_t size) {
  ConnectionState& s = live(true, false);
  if (s.loaning) throw ValueError("a loan on this connection is not committed yet");
  if (s.peer_closed_since_checked()) throw_broken_pipe();
  const auto out = reserve(s, size, detail::kWhole);
  std::memcpy(out.data(), data, size);
  s.send_ring->commit();
}

void Connection::recv_raw(void* data, std::size_t size) {
  ConnectionState& s = live(false, true);
  if (s.viewing) throw ValueError("a View of this connection is still held");
  const auto p = next_record(s);
  if (p.flags != detail::kWhole || p.payload.size() != size) {
    if (p.flags == detail::kWhole) s.recv_ring->release();
    if (p.flags != detail::kWhole) throw_corrupted(s);
    throw DecodeError("a received message has " + std::to_string(p.payload.size()) + " bytes, not the " +
                      std::to_string(size) + " of the type asked for");
  }
  std::memcpy(data, p.payload.data(), size);
  s.recv_ring->release();
}

Connection::View Connection::recv_view() {
  ConnectionState& s = live(false, true);
  if (s.viewing) throw ValueError("a View of this connection is still held");
  auto p = next_record(s);
  if (p.flags == detail::kWhole) {
    s.viewing = true;
    return View(state_, p.payload);
  }
  if (p.flags != detail::kFirst || p.payload.size() < sizeof(std::uint64_t)) throw_corrupted(s);
  std::uint64_t total = 0;
  std::memcpy(&total, p.payload.data(), sizeof total);
  if (total > s.max_message || total < p.payload.size() - sizeof total) {
    s.recv_ring->release();
    throw OSError(EMSGSIZE, "bad message length: the peer announced " + std::to_string(total) + " bytes");
  }
  std::vector<std::byte> message(static_cast<std::size_t>(total));
  std::size_t got = p.payload.size() - sizeof total;
  std::memcpy(message.data(), p.payload.data() + sizeof total, got);
  s.recv_ring->release();
  while (got < total) {
    auto more = next_record(s);
    const bool last = more.flags == detail::kLast;
    if ((more.flags != detail::kMore && !last) || more.payload.size() > total - got ||
        (last != (got + more.payload.size() == total))) {
      throw_corrupted(s);
    }
    std::memcpy(message.data() + got, more.payload.data(), more.payload.size());
    got += more.payload.size();
    s.recv_ring->release();
  }
  s.assembled = std::move(message);
  s.viewing = true;
  return View(state_, std::span<const std::byte>(s.assembled));
}

std::vector<std::byte> Connection::recv_bytes(std::size_t maxlength) {
  View view = recv_view();
  if (view.bytes().size() > maxlength) throw OSError(EMSGSIZE, "bad message length");
  return {view.bytes().begin(), view.bytes().end()};
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buffer, std::size_t offset) {
  if (offset > buffer.size()) throw ValueError("offset too large");
  View view = recv_view();
  const auto bytes = view.bytes();
  if (bytes.size() > buffer.size() - offset) {
    throw BufferTooShort("message of " + std::to_string(bytes.size()) + " bytes does not fit the buffer",
                         std::vector<std::byte>(bytes.begin(), bytes.end()));
  }
  if (!bytes.empty()) std::memcpy(buffer.data() + offset, bytes.data(), bytes.size());
  return bytes.size();
}

Connection::Loan Connection::loan(std::size_t n) {
  ConnectionState& s = live(true, false);
  if (s.loaning) throw ValueError("a loan on this connection is not committed yet");
  if (n > s.send_ring->max_record()) {
    throw ValueError("loan of " + std::to_string(n) + " bytes is larger than this pipe's " +
                     std::to_string(s.send_ring->max_record()) +
                     "-byte records (PipeOptions::capacity / 2 - 8)");
  }
  if (s.peer_closed_since_checked()) throw_broken_pipe();
  const auto out = reserve(s, n, detail::kWhole);
  s.loaning = true;
  return Loan(state_, out);
}

std::size_t Connection::max_loan() const {
  return live(true, false).send_ring->max_record();
}

bool Connection::poll() {
  ConnectionState& s = live(false, true);
  if (s.viewing) return true;
  return s.recv_ring->readable() || s.peer_gone();
}

bool Connection::poll_until(std::optional<std::chrono::steady_clock::time_point> deadline) {
  ConnectionState& s = live(false, true);
  for (;;) {
    if (s.viewing || s.recv_ring->readable()) return true;
    const std::uint32_t seen = s.closes();
    const bool in_time = s.recv_ring->wait_readable(deadline, [&] { return s.closes() != seen; });
    if (s.recv_ring->readable()) return true;
    if (s.peer_gone()) return true;  // end of file: recv() will not block
    if (!in_time) return false;
  }
}

void Connection::close() noexcept {
  if (!state_ || state_->closed) return;
  state_->closed = true;
  state_->token.reset();
  // relaxed: the other end reads it as a hint and re-checks; the rings order the data.
  if (state_->named)
    state_->header->holders[state_->end].store(detail::kEndClosed, std::memory_order_relaxed);
  // relaxed: a hint for the other side's waiters, who then ask the socket.
  state_->header->closes[state_->end].fetch_add(1, std::memory_order_relaxed);
  if (state_->send_ring) state_->send_ring->wake_all();
  if (state_->recv_ring) state_->recv_ring->wake_all();
}

bool Connection::closed() const noexcept {
  return !state_ || state_->closed;
}

bool Connection::readable() const noexcept {
  return state_ && state_->recv_ring.has_value();
}

bool Connection::writable() const noexcept {
  return state_ && state_->send_ring.has_value();
}

// ---- named connections ------------------------------------------------------------------------

namespace {

// The state of end `end` of the named pipe in `region`, claimed for this process.
std::shared_ptr<detail::ConnectionState> attach_named_end(std::shared_ptr<detail::NamedRegion> region,
                                                          int end, std::string_view name) {
  const auto payload = region->payload();
  detail::PipeHeader geometry{};
  std::memcpy(static_cast<void*>(&geometry), payload.data(), offsetof(detail::PipeHeader, closes));
  if (geometry.rings != 2 || !core::SpscRing<>::valid_capacity(geometry.capacity) ||
      detail::block_size(geometry.rings, geometry.capacity) > payload.size()) {
    throw ValueError("cannot open Connection '" + std::string(name) + "': its pipe header is invalid");
  }
  auto state = std::make_shared<detail::ConnectionState>();
  state->bind(reinterpret_cast<detail::PipeHeader*>(payload.data()), end);
  state->capacity = geometry.capacity;
  state->max_message = static_cast<std::size_t>(geometry.max_message);
  state->send_index = end;
  state->recv_index = 1 - end;
  const auto ring = [&](int index) {
    return std::span<std::byte>(
        payload.data() + detail::kRingsOffset + index * core::SpscRing<>::region_size(geometry.capacity),
        core::SpscRing<>::region_size(geometry.capacity));
  };
  state->send_ring = detail::attach_send_ring(ring(end));
  state->recv_ring = core::SpscRing<>::attach(ring(1 - end));
  if (!state->send_ring || !state->recv_ring) {
    throw ValueError("cannot open Connection '" + std::string(name) + "': its ring header is invalid");
  }
  // Claim the end: free, closed, or held by a dead process. The word is the pid and a handle
  // number (relaxed: a counter that only has to differ between handles).
  const std::uint32_t handle = detail::g_next_holder.fetch_add(1, std::memory_order_relaxed) % 1023 + 1;
  const std::uint32_t mine = core::ProcessTag::self() | (handle << detail::kHolderPidBits);
  auto& holder = state->header->holders[end];
  // relaxed: the word only names the holder.
  std::uint32_t seen = holder.load(std::memory_order_relaxed);
  for (;;) {
    if (detail::holder_alive(seen)) {
      throw FileExistsError(EEXIST, "cannot open Connection '" + std::string(name) + "': its " +
                                        (end == 0 ? "first" : "second") + " end is open in process " +
                                        std::to_string(seen & ((1U << detail::kHolderPidBits) - 1)));
    }
    if (holder.compare_exchange_weak(seen, mine, std::memory_order_relaxed)) break;  // relaxed: as above
  }
  state->send_ring->resync();  // a new holder takes over where the rings are
  state->recv_ring->resync();
  state->named = std::move(region);
  return state;
}

}  // namespace

Connection Connection::create(std::string_view name, const PipeOptions& options) {
  if (!core::SpscRing<>::valid_capacity(options.capacity)) {
    throw ValueError("Pipe capacity must be a power of two between 64 bytes and 1 GiB");
  }
  auto region =
      detail::create_named_region(name, detail::block_size(2, options.capacity),
                                  abi_hash<detail::PipeHeader>(), detail::kNamedPipeKind, "Connection");
  const auto payload = region->payload();
  new (payload.data()) detail::PipeHeader{2, options.capacity, options.max_message, {}, {}};
  for (std::uint32_t i = 0; i < 2; ++i) {
    (void)core::SpscRing<>::create(
        payload.subspan(detail::kRingsOffset + i * core::SpscRing<>::region_size(options.capacity),
                        core::SpscRing<>::region_size(options.capacity)),
        options.capacity);
  }
  region->segment().publish();
  return Connection(attach_named_end(std::move(region), 0, name));
}

Connection Connection::open(std::string_view name) {
  auto region = detail::open_named_region(name, abi_hash<detail::PipeHeader>(), detail::kNamedPipeKind,
                                          sizeof(detail::PipeHeader), "Connection");
  return Connection(attach_named_end(std::move(region), 1, name));
}

std::string Connection::name() const {
  return state_ && state_->named ? state_->named->name() : std::string();
}

// ---- wait() ---------------------------------------------------------------------------------

std::vector<Connection*> wait(std::span<Connection* const> connections,
                              std::optional<std::chrono::nanoseconds> timeout) {
  // A plain time_point (max: none) rather than an optional: GCC 12 misreads the optional's
  // engaged flag here (-Wmaybe-uninitialized).
  const auto deadline =
      timeout ? detail::deadline_after(*timeout).value_or(std::chrono::steady_clock::time_point::max())
              : std::chrono::steady_clock::time_point::max();
  // Polls each connection, then backs off: spins, yields, then sleeps from 20 us up to 1 ms. (One
  // futex per ring: waiting on several at once needs futex_waitv, a possible refinement.)
  auto pause = std::chrono::microseconds(20);
  for (int round = 0;; ++round) {
    std::vector<Connection*> ready;
    for (Connection* c : connections) {
      if (c != nullptr && c->poll()) ready.push_back(c);
    }
    if (!ready.empty()) return ready;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return ready;
    if (round < 64) {
      std::this_thread::yield();
      continue;
    }
    auto sleep_until = now + pause;
    if (deadline < sleep_until) sleep_until = deadline;
    std::this_thread::sleep_until(sleep_until);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(1));
  }
}

std::vector<Connection*> wait(std::initializer_list<Connection*> connections,
                              std::optional<std::chrono::nanoseconds> timeout) {
  return wait(std::span<Connection* const>(connections.begin(), connections.size()), timeout);
}

// ---- codec ----------------------------------------------------------------------------------

void codec<Connection>::encode(Encoder& out, const Connection& c) {
  const auto& s = c.state();
  if (!s || s->closed) throw ValueError("cannot pass a closed Connection to a process");
  if (s->named) {
    throw ValueError("a named Connection is held by one process: pass its name, and open() it in the other");
  }
  detail::encode_block_ref(out, s->block, 0);
  out.put(static_cast<std::int32_t>(s->end));
  out.put(static_cast<std::int32_t>(s->send_index));
  out.put(static_cast<std::int32_t>(s->recv_index));
  out.put(out.add_fd(s->token.get()));
}

Connection codec<Connection>::decode(Decoder& in) {
  auto [block, offset] =
      detail::decode_block_ref(in, sizeof(detail::PipeHeader), alignof(detail::PipeHeader));
  if (block.type_hash() != abi_hash<detail::PipeHeader>() || offset != 0) {
    throw DecodeError("a received Connection's block is not a pipe");
  }
  const auto end = in.get<std::int32_t>();
  const auto send_index = in.get<std::int32_t>();
  const auto recv_index = in.get<std::int32_t>();
  const int token_fd = in.fd(in.get<std::uint32_t>());
  // The header is shared: validate a private copy of the geometry once.
  detail::PipeHeader geometry{};
  std::memcpy(static_cast<void*>(&geometry), block.payload(), offsetof(detail::PipeHeader, closes));
  if ((geometry.rings != 1 && geometry.rings != 2) || !core::SpscRing<>::valid_capacity(geometry.capacity) ||
      detail::block_size(geometry.rings, geometry.capacity) > block.payload_size() || send_index < -1 ||
      recv_index < -1 || send_index >= static_cast<int>(geometry.rings) ||
      recv_index >= static_cast<int>(geometry.rings) || (send_index < 0 && recv_index < 0) ||
      (end != 0 && end != 1)) {
    throw DecodeError("a received Connection's pipe header is invalid");
  }
  auto state = std::make_shared<detail::ConnectionState>();
  state->bind(reinterpret_cast<detail::PipeHeader*>(block.payload()), end);
  state->block = std::move(block);
  state->capacity = geometry.capacity;
  state->max_message = static_cast<std::size_t>(geometry.max_message);
  state->send_index = send_index;
  state->recv_index = recv_index;
  if (send_index >= 0) {
    state->send_ring =
        detail::attach_send_ring(detail::ring_region(state->block, send_index, geometry.capacity));
  }
  if (recv_index >= 0) {
    state->recv_ring =
        core::SpscRing<>::attach(detail::ring_region(state->block, recv_index, geometry.capacity));
  }
  if ((send_index >= 0 && !state->send_ring) || (recv_index >= 0 && !state->recv_ring)) {
    throw DecodeError("a received Connection's ring header is invalid");
  }
  auto token = platform::dup_cloexec(token_fd);
  if (!token) throw_os_error(token.error(), "cannot receive a Connection");
  state->token = std::move(*token);
  return Connection(std::move(state));
}

}  // namespace mproc
