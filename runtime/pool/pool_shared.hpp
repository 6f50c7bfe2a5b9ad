// The memory a pool's parent and workers share, and the records they exchange.
//
// One anonymous block (SharedBlock: a memfd, inherited by fork workers, passed to spawn and
// forkserver workers with their arguments):
//
//   PoolHeader     geometry, written once by the parent; each worker validates a private copy
//   PoolControl    the stop flag, and the word idle workers park on
//   WorkerSlot[W]  per worker: pid, state, counters, an initializer's error text
//   task ring[R]   R = W (work stealing) or 1 (central queue): core::MpmcRing, parent -> workers
//   result ring    core::MpmcRing, workers -> parent
//
// A worker keeps a task record claimed (MpmcRing's `reading` state, tagged with its pid) while
// the task runs, and gives the slots back only after the result is in the result ring. So when
// a worker dies, the records still claimed with its pid are exactly the tasks it was running:
// the parent reads them back (MpmcRing::recover's visitor) and fails them with WorkerDied, after
// draining the results the worker published before it died.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mproc/codec.hpp"
#include "mproc/core/layout.hpp"
#include "mproc/core/mpmc_ring.hpp"
#include "mproc/core/wait_word.hpp"
#include "mproc/detail/pool_core.hpp"
#include "mproc/detail/shared_block.hpp"
#include "platform/linux/fd.hpp"

namespace mproc::detail {

using PoolRing = core::MpmcRing<>;

inline constexpr std::uint64_t kPoolMagic = 0x4c4f4f50434f504dULL;  // "MPOCPOOL" little-endian

struct PoolHeader {
  std::uint64_t magic;
  std::uint32_t workers;     // worker slots, W
  std::uint32_t rings;       // task rings, R
  std::uint32_t task_slots;  // each task ring's geometry
  std::uint32_t task_slot_size;
  std::uint32_t result_slots;  // the result ring's
  std::uint32_t result_slot_size;
  std::uint64_t task_ring_bytes;  // region of one task ring (rounded to kCacheLine)
  std::uint64_t result_ring_bytes;
};
MPROC_SHM_LAYOUT(PoolHeader);

struct PoolControl {
  CachePadded<std::atomic<std::uint32_t>> stop{};  // 1: workers exit once idle
  CachePadded<core::WaitWord<>> work{};            // idle workers park here
};
MPROC_SHM_LAYOUT(PoolControl);

enum : std::uint32_t { kWorkerStarting = 0, kWorkerRunning = 1, kWorkerInitFailed = 2 };

struct WorkerSlot {
  std::atomic<std::uint32_t> state;
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint64_t> tasks;
  std::atomic<std::uint64_t> stolen;
  std::atomic<std::uint32_t> error_length;  // bytes of error[] written by a failed initializer
  char error[kCacheLine * 3 - 32];
};
MPROC_SHM_LAYOUT(WorkerSlot);
static_assert(sizeof(WorkerSlot) % 8 == 0);

/// Where each part lives in the block, from the header's geometry.
struct PoolLayout {
  std::size_t control = 0;
  std::size_t slots = 0;
  std::size_t task_rings = 0;  // first task ring; ring i at task_rings + i * task_ring_bytes
  std::size_t result_ring = 0;
  std::size_t total = 0;
};

inline std::size_t round_up(std::size_t n, std::size_t to) {
  return (n + to - 1) / to * to;
}

inline PoolLayout pool_layout(const PoolHeader& h) {
  PoolLayout l;
  l.control = round_up(sizeof(PoolHeader), kCacheLine);
  l.slots = l.control + round_up(sizeof(PoolControl), kCacheLine);
  l.task_rings = round_up(l.slots + std::size_t{h.workers} * sizeof(WorkerSlot), 4096);
  l.result_ring = l.task_rings + std::size_t{h.rings} * h.task_ring_bytes;
  l.total = l.result_ring + h.result_ring_bytes;
  return l;
}

/// A view of a pool's block: the parent's after creating it, a worker's after validating it.
struct PoolView {
  PoolHeader header{};  // a private copy, validated
  PoolControl* control = nullptr;
  WorkerSlot* slots = nullptr;
  std::vector<PoolRing> rings;
  PoolRing results;
};

/// Validates a block's header (hostile or corrupt blocks give nullopt) and attaches its rings.
std::optional<PoolView> attach_pool(std::span<std::byte> block) noexcept;

// --- Records ---------------------------------------------------------------------------------

/// The start of a task record; then code_bytes of code reference, then the chunk's arguments,
/// or (kSpilled set in code_bytes) a SpillRef to them in the spill area (spill.hpp).
struct TaskRecordHeader {
  std::uint64_t job;
  std::uint32_t chunk;
  std::uint32_t code_bytes;
};
inline constexpr std::uint32_t kSpilled = 1U << 31;

struct SpillRef {
  std::uint64_t offset;
  std::uint64_t size;
};

/// The start of a result record; then the encoded results (ok), a RemoteFailure (error), or a
/// ResultPart and the part's bytes (part: results too large for one record, sent in order).
struct ResultRecordHeader {
  std::uint64_t job;
  std::uint32_t chunk;
  std::uint32_t status;  // kResultOk, kResultError, kResultPart
};
enum : std::uint32_t { kResultOk = 0, kResultError = 1, kResultPart = 2 };

struct ResultPart {
  std::uint64_t total;   // bytes of the whole result
  std::uint64_t offset;  // where this part goes; the part that reaches `total` completes it
};
/// The largest result the parent puts together from parts; a larger one fails its chunk.
inline constexpr std::uint64_t kMaxResultBytes = std::uint64_t{1} << 34;

/// What a worker sends back for a task that threw.
struct RemoteFailure {
  std::string type_name;
  std::string message;
  std::string where;
};

/// How code is named in task records: by address (fork workers are copies of the parent), or by
/// module and offset (spawn and forkserver workers run the same binary at other addresses).
enum class CodeNaming : std::uint8_t { address, module_offset };

/// A worker's target arguments.
struct PoolWorkerArgs {
  SharedBlock block;
  std::uint32_t index = 0;
  std::uint32_t maxtasks = 0;  // 0: no limit
  CodeNaming naming = CodeNaming::address;
  std::vector<std::byte> initializer;               // a code reference (empty: none)
  int spill_fd = -1;                                // the spill area (spill.hpp)
  std::shared_ptr<platform::UniqueFd> spill_owner;  // the descriptor, when it arrived encoded
};

/// The worker process's main (the target of every pool worker).
void pool_worker_main(PoolWorkerArgs args);

}  // namespace mproc::detail

template <>
struct mproc::codec<mproc::detail::PoolWorkerArgs> {
  static void encode(Encoder& out, const detail::PoolWorkerArgs& a) {
    detail::encode_block_ref(out, a.block, 0);
    out.put(a.index);
    out.put(a.maxtasks);
    out.put(static_cast<std::uint8_t>(a.naming));
    out.put(a.initializer);
    out.put(out.add_fd(a.spill_fd));
  }
  static detail::PoolWorkerArgs decode(Decoder& in) {
    detail::PoolWorkerArgs a;
    a.block = detail::decode_block_ref(in, sizeof(detail::PoolHeader), alignof(detail::PoolHeader)).first;
    a.index = in.get<std::uint32_t>();
    a.maxtasks = in.get<std::uint32_t>();
    const auto naming = in.get<std::uint8_t>();
    if (naming > 1) throw DecodeError("pool worker arguments: bad code naming");
    a.naming = static_cast<detail::CodeNaming>(naming);
    a.initializer = in.get<std::vector<std::byte>>();
    auto fd = platform::dup_cloexec(in.fd(in.get<std::uint32_t>()));
    if (!fd) throw DecodeError("pool worker arguments: cannot keep the spill area's descriptor");
    a.spill_owner = std::make_shared<platform::UniqueFd>(std::move(*fd));
    a.spill_fd = a.spill_owner->get();
    return a;
  }
};
