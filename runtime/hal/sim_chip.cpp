// The simulated board (open_gpio("sim"), SimBoard): line levels, line ownership and a 74HC595
// wired as on the SAKS board, in one named shared-memory segment.
//
// Every change of the board happens under its robust lock word: a request or release, a level
// change and the 74HC595 edges it causes. The shift register and the latch are updated by the
// process that drives the clock lines, from the levels in the segment, so the LED row is what the
// waveform produced: DS sampled on each rising edge of SHCP (Q0 <- DS, Qk <- Qk-1), the shift
// register copied to the outputs on each rising edge of STCP, LED i on output Q(7 - i), so that the
// SAKS driver's "bit i is LED i, bit 0 shifted first" holds. A wrong bit order shows as a mirrored
// row; a missing latch as an unchanged one.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

#include "hal/hal_backends.hpp"
#include "mproc/core/layout.hpp"
#include "mproc/core/robust_lock.hpp"
#include "mproc/core/wait_word.hpp"
#include "mproc/detail/liveness.hpp"
#include "mproc/hal/sim.hpp"
#include "queues/named.hpp"

namespace mproc::hal {
namespace detail {

namespace {

constexpr std::uint32_t kSimBoardKind = 0x4f495047;  // "GPIO"
constexpr std::size_t kLogEntries = 1024;
constexpr std::size_t kConsumerBytes = 32;  // 31 characters and a NUL, as the kernel keeps

struct SimLine {
  std::atomic<std::uint32_t> level;
  std::atomic<std::uint32_t> reserved;
  std::atomic<std::uint64_t> owner;  // the holder's process identity; 0: free
  char consumer[kConsumerBytes];     // written under the board lock
};

struct SimLogEntry {
  std::atomic<std::uint64_t> latch;  // its number; 0: empty
  std::atomic<std::uint64_t> time_ns;
  std::atomic<std::uint32_t> leds;
  std::uint32_t reserved;
};

struct SimBoardShared {
  CachePadded<core::RobustLockWord<>> lock;
  CachePadded<core::WaitWord<>> changed;  // notified on each latch
  std::atomic<std::uint32_t> shift_register;
  std::atomic<std::uint32_t> latched;
  std::atomic<std::uint64_t> shifts;
  std::atomic<std::uint64_t> latches;
  SimLine lines[kSimLines];
  SimLogEntry log[kLogEntries];
};
MPROC_SHM_LAYOUT(SimBoardShared);

std::uint8_t leds_of(std::uint32_t latched) {
  std::uint8_t row = 0;
  for (unsigned i = 0; i < 8; ++i) {
    if ((latched >> (7 - i)) & 1U) row = static_cast<std::uint8_t>(row | (1U << i));
  }
  return row;
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// The board lock, taken over from a dead holder as it is: every update under it is a few stores
// that leave the board consistent at each step but the last (a log entry), which is rewritten.
class BoardLock {
 public:
  explicit BoardLock(SimBoardShared& b) : b_(b) {
    (void)b_.lock->lock(mproc::detail::process_identity(), std::nullopt);
  }
  ~BoardLock() { b_.lock->unlock(); }
  BoardLock(const BoardLock&) = delete;
  BoardLock& operator=(const BoardLock&) = delete;

 private:
  SimBoardShared& b_;
};

std::string segment_name(std::string_view board) {
  return "mproc-gpio-" + std::string(board);
}

}  // namespace

struct SimBoardHandle {
  std::shared_ptr<mproc::detail::NamedRegion> region;
  SimBoardShared* board = nullptr;
  std::string name;

  // The process that made the board removes its name with its last handle, unless another live
  // process still holds lines on it: then the board stays, for that process and its watchers,
  // and the next open_gpio of the name attaches to it (docs/hal.md).
  ~SimBoardHandle() {
    if (!region || !region->owned_here()) return;
    const std::uint64_t self = mproc::detail::process_identity();
    const BoardLock guard(*board);
    for (const SimLine& line : board->lines) {
      // relaxed: under the board lock.
      const std::uint64_t owner = line.owner.load(std::memory_order_relaxed);
      if (owner != 0 && owner != self && mproc::detail::process_alive(owner)) {
        region->disown();
        return;
      }
    }
  }
};

namespace {

std::shared_ptr<SimBoardHandle> make_handle(std::shared_ptr<mproc::detail::NamedRegion> region,
                                            std::string_view name) {
  auto h = std::make_shared<SimBoardHandle>();
  h->board = reinterpret_cast<SimBoardShared*>(region->payload().data());
  h->region = std::move(region);
  h->name = std::string(name);
  return h;
}

std::shared_ptr<SimBoardHandle> open_board(std::string_view name, bool create) {
  const std::string segment = segment_name(name);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (create) {
      try {
        auto region =
            mproc::detail::create_named_region(segment, sizeof(SimBoardShared), abi_hash<SimBoardShared>(),
                                               kSimBoardKind, "simulated GPIO board");
        new (region->payload().data()) SimBoardShared{};
        region->segment().publish();
        return make_handle(std::move(region), name);
      } catch (const FileExistsError&) {
      }
    }
    try {
      return make_handle(mproc::detail::open_named_region(segment, abi_hash<SimBoardShared>(), kSimBoardKind,
                                                          sizeof(SimBoardShared), "simulated GPIO board"),
                         name);
    } catch (const FileNotFoundError&) {
      if (!create) throw;  // else: its creator unlinked it between our two calls; make it again
    }
  }
  throw GpioError(EAGAIN, "cannot open the simulated GPIO board '" + std::string(name) + "'");
}

[[noreturn]] void throw_line_not_found(unsigned offset) {
  throw LineNotFound(ENOENT, "the simulated board has no line " + std::to_string(offset) + " (lines 0 to " +
                                 std::to_string(kSimLines - 1) + ")");
}

class SimOutputLines final : public OutputLines {
 public:
  SimOutputLines(std::shared_ptr<SimBoardHandle> h, std::vector<unsigned> offsets, std::vector<bool> values)
      : h_(std::move(h)), offsets_(std::move(offsets)), values_(std::move(values)) {}

  ~SimOutputLines() override {
    SimBoardShared& b = *h_->board;
    const BoardLock guard(b);
    const std::uint64_t self = mproc::detail::process_identity();
    for (unsigned offset : offsets_) {
      SimLine& line = b.lines[offset];
      // relaxed (both): under the board lock.
      if (line.owner.load(std::memory_order_relaxed) != self) continue;  // a forked copy's: not ours
      line.owner.store(0, std::memory_order_relaxed);
      std::memset(line.consumer, 0, sizeof line.consumer);
    }
  }

  void set(std::size_t index, bool value) override {
    if (index >= offsets_.size()) throw IndexError("line index out of range");
    drive(*h_->board, offsets_[index], value);
    values_[index] = value;
  }

  [[nodiscard]] bool get(std::size_t index) const override {
    if (index >= offsets_.size()) throw IndexError("line index out of range");
    return values_[index];
  }

  [[nodiscard]] std::size_t size() const noexcept override { return offsets_.size(); }

  // A level change and what the 74HC595 does with it.
  static void drive(SimBoardShared& b, unsigned offset, bool value) {
    const BoardLock guard(b);
    SimLine& line = b.lines[offset];
    // relaxed (all the board's fields below): written under the board lock; readers outside it
    // (SimBoard) take snapshots, and a latch is announced through `changed`.
    const bool was = line.level.load(std::memory_order_relaxed) != 0;
    line.level.store(value ? 1 : 0, std::memory_order_relaxed);
    if (was || !value) return;  // only rising edges clock the 74HC595
    if (offset == kSimShcp) {
      const std::uint32_t ds = b.lines[kSimDs].level.load(std::memory_order_relaxed);
      const std::uint32_t sr = b.shift_register.load(std::memory_order_relaxed);
      b.shift_register.store(((sr << 1) | (ds & 1U)) & 0xffU, std::memory_order_relaxed);
      b.shifts.fetch_add(1, std::memory_order_relaxed);
    } else if (offset == kSimStcp) {
      const std::uint32_t sr = b.shift_register.load(std::memory_order_relaxed);
      b.latched.store(sr, std::memory_order_relaxed);
      const std::uint64_t n = b.latches.load(std::memory_order_relaxed) + 1;
      // The log entry is a seqlock whose version is its latch number: 0 while it is rewritten.
      // Readers (SimBoard::changes) never take the board lock, so a stopped watcher cannot stall
      // the task.
      SimLogEntry& e = b.log[(n - 1) % kLogEntries];
      // relaxed: ordered before the new fields by the release fence below.
      e.latch.store(0, std::memory_order_relaxed);
      // [sync:gpio.log] release fence: a reader that sees the new fields also sees the 0 above.
      std::atomic_thread_fence(std::memory_order_release);
      e.time_ns.store(now_ns(), std::memory_order_relaxed);
      e.leds.store(leds_of(sr), std::memory_order_relaxed);
      // [sync:gpio.log] release: the fields above are visible to a reader that acquires n.
      e.latch.store(n, std::memory_order_release);
      // [sync:gpio.latch] release: a reader that acquires the count sees the row and the entry.
      b.latches.store(n, std::memory_order_release);
      b.changed->notify_all();
    }
  }

 private:
  std::shared_ptr<SimBoardHandle> h_;
  std::vector<unsigned> offsets_;
  std::vector<bool> values_;
};

class SimChip final : public GpioChip {
 public:
  explicit SimChip(std::shared_ptr<SimBoardHandle> h) : h_(std::move(h)) {}

  [[nodiscard]] std::string name() const override { return "sim:" + h_->name; }
  [[nodiscard]] std::string label() const override { return "sim"; }
  [[nodiscard]] unsigned num_lines() const override { return kSimLines; }

  [[nodiscard]] unsigned find_line(std::string_view name) const override {
    if (name.starts_with("GPIO")) {
      unsigned n = 0;
      const auto digits = name.substr(4);
      bool ok = !digits.empty() && digits.size() <= 2;
      for (char c : digits) {
        ok = ok && c >= '0' && c <= '9';
        n = n * 10 + static_cast<unsigned>(c - '0');
      }
      if (ok && n < kSimLines && std::to_string(n) == digits) return n;
    }
    throw LineNotFound(ENOENT, "the simulated board has no line named '" + std::string(name) + "'");
  }

  [[nodiscard]] std::optional<std::string> consumer(unsigned offset) const override {
    if (offset >= kSimLines) throw_line_not_found(offset);
    SimBoardShared& b = *h_->board;
    const BoardLock guard(b);
    const SimLine& line = b.lines[offset];
    // relaxed: under the board lock.
    const std::uint64_t owner = line.owner.load(std::memory_order_relaxed);
    if (owner == 0 || !mproc::detail::process_alive(owner)) return std::nullopt;
    return std::string(line.consumer, strnlen(line.consumer, sizeof line.consumer));
  }

  std::unique_ptr<OutputLines> request_output(std::span<const Line> lines, std::string_view consumer,
                                              std::span<const bool> initial) override {
    if (!initial.empty() && initial.size() != lines.size()) {
      throw ValueError("request_output: " + std::to_string(initial.size()) + " initial values for " +
                       std::to_string(lines.size()) + " lines");
    }
    std::vector<unsigned> offsets;
    for (const Line& l : lines) {
      const unsigned offset =
          std::holds_alternative<unsigned>(l) ? std::get<unsigned>(l) : find_line(std::get<std::string>(l));
      if (offset >= kSimLines) throw_line_not_found(offset);
      if (std::find(offsets.begin(), offsets.end(), offset) != offsets.end()) {
        throw ValueError("request_output: line " + std::to_string(offset) + " is listed twice");
      }
      offsets.push_back(offset);
    }
    std::vector<bool> values(offsets.size(), false);
    for (std::size_t i = 0; i < initial.size(); ++i) values[i] = initial[i];
    SimBoardShared& b = *h_->board;
    const std::uint64_t self = mproc::detail::process_identity();
    {
      const BoardLock guard(b);
      for (unsigned offset : offsets) {
        // relaxed: under the board lock.
        const std::uint64_t owner = b.lines[offset].owner.load(std::memory_order_relaxed);
        // A holder that died released its lines, as the kernel releases a dead process's.
        if (owner != 0 && mproc::detail::process_alive(owner)) {
          const SimLine& line = b.lines[offset];
          throw LineBusy(EBUSY, "line " + std::to_string(offset) + " of the simulated board is held by '" +
                                    std::string(line.consumer, strnlen(line.consumer, sizeof line.consumer)) +
                                    "'");
        }
      }
      for (unsigned offset : offsets) {
        SimLine& line = b.lines[offset];
        // relaxed: under the board lock.
        line.owner.store(self, std::memory_order_relaxed);
        std::memset(line.consumer, 0, sizeof line.consumer);
        std::memcpy(line.consumer, consumer.data(), std::min(consumer.size(), kConsumerBytes - 1));
      }
    }
    // The initial values are driven at once, as the kernel applies default values at request.
    for (std::size_t i = 0; i < offsets.size(); ++i) SimOutputLines::drive(b, offsets[i], values[i]);
    return std::make_unique<SimOutputLines>(h_, std::move(offsets), std::move(values));
  }

 private:
  std::shared_ptr<SimBoardHandle> h_;
};

}  // namespace

std::unique_ptr<GpioChip> open_sim_chip(std::string_view board) {
  if (board.empty() || board.size() > 64 || board.find('/') != std::string_view::npos) {
    throw ValueError("a simulated board's name must be 1 to 64 characters without '/': '" +
                     std::string(board) + "'");
  }
  return std::make_unique<SimChip>(open_board(board, /*create=*/true));
}

}  // namespace detail

// --- SimBoard ----------------------------------------------------------------------------------

using detail::SimBoardShared;

SimBoard SimBoard::attach(std::string_view name) {
  return SimBoard(detail::open_board(name, /*create=*/false));
}

const std::string& SimBoard::name() const noexcept {
  return handle_->name;
}

bool SimBoard::level(unsigned offset) const {
  if (offset >= kSimLines) return false;
  // relaxed: a snapshot of a level (see drive()).
  return handle_->board->lines[offset].level.load(std::memory_order_relaxed) != 0;
}

std::uint8_t SimBoard::led_byte() const {
  // [sync:gpio.latch] acquire: the count first, so the row read after it is at least that new.
  (void)handle_->board->latches.load(std::memory_order_acquire);
  // relaxed: ordered after the acquire above.
  return detail::leds_of(handle_->board->latched.load(std::memory_order_relaxed));
}

std::array<bool, 8> SimBoard::leds() const {
  const std::uint8_t row = led_byte();
  std::array<bool, 8> out{};
  for (unsigned i = 0; i < 8; ++i) out[i] = ((row >> i) & 1U) != 0;
  return out;
}

std::uint64_t SimBoard::shifts() const {
  // relaxed: a snapshot (see drive()).
  return handle_->board->shifts.load(std::memory_order_relaxed);
}

std::uint64_t SimBoard::latches() const {
  // [sync:gpio.latch] acquire: pairs with the release store in drive().
  return handle_->board->latches.load(std::memory_order_acquire);
}

std::vector<SimBoard::Change> SimBoard::changes(std::uint64_t after) const {
  const SimBoardShared& b = *handle_->board;
  const std::uint64_t last = latches();
  if (after >= last) return {};
  // At most the log's length, whatever the (shared, so untrusted) count says.
  const std::uint64_t first =
      std::max<std::uint64_t>(after + 1, last - std::min<std::uint64_t>(last, detail::kLogEntries) + 1);
  std::vector<Change> out;
  for (std::uint64_t n = first; n <= last && n != 0; ++n) {
    const detail::SimLogEntry& e = b.log[(n - 1) % detail::kLogEntries];
    // [sync:gpio.log] acquire: pairs with the writer's release store of the entry's number.
    if (e.latch.load(std::memory_order_acquire) != n) continue;  // rewritten meanwhile: gone
    // relaxed (both): checked below, as a seqlock's reader checks its version.
    const std::uint64_t time_ns = e.time_ns.load(std::memory_order_relaxed);
    const auto leds = static_cast<std::uint8_t>(e.leds.load(std::memory_order_relaxed));
    // [sync:gpio.log] acquire fence: the fields above were read before the number is read again.
    std::atomic_thread_fence(std::memory_order_acquire);
    // relaxed: ordered by the fence above.
    if (e.latch.load(std::memory_order_relaxed) != n) continue;
    out.push_back({n, time_ns, leds});
  }
  return out;
}

std::uint64_t SimBoard::wait_change(std::uint64_t seen, std::chrono::milliseconds timeout) const {
  SimBoardShared& b = *handle_->board;
  // relaxed: a latch count; what changed is read afterwards (leds(), changes()).
  auto changed = [&] { return b.latches.load(std::memory_order_relaxed) != seen; };
  const auto limit = std::min(timeout, std::chrono::milliseconds(std::chrono::hours(24 * 365)));
  (void)b.changed->wait_until(changed, std::chrono::steady_clock::now() + limit);
  return latches();
}

}  // namespace mproc::hal
