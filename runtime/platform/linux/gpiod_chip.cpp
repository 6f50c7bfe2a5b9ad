// The libgpiod 1.6 backend of mproc::hal (the GPIO character device). Kept in this one file, so
// that a port to libgpiod 2.x touches nothing else. Lines are requested as one bulk, so a request
// either holds all its lines or none.
#include <dirent.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gpiod.h>

#include "hal/hal_backends.hpp"

namespace mproc::hal::detail {

namespace {

// A line that cannot be found (gpiod_chip_get_line: EINVAL past the last line; find: ENOENT).
[[noreturn]] void throw_missing_line(int errnum, const std::string& what) {
  if (errnum == ENOENT || errnum == EINVAL) throw LineNotFound(ENOENT, what);
  throw GpioError(errnum, what);
}

// A request the kernel refused: EBUSY is a held line; anything else is what it says.
[[noreturn]] void throw_request_error(int errnum, const std::string& what) {
  if (errnum == EBUSY) throw LineBusy(errnum, what);
  throw GpioError(errnum, what);
}

using ChipRef = std::shared_ptr<gpiod_chip>;  // the lines of a request live in their chip

class GpiodOutputLines final : public OutputLines {
 public:
  GpiodOutputLines(ChipRef chip, gpiod_line_bulk bulk, std::vector<bool> values)
      : chip_(std::move(chip)), bulk_(bulk), values_(std::move(values)) {}
  ~GpiodOutputLines() override { gpiod_line_release_bulk(&bulk_); }
  GpiodOutputLines(const GpiodOutputLines&) = delete;
  GpiodOutputLines& operator=(const GpiodOutputLines&) = delete;

  // The whole request at once: libgpiod 1.6 sets a line of a bulk request through the request's
  // one handle, and gpiod_line_set_value(line) would drive the request's other lines low.
  void set(std::size_t index, bool value) override {
    if (index >= values_.size()) throw IndexError("line index out of range");
    int all[GPIOD_LINE_BULK_MAX_LINES] = {};
    for (std::size_t i = 0; i < values_.size(); ++i) all[i] = (i == index ? value : values_[i]) ? 1 : 0;
    if (gpiod_line_set_value_bulk(&bulk_, all) != 0) throw GpioError(errno, "gpiod_line_set_value_bulk");
    values_[index] = value;
  }
  [[nodiscard]] bool get(std::size_t index) const override {
    if (index >= values_.size()) throw IndexError("line index out of range");
    return values_[index];
  }
  [[nodiscard]] std::size_t size() const noexcept override { return values_.size(); }

 private:
  ChipRef chip_;  // kept open while its lines are requested, whatever happens to the GpioChip
  gpiod_line_bulk bulk_;
  std::vector<bool> values_;
};

class GpiodChip final : public GpioChip {
 public:
  explicit GpiodChip(gpiod_chip* chip) : ref_(chip, gpiod_chip_close), chip_(chip) {}

  [[nodiscard]] std::string name() const override { return gpiod_chip_name(chip_); }
  [[nodiscard]] std::string label() const override { return gpiod_chip_label(chip_); }
  [[nodiscard]] unsigned num_lines() const override { return gpiod_chip_num_lines(chip_); }

  [[nodiscard]] unsigned find_line(std::string_view name) const override {
    const std::string n(name);
    gpiod_line* line = gpiod_chip_find_line(chip_, n.c_str());
    if (line == nullptr)
      throw_missing_line(errno == 0 ? ENOENT : errno, "no line named '" + n + "' on " + this->name());
    return gpiod_line_offset(line);
  }

  [[nodiscard]] std::optional<std::string> consumer(unsigned offset) const override {
    gpiod_line* line = get_line(offset);
    if (gpiod_line_update(line) != 0) throw GpioError(errno, "gpiod_line_update");
    const char* c = gpiod_line_consumer(line);
    if (c == nullptr) return std::nullopt;
    return std::string(c);
  }

  std::unique_ptr<OutputLines> request_output(std::span<const Line> lines, std::string_view consumer,
                                              std::span<const bool> initial) override {
    if (!initial.empty() && initial.size() != lines.size()) {
      throw ValueError("request_output: " + std::to_string(initial.size()) + " initial values for " +
                       std::to_string(lines.size()) + " lines");
    }
    if (lines.size() > GPIOD_LINE_BULK_MAX_LINES) throw ValueError("request_output: too many lines");
    gpiod_line_bulk bulk;
    gpiod_line_bulk_init(&bulk);
    std::vector<unsigned> offsets;
    for (const Line& l : lines) {
      const unsigned offset =
          std::holds_alternative<unsigned>(l) ? std::get<unsigned>(l) : find_line(std::get<std::string>(l));
      for (unsigned o : offsets) {
        if (o == offset)
          throw ValueError("request_output: line " + std::to_string(offset) + " is listed twice");
      }
      offsets.push_back(offset);
      gpiod_line_bulk_add(&bulk, get_line(offset));
    }
    std::vector<int> defaults(lines.size(), 0);
    std::vector<bool> values(lines.size(), false);
    for (std::size_t i = 0; i < initial.size(); ++i) {
      defaults[i] = initial[i] ? 1 : 0;
      values[i] = initial[i];
    }
    const std::string label(consumer.substr(0, 31));
    if (gpiod_line_request_bulk_output(&bulk, label.c_str(), defaults.data()) != 0) {
      throw_request_error(errno, "cannot request lines of " + name() + " for '" + label + "'");
    }
    return std::make_unique<GpiodOutputLines>(ref_, bulk, std::move(values));
  }

 private:
  gpiod_line* get_line(unsigned offset) const {
    gpiod_line* line = gpiod_chip_get_line(chip_, offset);
    if (line == nullptr) {
      throw_missing_line(errno == 0 ? ENOENT : errno, name() + " has no line " + std::to_string(offset));
    }
    return line;
  }

  ChipRef ref_;
  gpiod_chip* chip_;
};

}  // namespace

std::unique_ptr<GpioChip> open_gpiod_chip(std::string_view spec) {
  const std::string s(spec);
  errno = 0;
  gpiod_chip* chip = gpiod_chip_open_lookup(s.c_str());
  if (chip == nullptr) {
    const int e = errno == 0 ? ENOENT : errno;
    throw ChipNotFound(e, "cannot open the GPIO chip '" + s + "'");
  }
  return std::make_unique<GpiodChip>(chip);
}

bool gpio_chips_present() noexcept {
  DIR* dir = opendir("/dev");
  if (dir == nullptr) return false;
  bool found = false;
  while (dirent* e = readdir(dir)) {
    if (std::strncmp(e->d_name, "gpiochip", 8) == 0) {
      found = true;
      break;
    }
  }
  closedir(dir);
  return found;
}

}  // namespace mproc::hal::detail
