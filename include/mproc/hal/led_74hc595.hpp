// The SAKS board's LED row: 8 LEDs behind a 74HC595 shift register, as the SAKS SDK drives it
// (entities/led_74hc595.py and ic_74hc595.py).
//
//   auto chip = mproc::hal::open_gpio("sim");
//   mproc::hal::Led74HC595 ledrow(*chip);                 // SAKS pins: DS 6, SHCP 19, STCP 13
//   ledrow.on_for_index(3);  ledrow.off_for_index(3);
//   ledrow.set_row({true, false, true, false, false, false, false, false});   // nullopt: unchanged
//   std::array<bool, 8> row = ledrow.row_status();  bool on = ledrow.is_on(3);
//
// Every change writes the whole byte: for i in 0..7, DS = bit i, then a rising edge of SHCP;
// then a rising edge of STCP. Bit i is LED i, bit 0 shifted first (the SAKS order). The row's
// state is kept here, as the SDK keeps it, and the chip only ever sees the waveform; the driver
// holds its three lines for as long as it lives, so one process owns the LEDs at a time (others
// get LineBusy) and tells them what to show through mproc's queues or pipes.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "mproc/export.hpp"
#include "mproc/hal/gpio.hpp"

namespace mproc::hal {

/// Where the 74HC595 is wired (BCM numbers, or the chip's offsets): SAKS's by default.
struct Pins74HC595 {
  unsigned ds = 6;     ///< serial data (SER)
  unsigned shcp = 19;  ///< shift clock (SRCLK)
  unsigned stcp = 13;  ///< latch (RCLK)
};

class MPROC_API Led74HC595 {
 public:
  /// Requests the three lines (LineBusy, LineNotFound) and turns every LED off.
  explicit Led74HC595(GpioChip& chip, Pins74HC595 pins = {}, std::string_view consumer = "mproc-saks-ledrow");
  Led74HC595(const Led74HC595&) = delete;  // one owner of the lines, never a moved-from one
  Led74HC595& operator=(const Led74HC595&) = delete;

  void on() { set_data(0xff); }
  void off() { set_data(0); }
  /// ValueError for an index past 7.
  void on_for_index(std::size_t i);
  void off_for_index(std::size_t i);
  /// One value per LED, LED 0 first; nullopt leaves that LED as it is (Python's None).
  void set_row(const std::array<std::optional<bool>, 8>& row);
  [[nodiscard]] std::array<bool, 8> row_status() const;
  /// Whether LED i is on; false for i past 7, as the SDK answers.
  [[nodiscard]] bool is_on(std::size_t i) const noexcept;

  /// Shows the byte: bit i is LED i.
  void set_data(std::uint8_t data);
  [[nodiscard]] std::uint8_t data() const noexcept { return data_; }

 private:
  static void check_index(std::size_t i);
  std::unique_ptr<OutputLines> lines_;  // DS, SHCP, STCP
  std::uint8_t data_ = 0;
};

}  // namespace mproc::hal
