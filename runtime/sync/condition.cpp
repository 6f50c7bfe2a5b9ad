// Condition: a Lock or RLock handle plus a ConditionCore (the waiter slots) in a shared block.
#include "mproc/core/condition.hpp"

#include <exception>
#include <new>
#include <string>

#include "mproc/synchronize.hpp"
#include "platform/linux/robust_mutex.hpp"
#include "sync/state_block.hpp"

namespace mproc {

namespace detail {

struct ConditionState {
  core::ConditionCore<SharedFutex, platform::RobustMutexPresence, Condition::kMaxWaiters> core;
};
MPROC_SHM_LAYOUT(ConditionState);

}  // namespace detail

Condition::Condition() : rlock_(RLock()) {
  make_state();
}

Condition::Condition(Lock lock) : lock_(std::move(lock)) {
  make_state();
}

Condition::Condition(RLock lock) : rlock_(std::move(lock)) {
  make_state();
}

Condition::Condition(std::optional<Lock> lock, std::optional<RLock> rlock, detail::SharedBlock block,
                     detail::ConditionState* state) noexcept
    : lock_(std::move(lock)), rlock_(std::move(rlock)), block_(std::move(block)), state_(state) {}

void Condition::make_state() {
  block_ = detail::create_state_block<detail::ConditionState>("Condition");
  // Default-initialised on purpose: the core constructs its slots as they are first used, so the
  // unused part of the table is never written (and never given pages).
  state_ = ::new (block_.payload()) detail::ConditionState;
}

bool Condition::acquire(bool block) {
  return rlock_ ? rlock_->acquire(block) : lock_->acquire(block);
}

void Condition::release() {
  if (rlock_) {
    rlock_->release();
  } else {
    lock_->release();
  }
}

bool Condition::owned_by_caller() const noexcept {
  // An RLock knows its owning thread. A Lock knows its owning process (any thread of it may
  // release it, as in CPython), so "held by this process" is what can be checked.
  return rlock_ ? rlock_->depth_held_by_me() != 0 : lock_->held_by_this_process();
}

bool Condition::wait() {
  return wait_until(std::nullopt);
}

bool Condition::wait_until(std::optional<std::chrono::steady_clock::time_point> deadline) {
  if (!owned_by_caller()) throw ProcessError("must acquire() condition before using wait()");
  auto& queue = state_->core;
  // Enqueued under the lock, so a notify() that follows our release cannot miss us.
  const std::uint32_t slot = queue.enqueue();
  if (slot == decltype(state_->core)::kNoSlot) {
    throw ProcessError("Condition.wait(): " + std::to_string(kMaxWaiters) +
                       " threads already wait on this Condition, which is mproc's limit; wake some, or "
                       "use several Conditions");
  }
  // Release completely, as CPython does: an RLock as many times as this thread holds it.
  const std::uint32_t depth = rlock_ ? rlock_->depth_held_by_me() : 1;
  for (std::uint32_t i = 0; i < depth; ++i) release();

  const bool notified = queue.wait(slot, deadline);

  std::exception_ptr owner_died;
  try {
    acquire(true);
  } catch (const OwnerDied&) {  // we hold the lock: finish restoring, then report it
    owner_died = std::current_exception();
  }
  for (std::uint32_t i = 1; i < depth; ++i) rlock_->acquire(true);
  queue.dequeue(slot);
  if (owner_died) std::rethrow_exception(owner_died);
  return notified;
}

void Condition::notify(std::size_t n) {
  if (!owned_by_caller()) throw ProcessError("lock is not owned");
  state_->core.notify(n);
}

void Condition::notify_all() {
  notify(kMaxWaiters);
}

std::size_t Condition::waiters_snapshot() const noexcept {
  return state_->core.waiters_snapshot();
}

void codec<Condition>::encode(Encoder& out, const Condition& cond) {
  out.put(static_cast<std::uint8_t>(cond.rlock_ ? 1 : 0));
  if (cond.rlock_) {
    out.put(*cond.rlock_);
  } else {
    out.put(*cond.lock_);
  }
  detail::encode_state_ref(out, cond.block_);
}

Condition codec<Condition>::decode(Decoder& in) {
  std::optional<Lock> lock;
  std::optional<RLock> rlock;
  switch (in.get<std::uint8_t>()) {
    case 0:
      lock.emplace(in.get<Lock>());
      break;
    case 1:
      rlock.emplace(in.get<RLock>());
      break;
    default:
      throw DecodeError("a received Condition names neither a Lock nor an RLock");
  }
  auto [block, state] = detail::decode_state_ref<detail::ConditionState>(in);
  return Condition(std::move(lock), std::move(rlock), std::move(block), state);
}

}  // namespace mproc
