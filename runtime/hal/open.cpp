// mproc::hal::open_gpio: which backend a spec names.
#include <cstdlib>
#include <string>

#include "hal/hal_backends.hpp"

namespace mproc::hal {

std::unique_ptr<GpioChip> open_gpio(std::string_view spec) {
  std::string s(spec);
  if (s.empty()) {
    const char* env = std::getenv("MPROC_GPIO");
    s = env != nullptr && *env != '\0' ? env : "sim";
  }
  if (s == "sim") return detail::open_sim_chip("sim");
  if (s.starts_with("sim:")) return detail::open_sim_chip(std::string_view(s).substr(4));
  return detail::open_gpiod_chip(s);
}

bool have_gpio_chips() {
  return detail::gpio_chips_present();
}

}  // namespace mproc::hal
