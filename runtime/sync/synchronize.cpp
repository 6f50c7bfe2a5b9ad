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

std::uint32_t RLock::depth_held_by_me() const noexcept {
  // Only the owner writes owner_thread and depth, and only while holding the word; if the word
  // names this process and owner_thread this thread, this thread wrote both (invariant: the
  // owner clears owner_thread before it releases the word).
  // The full identity (pid and start-time stamp): a newcomer that reused a dead owner's pid, with
  // a thread whose id matches the dead owner's, must not pass for the owner.
  if (state_->word.owner_snapshot() != detail::process_identity()) return 0;
  // relaxed: meaningful only when this thread wrote it, as above.
  if (state_->owner_thread.load(std::memory_order_relaxed) != detail::thread_id()) return 0;
  return state_->depth;
}

bool RLock::acquire_until(std::optional<std::chrono::steady_clock::time_point> deadline, bool block) {
  if (depth_held_by_me() != 0) {
    ++state_->depth;
    return true;
  }
  const std::uint64_t self = detail::process_identity();
  core::LockResult result = core::LockResult::timed_out;
  if (state_->word.try_lock(self)) {
    result = core::LockResult::acquired;
  } else if (block && (!deadline || *deadline > std::chrono::steady_clock::now())) {
    result = state_->word.lock(self, deadline);
  }
  if (result == core::LockResult::timed_out) return false;
  // relaxed: read back only by this thread (depth_held_by_me); other threads compare it with
  // their own id, which this value never equals.
  state_->owner_thread.store(detail::thread_id(), std::memory_order_relaxed);
  state_->depth = 1;
  if (result == core::LockResult::owner_died) detail::throw_owner_died("the RLock");
  return true;
}

bool RLock::acquire(bool block) {
  return acquire_until(std::nullopt, block);
}

bool RLock::acquire_for(std::chrono::nanoseconds timeout) {
  return acquire_until(detail::deadline_after(timeout), true);
}

void RLock::release() {
  if (depth_held_by_me() == 0) throw ProcessError("attempt to release recursive lock not owned by thread");
  if (--state_->depth > 0) return;
  // relaxed: ordered before the word's release by unlock()'s [sync:lock.handoff].
  state_->owner_thread.store(0, std::memory_order_relaxed);
  state_->word.unlock();
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
