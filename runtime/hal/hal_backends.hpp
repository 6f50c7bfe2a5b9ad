// The GPIO backends behind mproc::hal::open_gpio (runtime-private).
#pragma once

#include <memory>
#include <string_view>

#include "mproc/hal/gpio.hpp"

namespace mproc::hal::detail {

/// The simulated board NAME, made on first use (runtime/hal/sim_chip.cpp).
std::unique_ptr<GpioChip> open_sim_chip(std::string_view board);

/// A chip of the GPIO character device through libgpiod 1.6's lookup: a name ("gpiochip0"), a
/// path, a number or a label (runtime/platform/linux/gpiod_chip.cpp).
std::unique_ptr<GpioChip> open_gpiod_chip(std::string_view spec);

/// Whether /dev holds any gpiochip device.
bool gpio_chips_present() noexcept;

}  // namespace mproc::hal::detail
