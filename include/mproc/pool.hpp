// mproc::Pool: Python's multiprocessing.Pool for C++, on per-worker task rings with stealing.
//
//   int square(int x) { return x * x; }
//   int add(int a, int b) { return a + b; }
//
//   mproc::Pool pool;                                        // cpu_count() workers
//   std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3, 4, 5});   // {1, 4, 9, 16, 25}
//   for (int x : pool.imap(square, items)) {}                  // ordered, lazy; imap_unordered too
//   auto sums = pool.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}, {3, 4}});
//   int three = pool.apply(add, 1, 2);
//   mproc::AsyncResult<int> ar = pool.apply_async(add, 1, 2);  ar.get();  ar.get(1s);
//   pool.close();  pool.join();                               // or terminate(); the destructor terminates
//
// Functions: free functions and captureless lambdas (any stateless callable), under every start
// method: a task names its code, never a pointer to parent memory. Arguments and results go
// through mproc's codec (mproc/codec.hpp); a type it cannot encode is a compile-time error, and
// a function returning void gives std::monostate (Python's None).
//
// Semantics follow CPython's (docs/pool.md lists every rule and divergence). Where CPython hangs,
// mproc answers: a task that throws gives RemoteError (the original type's name, what() and
// where); a worker that dies fails the chunks it was running with WorkerDied and is replaced; an
// initializer that throws breaks the pool (BrokenPool) instead of respawning workers forever;
// terminate() fails the results still pending instead of leaving them unfinished forever.
//
// Thread safety: a Pool may be used from several threads of the process that created it. Only
// that process may use it (a Pool cannot be passed to a Process, as in CPython). Callbacks run in
// the pool's collector thread, as CPython runs them in its result-handler thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/detail/pool_core.hpp"
#include "mproc/errors.hpp"
#include "mproc/process.hpp"

namespace mproc {

namespace detail {

/// What a pool function may be: a function pointer, or a stateless callable the worker can
/// construct (a captureless lambda). Capturing lambdas carry state no worker has.
template <class F>
concept PoolFunction = (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) ||
                       (std::is_class_v<F> && std::is_empty_v<F> && std::is_default_constructible_v<F> &&
                        std::is_trivially_copyable_v<F>);

template <class F>
constexpr void require_pool_function() {
  static_assert(PoolFunction<F>,
                "a Pool function must be a free function or a captureless lambda (a stateless callable): "
                "workers run code named by the task, and a capture would be state only the caller has");
}

/// The value a call gives, with void as std::monostate (Python's None).
template <class R>
using pool_value_t = std::conditional_t<std::is_void_v<R>, std::monostate, std::remove_cvref_t<R>>;

template <class F, class A>
using map_result_t = pool_value_t<std::invoke_result_t<F&, A>>;

template <class F, class Tuple>
using star_result_t = pool_value_t<decltype(std::apply(std::declval<F&>(), std::declval<Tuple>()))>;

template <class F>
F pool_callable(const void* function) {
  if constexpr (std::is_pointer_v<F>) {
    return reinterpret_cast<F>(const_cast<void*>(function));
  } else {
    return F{};
  }
}

template <class F>
const void* pool_function_address(const F& f) {
  if constexpr (std::is_pointer_v<F>) {
    return reinterpret_cast<const void*>(f);
  } else {
    return nullptr;
  }
}

template <class R, class Call>
void put_result(Encoder& out, Call&& call) {
  if constexpr (std::is_same_v<R, std::monostate> && std::is_void_v<decltype(std::forward<Call>(call)())>) {
    std::forward<Call>(call)();
    out.put(std::monostate{});
  } else {
    out.put(static_cast<const R&>(std::forward<Call>(call)()));
  }
}

/// Worker side of map/imap: f(item) for each item of the chunk.
template <class F, class A>
void map_trampoline(const void* function, Decoder& in, Encoder& out) {
  F f = pool_callable<F>(function);
  const std::size_t n = in.get_size(0);
  out.put_size(n);
  for (std::size_t i = 0; i < n; ++i) {
    A a = in.get<A>();
    put_result<map_result_t<F, A>>(out, [&]() -> decltype(auto) { return std::invoke(f, std::move(a)); });
  }
  in.expect_end();
}

/// Worker side of starmap and apply: f(*item) for each item (a tuple or pair) of the chunk.
template <class F, class Tuple>
void star_trampoline(const void* function, Decoder& in, Encoder& out) {
  F f = pool_callable<F>(function);
  const std::size_t n = in.get_size(0);
  out.put_size(n);
  for (std::size_t i = 0; i < n; ++i) {
    Tuple t = in.get<Tuple>();
    put_result<star_result_t<F, Tuple>>(out, [&]() -> decltype(auto) { return std::apply(f, std::move(t)); });
  }
  in.expect_end();
}

/// A chunk can hold at most this many items (the decoder's bound for a count of elements).
inline constexpr std::size_t kMaxChunkItems = std::size_t{1} << 20;

/// Encodes items into chunks of at most `chunksize` items (and about target_chunk_bytes() bytes)
/// and submits them; seals the job, also when encoding throws.
template <class Stored, class It, class End>
void submit_chunks(PoolCore& core, PoolJob& job, const TaskCode& code, It first, End last,
                   std::size_t chunksize) {
  try {
    std::vector<std::byte> buf;
    Encoder enc(buf);
    std::size_t count = 0;
    const std::size_t limit = std::min(chunksize, kMaxChunkItems);
    const std::size_t target = core.target_chunk_bytes();
    auto start = [&] {
      buf.clear();
      enc.put_size(0);  // the count, filled in by flush
      count = 0;
    };
    auto flush = [&] {
      const auto n = static_cast<std::uint64_t>(count);
      std::memcpy(buf.data(), &n, sizeof n);
      if (!enc.fds().empty()) {
        throw ValueError(
            "a shared object (Queue, Lock, Value, Connection, ...) cannot be a Pool task's argument: "
            "create it before the Pool and use it from a global (fork), or use a Manager");
      }
      core.submit(job, code, count, buf);
      start();
    };
    start();
    for (; first != last; ++first) {
      enc.put(static_cast<const Stored&>(Stored(*first)));
      ++count;
      if (count >= limit || buf.size() >= target) flush();
    }
    if (count != 0) flush();
  } catch (...) {
    // The caller gets the exception and no AsyncResult: the chunks already submitted run to
    // their end, and no callback reports the half-submitted job as a result.
    job.on_complete = nullptr;
    core.seal(job);
    throw;
  }
  core.seal(job);
}

template <class T>
T decode_single(const PoolJob& job) {
  if (auto e = job.first_error()) std::rethrow_exception(e);
  const auto& c = job.chunk(0);
  Decoder in(c.results);
  if (in.get_size(0) != 1) throw DecodeError("a pool result holds the wrong number of values");
  T value = in.get<T>();
  in.expect_end();
  return value;
}

template <class T>
void decode_chunk_into(const PoolJob::Chunk& c, std::vector<T>& out) {
  Decoder in(c.results);
  const std::size_t n = in.get_size(0);
  if (n != c.count) throw DecodeError("a pool result holds the wrong number of values");
  for (std::size_t i = 0; i < n; ++i) out.push_back(in.get<T>());
  in.expect_end();
}

template <class V>
V decode_list(const PoolJob& job) {
  if (auto e = job.first_error()) std::rethrow_exception(e);
  V out;
  const std::size_t chunks = job.chunk_count();
  for (std::size_t i = 0; i < chunks; ++i) decode_chunk_into(job.chunk(i), out);
  return out;
}

inline std::chrono::steady_clock::time_point pool_deadline(std::chrono::nanoseconds timeout) {
  const auto now = std::chrono::steady_clock::now();
  if (timeout <= std::chrono::nanoseconds::zero()) return now;
  if (timeout > std::chrono::hours(876'000)) return std::chrono::steady_clock::time_point::max();
  return now + timeout;
}

template <class Rep, class Period>
std::chrono::steady_clock::time_point pool_deadline(std::chrono::duration<Rep, Period> timeout) {
  if (std::chrono::duration<double>(timeout) >= std::chrono::duration<double>(std::chrono::hours(876'000))) {
    return std::chrono::steady_clock::time_point::max();
  }
  return pool_deadline(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
}

/// Runs the user's callback or error_callback when a job completes (in the collector thread).
template <class T, class Callback, class ErrorCallback>
std::function<void(const PoolJob&)> completion(T (*decode)(const PoolJob&), Callback callback,
                                               ErrorCallback error_callback) {
  constexpr bool has_callback = !std::is_null_pointer_v<Callback>;
  constexpr bool has_error_callback = !std::is_null_pointer_v<ErrorCallback>;
  if constexpr (!has_callback && !has_error_callback) {
    return nullptr;
  } else {
    return [decode, callback = std::move(callback),
            error_callback = std::move(error_callback)](const PoolJob& job) {
      std::optional<T> value;
      try {
        value.emplace(decode(job));
      } catch (const Error& e) {
        if constexpr (has_error_callback) error_callback(e);
        return;
      }
      if constexpr (has_callback) callback(*value);
    };
  }
}

}  // namespace detail

/// The result of apply_async, map_async and starmap_async (CPython's ApplyResult / MapResult).
/// A cheap, copyable handle; copies share the result.
template <class T>
class AsyncResult {
 public:
  /// Waits for the result and returns it, or rethrows the task's error (RemoteError, WorkerDied,
  /// BrokenPool, ProcessError after terminate()).
  T get() const {
    job_->wait(std::nullopt);
    return decode_(*job_);
  }
  /// get() waiting at most timeout: TimeoutError (mproc's, CPython's multiprocessing.TimeoutError).
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) const {
    if (!job_->wait(detail::pool_deadline(timeout))) throw TimeoutError("the result is not ready yet");
    return decode_(*job_);
  }
  void wait() const { job_->wait(std::nullopt); }
  /// Waits at most timeout; returns ready() (CPython's wait returns None; use ready() alike).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) const {
    return job_->wait(detail::pool_deadline(timeout));
  }
  [[nodiscard]] bool ready() const { return job_->ready(); }
  /// Whether the call completed without an error. ValueError while not ready (as CPython).
  [[nodiscard]] bool successful() const {
    if (!job_->ready()) throw ValueError("<mproc.pool.AsyncResult> not ready");
    return job_->first_error() == nullptr;
  }

 private:
  friend class Pool;
  AsyncResult(std::shared_ptr<detail::PoolJob> job, T (*decode)(const detail::PoolJob&))
      : job_(std::move(job)), decode_(decode) {}
  std::shared_ptr<detail::PoolJob> job_;
  T (*decode_)(const detail::PoolJob&);
};

/// What imap and imap_unordered return: an input range over the results, produced as they
/// arrive. next() is CPython's IMapIterator.next: nullopt at the end, TimeoutError on timeout.
/// An item whose chunk failed throws that chunk's error at its position (ordered) or when its
/// chunk comes up (unordered); iteration may go on after it with the following chunks.
template <class R>
class ImapResult {
  struct State {
    std::shared_ptr<detail::PoolJob> job;
    bool ordered = true;
    std::size_t next_chunk = 0;  // ordered: the next chunk to take; unordered: chunks taken
    std::vector<R> items;        // the current chunk's values
    std::size_t position = 0;    // the next of items to hand out
  };

 public:
  /// The next result: nullopt when there are no more.
  std::optional<R> next() { return advance(std::nullopt); }
  template <class Rep, class Period>
  std::optional<R> next(std::chrono::duration<Rep, Period> timeout) {
    return advance(detail::pool_deadline(timeout));
  }

  class iterator {
   public:
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    R& operator*() const { return *current_; }
    R* operator->() const { return &*current_; }
    iterator& operator++() {
      current_ = owner_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return !it.current_; }

   private:
    friend class ImapResult;
    explicit iterator(ImapResult* owner) : owner_(owner), current_(owner->next()) {}
    ImapResult* owner_ = nullptr;
    mutable std::optional<R> current_;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  friend class Pool;
  ImapResult(std::shared_ptr<detail::PoolJob> job, bool ordered) : state_(std::make_shared<State>()) {
    state_->job = std::move(job);
    state_->ordered = ordered;
  }

  std::optional<R> advance(std::optional<std::chrono::steady_clock::time_point> deadline) {
    State& s = *state_;
    while (s.position == s.items.size()) {
      std::size_t chunk = 0;
      if (s.ordered) {
        if (s.next_chunk >= s.job->chunk_count()) return std::nullopt;  // sealed before iteration
        if (!s.job->wait_chunk(s.next_chunk, deadline))
          throw TimeoutError("the next result is not ready yet");
        chunk = s.next_chunk++;
      } else {
        auto c = s.job->wait_next_finished(s.next_chunk, deadline);
        if (!c) {
          if (s.next_chunk >= s.job->chunk_count()) return std::nullopt;
          throw TimeoutError("the next result is not ready yet");
        }
        chunk = *c;
      }
      s.items.clear();
      s.position = 0;
      const auto& c = s.job->chunk(chunk);
      if (c.error) std::rethrow_exception(c.error);
      std::vector<R> items;
      detail::decode_chunk_into(c, items);  // all or nothing: a corrupt chunk hands out none
      s.items = std::move(items);
    }
    return std::move(s.items[s.position++]);
  }

  std::shared_ptr<State> state_;
};

class Pool {
 public:
  /// cpu_count() workers.
  Pool() : Pool(PoolOptions{}) {}
  /// `processes` workers; ValueError("Number of processes must be at least 1") below 1.
  explicit Pool(int processes) : Pool(PoolOptions{.processes = processes}) {}
  explicit Pool(const PoolOptions& options) : core_(std::make_unique<detail::PoolCore>(options)) {}
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&&) noexcept = default;
  /// Terminates the pool, as leaving CPython's `with Pool() as p:` block does.
  ~Pool() = default;

  // --- apply ---

  /// f(args...) in a worker, waiting for the result.
  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>&, detail::stored_t<Args>...>
  auto apply(F f, Args&&... args) {
    return apply_async(f, std::forward<Args>(args)...).get();
  }

  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>&, detail::stored_t<Args>...>
  auto apply_async(F f, Args&&... args) {
    using Tuple = std::tuple<detail::stored_t<Args>...>;
    return apply_tuple(f, Tuple(std::forward<Args>(args)...), nullptr, nullptr);
  }

  /// CPython's apply_async(func, args, callback=, error_callback=): callback(const R&) and
  /// error_callback(const mproc::Error&) run in the pool's collector thread.
  template <class F, class... A, class Callback, class ErrorCallback = std::nullptr_t>
    requires std::is_invocable_v<F&, A...>
  auto apply_async(F f, std::tuple<A...> args, Callback callback, ErrorCallback error_callback = nullptr) {
    return apply_tuple(f, std::move(args), std::move(callback), std::move(error_callback));
  }

  // --- map, starmap ---

  /// [f(x) for x in items], in order. chunksize: nullopt for CPython's default,
  /// ceil(len / (4 * processes)); below 1: ValueError. The first failing chunk's error is thrown.
  template <class F, class Range>
    requires std::ranges::forward_range<const Range&>
  auto map(F f, const Range& items, std::optional<std::ptrdiff_t> chunksize = std::nullopt) {
    return map_async(f, items, chunksize).get();
  }
  template <class F, class T>
  auto map(F f, std::initializer_list<T> items, std::optional<std::ptrdiff_t> chunksize = std::nullopt) {
    return map_async(f, items, chunksize).get();
  }

  template <class F, class Range, class Callback = std::nullptr_t, class ErrorCallback = std::nullptr_t>
    requires std::ranges::forward_range<const Range&>
  auto map_async(F f, const Range& items, std::optional<std::ptrdiff_t> chunksize = std::nullopt,
                 Callback callback = nullptr, ErrorCallback error_callback = nullptr) {
    using Item = std::ranges::range_value_t<const Range&>;
    using R = detail::map_result_t<F, Item>;
    return list_async<F, Item, std::vector<R>>(&detail::map_trampoline<F, Item>, f, items, chunksize,
                                               std::move(callback), std::move(error_callback));
  }

  /// [f(*args) for args in items]: items are tuples or pairs.
  template <class F, class Range>
    requires std::ranges::forward_range<const Range&>
  auto starmap(F f, const Range& items, std::optional<std::ptrdiff_t> chunksize = std::nullopt) {
    return starmap_async(f, items, chunksize).get();
  }

  template <class F, class Range, class Callback = std::nullptr_t, class ErrorCallback = std::nullptr_t>
    requires std::ranges::forward_range<const Range&>
  auto starmap_async(F f, const Range& items, std::optional<std::ptrdiff_t> chunksize = std::nullopt,
                     Callback callback = nullptr, ErrorCallback error_callback = nullptr) {
    using Item = std::ranges::range_value_t<const Range&>;
    using R = detail::star_result_t<F, Item>;
    return list_async<F, Item, std::vector<R>>(&detail::star_trampoline<F, Item>, f, items, chunksize,
                                               std::move(callback), std::move(error_callback));
  }

  // --- imap ---

  /// Results in order, as they arrive. chunksize defaults to 1 (CPython's); below 1: ValueError.
  /// The items are encoded and submitted at once (CPython's task thread also consumes the input
  /// eagerly); only the output is lazy.
  template <class F, class Range>
    requires std::ranges::forward_range<const Range&>
  auto imap(F f, const Range& items, std::ptrdiff_t chunksize = 1) {
    return imap_impl<F>(f, items, chunksize, true);
  }
  /// Results in the order they finish.
  template <class F, class Range>
    requires std::ranges::forward_range<const Range&>
  auto imap_unordered(F f, const Range& items, std::ptrdiff_t chunksize = 1) {
    return imap_impl<F>(f, items, chunksize, false);
  }

  // --- lifetime ---

  /// No more tasks; the workers exit when the submitted ones are done. Idempotent.
  void close() { core_->close(); }
  /// Waits for the workers after close() or terminate(); ValueError("Pool is still running")
  /// before either.
  void join() { core_->join(); }
  /// Stops the workers at once (SIGTERM, then SIGKILL after a second); results still pending fail
  /// with ProcessError.
  void terminate() { core_->terminate(); }

  [[nodiscard]] int processes() const noexcept { return core_->processes(); }
  /// Per worker slot: its pid, the chunks it ran, how many it stole, how often it was replaced.
  [[nodiscard]] std::vector<WorkerStats> stats() const { return core_->stats(); }

  /// Bytes of the pool's spill area held by chunks in flight whose arguments were too large for
  /// a ring record (0 once they are done).
  [[nodiscard]] std::uint64_t spill_bytes() const { return core_->spill_bytes(); }

  /// Tests and benchmarks: deal every chunk to one worker's ring (nullopt: back to round-robin),
  /// so that the others must steal to help.
  void set_ring_override(std::optional<std::uint32_t> ring) { core_->set_ring_override(ring); }

 private:
  static std::size_t checked_chunksize(std::ptrdiff_t chunksize) {
    if (chunksize < 1) throw ValueError("Chunksize must be 1+, not " + std::to_string(chunksize));
    return static_cast<std::size_t>(chunksize);
  }

  std::size_t default_chunksize(std::size_t n) const {
    const std::size_t per = 4 * static_cast<std::size_t>(core_->processes());
    return n / per + (n % per != 0 ? 1 : 0);
  }

  template <class F, class Tuple, class Callback, class ErrorCallback>
  auto apply_tuple(F f, Tuple args, Callback callback, ErrorCallback error_callback) {
    detail::require_pool_function<F>();
    static_assert(require_encodable<Tuple>, "every Pool argument must be serializable (see mproc/codec.hpp)");
    using R = detail::star_result_t<F, Tuple>;
    static_assert(require_encodable<R>,
                  "a Pool function's result must be serializable (see mproc/codec.hpp)");
    auto job = core_->begin_job();
    job->on_complete =
        detail::completion<R>(&detail::decode_single<R>, std::move(callback), std::move(error_callback));
    const detail::TaskCode code{&detail::star_trampoline<F, Tuple>, detail::pool_function_address(f)};
    const Tuple* one = &args;
    detail::submit_chunks<Tuple>(*core_, *job, code, one, one + 1, 1);
    return AsyncResult<R>(std::move(job), &detail::decode_single<R>);
  }

  template <class F, class Item, class V, class Range, class Callback, class ErrorCallback>
  AsyncResult<V> list_async(detail::TaskTrampoline trampoline, F f, const Range& items,
                            std::optional<std::ptrdiff_t> chunksize, Callback callback,
                            ErrorCallback error_callback) {
    detail::require_pool_function<F>();
    static_assert(require_encodable<Item>, "every Pool argument must be serializable (see mproc/codec.hpp)");
    static_assert(require_encodable<typename V::value_type>,
                  "a Pool function's result must be serializable (see mproc/codec.hpp)");
    const auto n = static_cast<std::size_t>(std::ranges::distance(items));
    const std::size_t size = chunksize ? checked_chunksize(*chunksize) : default_chunksize(n);
    auto job = core_->begin_job();
    job->on_complete =
        detail::completion<V>(&detail::decode_list<V>, std::move(callback), std::move(error_callback));
    const detail::TaskCode code{trampoline, detail::pool_function_address(f)};
    detail::submit_chunks<Item>(*core_, *job, code, std::ranges::begin(items), std::ranges::end(items),
                                std::max<std::size_t>(size, 1));
    return AsyncResult<V>(std::move(job), &detail::decode_list<V>);
  }

  template <class F, class Range>
  auto imap_impl(F f, const Range& items, std::ptrdiff_t chunksize, bool ordered) {
    detail::require_pool_function<F>();
    using Item = std::ranges::range_value_t<const Range&>;
    using R = detail::map_result_t<F, Item>;
    static_assert(require_encodable<Item>, "every Pool argument must be serializable (see mproc/codec.hpp)");
    static_assert(require_encodable<R>,
                  "a Pool function's result must be serializable (see mproc/codec.hpp)");
    const std::size_t size = checked_chunksize(chunksize);
    auto job = core_->begin_job();
    const detail::TaskCode code{&detail::map_trampoline<F, Item>, detail::pool_function_address(f)};
    detail::submit_chunks<Item>(*core_, *job, code, std::ranges::begin(items), std::ranges::end(items), size);
    return ImapResult<R>(std::move(job), ordered);
  }

  std::unique_ptr<detail::PoolCore> core_;
};

}  // namespace mproc
