// Python's multiprocessing.sharedctypes for C++: Value, RawValue, Array, RawArray.
//
//   mproc::Value<int> count(0);                 // a shared int with its own RLock (CPython's default)
//   { std::lock_guard g(count.get_lock()); count.value() += 1; }
//   int seen = count.value();  count.value() = 5;  count.fetch_add(1);   // fetch_add: lock-free
//   mproc::Array<double> xs({1.0, 2.0});  xs[1] = 3.5;  std::span<double> s = xs;
//
// Each is a cheap, copyable handle: copies, in this process or passed to a child as a Process
// argument under any start method, refer to the same shared memory, which lives until the last
// handle in any process is gone. Moving a handle copies it (a moved-from handle stays usable).
// value() and operator[] return references INTO shared memory: reads and writes through them
// are plain memory accesses, so concurrent writers need the lock (or fetch_add and friends for
// integral types), exactly as in Python, where `count.value += 1` without the lock loses
// updates.
//
// T must be trivially copyable and standard layout (no pointers: mappings differ between
// processes), like the ctypes types CPython accepts.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <new>
#include <span>
#include <string>
#include <type_traits>

#include "mproc/synchronize.hpp"

namespace mproc {

namespace detail {

template <class T>
concept SharedValueType = std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T> &&
                          !std::is_pointer_v<T> && alignof(T) <= kCacheLine;

/// Value's block: its lock, then the value.
template <class T>
struct ValueState {
  RLockState lock;
  T value;
};

/// Array's block: its lock and length, then the elements.
template <class T>
struct ArrayState {
  RLockState lock;
  std::uint64_t length;
  T first;  // the elements start here; the block holds length of them

  T* data() noexcept { return &first; }
};

/// The type a RawArray's block is tagged with (T[] has no size for abi_hash).
template <class T>
struct RawArrayOf {
  T first;
};

template <class State>
State* construct_state(SharedBlock& block) {
  return new (block.payload()) State{};
}

/// The most elements an array of T may have (its bytes must not overflow std::size_t).
template <class T>
constexpr std::size_t max_array_length() {
  return (std::numeric_limits<std::size_t>::max() / 2 - kCacheLine * 2) / sizeof(T);
}

template <class T>
std::size_t array_payload_size(std::size_t n) {
  if (n > max_array_length<T>()) throw ValueError("array length " + std::to_string(n) + " is too large");
  return offsetof(ArrayState<T>, first) + std::max<std::size_t>(n, 1) * sizeof(T);
}

}  // namespace detail

/// A T in shared memory with a lock beside it (CPython's multiprocessing.Value).
template <detail::SharedValueType T>
class Value : public detail::LockableByAcquire<Value<T>> {
 public:
  // A handle (see the file comment): a move copies.
  Value(const Value&) = default;
  Value& operator=(const Value&) = default;

  Value() : Value(T{}) {}
  explicit Value(const T& initial)
      : block_(detail::SharedBlock::create(sizeof(detail::ValueState<T>), abi_hash<detail::ValueState<T>>(),
                                           "Value")),
        state_(detail::construct_state<detail::ValueState<T>>(block_)),
        lock_(block_, &state_->lock) {
    state_->value = initial;
  }

  /// The shared value itself. @concurrent any, but writes race without get_lock() or atomics.
  T& value() const noexcept { return state_->value; }

  /// The lock that guards the value (an RLock, CPython's default). A handle: copy it freely.
  [[nodiscard]] RLock& get_lock() const noexcept { return lock_; }

  /// Through the value's lock (Python: `with count:` / count.acquire()); Lockable as well.
  bool acquire(bool block = true) { return lock_.acquire(block); }
  void release() { lock_.release(); }

  /// Atomic read-modify-writes, lock-free (they do not take the lock, so they do not wait for a
  /// holder of it either). Seq_cst, like std::atomic's defaults.
  T fetch_add(T delta) const noexcept
    requires std::is_integral_v<T>
  {
    // [sync:value.rmw] seq_cst: totally ordered with every other atomic access to the value.
    return std::atomic_ref<T>(state_->value).fetch_add(delta, std::memory_order_seq_cst);
  }
  T fetch_sub(T delta) const noexcept
    requires std::is_integral_v<T>
  {
    // [sync:value.rmw] seq_cst: as fetch_add.
    return std::atomic_ref<T>(state_->value).fetch_sub(delta, std::memory_order_seq_cst);
  }
  /// An atomic load and store of the whole value (any T that std::atomic_ref accepts).
  T load() const noexcept {
    // [sync:value.rmw] seq_cst: pairs with store() and the read-modify-writes in any process.
    return std::atomic_ref<T>(state_->value).load(std::memory_order_seq_cst);
  }
  void store(const T& v) const noexcept {
    // [sync:value.rmw] seq_cst: pairs with load() and the read-modify-writes in any process.
    std::atomic_ref<T>(state_->value).store(v, std::memory_order_seq_cst);
  }

 private:
  friend struct codec<Value<T>>;
  Value(detail::SharedBlock block, detail::ValueState<T>* state) noexcept
      : block_(std::move(block)), state_(state), lock_(block_, &state_->lock) {}

  detail::SharedBlock block_;
  detail::ValueState<T>* state_;
  mutable RLock lock_;
};

/// A T in shared memory without a lock (CPython's RawValue).
template <detail::SharedValueType T>
class RawValue {
 public:
  // A handle (see the file comment): a move copies.
  RawValue(const RawValue&) = default;
  RawValue& operator=(const RawValue&) = default;

  RawValue() : RawValue(T{}) {}
  explicit RawValue(const T& initial)
      : block_(detail::SharedBlock::create(sizeof(T), abi_hash<T>(), "RawValue")),
        value_(new(block_.payload()) T(initial)) {}

  T& value() const noexcept { return *value_; }

 private:
  friend struct codec<RawValue<T>>;
  RawValue(detail::SharedBlock block, T* value) noexcept : block_(std::move(block)), value_(value) {}

  detail::SharedBlock block_;
  T* value_;
};

/// A fixed-length array of T in shared memory with a lock (CPython's multiprocessing.Array).
template <detail::SharedValueType T>
class Array : public detail::LockableByAcquire<Array<T>> {
 public:
  // A handle (see the file comment): a move copies.
  Array(const Array&) = default;
  Array& operator=(const Array&) = default;

  /// n zero-initialised elements (CPython's Array('i', 10)).
  explicit Array(std::size_t n) : Array(n, nullptr) {}
  /// A copy of the given elements (CPython's Array('d', [1.0, 2.0])).
  Array(std::initializer_list<T> values) : Array(std::span<const T>(values.begin(), values.size())) {}
  explicit Array(std::span<const T> values) : Array(values.size(), values.data()) {}

  [[nodiscard]] std::size_t size() const noexcept { return length_; }
  T& operator[](std::size_t i) const noexcept { return state_->data()[i]; }
  /// Bounds-checked: ValueError past the end (Python raises IndexError).
  T& at(std::size_t i) const {
    if (i >= length_) throw ValueError("array index out of range");
    return state_->data()[i];
  }
  // data(), size(), begin() and end() make it a contiguous range: std::span<T> s = array; works.
  T* data() const noexcept { return state_->data(); }
  T* begin() const noexcept { return data(); }
  T* end() const noexcept { return data() + length_; }
  [[nodiscard]] std::span<T> span() const noexcept { return {data(), length_}; }

  [[nodiscard]] RLock& get_lock() const noexcept { return lock_; }
  bool acquire(bool block = true) { return lock_.acquire(block); }
  void release() { lock_.release(); }

 private:
  friend struct codec<Array<T>>;
  Array(std::size_t n, const T* initial)
      : block_(detail::SharedBlock::create(detail::array_payload_size<T>(n),
                                           abi_hash<detail::ArrayState<T>>(), "Array")),
        state_(detail::construct_state<detail::ArrayState<T>>(block_)),
        length_(n),
        lock_(block_, &state_->lock) {
    state_->length = n;
    if (initial != nullptr) std::copy(initial, initial + n, state_->data());
  }
  Array(detail::SharedBlock block, detail::ArrayState<T>* state, std::size_t n) noexcept
      : block_(std::move(block)), state_(state), length_(n), lock_(block_, &state_->lock) {}

  detail::SharedBlock block_;
  detail::ArrayState<T>* state_;
  std::size_t length_;  // a private copy: the length in shared memory is not trusted after creation
  mutable RLock lock_;
};

/// A fixed-length array of T in shared memory without a lock (CPython's RawArray).
template <detail::SharedValueType T>
class RawArray {
 public:
  // A handle (see the file comment): a move copies.
  RawArray(const RawArray&) = default;
  RawArray& operator=(const RawArray&) = default;

  explicit RawArray(std::size_t n) : RawArray(n, nullptr) {}
  RawArray(std::initializer_list<T> values) : RawArray(values.size(), values.begin()) {}
  explicit RawArray(std::span<const T> values) : RawArray(values.size(), values.data()) {}

  [[nodiscard]] std::size_t size() const noexcept { return length_; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* data() const noexcept { return data_; }
  T* begin() const noexcept { return data_; }
  T* end() const noexcept { return data_ + length_; }
  [[nodiscard]] std::span<T> span() const noexcept { return {data_, length_}; }

 private:
  friend struct codec<RawArray<T>>;
  RawArray(std::size_t n, const T* initial)
      : block_(detail::SharedBlock::create(
            detail::array_payload_size<T>(n) - offsetof(detail::ArrayState<T>, first),
            abi_hash<detail::RawArrayOf<T>>(), "RawArray")),
        data_(reinterpret_cast<T*>(block_.payload())),
        length_(n) {
    if (initial != nullptr) std::copy(initial, initial + n, data_);
  }
  RawArray(detail::SharedBlock block, std::size_t n) noexcept
      : block_(std::move(block)), data_(reinterpret_cast<T*>(block_.payload())), length_(n) {}

  detail::SharedBlock block_;
  T* data_;
  std::size_t length_;
};

// Codecs: the handles travel to spawn and forkserver children as their block's descriptor.

template <detail::SharedValueType T>
struct codec<Value<T>> {
  static void encode(Encoder& out, const Value<T>& v) { detail::encode_block_ref(out, v.block_, 0); }
  static Value<T> decode(Decoder& in) {
    auto [block, offset] =
        detail::decode_block_ref(in, sizeof(detail::ValueState<T>), alignof(detail::ValueState<T>));
    if (block.type_hash() != abi_hash<detail::ValueState<T>>() || offset != 0) {
      throw DecodeError("a received Value holds another type");
    }
    auto* state = reinterpret_cast<detail::ValueState<T>*>(block.payload());
    return Value<T>(std::move(block), state);
  }
};

template <detail::SharedValueType T>
struct codec<RawValue<T>> {
  static void encode(Encoder& out, const RawValue<T>& v) { detail::encode_block_ref(out, v.block_, 0); }
  static RawValue<T> decode(Decoder& in) {
    auto [block, offset] = detail::decode_block_ref(in, sizeof(T), alignof(T));
    if (block.type_hash() != abi_hash<T>() || offset != 0)
      throw DecodeError("a received RawValue holds another type");
    auto* value = reinterpret_cast<T*>(block.payload());
    return RawValue<T>(std::move(block), value);
  }
};

template <detail::SharedValueType T>
struct codec<Array<T>> {
  static void encode(Encoder& out, const Array<T>& a) {
    detail::encode_block_ref(out, a.block_, 0);
    out.put(static_cast<std::uint64_t>(a.length_));
  }
  static Array<T> decode(Decoder& in) {
    auto [block, offset] =
        detail::decode_block_ref(in, offsetof(detail::ArrayState<T>, first), alignof(detail::ArrayState<T>));
    const auto n = in.get<std::uint64_t>();
    if (block.type_hash() != abi_hash<detail::ArrayState<T>>() || offset != 0 ||
        n > (block.payload_size() - offsetof(detail::ArrayState<T>, first)) / sizeof(T)) {
      throw DecodeError("a received Array does not match its block");
    }
    auto* state = reinterpret_cast<detail::ArrayState<T>*>(block.payload());
    return Array<T>(std::move(block), state, static_cast<std::size_t>(n));
  }
};

template <detail::SharedValueType T>
struct codec<RawArray<T>> {
  static void encode(Encoder& out, const RawArray<T>& a) {
    detail::encode_block_ref(out, a.block_, 0);
    out.put(static_cast<std::uint64_t>(a.length_));
  }
  static RawArray<T> decode(Decoder& in) {
    auto [block, offset] = detail::decode_block_ref(in, 0, alignof(T));
    const auto n = in.get<std::uint64_t>();
    if (block.type_hash() != abi_hash<detail::RawArrayOf<T>>() || offset != 0 ||
        n > block.payload_size() / sizeof(T)) {
      throw DecodeError("a received RawArray does not match its block");
    }
    return RawArray<T>(std::move(block), static_cast<std::size_t>(n));
  }
};

}  // namespace mproc
