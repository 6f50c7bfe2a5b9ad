// Barrier: a handle to a BarrierCore (and its identity slots) in a shared block.
#include <algorithm>
#include <new>
#include <string>

#include "mproc/detail/liveness.hpp"
#include "mproc/synchronize.hpp"
#include "sync/state_block.hpp"

namespace mproc {

namespace {

using Core = core::BarrierCore<>;
static_assert(sizeof(detail::BarrierState) == sizeof(Core), "the identity slots follow the core directly");

std::int64_t to_default_timeout(std::chrono::nanoseconds timeout) {
  if (timeout == std::chrono::nanoseconds::max()) return -1;  // a century or more: none
  return std::max<std::int64_t>(timeout.count(), 0);          // negative means 0, as in CPython
}

}  // namespace

Barrier::Barrier(std::size_t parties) : Barrier(parties, std::chrono::nanoseconds::max(), 0) {}

Barrier::Barrier(std::size_t parties, std::chrono::nanoseconds default_timeout, int) {
  // threading.Barrier's message; multiprocessing.Barrier(0) is accepted by CPython, and then no
  // wait() can ever return (the round needs 0 arrivals but each arrival counts as one).
  if (parties == 0) throw ValueError("parties must be > 0");
  if (parties > kMaxParties) {
    throw ValueError("parties must be <= " + std::to_string(kMaxParties) + " (mproc::Barrier's limit)");
  }
  const auto n = static_cast<std::uint32_t>(parties);
  block_ = detail::create_state_block<detail::BarrierState>("Barrier", Core::bytes_for(n));
  state_ = ::new (block_.payload()) detail::BarrierState{Core(n, to_default_timeout(default_timeout))};
  parties_ = n;
}

std::size_t Barrier::wait() {
  const std::int64_t timeout = state_->core.default_timeout_ns();
  if (timeout < 0) return wait_until(std::nullopt);
  return wait_until(detail::deadline_after(std::chrono::nanoseconds(timeout)));
}

std::size_t Barrier::wait_until(std::optional<std::chrono::steady_clock::time_point> deadline) {
  const auto index = state_->core.wait(detail::process_identity(), deadline, parties_);
  if (!index) {
    throw BrokenBarrierError(
        "the Barrier is broken (abort(), reset() during the wait, or a wait that timed out); every wait "
        "fails until someone calls reset()");
  }
  return *index;
}

void Barrier::reset() noexcept {
  state_->core.reset(detail::process_identity(), parties_);
}

void Barrier::abort() noexcept {
  state_->core.abort(detail::process_identity(), parties_);
}

std::size_t Barrier::parties() const noexcept {
  return parties_;
}

std::size_t Barrier::n_waiting() const noexcept {
  return state_->core.n_waiting_snapshot();
}

bool Barrier::broken() const noexcept {
  return state_->core.broken_snapshot();
}

void codec<Barrier>::encode(Encoder& out, const Barrier& barrier) {
  detail::encode_state_ref(out, barrier.block_);
}

Barrier codec<Barrier>::decode(Decoder& in) {
  auto [block, state] = detail::decode_state_ref<detail::BarrierState>(in);
  // The slots follow the core: the block must hold as many as the core says there are parties.
  const std::uint32_t parties = state->core.parties();
  if (parties == 0 || Core::bytes_for(parties) > block.payload_size()) {
    throw DecodeError("a received Barrier's block is too small for its parties");
  }
  return Barrier(std::move(block), state, parties);
}

}  // namespace mproc
