// The out-of-line parts of mproc::Queue: its errors (CPython's types and messages) and the
// per-thread encode buffer.
#include "mproc/queues.hpp"

#include <string>

namespace mproc::detail {

void throw_queue_status(core::RingStatus status, std::size_t message_size, std::size_t max_message) {
  switch (status) {
    case core::RingStatus::empty:
      throw Empty("the queue is empty");
    case core::RingStatus::full:
      throw Full("the queue is full");
    case core::RingStatus::too_large:
      throw ValueError("a message of " + std::to_string(message_size) +
                       " encoded bytes is larger than this queue's " + std::to_string(max_message) +
                       "-byte limit (QueueOptions::slot_size and maxsize set it)");
    case core::RingStatus::corrupted:
      throw Error(
          "the queue's shared memory is corrupted (a state word or length no correct process writes)");
    case core::RingStatus::ok:
      break;
  }
  throw Error("unexpected queue status");
}

void throw_queue_closed() {
  throw ValueError("Queue is closed");
}

void throw_queue_has_fds() {
  throw ValueError(
      "a Queue message cannot carry shared objects (Lock, Queue, Value, ...): pass them to the Process "
      "as arguments instead, as CPython requires");
}

std::vector<std::byte>& encode_scratch() noexcept {
  thread_local std::vector<std::byte> scratch;
  return scratch;
}

}  // namespace mproc::detail
