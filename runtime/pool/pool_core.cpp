// detail::PoolCore: the parent's side of a Pool. It owns the shared block, the worker processes,
// the table of jobs and the collector thread, which files results into jobs, runs callbacks,
// feeds the backlog of chunks that did not fit a full ring, and watches the workers: a dead
// worker's claimed chunks fail with WorkerDied and the worker is replaced (docs/pool.md).
#include "mproc/detail/pool_core.hpp"

#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <thread>
#include <unordered_map>

#include "platform/linux/fd.hpp"
#include "platform/linux/process.hpp"
#include "platform/linux/symbols.hpp"
#include "pool/pool_shared.hpp"
#include "process/state.hpp"

namespace mproc::detail {

// --- PoolJob ---------------------------------------------------------------------------------

namespace {
template <class Pred>
bool wait_on(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
             std::optional<std::chrono::steady_clock::time_point> deadline, Pred pred) {
  if (!deadline) {
    cv.wait(lock, pred);
    return true;
  }
  return cv.wait_until(lock, *deadline, pred);
}
}  // namespace

bool PoolJob::wait(std::optional<std::chrono::steady_clock::time_point> deadline) const {
  std::unique_lock lock(mutex_);
  return wait_on(changed_, lock, deadline, [&] { return ready_; });
}

bool PoolJob::ready() const {
  std::lock_guard lock(mutex_);
  return ready_;
}

bool PoolJob::wait_chunk(std::size_t i, std::optional<std::chrono::steady_clock::time_point> deadline) const {
  std::unique_lock lock(mutex_);
  const bool ok = wait_on(changed_, lock, deadline, [&] {
    return (i < chunks_.size() && chunks_[i].done) || (sealed_ && i >= chunks_.size());
  });
  if (ok && i >= chunks_.size()) throw ValueError("the job has no chunk " + std::to_string(i));
  return ok;
}

std::optional<std::size_t> PoolJob::wait_next_finished(
    std::size_t& cursor, std::optional<std::chrono::steady_clock::time_point> deadline) const {
  std::unique_lock lock(mutex_);
  const bool ok = wait_on(changed_, lock, deadline,
                          [&] { return cursor < finished_.size() || (sealed_ && cursor >= chunks_.size()); });
  if (!ok || cursor >= finished_.size()) return std::nullopt;
  return finished_[cursor++];
}

const PoolJob::Chunk& PoolJob::chunk(std::size_t i) const {
  std::lock_guard lock(mutex_);
  return chunks_.at(i);
}

std::size_t PoolJob::chunk_count() const {
  std::lock_guard lock(mutex_);
  return chunks_.size();
}

std::exception_ptr PoolJob::first_error() const {
  std::lock_guard lock(mutex_);
  for (const Chunk& c : chunks_) {
    if (c.done && c.error) return c.error;
  }
  return nullptr;
}

// --- The shared state ------------------------------------------------------------------------

namespace {

// Ring geometry. A task ring holds 8 MiB of 256-byte slots: a chunk record may take up to
// MpmcRing::kMaxRecordSlots slots (about 1 MiB), and apply_async bursts of tens of thousands of
// small tasks fit without the backlog. The result ring has the same geometry, shared by all.
constexpr std::uint32_t kTaskSlots = 1U << 15;
constexpr std::uint32_t kTaskSlotSize = 256;
constexpr std::uint32_t kResultSlots = 1U << 15;
constexpr std::uint32_t kResultSlotSize = 256;
// map() cuts a chunk at chunksize items or at this many encoded bytes, whichever comes first.
constexpr std::size_t kTargetChunkBytes = 256 * 1024;
// How often the collector looks at the workers' sentinels while results keep it busy.
constexpr auto kLivenessPeriod = std::chrono::milliseconds(10);

enum class PoolState { run, close, terminate };

struct Backlogged {
  std::uint32_t ring;
  std::vector<std::byte> record;
};

}  // namespace

struct PoolShared {
  PoolOptions options;
  int workers = 0;
  StartMethod method = StartMethod::fork;
  CodeNaming naming = CodeNaming::address;
  SharedBlock block;
  PoolView view;
  std::vector<std::byte> initializer;

  std::mutex mutex;              // everything below
  std::condition_variable idle;  // jobs became empty
  PoolState state = PoolState::run;
  bool joined = false;
  std::exception_ptr broken;
  std::unordered_map<std::uint64_t, std::shared_ptr<PoolJob>> jobs;
  std::uint64_t next_job = 1;
  std::deque<Backlogged> backlog;
  std::vector<Process> procs;  // by worker slot
  std::vector<std::uint64_t> respawns;
  int next_worker_number = 1;
  std::optional<std::uint32_t> ring_override;
  std::uint32_t next_ring = 0;  // round-robin cursor
  std::map<std::pair<const void*, const void*>, std::vector<std::byte>> code_cache;

  std::atomic<bool> wake{false};
  std::atomic<bool> collector_stop{false};
  std::thread collector;

  // --- workers ---

  Process make_worker(std::uint32_t index) {
    PoolWorkerArgs args;
    args.block = block;
    args.index = index;
    args.maxtasks = options.maxtasksperchild ? static_cast<std::uint32_t>(*options.maxtasksperchild) : 0;
    args.naming = naming;
    args.initializer = initializer;
    const char* prefix = method == StartMethod::fork    ? "ForkPoolWorker-"
                         : method == StartMethod::spawn ? "SpawnPoolWorker-"
                                                        : "ForkserverPoolWorker-";
    ProcessOptions o;
    o.name = prefix + std::to_string(next_worker_number++);
    o.daemon = true;
    Process p = get_context(method).Process(o, &pool_worker_main, std::move(args));
    WorkerSlot& slot = view.slots[index];
    // relaxed (both): the worker has not started; the fork or the boot payload publishes them.
    slot.state.store(kWorkerStarting, std::memory_order_relaxed);
    slot.pid.store(0, std::memory_order_relaxed);
    p.start();
    return p;
  }

  // --- code references ---

  // The bytes naming a task's code. Entries are never changed or erased once made (a failed one
  // is erased before anyone sees it), so the reference stays valid without the lock.
  const std::vector<std::byte>& encode_code(const void* trampoline, const void* function) {
    std::lock_guard lock(mutex);
    auto [it, inserted] = code_cache.try_emplace({trampoline, function});
    if (!inserted) return it->second;
    std::vector<std::byte>& bytes = it->second;
    if (naming == CodeNaming::address) {
      const std::uint64_t words[2] = {reinterpret_cast<std::uintptr_t>(trampoline),
                                      reinterpret_cast<std::uintptr_t>(function)};
      bytes.resize(sizeof words);
      std::memcpy(bytes.data(), words, sizeof words);
      return bytes;
    }
    Encoder out(bytes);
    auto t = platform::locate_code(trampoline);
    if (!t) {
      code_cache.erase(it);
      throw ProcessError("cannot find the module that holds a pool task's code");
    }
    out.put(t->module);
    out.put(t->offset);
    out.put(function != nullptr);
    if (function != nullptr) {
      auto f = platform::locate_code(function);
      if (!f) {
        code_cache.erase(it);
        throw ProcessError(
            "cannot find the module that holds a pool task's function (is it a function of this "
            "program or of a loaded library?)");
      }
      out.put(f->module);
      out.put(f->offset);
    }
    return bytes;
  }

  // --- filing results ---

  // Marks a chunk done; runs the job's completion when it was the last. Outcomes after the
  // first are ignored (a chunk failed as lost whose result was already in, a hostile record).
  void finish(std::uint64_t job_id, std::uint32_t chunk, std::vector<std::byte> results,
              std::exception_ptr error) {
    std::shared_ptr<PoolJob> job;
    {
      std::lock_guard lock(mutex);
      auto it = jobs.find(job_id);
      if (it == jobs.end()) return;
      job = it->second;
    }
    bool completed = false;
    {
      std::lock_guard lock(job->mutex_);
      if (chunk >= job->chunks_.size() || job->chunks_[chunk].done) return;
      auto& c = job->chunks_[chunk];
      c.done = true;
      c.results = std::move(results);
      c.error = std::move(error);
      job->finished_.push_back(chunk);
      completed = job->complete_locked();
    }
    job->changed_.notify_all();
    if (completed) complete(job);
  }

  // The job's last chunk is done: its callbacks run first, and only then do waiters see it ready,
  // as in CPython (ApplyResult._set calls the callback before it sets the event), so that get()
  // and wait() return after the callback has run.
  void complete(const std::shared_ptr<PoolJob>& job) {
    run_callbacks(*job);
    {
      std::lock_guard lock(job->mutex_);
      job->ready_ = true;
    }
    job->changed_.notify_all();
    std::lock_guard lock(mutex);
    jobs.erase(job->id_);
    if (jobs.empty()) idle.notify_all();
  }

  static void run_callbacks(const PoolJob& job) {
    if (job.on_complete) {
      try {
        job.on_complete(job);
      } catch (const std::exception& e) {
        // CPython's result thread dies here and every later result hangs; this one goes on.
        std::fprintf(stderr, "mproc: a Pool callback threw %s: %s\n", demangle(typeid(e).name()).c_str(),
                     e.what());
      } catch (...) {
        std::fprintf(stderr, "mproc: a Pool callback threw a non-standard exception\n");
      }
    }
  }

  void file_result(std::span<const std::byte> record) {
    ResultRecordHeader h{};
    if (record.size() < sizeof h) return;
    std::memcpy(&h, record.data(), sizeof h);
    const auto payload = record.subspan(sizeof h);
    if (h.status == kResultOk) {
      finish(h.job, h.chunk, std::vector<std::byte>(payload.begin(), payload.end()), nullptr);
      return;
    }
    std::exception_ptr error;
    try {
      Decoder in(payload);
      RemoteFailure f;
      f.type_name = in.get<std::string>();
      f.message = in.get<std::string>();
      f.where = in.get<std::string>();
      error = std::make_exception_ptr(
          RemoteError(std::move(f.type_name), std::move(f.message), std::move(f.where)));
    } catch (const std::exception& e) {
      error = std::make_exception_ptr(
          RemoteError("mproc::DecodeError", e.what(), "a pool worker's error report"));
    }
    finish(h.job, h.chunk, {}, error);
  }

  std::size_t drain() {
    std::size_t n = 0;
    while (view.results.try_pop([&](std::span<const std::byte> r) { file_result(r); }) !=
           core::RingStatus::empty) {
      ++n;
    }
    return n;
  }

  // Fails every chunk of every job that is not done yet (terminate, a broken pool).
  void fail_all(const std::exception_ptr& error) {
    std::vector<std::shared_ptr<PoolJob>> pending;
    {
      std::lock_guard lock(mutex);
      for (auto& [id, job] : jobs) pending.push_back(job);
      backlog.clear();
    }
    for (auto& job : pending) {
      std::vector<std::uint32_t> open;
      {
        std::lock_guard lock(job->mutex_);
        for (std::size_t i = 0; i < job->chunks_.size(); ++i) {
          if (!job->chunks_[i].done) open.push_back(static_cast<std::uint32_t>(i));
        }
      }
      for (auto i : open) finish(job->id_, i, {}, error);
    }
  }

  // --- pushing chunks ---

  bool try_push(std::uint32_t ring, std::span<const std::byte> record) {
    return view.rings[ring].try_push(record.size(), [&](std::span<std::byte> dst) {
      std::memcpy(dst.data(), record.data(), record.size());
    }) == core::RingStatus::ok;
  }

  void feed_backlog() {
    std::lock_guard lock(mutex);
    bool fed = false;
    while (!backlog.empty() && try_push(backlog.front().ring, backlog.front().record)) {
      backlog.pop_front();
      fed = true;
    }
    if (fed) view.control->work->notify_all();
  }

  // --- watching the workers ---

  static std::string describe_exit(const std::string& name, int pid, std::optional<int> code) {
    std::string s =
        "pool worker " + name + " (pid " + std::to_string(pid) + ") died while running this task: ";
    if (!code) return s + "its exit status is unknown";
    if (*code < 0) {
      const char* sig = sigabbrev_np(-*code);
      return s + "killed by signal " + (sig != nullptr ? std::string("SIG") + sig : std::to_string(-*code));
    }
    return s + "it exited with code " + std::to_string(*code);
  }

  void check_workers() {
    for (std::uint32_t i = 0; i < procs.size(); ++i) {
      int sentinel = -1;
      {
        std::lock_guard lock(mutex);
        if (!procs[i].pid()) continue;
        sentinel = procs[i].sentinel();
      }
      auto ended = platform::wait_readable(sentinel, 0);
      if (ended && *ended) on_worker_exit(i);
    }
  }

  void on_worker_exit(std::uint32_t index) {
    // Results the worker published before it died are in the ring: file them first, so that a
    // chunk whose result arrived is not also failed below.
    drain();
    struct Lost {
      std::uint64_t job;
      std::uint32_t chunk;
    };
    std::vector<Lost> lost;
    // The worker is a zombie until joined below, so its pid still names it: its claims are the
    // records recover() reports as held by a dead reader.
    for (auto& ring : view.rings) {
      ring.recover([&](std::span<const std::byte> record) noexcept {
        TaskRecordHeader h{};
        if (record.size() < sizeof h) return;
        std::memcpy(&h, record.data(), sizeof h);
        try {
          lost.push_back({h.job, h.chunk});
        } catch (...) {
        }
      });
    }
    view.results.recover();  // a result record it was writing: abandoned
    Process& p = procs[index];
    const std::string name = p.name();
    const int pid = p.pid().value_or(0);
    p.join();
    const std::optional<int> code = p.exitcode();
    WorkerSlot& slot = view.slots[index];
    // [sync:pool.slot] acquire: pairs with the worker's release store of its state.
    const bool init_failed = slot.state.load(std::memory_order_acquire) == kWorkerInitFailed;
    if (init_failed) {
      // relaxed: published by the acquire load of state above.
      const std::uint32_t n =
          std::min<std::uint32_t>(slot.error_length.load(std::memory_order_relaxed), sizeof slot.error);
      const auto error = std::make_exception_ptr(
          BrokenPool("the pool's initializer failed in " + name + ": " + std::string(slot.error, n)));
      {
        std::lock_guard lock(mutex);
        if (!broken) broken = error;
      }
      fail_all(error);
      return;
    }
    if (!lost.empty()) {
      const auto error = std::make_exception_ptr(WorkerDied(describe_exit(name, pid, code)));
      for (const Lost& l : lost) finish(l.job, l.chunk, {}, error);
    }
    std::lock_guard lock(mutex);
    // relaxed: collector_stop is only a hint here; join() stops workers after the collector.
    if (state != PoolState::terminate && !broken && !collector_stop.load(std::memory_order_relaxed)) {
      procs[index] = make_worker(index);
      ++respawns[index];
    }
  }

  // --- the collector thread ---

  void collect() {
    auto next_check = std::chrono::steady_clock::now() + kLivenessPeriod;
    for (;;) {
      drain();
      feed_backlog();
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_check) {
        check_workers();
        next_check = now + kLivenessPeriod;
      }
      // [sync:pool.collector] acquire: pairs with the release store in stop_collector().
      if (collector_stop.load(std::memory_order_acquire)) return;
      bool backlogged = false;
      {
        std::lock_guard lock(mutex);
        backlogged = !backlog.empty();
      }
      const auto deadline =
          backlogged ? std::min(next_check, now + std::chrono::milliseconds(1)) : next_check;
      // relaxed: a hint to stop waiting; what it announces is read under the mutex or from the ring.
      view.results.pop([&](std::span<const std::byte> r) { file_result(r); }, deadline,
                       [&] { return wake.load(std::memory_order_relaxed); });
      // relaxed: as above. Cleared before the next round looks at everything a wake announces.
      wake.store(false, std::memory_order_relaxed);
    }
  }

  void wake_collector() {
    // relaxed: see collect().
    wake.store(true, std::memory_order_relaxed);
    view.results.wake_all();
  }

  void stop_collector() {
    if (!collector.joinable()) return;
    // [sync:pool.collector] release: the collector's acquire load sees every state change before.
    collector_stop.store(true, std::memory_order_release);
    wake_collector();
    collector.join();
    Runtime::get().internal_threads.fetch_sub(1, std::memory_order_relaxed);  // relaxed: see PoolCore()
  }

  void stop_workers() {
    // [sync:pool.stop] release: workers that see stop also see everything the parent did before.
    view.control->stop->store(1, std::memory_order_release);
    view.control->work->notify_all();
    view.results.wake_all();
  }
};

// --- PoolCore --------------------------------------------------------------------------------

PoolCore::PoolCore(const PoolOptions& options) : s_(std::make_unique<PoolShared>()) {
  auto& s = *s_;
  s.options = options;
  const int workers = options.processes.value_or(cpu_count());
  if (workers < 1) throw ValueError("Number of processes must be at least 1");
  if (options.maxtasksperchild && *options.maxtasksperchild < 1) {
    throw ValueError("maxtasksperchild must be a positive int or None");
  }
  if (workers > 4096) throw ValueError("a pool has at most 4096 processes");
  s.workers = workers;
  s.method = options.start_method.value_or(get_start_method());
  s.naming = s.method == StartMethod::fork ? CodeNaming::address : CodeNaming::module_offset;
  if (options.initializer != nullptr) {
    s.initializer = s.encode_code(reinterpret_cast<const void*>(options.initializer), nullptr);
  }

  PoolHeader h{};
  h.magic = kPoolMagic;
  h.workers = static_cast<std::uint32_t>(workers);
  h.rings = options.scheduling == Scheduling::central_queue ? 1 : h.workers;
  h.task_slots = kTaskSlots;
  h.task_slot_size = kTaskSlotSize;
  h.result_slots = kResultSlots;
  h.result_slot_size = kResultSlotSize;
  h.task_ring_bytes = round_up(PoolRing::region_size(kTaskSlots, kTaskSlotSize), kCacheLine);
  h.result_ring_bytes = round_up(PoolRing::region_size(kResultSlots, kResultSlotSize), kCacheLine);
  const PoolLayout l = pool_layout(h);
  s.block = SharedBlock::create(l.total, abi_hash<PoolHeader>(), "Pool");
  const std::span<std::byte> mem(s.block.payload(), s.block.payload_size());
  std::memcpy(mem.data(), &h, sizeof h);
  new (mem.data() + l.control) PoolControl{};
  for (std::uint32_t i = 0; i < h.workers; ++i)
    new (mem.data() + l.slots + i * sizeof(WorkerSlot)) WorkerSlot{};
  for (std::uint32_t i = 0; i < h.rings; ++i) {
    if (!PoolRing::create(mem.subspan(l.task_rings + i * h.task_ring_bytes, h.task_ring_bytes), kTaskSlots,
                          kTaskSlotSize, kTaskSlots)) {
      throw ValueError("invalid pool ring geometry");
    }
  }
  if (!PoolRing::create(mem.subspan(l.result_ring, h.result_ring_bytes), kResultSlots, kResultSlotSize,
                        kResultSlots)) {
    throw ValueError("invalid pool ring geometry");
  }
  auto view = attach_pool(mem);
  if (!view) throw ValueError("the pool's block does not validate");
  s.view = std::move(*view);

  s.respawns.assign(h.workers, 0);
  try {
    for (std::uint32_t i = 0; i < h.workers; ++i) s.procs.push_back(s.make_worker(i));
  } catch (...) {
    s.stop_workers();
    for (auto& p : s.procs) {
      p.terminate();
      p.join();
    }
    throw;
  }
  Runtime::get().internal_threads.fetch_add(1, std::memory_order_relaxed);  // relaxed: a count for a warning
  s.collector = std::thread([&s] { s.collect(); });
}

PoolCore::~PoolCore() {
  try {
    terminate();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc: terminating a pool failed: %s\n", e.what());
  }
}

std::shared_ptr<PoolJob> PoolCore::begin_job() {
  auto& s = *s_;
  std::lock_guard lock(s.mutex);
  if (s.broken) std::rethrow_exception(s.broken);
  if (s.state != PoolState::run) throw ValueError("Pool not running");
  auto job = std::make_shared<PoolJob>();
  job->id_ = s.next_job++;
  s.jobs.emplace(job->id_, job);
  return job;
}

void PoolCore::submit(PoolJob& job, const TaskCode& code, std::size_t count,
                      std::span<const std::byte> args) {
  auto& s = *s_;
  const std::vector<std::byte>& code_ref =
      s.encode_code(reinterpret_cast<const void*>(code.trampoline), code.function);
  const std::size_t size = sizeof(TaskRecordHeader) + code_ref.size() + args.size();
  if (size > max_chunk_bytes() + sizeof(TaskRecordHeader) + 64) {
    throw ValueError("a pool task's arguments take " + std::to_string(args.size()) +
                     " bytes, more than the pool's limit of " + std::to_string(max_chunk_bytes()) +
                     " for one chunk: use a smaller chunksize");
  }
  std::uint32_t chunk = 0;
  {
    std::lock_guard lock(job.mutex_);
    if (job.sealed_) throw ValueError("the job is sealed");
    const std::size_t first = job.chunks_.empty() ? 0 : job.chunks_.back().first + job.chunks_.back().count;
    chunk = static_cast<std::uint32_t>(job.chunks_.size());
    job.chunks_.push_back(PoolJob::Chunk{first, count, false, {}, nullptr});
  }
  const TaskRecordHeader h{job.id_, chunk, static_cast<std::uint32_t>(code_ref.size())};
  auto fill = [&](std::span<std::byte> dst) {
    std::memcpy(dst.data(), &h, sizeof h);
    std::memcpy(dst.data() + sizeof h, code_ref.data(), code_ref.size());
    if (!args.empty()) std::memcpy(dst.data() + sizeof h + code_ref.size(), args.data(), args.size());
  };
  bool pushed = false;
  {
    std::lock_guard lock(s.mutex);
    const auto rings = static_cast<std::uint32_t>(s.view.rings.size());
    const std::uint32_t ring = s.ring_override ? *s.ring_override % rings : s.next_ring++ % rings;
    if (s.backlog.empty()) pushed = s.view.rings[ring].try_push(size, fill) == core::RingStatus::ok;
    if (!pushed) {
      std::vector<std::byte> record(size);
      fill(record);
      s.backlog.push_back({ring, std::move(record)});
    }
  }
  if (pushed) {
    s.view.control->work->notify_one();
  } else {
    s.wake_collector();
  }
}

void PoolCore::seal(PoolJob& job) {
  auto& s = *s_;
  bool completed = false;
  {
    std::lock_guard lock(job.mutex_);
    job.sealed_ = true;
    completed = job.complete_locked();
  }
  job.changed_.notify_all();
  if (completed) {
    std::shared_ptr<PoolJob> owner;
    {
      std::lock_guard lock(s.mutex);
      auto it = s.jobs.find(job.id_);
      if (it != s.jobs.end()) owner = it->second;
    }
    if (owner) s.complete(owner);
  }
}

void PoolCore::close() {
  auto& s = *s_;
  std::lock_guard lock(s.mutex);
  if (s.state == PoolState::run) s.state = PoolState::close;
}

void PoolCore::join() {
  auto& s = *s_;
  {
    std::unique_lock lock(s.mutex);
    if (s.state == PoolState::run) throw ValueError("Pool is still running");
    if (s.joined) return;
    // Workers finish every job first (CPython's close: the workers exit when the queue drains).
    s.idle.wait(lock, [&] { return s.jobs.empty() || s.broken || s.state == PoolState::terminate; });
    s.joined = true;
  }
  s.stop_collector();
  s.stop_workers();
  for (auto& p : s.procs) {
    if (p.pid()) p.join();
  }
}

void PoolCore::terminate() {
  auto& s = *s_;
  {
    std::lock_guard lock(s.mutex);
    if (s.state == PoolState::terminate && s.joined) return;
    s.state = PoolState::terminate;
    s.joined = true;
  }
  s.stop_collector();
  s.stop_workers();
  for (auto& p : s.procs) {
    if (p.pid()) p.terminate();
  }
  for (auto& p : s.procs) {
    if (!p.pid()) continue;
    if (!p.join(std::chrono::seconds(1))) {
      p.kill();
      p.join();
    }
  }
  s.fail_all(std::make_exception_ptr(ProcessError("the pool was terminated before this task finished")));
}

int PoolCore::processes() const noexcept {
  return s_->workers;
}

std::vector<WorkerStats> PoolCore::stats() const {
  auto& s = *s_;
  std::vector<WorkerStats> out;
  std::lock_guard lock(s.mutex);
  for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(s.workers); ++i) {
    const WorkerSlot& slot = s.view.slots[i];
    WorkerStats w;
    // relaxed (all three): a snapshot of counters.
    w.pid = slot.pid.load(std::memory_order_relaxed);
    w.tasks = slot.tasks.load(std::memory_order_relaxed);
    w.stolen = slot.stolen.load(std::memory_order_relaxed);
    w.respawns = s.respawns[i];
    out.push_back(w);
  }
  return out;
}

std::size_t PoolCore::max_chunk_bytes() const noexcept {
  return s_->view.rings.front().max_message() - sizeof(TaskRecordHeader) - 512;
}

std::size_t PoolCore::target_chunk_bytes() const noexcept {
  return std::min(kTargetChunkBytes, max_chunk_bytes());
}

void PoolCore::set_ring_override(std::optional<std::uint32_t> ring) {
  std::lock_guard lock(s_->mutex);
  s_->ring_override = ring;
}

}  // namespace mproc::detail
