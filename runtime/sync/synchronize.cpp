// Lock and RLock: handles to robust lock words in shared blocks.
#include "mproc/synchronize.hpp"

#include "mproc/detail/liveness.hpp"

namespace mproc {
namespace detail {

std::optional<std::chrono::steady_clock::time_point> deadline_after(std::chrono::nanoseconds timeout) {
  if (timeout == std::chrono::nanoseconds::max()) return std::nullopt;
  return std::chrono::steady_clock::now() + std::max(timeout, std::chrono::nanoseconds(0));
}

namespace {

template <class State>
std::pair<SharedBlock, State*> make_state(const char* tag) {
  SharedBlock block = SharedBlock::create(sizeof(State), abi_hash<State>(), tag);
  // The block is zero-filled, which is the unlocked state of every lock word; constructing the
  // atomics over it keeps the object model honest and writes the same zeros.
  auto* state = new (block.payload()) State{};
  return {std::move(block), state};
}

[[noreturn]] void throw_owner_died(const char* what) {
  throw OwnerDied(std::string(what) +
                  " was held by a process that died; it is now held by the caller. Repair the data it "
                  "guards, then use or release it as usual.");
}

}  // namespace
}  // namespace detail

// --- Lock ------------------------------------------------------------------------------------

Lock::Lock() {
  auto [block, state] = detail::make_state<detail::LockState>("Lock");
  block_ = std::move(block);
  state_ = state;
}

bool Lock::acquire_contended() {
  if (state_->word.lock(detail::process_identity(), std::nullopt) == core::LockResult::owner_died)
    detail::throw_owner_died("the Lock");
  return true;
}

bool Lock::acquire_for(std::chrono::nanoseconds timeout) {
  const std::uint64_t self = detail::process_identity();
  if (state_->word.try_lock(self)) return true;
  if (timeout <= std::chrono::nanoseconds(0)) return false;
  switch (state_->word.lock(self, detail::deadline_after(timeout))) {
    case core::LockResult::acquired:
      return true;
    case core::LockResult::owner_died:
      detail::throw_owner_died("the Lock");
    case core::LockResult::timed_out:
      break;
  }
  return false;
}

void Lock::throw_not_held() {
  throw ValueError("semaphore or lock released too many times");
}

bool Lock::locked_snapshot() const noexcept {
  return state_->word.owner_snapshot() != 0;
}

bool Lock::held_by_this_process() const noexcept {
  return state_->word.owner_snapshot() == detail::process_identity();
}

void codec<Lock>::encode(Encoder& out, const Lock& lock) {
  detail::encode_block_ref(
      out, lock.block_,
      static_cast<std::size_t>(reinterpret_cast<std::byte*>(lock.state_) - lock.block_.payload()));
}

Lock codec<Lock>::decode(Decoder& in) {
  auto [block, offset] = detail::decode_block_ref(in, sizeof(detail::LockState), alignof(detail::LockState));
  auto* state = reinterpret_cast<detail::LockState*>(block.payload() + offset);
  return Lock(std::move(block), state);
}

// --- RLock -----------------------------------------------------------------------------------

RLock::RLock() {
  auto [block, state] = detail::make_state<detail::RLockState>("RLock");
  block_ = std::move(block);
  state_ = state;
}

bool RLock::acquire_until(std::optional<std::chrono::steady_clock::time_point> deadline, bool block) {
  const std::uint64_t self = detail::cached_process_identity();
  const std::uint32_t thread = detail::cached_thread_id();
  if (held_by(self, thread)) {
    ++state_->depth;
    return true;
  }
  core::LockResult result = core::LockResult::timed_out;
  if (state_->word.try_lock(self)) {
    result = core::LockResult::acquired;
  } else if (block && (!deadline || *deadline > std::chrono::steady_clock::now())) {
    result = state_->word.lock(self, deadline);
  }
  if (result == core::LockResult::timed_out) return false;
  take(thread);
  if (result == core::LockResult::owner_died) detail::throw_owner_died("the RLock");
  return true;
}

bool RLock::acquire_for(std::chrono::nanoseconds timeout) {
  return acquire_until(detail::deadline_after(timeout), true);
}

void RLock::throw_not_owner() {
  throw ProcessError("attempt to release recursive lock not owned by thread");
}

void codec<RLock>::encode(Encoder& out, const RLock& lock) {
  detail::encode_block_ref(
      out, lock.block_,
      static_cast<std::size_t>(reinterpret_cast<std::byte*>(lock.state_) - lock.block_.payload()));
}

RLock codec<RLock>::decode(Decoder& in) {
  auto [block, offset] =
      detail::decode_block_ref(in, sizeof(detail::RLockState), alignof(detail::RLockState));
  auto* state = reinterpret_cast<detail::RLockState*>(block.payload() + offset);
  return RLock(std::move(block), state);
}

}  // namespace mproc
