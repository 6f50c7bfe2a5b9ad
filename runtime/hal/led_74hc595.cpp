// Led74HC595 (include/mproc/hal/led_74hc595.hpp): the SAKS wire protocol.
#include "mproc/hal/led_74hc595.hpp"

#include <string>

namespace mproc::hal {

namespace {
enum : std::size_t { kDs = 0, kShcp = 1, kStcp = 2 };
}

Led74HC595::Led74HC595(GpioChip& chip, Pins74HC595 pins, std::string_view consumer) {
  const Line lines[] = {pins.ds, pins.shcp, pins.stcp};
  lines_ = chip.request_output(std::span<const Line>(lines), consumer);
  set_data(0);
}

void Led74HC595::check_index(std::size_t i) {
  if (i >= 8) throw ValueError("LED index must be 0 to 7, not " + std::to_string(i));
}

void Led74HC595::on_for_index(std::size_t i) {
  check_index(i);
  set_data(static_cast<std::uint8_t>(data_ | (1U << i)));
}

void Led74HC595::off_for_index(std::size_t i) {
  check_index(i);
  set_data(static_cast<std::uint8_t>(data_ & ~(1U << i)));
}

void Led74HC595::set_row(const std::array<std::optional<bool>, 8>& row) {
  std::uint8_t d = data_;
  for (std::size_t i = 0; i < 8; ++i) {
    if (!row[i]) continue;
    d = *row[i] ? static_cast<std::uint8_t>(d | (1U << i)) : static_cast<std::uint8_t>(d & ~(1U << i));
  }
  set_data(d);
}

std::array<bool, 8> Led74HC595::row_status() const {
  std::array<bool, 8> row{};
  for (std::size_t i = 0; i < 8; ++i) row[i] = is_on(i);
  return row;
}

bool Led74HC595::is_on(std::size_t i) const noexcept {
  return i < 8 && ((data_ >> i) & 1U) != 0;
}

void Led74HC595::set_data(std::uint8_t data) {
  // ic_74hc595.py's set_data: bit 0 first, each bit clocked in on a rising edge of SHCP, then one
  // rising edge of STCP to show the byte.
  for (unsigned i = 0; i < 8; ++i) {
    lines_->set(kDs, ((data >> i) & 1U) != 0);
    lines_->set(kShcp, false);
    lines_->set(kShcp, true);
  }
  lines_->set(kStcp, false);
  lines_->set(kStcp, true);
  data_ = data;
}

}  // namespace mproc::hal
