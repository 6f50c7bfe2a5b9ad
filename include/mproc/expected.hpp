// mproc::Expected<T>: a value or a std::error_code, the error model of mproc's low-level and
// platform calls (setup and OS paths). C++20 has no std::expected; this keeps its spelling
// (has_value, value, error, operator*, operator->) so moving to C++23 is an alias swap.
#pragma once

#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace mproc {

/// Tag that carries an error into an Expected, as std::unexpected does.
struct Unexpected {
  std::error_code code;
};

inline Unexpected unexpected(std::error_code code) noexcept {
  return Unexpected{code};
}
inline Unexpected unexpected_errno(int errnum) noexcept {
  return Unexpected{std::error_code(errnum, std::system_category())};
}

template <class T>
class [[nodiscard]] Expected {
 public:
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  Expected(U&& value)
      : state_(std::in_place_index<0>, std::forward<U>(value)) {}  // NOLINT: implicit like std::expected
  Expected(Unexpected error) : state_(std::in_place_index<1>, error.code) {}  // NOLINT

  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  /// The value; calling it on an error is a programmer error and throws std::system_error.
  T& value() & { return check(), std::get<0>(state_); }
  const T& value() const& { return check(), std::get<0>(state_); }
  T&& value() && { return check(), std::move(std::get<0>(state_)); }
  T& operator*() & noexcept { return *std::get_if<0>(&state_); }
  T&& operator*() && noexcept { return std::move(*std::get_if<0>(&state_)); }
  T* operator->() noexcept { return std::get_if<0>(&state_); }
  const T* operator->() const noexcept { return std::get_if<0>(&state_); }

  [[nodiscard]] std::error_code error() const noexcept {
    const auto* e = std::get_if<1>(&state_);
    return e ? *e : std::error_code();
  }

 private:
  void check() const {
    if (!has_value()) throw std::system_error(std::get<1>(state_));
  }
  std::variant<T, std::error_code> state_;
};

template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  Expected(Unexpected error) : code_(error.code) {}  // NOLINT: implicit like std::expected
  [[nodiscard]] bool has_value() const noexcept { return !code_; }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const {
    if (code_) throw std::system_error(code_);
  }
  [[nodiscard]] std::error_code error() const noexcept { return code_; }

 private:
  std::error_code code_;
};

}  // namespace mproc
