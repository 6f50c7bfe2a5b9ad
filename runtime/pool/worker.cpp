// A pool worker: runs the chunks of its own task ring, steals from the others when its own is
// empty, parks on the pool's work word when every ring is empty, and exits when the parent asks
// (the stop flag), when the parent is gone, or after maxtasks chunks.
#include <cxxabi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <typeinfo>
#include <unordered_map>

#include "platform/linux/process.hpp"
#include "platform/linux/symbols.hpp"
#include "pool/pool_shared.hpp"
#include "pool/spill.hpp"
#include "process/state.hpp"

namespace mproc::detail {

std::optional<PoolView> attach_pool(std::span<std::byte> block) noexcept {
  PoolView v;
  if (block.size() < sizeof(PoolHeader)) return std::nullopt;
  std::memcpy(&v.header, block.data(), sizeof v.header);
  const PoolHeader& h = v.header;
  if (h.magic != kPoolMagic || h.workers == 0 || h.workers > 4096) return std::nullopt;
  if (h.rings != 1 && h.rings != h.workers) return std::nullopt;
  if (h.task_ring_bytes != round_up(PoolRing::region_size(h.task_slots, h.task_slot_size), kCacheLine) ||
      h.result_ring_bytes !=
          round_up(PoolRing::region_size(h.result_slots, h.result_slot_size), kCacheLine)) {
    return std::nullopt;
  }
  const PoolLayout l = pool_layout(h);
  if (l.total > block.size()) return std::nullopt;
  v.control = reinterpret_cast<PoolControl*>(block.data() + l.control);
  v.slots = reinterpret_cast<WorkerSlot*>(block.data() + l.slots);
  for (std::uint32_t i = 0; i < h.rings; ++i) {
    auto ring = PoolRing::attach(block.subspan(l.task_rings + i * h.task_ring_bytes, h.task_ring_bytes));
    if (!ring || ring->slot_count() != h.task_slots || ring->slot_size() != h.task_slot_size)
      return std::nullopt;
    v.rings.push_back(*ring);
  }
  auto results = PoolRing::attach(block.subspan(l.result_ring, h.result_ring_bytes));
  if (!results || results->slot_count() != h.result_slots || results->slot_size() != h.result_slot_size) {
    return std::nullopt;
  }
  v.results = *results;
  return v;
}

namespace {

std::string exception_type_name() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  return type != nullptr ? demangle(type->name()) : std::string("unknown exception");
}

// Code references (the parent writes them in pool_core.cpp's encode_code).
class CodeResolver {
 public:
  explicit CodeResolver(CodeNaming naming) : naming_(naming) {}

  TaskCode resolve(std::span<const std::byte> ref) {
    if (naming_ == CodeNaming::address) {
      if (ref.size() != 2 * sizeof(std::uint64_t)) throw DecodeError("task record: bad code reference");
      std::uint64_t words[2];
      std::memcpy(words, ref.data(), sizeof words);
      return {reinterpret_cast<TaskTrampoline>(static_cast<std::uintptr_t>(words[0])),
              reinterpret_cast<const void*>(static_cast<std::uintptr_t>(words[1]))};
    }
    std::string key(reinterpret_cast<const char*>(ref.data()), ref.size());
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    Decoder in(ref);
    platform::CodeAddress trampoline{in.get<std::string>(), in.get<std::uint64_t>()};
    const bool has_function = in.get<bool>();
    platform::CodeAddress function;
    if (has_function) function = {in.get<std::string>(), in.get<std::uint64_t>()};
    in.expect_end();
    TaskCode code;
    auto t = platform::resolve_code(trampoline);
    if (!t) throw ProcessError("cannot find a pool task's code in the worker: " + t.error().message());
    code.trampoline = reinterpret_cast<TaskTrampoline>(const_cast<void*>(*t));
    if (has_function) {
      auto f = platform::resolve_code(function);
      if (!f) throw ProcessError("cannot find a pool task's function in the worker: " + f.error().message());
      code.function = *f;
    }
    if (cache_.size() > 4096) cache_.clear();  // a hostile stream of distinct references stays bounded
    cache_.emplace(std::move(key), code);
    return code;
  }

 private:
  CodeNaming naming_;
  std::unordered_map<std::string, TaskCode> cache_;
};

// An error's type name and message are cut to this, so that an error report fits one record.
constexpr std::size_t kMaxErrorText = 64 * 1024;

class Worker {
 public:
  Worker(PoolView view, const PoolWorkerArgs& args)
      : v_(std::move(view)),
        args_(args),
        code_(args.naming),
        spill_(args.spill_fd),
        slot_(v_.slots[args.index]),
        own_(v_.header.rings == 1 ? 0 : args.index) {
    name_ = current_process().name();
    pid_ = static_cast<int>(platform::current_pid());
  }

  void run_initializer() {
    if (args_.initializer.empty()) return;
    try {
      const TaskCode code = code_.resolve(args_.initializer);
      reinterpret_cast<void (*)()>(code.trampoline)();
    } catch (const SystemExit& e) {
      // CPython respawns such a worker forever; here it breaks the pool like any other failure.
      report_init_failure("mproc::SystemExit(" + std::to_string(e.code()) + ")");
    } catch (const std::exception& e) {
      report_init_failure(exception_type_name() + ": " + e.what());
    } catch (...) {
      report_init_failure(exception_type_name());
    }
  }

  void loop() {
    // [sync:pool.slot] release: the parent reads the state with acquire (stats, death handling).
    slot_.state.store(kWorkerRunning, std::memory_order_release);
    std::uint64_t done = 0;
    const auto rings = static_cast<std::uint32_t>(v_.rings.size());
    for (;;) {
      // [sync:pool.stop] acquire: pairs with the parent's release store of stop.
      if (v_.control->stop->load(std::memory_order_acquire) != 0) return;
      bool ran = take(v_.rings[own_]);
      bool stolen = false;
      for (std::uint32_t k = 1; !ran && k < rings; ++k) {
        ran = take(v_.rings[(own_ + k) % rings]);
        stolen = ran;
      }
      if (ran) {
        ++done;
        // relaxed (both): statistics; the parent reads them as a snapshot.
        slot_.tasks.fetch_add(1, std::memory_order_relaxed);
        if (stolen) slot_.stolen.fetch_add(1, std::memory_order_relaxed);
        if (args_.maxtasks != 0 && done >= args_.maxtasks) return;
        continue;
      }
      idle();
    }
  }

 private:
  // Runs the record at the head of `ring`, if any. The record stays claimed while it runs.
  bool take(PoolRing& ring) {
    const core::RingStatus s = ring.try_pop([&](std::span<const std::byte> record) noexcept {
      // Nothing may unwind out of here: try_pop would give the record back, and the chunk would
      // be lost without a trace. A worker that cannot go on exits holding the claim instead, and
      // the parent fails the chunk with WorkerDied.
      try {
        run(record);
      } catch (...) {
        std::fprintf(stderr, "mproc: pool worker %s cannot go on: %s\n", name_.c_str(),
                     exception_type_name().c_str());
        die(70);  // EX_SOFTWARE
      }
    });
    if (s == core::RingStatus::corrupted) {
      std::fprintf(stderr, "mproc: pool worker %s found a corrupted task ring\n", name_.c_str());
      die(70);
    }
    return s == core::RingStatus::ok;
  }

  [[noreturn]] static void die(int code) noexcept {
    flush_standard_streams_of_child();
    platform::exit_now(code);
  }

  void idle() {
    auto any_work = [&] {
      // [sync:pool.stop] acquire: as in loop().
      if (v_.control->stop->load(std::memory_order_acquire) != 0) return true;
      return std::any_of(v_.rings.begin(), v_.rings.end(), [](const PoolRing& r) { return r.readable(); });
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    if (!v_.control->work->wait_until(any_work, deadline)) exit_if_orphaned();
  }

  void exit_if_orphaned() {
    auto parent = parent_process();
    if (parent && !parent->is_alive()) throw SystemExit(0);
  }

  void run(std::span<const std::byte> record) {
    TaskRecordHeader h{};
    if (record.size() < sizeof h) return;  // not a task record: skipped
    std::memcpy(&h, record.data(), sizeof h);
    const bool spilled = (h.code_bytes & kSpilled) != 0;
    const std::uint32_t code_bytes = h.code_bytes & ~kSpilled;
    if (code_bytes > record.size() - sizeof h) return;
    const auto code_ref = record.subspan(sizeof h, code_bytes);
    auto arguments = record.subspan(sizeof h + code_bytes);

    out_.clear();
    out_.resize(sizeof(ResultRecordHeader));
    std::uint32_t status = kResultOk;
    try {
      if (spilled) arguments = spilled_arguments(arguments);
      const TaskCode code = code_.resolve(code_ref);
      Encoder encoder(out_);
      Decoder in(arguments);
      code.trampoline(code.function, in, encoder);
    } catch (const SystemExit& e) {
      // The task ends its process, as sys.exit() ends a CPython worker: the record stays claimed,
      // and the parent fails the task with WorkerDied.
      die(e.code());
    } catch (const std::exception& e) {
      status = fail(exception_type_name(), e.what(), h);
    } catch (...) {
      status = fail(exception_type_name(), "", h);
    }
    send(h, status);
  }

  // The arguments a spilled record points to, in place in the spill area.
  std::span<const std::byte> spilled_arguments(std::span<const std::byte> ref_bytes) {
    SpillRef ref{};
    if (ref_bytes.size() != sizeof ref) throw DecodeError("task record: bad spill reference");
    std::memcpy(&ref, ref_bytes.data(), sizeof ref);
    auto bytes = spill_.bytes(ref.offset, ref.size);
    if (!bytes) throw DecodeError("task record: a spill reference outside the spill area");
    return *bytes;
  }

  std::uint32_t fail(const std::string& type, const std::string& what, const TaskRecordHeader& h) {
    out_.resize(sizeof(ResultRecordHeader));
    Encoder encoder(out_);
    encoder.put(type.substr(0, kMaxErrorText));
    encoder.put(what.substr(0, kMaxErrorText));
    encoder.put(name_ + ", pid " + std::to_string(pid_) + ", chunk " + std::to_string(h.chunk) + " of job " +
                std::to_string(h.job));
    return kResultError;
  }

  void send(const TaskRecordHeader& h, std::uint32_t status) {
    const std::size_t room = v_.results.max_message() - sizeof(ResultRecordHeader);
    const std::size_t size = out_.size() - sizeof(ResultRecordHeader);
    if (size <= room) {
      const ResultRecordHeader rh{h.job, h.chunk, status};
      std::memcpy(out_.data(), &rh, sizeof rh);
      push(out_);
      return;
    }
    // Too large for one record: in parts, in order (only an ok result can be this large; an
    // error's text is cut in fail()).
    const std::size_t per_part = room - sizeof(ResultPart);
    const auto body = std::span<const std::byte>(out_).subspan(sizeof(ResultRecordHeader));
    std::vector<std::byte> part;
    for (std::size_t offset = 0; offset < size; offset += per_part) {
      const std::size_t n = std::min(per_part, size - offset);
      part.resize(sizeof(ResultRecordHeader) + sizeof(ResultPart) + n);
      const ResultRecordHeader rh{h.job, h.chunk, kResultPart};
      const ResultPart p{size, offset};
      std::memcpy(part.data(), &rh, sizeof rh);
      std::memcpy(part.data() + sizeof rh, &p, sizeof p);
      std::memcpy(part.data() + sizeof rh + sizeof p, body.data() + offset, n);
      push(part);
    }
  }

  // Pushes one record into the result ring, waiting while it is full.
  void push(std::span<const std::byte> record) {
    for (;;) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      const core::RingStatus s = v_.results.push(
          record.size(),
          [&](std::span<std::byte> dst) { std::memcpy(dst.data(), record.data(), record.size()); }, deadline);
      if (s == core::RingStatus::ok) return;
      if (s != core::RingStatus::full) {  // corrupted (or too large, which send() rules out)
        std::fprintf(stderr, "mproc: pool worker %s cannot send a result: the result ring is corrupted\n",
                     name_.c_str());
        die(70);
      }
      // The pool is going away (stop) or its parent is gone: nobody waits for this result.
      // [sync:pool.stop] acquire: as in loop().
      if (v_.control->stop->load(std::memory_order_acquire) != 0) die(0);
      auto parent = parent_process();
      if (parent && !parent->is_alive()) die(0);
    }
  }

  void report_init_failure(const std::string& text) {
    const std::size_t n = std::min(text.size(), sizeof slot_.error);
    std::memcpy(slot_.error, text.data(), n);
    // relaxed: published by the release store of state below.
    slot_.error_length.store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
    // [sync:pool.slot] release: the error text above is visible to the parent's acquire load.
    slot_.state.store(kWorkerInitFailed, std::memory_order_release);
    std::fprintf(stderr, "mproc: Exception in initializer of %s:\n%s\n", name_.c_str(), text.c_str());
    throw SystemExit(1);
  }

  PoolView v_;
  const PoolWorkerArgs& args_;
  CodeResolver code_;
  SpillView spill_;
  WorkerSlot& slot_;
  std::uint32_t own_;
  std::string name_;
  int pid_ = 0;
  std::vector<std::byte> out_;
};

}  // namespace

void pool_worker_main(PoolWorkerArgs args) {
  auto view = attach_pool(std::span<std::byte>(args.block.payload(), args.block.payload_size()));
  if (!view || args.index >= view->header.workers) throw DecodeError("not a pool block, or a corrupt one");
  WorkerSlot& slot = view->slots[args.index];
  // relaxed: the pid is read after the parent sees the process, as a statistic.
  slot.pid.store(static_cast<std::int32_t>(platform::current_pid()), std::memory_order_relaxed);
  Worker worker(std::move(*view), args);
  worker.run_initializer();
  worker.loop();
}

}  // namespace mproc::detail
