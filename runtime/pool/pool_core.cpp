// detail::PoolCore: the parent's side of a Pool. It owns the shared block, the worker processes,
// the table of jobs and the collector thread, which files results into jobs, runs callbacks,
// feeds the backlog of chunks that did not fit a full ring, and watches the workers: a dead
// worker's claimed chunks fail with WorkerDied and the worker is replaced (docs/pool.md).
#include "mproc/detail/pool_core.hpp"

#include <csignal>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <thread>
#include <unordered_map>

#include "platform/linux/fd.hpp"
#include "platform/linux/process.hpp"
#include "platform/linux/symbols.hpp"
#include "pool/pool_shared.hpp"
#include "pool/spill.hpp"
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
  SpillArena spill;                                                                   // large arguments
  std::map<std::pair<std::uint64_t, std::uint32_t>, std::uint64_t> spilled;           // chunk -> region
  std::map<std::pair<std::uint64_t, std::uint32_t>, std::vector<std::byte>> partial;  // results in parts

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
    args.spill_fd = spill.fd();
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

  // Marks a chunk done; completes the job when it was the last (callbacks: whether its callbacks
  // run; not after terminate(), as in CPython). Outcomes after the first are ignored (a chunk
  // failed as lost whose result came in first, a hostile record).
  void finish(std::uint64_t job_id, std::uint32_t chunk, std::vector<std::byte> results,
              std::exception_ptr error, bool callbacks = true) {
    std::shared_ptr<PoolJob> job;
    {
      std::lock_guard lock(mutex);
      auto it = jobs.find(job_id);
      if (it == jobs.end()) return;
      job = it->second;
      // The chunk's worker is done with its spilled arguments (or dead): the region goes back.
      // Only the first outcome gets here with a region; later ones find none.
      if (auto sp = spilled.find({job_id, chunk}); sp != spilled.end()) {
        spill.release(sp->second);
        spilled.erase(sp);
      }
      partial.erase({job_id, chunk});
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
    if (completed) {
      complete(job, callbacks);  // notifies once the callbacks ran: one wake-up for get(), not two
    } else {
      job->changed_.notify_all();  // imap's waiters for this chunk
    }
  }

  // The job's last chunk is done: its callbacks run first, and only then do waiters see it ready,
  // as in CPython (ApplyResult._set calls the callback before it sets the event), so that get()
  // and wait() return after the callback has run.
  void complete(const std::shared_ptr<PoolJob>& job, bool callbacks) {
    if (callbacks) run_callbacks(*job);
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
    if (!job.on_complete) return;
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

  void file_result(std::span<const std::byte> record) {
    ResultRecordHeader h{};
    if (record.size() < sizeof h) return;
    std::memcpy(&h, record.data(), sizeof h);
    const auto payload = record.subspan(sizeof h);
    if (h.status == kResultOk) {
      finish(h.job, h.chunk, std::vector<std::byte>(payload.begin(), payload.end()), nullptr);
      return;
    }
    if (h.status == kResultPart) {
      file_part(h, payload);
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
    } catch (const DecodeError& e) {
      error = std::make_exception_ptr(
          RemoteError("mproc::DecodeError", e.what(), "a pool worker's error report"));
    }
    finish(h.job, h.chunk, {}, error);
  }

  // One part of a result too large for a record. Parts of a chunk come in order from the one
  // worker that runs it; a part that does not continue its result, or a result over
  // kMaxResultBytes, fails the chunk.
  void file_part(const ResultRecordHeader& h, std::span<const std::byte> payload) {
    ResultPart part{};
    if (payload.size() < sizeof part) return;
    std::memcpy(&part, payload.data(), sizeof part);
    const auto bytes = payload.subspan(sizeof part);
    std::vector<std::byte> whole;
    const char* problem = nullptr;
    {
      std::lock_guard lock(mutex);
      if (!jobs.contains(h.job)) return;
      auto& buffer = partial[{h.job, h.chunk}];
      if (part.total > kMaxResultBytes) {
        problem = "a result larger than the pool's limit";
      } else if (part.offset != buffer.size() || bytes.size() > part.total - part.offset) {
        problem = "a result part out of order";
      } else {
        buffer.insert(buffer.end(), bytes.begin(), bytes.end());
        if (buffer.size() < part.total) return;
        whole = std::move(buffer);
      }
      partial.erase({h.job, h.chunk});
    }
    if (problem != nullptr) {
      finish(h.job, h.chunk, {},
             std::make_exception_ptr(RemoteError("mproc::DecodeError", problem, "a pool worker's result")));
      return;
    }
    finish(h.job, h.chunk, std::move(whole), nullptr);
  }

  [[noreturn]] static void throw_corrupted() {
    throw BrokenPool(
        "the pool's result ring holds a record no correct worker writes (corrupted shared memory)");
  }

  // Files the results in the ring, at most `limit` of them (so that a steady stream of results
  // does not keep the collector from its other duties). Returns how many.
  std::size_t drain(std::size_t limit = std::numeric_limits<std::size_t>::max()) {
    std::size_t n = 0;
    for (; n < limit; ++n) {
      const core::RingStatus st = view.results.try_pop([&](std::span<const std::byte> r) { file_result(r); });
      if (st == core::RingStatus::empty) break;
      if (st == core::RingStatus::corrupted) throw_corrupted();
    }
    return n;
  }

  // Fails every chunk of every job that is not done yet (terminate: without callbacks, as CPython
  // runs none then; a broken pool: with them).
  void fail_all(const std::exception_ptr& error, bool callbacks) {
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
      for (auto i : open) finish(job->id_, i, {}, error, callbacks);
    }
  }

  // The pool can run nothing any more: every pending and later task fails with `error`.
  void break_pool(const std::exception_ptr& error) {
    {
      std::lock_guard lock(mutex);
      if (!broken) broken = error;
    }
    idle.notify_all();
    fail_all(error, /*callbacks=*/true);
  }

  bool is_broken() {
    std::lock_guard lock(mutex);
    return broken != nullptr;
  }

  // --- pushing chunks ---

  bool try_push(std::uint32_t ring, std::span<const std::byte> record) {
    return view.rings[ring].try_push(record.size(), [&](std::span<std::byte> dst) {
      std::memcpy(dst.data(), record.data(), record.size());
    }) == core::RingStatus::ok;
  }

  // Any ring will do for a chunk: a ring kept full by one long task must not hold up the others.
  void feed_backlog() {
    std::lock_guard lock(mutex);
    bool fed = false;
    const auto rings = static_cast<std::uint32_t>(view.rings.size());
    while (!backlog.empty()) {
      const Backlogged& b = backlog.front();
      bool pushed = false;
      for (std::uint32_t k = 0; k < rings && !pushed; ++k) pushed = try_push((b.ring + k) % rings, b.record);
      if (!pushed) break;
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

  // A chunk a dead worker held, failed once every result published before the death is filed.
  struct Lost {
    std::uint64_t job;
    std::uint32_t chunk;
    std::exception_ptr error;
    std::uint64_t results_tail;  // the result ring's tail when the death was seen
  };
  std::vector<Lost> lost;  // collector only

  void on_worker_exit(std::uint32_t index) {
    Process& p = procs[index];  // only the collector replaces procs while it runs
    // A readable sentinel may also mean a forkserver that died while the worker lives on.
    if (p.is_alive()) return;
    const std::string name = p.name();
    const int pid = p.pid().value_or(0);
    const std::optional<int> code = p.exitcode();
    // The claims of this worker, by its pid (it is reaped now, but no other process claims in
    // this pool's rings with that pid): exactly the chunks it was running.
    const auto tag = static_cast<std::uint32_t>(pid) & ((1U << 22) - 1);
    auto is_it = [tag](std::uint32_t claimant) noexcept { return claimant == tag; };
    const std::uint64_t results_tail = view.results.tail_position();
    std::vector<std::pair<std::uint64_t, std::uint32_t>> held;
    for (auto& ring : view.rings) {
      ring.recover_if(is_it, [&](std::span<const std::byte> record) noexcept {
        TaskRecordHeader h{};
        if (record.size() < sizeof h) return;
        std::memcpy(&h, record.data(), sizeof h);
        try {
          held.emplace_back(h.job, h.chunk);
        } catch (...) {
        }
      });
    }
    view.results.recover_if(is_it, [](std::span<const std::byte>) noexcept {});  // a result it was writing
    WorkerSlot& slot = view.slots[index];
    // [sync:pool.slot] acquire: pairs with the worker's release store of its state.
    if (slot.state.load(std::memory_order_acquire) == kWorkerInitFailed) {
      // relaxed: published by the acquire load of state above.
      const std::uint32_t n =
          std::min<std::uint32_t>(slot.error_length.load(std::memory_order_relaxed), sizeof slot.error);
      break_pool(std::make_exception_ptr(
          BrokenPool("the pool's initializer failed in " + name + ": " + std::string(slot.error, n))));
      return;
    }
    if (!held.empty()) {
      const auto error = std::make_exception_ptr(WorkerDied(describe_exit(name, pid, code)));
      for (const auto& [job, chunk] : held) lost.push_back({job, chunk, error, results_tail});
    }
    {
      std::lock_guard lock(mutex);
      // relaxed: a hint; shutdown() stops the workers only after the collector has stopped.
      if (state == PoolState::terminate || broken || collector_stop.load(std::memory_order_relaxed)) return;
    }
    // Fork (or spawn) without the lock: submit() and stats() need it meanwhile.
    Process replacement = make_worker(index);
    std::lock_guard lock(mutex);
    procs[index] = std::move(replacement);
    ++respawns[index];
  }

  // Fails the lost chunks whose deaths are old enough: every record claimed in the result ring
  // before the death was seen has been filed, so a result the worker sent before it died has won.
  void settle_lost() {
    if (lost.empty()) return;
    const std::uint64_t head = view.results.head_position();
    std::vector<Lost> ripe;
    std::erase_if(lost, [&](Lost& l) {
      if (head < l.results_tail) return false;
      ripe.push_back(std::move(l));
      return true;
    });
    for (const Lost& l : ripe) finish(l.job, l.chunk, {}, l.error);
  }

  // --- the collector thread ---

  // Jobs whose last chunk finished before seal(): completed here, so that callbacks always run
  // in this thread.
  std::vector<std::shared_ptr<PoolJob>> completions;  // under mutex

  void complete_handed_over() { complete_leftovers(true); }

  // Also after the collector stopped: a hand-over it did not see completes here.
  void complete_leftovers(bool callbacks) {
    std::vector<std::shared_ptr<PoolJob>> mine;
    {
      std::lock_guard lock(mutex);
      mine.swap(completions);
    }
    for (auto& job : mine) complete(job, callbacks);
  }

  void collect_round(std::chrono::steady_clock::time_point& next_check) {
    drain(4096);
    settle_lost();
    complete_handed_over();
    feed_backlog();
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_check) {
      check_workers();
      next_check = now + kLivenessPeriod;
    }
  }

  void collect() {
    auto next_check = std::chrono::steady_clock::now() + kLivenessPeriod;
    for (;;) {
      if (!is_broken()) {
        try {
          collect_round(next_check);
        } catch (const std::exception& e) {
          break_pool(std::make_exception_ptr(BrokenPool(std::string("the pool cannot go on: ") + e.what())));
        }
      }
      // [sync:pool.collector] acquire: pairs with the release store in stop_collector().
      if (collector_stop.load(std::memory_order_acquire)) return;
      bool hurry = !lost.empty();
      {
        std::lock_guard lock(mutex);
        hurry = hurry || !backlog.empty();
      }
      const auto now = std::chrono::steady_clock::now();
      const auto deadline = hurry ? std::min(next_check, now + std::chrono::milliseconds(1)) : next_check;
      if (is_broken()) {
        // Nothing to collect any more: only wait to be stopped.
        view.results.wake_all();
        std::this_thread::sleep_until(deadline);
        continue;
      }
      // relaxed: a hint to stop waiting; what it announces is read under the mutex or from the ring.
      const core::RingStatus st =
          view.results.pop([&](std::span<const std::byte> r) { file_result(r); }, deadline,
                           [&] { return wake.load(std::memory_order_relaxed); });
      // relaxed: as above. Cleared before the next round looks at everything a wake announces.
      wake.store(false, std::memory_order_relaxed);
      if (st == core::RingStatus::corrupted) {
        break_pool(std::make_exception_ptr(BrokenPool(
            "the pool's result ring holds a record no correct worker writes (corrupted shared memory)")));
      }
    }
  }

  void wake_collector() {
    // relaxed: see collect().
    wake.store(true, std::memory_order_relaxed);
    view.results.wake_all();
  }

  bool on_collector() const { return collector.get_id() == std::this_thread::get_id(); }

  void stop_collector() {
    if (!collector.joinable()) return;
    // [sync:pool.collector] release: the collector's acquire load sees every state change before.
    collector_stop.store(true, std::memory_order_release);
    wake_collector();
    if (on_collector()) {
      // terminate() or the Pool's destructor in a callback: the thread cannot join itself. It
      // returns when the callback does, and its reference keeps this state alive until then.
      collector.detach();
    } else {
      collector.join();
    }
    Runtime::get().internal_threads.fetch_sub(1, std::memory_order_relaxed);  // relaxed: see PoolCore()
  }

  void stop_workers() {
    // [sync:pool.stop] release: workers that see stop also see everything the parent did before.
    view.control->stop->store(1, std::memory_order_release);
    view.control->work->notify_all();
    view.results.wake_all();
  }

  // Stops the collector and the workers, once (join and terminate may race). kill: SIGTERM, and
  // SIGKILL after a second.
  std::mutex shutdown_mutex;
  bool stopped = false;  // under shutdown_mutex

  void shutdown(bool kill) {
    std::lock_guard guard(shutdown_mutex);
    if (stopped) return;
    stopped = true;
    stop_collector();
    complete_leftovers(/*callbacks=*/!kill);
    stop_workers();
    for (auto& p : procs) {
      if (kill && p.pid()) p.terminate();
    }
    for (auto& p : procs) {
      if (!p.pid()) continue;
      if (kill && !p.join(std::chrono::seconds(1))) p.kill();
      p.join();
    }
  }
};

// --- PoolCore --------------------------------------------------------------------------------

PoolCore::PoolCore(const PoolOptions& options) : s_(std::make_shared<PoolShared>()) {
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
  // The thread holds its own reference: a Pool destroyed in a callback leaves the state to it.
  s.collector = std::thread([self = s_] { self->collect(); });
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
  // Arguments too large for a record go to the spill area; the record carries where.
  const bool spill = sizeof(TaskRecordHeader) + code_ref.size() + args.size() > max_chunk_bytes();
  SpillRef ref{0, args.size()};
  const std::span<const std::byte> inline_args =
      spill ? std::span<const std::byte>(reinterpret_cast<const std::byte*>(&ref), sizeof ref) : args;
  const std::size_t size = sizeof(TaskRecordHeader) + code_ref.size() + inline_args.size();
  auto fill = [&](std::span<std::byte> dst, const TaskRecordHeader& h) {
    std::memcpy(dst.data(), &h, sizeof h);
    std::memcpy(dst.data() + sizeof h, code_ref.data(), code_ref.size());
    if (!inline_args.empty()) {
      std::memcpy(dst.data() + sizeof h + code_ref.size(), inline_args.data(), inline_args.size());
    }
  };
  bool pushed = false;
  {
    // The state check, the chunk's registration and its push are one step under the lock, so a
    // terminate() or a broken pool either refuses the chunk here or finds it registered.
    std::lock_guard lock(s.mutex);
    if (s.broken) std::rethrow_exception(s.broken);
    if (s.state == PoolState::terminate) throw ValueError("Pool not running");
    TaskRecordHeader h{job.id_, 0, static_cast<std::uint32_t>(code_ref.size()) | (spill ? kSpilled : 0U)};
    std::size_t first = 0;
    {
      std::lock_guard job_lock(job.mutex_);  // chunks are added only under s.mutex: the index holds
      if (job.sealed_) throw ValueError("the job is sealed");
      first = job.chunks_.empty() ? 0 : job.chunks_.back().first + job.chunks_.back().count;
      h.chunk = static_cast<std::uint32_t>(job.chunks_.size());
    }
    // Everything that may throw comes before the chunk is registered, so a chunk the job waits
    // for is always on its way to a worker. (A record pushed for a chunk that then failed to
    // register only produces a result nobody files.)
    if (spill) {
      const std::span<const std::byte> parts[] = {args};
      ref.offset = s.spill.store(parts);
    }
    std::vector<std::byte> record;
    try {
      const auto rings = static_cast<std::uint32_t>(s.view.rings.size());
      const std::uint32_t ring = s.ring_override ? *s.ring_override % rings : s.next_ring++ % rings;
      if (s.backlog.empty()) {
        pushed = s.view.rings[ring].try_push(size, [&](std::span<std::byte> dst) { fill(dst, h); }) ==
                 core::RingStatus::ok;
      }
      if (!pushed) {
        record.resize(size);
        fill(record, h);
        s.backlog.push_back({ring, std::move(record)});
      }
      if (spill) s.spilled.emplace(std::pair{job.id_, h.chunk}, ref.offset);
    } catch (...) {
      if (spill) s.spill.release(ref.offset);
      throw;
    }
    std::lock_guard job_lock(job.mutex_);
    job.chunks_.push_back(PoolJob::Chunk{first, count, false, {}, nullptr});
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
  bool empty = false;
  {
    std::lock_guard lock(job.mutex_);
    job.sealed_ = true;
    completed = job.complete_locked();
    empty = job.chunks_.empty();
  }
  if (!completed) return;
  std::shared_ptr<PoolJob> owner;
  bool hand_over = false;
  {
    std::lock_guard lock(s.mutex);
    auto it = s.jobs.find(job.id_);
    if (it == s.jobs.end()) return;
    owner = it->second;
    // relaxed: a hint; a collector that stops later still runs what it was handed (shutdown
    // stops it only after this lock is released, and it completes hand-overs before it checks).
    hand_over =
        !empty && s.state != PoolState::terminate && !s.collector_stop.load(std::memory_order_relaxed);
    if (hand_over) s.completions.push_back(owner);
  }
  if (hand_over) {
    s.wake_collector();
  } else {
    // An empty map gets no callback (CPython sets an empty MapResult ready at once), nor does a
    // job after terminate().
    s.complete(owner, false);
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
    if (s.on_collector()) {
      throw ProcessError("join() cannot be called from a Pool callback: the thread that runs it must go on");
    }
    // Workers finish every job first (CPython's close: the workers exit when the queue drains).
    s.idle.wait(lock, [&] { return s.jobs.empty() || s.broken || s.state == PoolState::terminate; });
  }
  s.shutdown(/*kill=*/false);
}

void PoolCore::terminate() {
  auto& s = *s_;
  {
    std::lock_guard lock(s.mutex);
    s.state = PoolState::terminate;
  }
  s.idle.notify_all();
  s.shutdown(/*kill=*/true);
  s.fail_all(std::make_exception_ptr(ProcessError("the pool was terminated before this task finished")),
             /*callbacks=*/false);
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

std::uint64_t PoolCore::spill_bytes() const {
  std::lock_guard lock(s_->mutex);
  return s_->spill.in_use();
}

std::size_t PoolCore::target_chunk_bytes() const noexcept {
  return std::min(kTargetChunkBytes, max_chunk_bytes());
}

void PoolCore::set_ring_override(std::optional<std::uint32_t> ring) {
  std::lock_guard lock(s_->mutex);
  s_->ring_override = ring;
}

}  // namespace mproc::detail
