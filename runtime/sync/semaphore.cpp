// Semaphore and BoundedSemaphore: handles to a SemaphoreCore in a shared block.
#include <cerrno>
#include <new>
#include <optional>
#include <string>

#include "mproc/synchronize.hpp"
#include "sync/state_block.hpp"

namespace mproc {

namespace {
using Core = core::SemaphoreCore<>;
}  // namespace

Semaphore::Semaphore(int value) : Semaphore(value, static_cast<int>(Core::kValueMax), "Semaphore") {}

Semaphore::Semaphore(int value, int max_value, const char* kind) {
  // CPython's multiprocessing reports this as OSError(EINVAL) from sem_open; threading's
  // ValueError says what is wrong.
  if (value < 0) throw ValueError(std::string(kind) + " initial value must be >= 0");
  block_ = detail::create_state_block<detail::SemaphoreState>(kind);
  state_ = ::new (block_.payload())
      detail::SemaphoreState{Core(static_cast<std::uint32_t>(value), static_cast<std::uint32_t>(max_value))};
}

bool Semaphore::acquire(bool block) {
  return block ? state_->core.acquire(std::nullopt) : state_->core.try_acquire();
}

bool Semaphore::acquire_for(std::chrono::nanoseconds timeout) {
  if (state_->core.try_acquire()) return true;
  if (timeout <= std::chrono::nanoseconds(0)) return false;
  return state_->core.acquire(detail::deadline_after(timeout));
}

void Semaphore::release() {
  if (state_->core.release()) return;
  if (state_->core.max_value() < Core::kValueMax)
    throw ValueError("semaphore or lock released too many times");
  throw_os_error(EOVERFLOW, "Semaphore.release(): the count is at SEM_VALUE_MAX (2147483647)");
}

int Semaphore::get_value() const noexcept {
  return static_cast<int>(state_->core.value_snapshot());
}

BoundedSemaphore::BoundedSemaphore(int value) : Semaphore(value, value, "BoundedSemaphore") {}

void codec<Semaphore>::encode(Encoder& out, const Semaphore& sem) {
  detail::encode_state_ref(out, sem.block_);
}

Semaphore codec<Semaphore>::decode(Decoder& in) {
  auto [block, state] = detail::decode_state_ref<detail::SemaphoreState>(in);
  return Semaphore(std::move(block), state);
}

void codec<BoundedSemaphore>::encode(Encoder& out, const BoundedSemaphore& sem) {
  detail::encode_state_ref(out, sem.block_);
}

BoundedSemaphore codec<BoundedSemaphore>::decode(Decoder& in) {
  auto [block, state] = detail::decode_state_ref<detail::SemaphoreState>(in);
  return BoundedSemaphore(std::move(block), state);
}

}  // namespace mproc
