// The untyped half of mproc::Pool (include/mproc/pool.hpp): jobs, the worker processes, their
// task rings and the result ring. pool.hpp encodes arguments and decodes results; everything
// here moves bytes.
//
// A job (one apply, one map, ...) is a list of chunks. A chunk is one task record: which code to
// run (a trampoline that decodes the arguments, calls the function on each item and encodes the
// results) and the encoded items. The parent pushes chunks into the workers' task rings; a
// worker runs the chunks of its own ring and steals from the others when its own is empty; the
// results come back through one result ring and are filed into the job by the parent's collector
// thread (docs/pool.md).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/export.hpp"
#include "mproc/process.hpp"

namespace mproc {

/// How a Pool hands tasks to its workers.
enum class Scheduling {
  work_stealing,  ///< one task ring per worker, chunks dealt round-robin; idle workers steal
  central_queue,  ///< one ring all workers take from (CPython's model): for comparison
};

/// Pool's constructor options (CPython's keywords; initargs has no C++ form: an initializer is a
/// function of no arguments, and fork workers see the globals the parent set before the pool).
struct PoolOptions {
  std::optional<int> processes = std::nullopt;             ///< nullopt: cpu_count()
  void (*initializer)() = nullptr;                         ///< run once in each worker before any task
  std::optional<int> maxtasksperchild = std::nullopt;      ///< a worker is replaced after this many chunks
  std::optional<StartMethod> start_method = std::nullopt;  ///< CPython's context=; nullopt: the default
  Scheduling scheduling = Scheduling::work_stealing;
};

/// What one worker slot has done (Pool::stats()).
struct WorkerStats {
  int pid = 0;                 ///< the worker now in the slot (0 while none runs)
  std::uint64_t tasks = 0;     ///< chunks run by the workers of this slot, stolen ones included
  std::uint64_t stolen = 0;    ///< chunks taken from another worker's ring
  std::uint64_t respawns = 0;  ///< workers that replaced an earlier one in this slot
};

namespace detail {

/// The worker-side entry of a chunk: decodes the items from `in`, calls the function on each and
/// encodes the results (a count, then the values) into `out`.
using TaskTrampoline = void (*)(const void* function, Decoder& in, Encoder& out);

/// Which code a chunk runs: the trampoline, and the function it calls (null for a stateless
/// callable the trampoline constructs itself).
struct TaskCode {
  TaskTrampoline trampoline = nullptr;
  const void* function = nullptr;
};

/// One job's state in the parent: its chunks, their results or errors. Shared by the Pool, the
/// collector thread and every AsyncResult / imap iterator of the job.
class MPROC_API PoolJob {
 public:
  struct Chunk {
    std::size_t first = 0;  ///< index of the chunk's first item in the job
    std::size_t count = 0;  ///< items in the chunk
    bool done = false;
    std::vector<std::byte> results;  ///< encoded results, when done without error
    std::exception_ptr error;        ///< when done with an error
  };

  /// Blocks until every chunk is done and the job's callbacks have run, or until the deadline;
  /// returns whether it is.
  bool wait(std::optional<std::chrono::steady_clock::time_point> deadline) const;
  [[nodiscard]] bool ready() const;
  /// Blocks until chunk i is done (imap), or the deadline. False on timeout; throws ValueError
  /// when the job was sealed with fewer chunks.
  bool wait_chunk(std::size_t i, std::optional<std::chrono::steady_clock::time_point> deadline) const;
  /// imap_unordered: the next chunk in the order chunks finished (cursor counts those taken).
  /// nullopt on timeout or when every chunk was taken.
  std::optional<std::size_t> wait_next_finished(
      std::size_t& cursor, std::optional<std::chrono::steady_clock::time_point> deadline) const;
  /// Chunk i. Call it only once the job is sealed (no chunk is added any more, so the reference
  /// stays valid) and after waiting for the chunk (wait, wait_chunk, wait_next_finished).
  [[nodiscard]] const Chunk& chunk(std::size_t i) const;
  /// Chunks once sealed (the job will have no more).
  [[nodiscard]] std::size_t chunk_count() const;
  /// The first chunk's error in item order, or null.
  [[nodiscard]] std::exception_ptr first_error() const;

  /// Runs in the collector thread when the last chunk is done (callback / error_callback).
  std::function<void(const PoolJob&)> on_complete;

 private:
  friend class PoolCore;
  friend struct PoolShared;
  bool complete_locked() const { return sealed_ && finished_.size() == chunks_.size(); }

  std::uint64_t id_ = 0;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Chunk> chunks_;          // grows only before seal()
  std::vector<std::size_t> finished_;  // chunk indices in the order they finished
  bool sealed_ = false;
  bool ready_ = false;  // complete, and its callbacks have run
};

struct PoolShared;

/// The parent's side of a pool: the shared segment, the workers, the jobs, the collector thread.
class MPROC_API PoolCore {
 public:
  /// Starts the workers. ValueError for a bad option (CPython's messages).
  explicit PoolCore(const PoolOptions& options);
  ~PoolCore();  // terminate()
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  /// A new job. ValueError("Pool not running") after close/terminate; BrokenPool when broken.
  std::shared_ptr<PoolJob> begin_job();
  /// Adds a chunk of `count` items whose encoded arguments (the count, then the items) are
  /// `args`. Arguments too large for a task record go through the spill area.
  void submit(PoolJob& job, const TaskCode& code, std::size_t count, std::span<const std::byte> args);
  /// No more chunks; the job completes when they are all done (at once if it has none).
  void seal(PoolJob& job);

  void close();
  void join();
  void terminate();

  [[nodiscard]] int processes() const noexcept;
  [[nodiscard]] std::vector<WorkerStats> stats() const;
  /// The largest encoded chunk a task record holds (larger ones are spilled).
  [[nodiscard]] std::size_t max_chunk_bytes() const noexcept;
  /// Bytes of the spill area held by chunks in flight.
  [[nodiscard]] std::uint64_t spill_bytes() const;
  /// The chunk byte size map() aims for before it cuts a chunk short of chunksize.
  [[nodiscard]] std::size_t target_chunk_bytes() const noexcept;

  /// Tests and benchmarks: put every chunk into this worker's ring (nullopt: the scheduling's
  /// own choice), so that the others have to steal.
  void set_ring_override(std::optional<std::uint32_t> ring);

 private:
  std::shared_ptr<PoolShared> s_;  // shared with the collector thread
};

}  // namespace detail
}  // namespace mproc
