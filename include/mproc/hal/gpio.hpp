// mproc::hal: a thin GPIO layer for the seeds' LED task, on the Linux GPIO character device
// (libgpiod 1.6) or on a simulated board in shared memory.
//
//   auto chip = mproc::hal::open_gpio("sim");          // or "gpiochip0", a chip label, a path;
//                                                       // open_gpio() reads MPROC_GPIO (default "sim")
//   auto lines = chip->request_output({6U, 19U, 13U}, "mproc-ledrow");   // by offset, or by name
//   lines->set(0, true);
//
// A request is exclusive, as the kernel's: a second request of a held line fails with LineBusy
// until the holder releases it (its OutputLines is destroyed) or its process ends. Consumer labels
// are cut to 31 characters, as the kernel does. Values given at request time are applied at once.
//
// Backends (docs/hal.md):
//   * "sim", "sim:NAME": a simulated 40-pin Raspberry Pi header (lines GPIO0..GPIO27 at offsets
//     0..27) whose levels live in shared memory, with a 74HC595 wired as on the SAKS board
//     (DS = 6, SHCP = 19, STCP = 13, LED i on output Q(7 - i)). The shift register clocks on the
//     rising edge of SHCP and latches on the rising edge of STCP, so the LEDs show what the
//     waveform says, whatever any driver believes it wrote. Other processes attach to the board
//     by its name (SimBoard, mproc/hal/sim.hpp) and watch it.
//   * anything else: libgpiod 1.6's chip lookup (a name such as "gpiochip0", a path, a number or a
//     chip label); lines by offset or by name ("GPIO6" on Raspberry Pi OS).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "mproc/errors.hpp"
#include "mproc/export.hpp"

namespace mproc::hal {

/// A GPIO error with the errno it stands for (OSError's code()).
class MPROC_API GpioError : public OSError {
 public:
  using OSError::OSError;
};

/// The line is requested by another consumer (EBUSY).
class MPROC_API LineBusy : public GpioError {
 public:
  using GpioError::GpioError;
};

/// No such line on the chip: an offset past its last line, or a name no line has (ENOENT).
class MPROC_API LineNotFound : public GpioError {
 public:
  using GpioError::GpioError;
};

/// No such chip (ENOENT), or it cannot be opened (the errno says why).
class MPROC_API ChipNotFound : public GpioError {
 public:
  using GpioError::GpioError;
};

/// A line: its offset on the chip, or its name.
using Line = std::variant<unsigned, std::string>;

/// Requested output lines, in the order they were asked for. Released when destroyed.
class MPROC_API OutputLines {
 public:
  virtual ~OutputLines() = default;
  /// Drives line `index` (of the request) to value (true: high).
  virtual void set(std::size_t index, bool value) = 0;
  /// The value this request last drove on line `index`.
  [[nodiscard]] virtual bool get(std::size_t index) const = 0;
  [[nodiscard]] virtual std::size_t size() const noexcept = 0;
};

class MPROC_API GpioChip {
 public:
  virtual ~GpioChip() = default;
  /// "sim:NAME" or the kernel's chip name ("gpiochip0").
  [[nodiscard]] virtual std::string name() const = 0;
  /// The chip's label ("sim", "pinctrl-bcm2711", ...).
  [[nodiscard]] virtual std::string label() const = 0;
  [[nodiscard]] virtual unsigned num_lines() const = 0;
  /// The offset of the line with this name. LineNotFound when none has it.
  [[nodiscard]] virtual unsigned find_line(std::string_view name) const = 0;
  /// Who holds line `offset` (nullopt: nobody). LineNotFound for a bad offset.
  [[nodiscard]] virtual std::optional<std::string> consumer(unsigned offset) const = 0;
  /// Requests lines as outputs for `consumer`, driven to `initial` at once (all low when
  /// empty; else one value per line). LineBusy, LineNotFound, ValueError for a repeated line or
  /// a wrong number of initial values.
  [[nodiscard]] virtual std::unique_ptr<OutputLines> request_output(std::span<const Line> lines,
                                                                    std::string_view consumer,
                                                                    std::span<const bool> initial = {}) = 0;

  std::unique_ptr<OutputLines> request_output(std::initializer_list<Line> lines, std::string_view consumer,
                                              std::initializer_list<bool> initial = {}) {
    return request_output(std::span<const Line>(lines.begin(), lines.size()), consumer,
                          std::span<const bool>(initial.begin(), initial.size()));
  }
};

/// Opens a chip: "sim" or "sim:NAME" (the simulated board, created on first use), or what
/// libgpiod's gpiod_chip_open_lookup accepts. An empty spec reads MPROC_GPIO, then "sim".
/// ChipNotFound when there is no such chip.
MPROC_API std::unique_ptr<GpioChip> open_gpio(std::string_view spec = {});

/// Whether this machine has any GPIO character device (/dev/gpiochip*).
MPROC_API bool have_gpio_chips();

}  // namespace mproc::hal
