// Event: a handle to an EventCore in a shared block.
#include <new>

#include "mproc/synchronize.hpp"
#include "sync/state_block.hpp"

namespace mproc {

Event::Event()
    : block_(detail::create_state_block<detail::EventState>("Event")),
      state_(::new(block_.payload()) detail::EventState{}) {}

void Event::set() noexcept {
  state_->core.set();
}

void Event::clear() noexcept {
  state_->core.clear();
}

bool Event::is_set() const noexcept {
  return state_->core.is_set();
}

bool Event::wait() {
  return state_->core.wait_until(std::nullopt);
}

bool Event::wait_until(std::optional<std::chrono::steady_clock::time_point> deadline) {
  return state_->core.wait_until(deadline);
}

void codec<Event>::encode(Encoder& out, const Event& event) {
  detail::encode_state_ref(out, event.block_);
}

Event codec<Event>::decode(Decoder& in) {
  auto [block, state] = detail::decode_state_ref<detail::EventState>(in);
  return Event(std::move(block), state);
}

}  // namespace mproc
