// The simulated board behind open_gpio("sim"), seen from any process: its pin levels and the
// SAKS LED row its simulated 74HC595 shows.
//
//   auto board = mproc::hal::SimBoard::attach();        // the board "sim" (or attach("NAME"))
//   std::uint64_t seen = board.latches();
//   for (;;) {
//     seen = board.wait_change(seen, 100ms);           // a latch (STCP rising edge) happened
//     draw(board.leds());                              // std::array<bool, 8>, LED 0 first
//   }
//
// The board lives in a named shared-memory segment ("mproc-gpio-NAME"), made by the first
// open_gpio("sim:NAME") and unlinked when that process's last handle goes. A SimBoard is
// read-only: it never drives a line.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mproc/export.hpp"

namespace mproc::hal {

namespace detail {
struct SimBoardHandle;
}

/// The SAKS wiring of the simulated 74HC595 (BCM numbers): data, shift clock, latch.
inline constexpr unsigned kSimDs = 6;
inline constexpr unsigned kSimShcp = 19;
inline constexpr unsigned kSimStcp = 13;
/// Lines of the simulated header: GPIO0 .. GPIO27.
inline constexpr unsigned kSimLines = 28;

class MPROC_API SimBoard {
 public:
  /// Attaches to the board NAME (FileNotFoundError when no process has opened it).
  static SimBoard attach(std::string_view name = "sim");

  [[nodiscard]] const std::string& name() const noexcept;
  /// The level of line `offset` (false past the last line).
  [[nodiscard]] bool level(unsigned offset) const;
  /// The LED row: LED i is on when the 74HC595's latched output Q(7 - i) is high.
  [[nodiscard]] std::array<bool, 8> leds() const;
  /// The same as a byte, bit i for LED i.
  [[nodiscard]] std::uint8_t led_byte() const;
  /// Rising edges of the shift clock and of the latch so far.
  [[nodiscard]] std::uint64_t shifts() const;
  [[nodiscard]] std::uint64_t latches() const;

  /// One latch: its number (1 for the first), when (steady clock, ns), the LED byte it showed.
  struct Change {
    std::uint64_t latch;
    std::uint64_t time_ns;
    std::uint8_t leds;
  };
  /// The latches after number `after`, oldest first; the board keeps the last 1024.
  [[nodiscard]] std::vector<Change> changes(std::uint64_t after = 0) const;
  /// Waits until a latch after number `seen` happens or the timeout passes; returns latches().
  std::uint64_t wait_change(std::uint64_t seen, std::chrono::milliseconds timeout) const;

 private:
  explicit SimBoard(std::shared_ptr<detail::SimBoardHandle> handle) : handle_(std::move(handle)) {}
  std::shared_ptr<detail::SimBoardHandle> handle_;
};

}  // namespace mproc::hal
