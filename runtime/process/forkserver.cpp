// The forkserver: a single-threaded copy of the program, started by spawn on first use, that
// forks children on request. Its children start from a clean, single-threaded state (unlike fork
// children of a threaded parent) without paying for a new exec (unlike spawn).
//
// Protocol, over a SOCK_SEQPACKET socket pair (one message per request or reply):
//   request  bytes: Request; descriptors: [boot payload memfd, argument descriptors...]
//   reply    bytes: Reply;   descriptors: [pidfd of the child, read end of its status pipe]
// The server watches SIGCHLD (signalfd), reaps each child and writes its 4-byte wait status to
// the child's status pipe: that pipe is the child's sentinel in the parent. The server exits when
// its socket closes or its parent (watched through a pidfd) ends.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

#include "platform/linux/process.hpp"
#include "process/state.hpp"

namespace mproc::detail {
namespace {

struct Request {
  std::uint32_t magic;
  std::uint32_t descriptors;
};

struct Reply {
  std::int32_t pid_or_error;  // > 0: the child's pid; < 0: -errno of the failed fork
};

constexpr std::uint32_t kRequestMagic = 0x6d706673;  // "mpfs"
constexpr int kServerSocketFd = 3;
constexpr int kServerParentFd = 4;
constexpr std::size_t kMaxDescriptors = 16;
constexpr std::chrono::nanoseconds kReplyTimeout = std::chrono::seconds(30);
constexpr std::chrono::nanoseconds kServerExitGrace = std::chrono::seconds(5);

struct Client {
  std::mutex mutex;  // one request/reply exchange at a time
  platform::UniqueFd socket;
  platform::UniqueFd pidfd;
  std::atomic<bool> running{false};  // a server was started and not yet stopped
};

// Made during static initialization, in the parent, never destroyed (used at exit). A lazily
// made one would be allocated again in every fork child that looks at it, copying heap pages.
Client* const g_client = new Client();

Client& client() {
  return *g_client;
}

void start_server_locked(Client& c) {
  auto& rt = Runtime::get();
  auto pair = platform::make_seqpacket_pair();
  if (!pair) throw_os_error(pair.error(), "socketpair for the forkserver");
  const int fds[] = {pair->second.get(), rt.self_pidfd()};
  auto pid = platform::spawn_self({rt.argv0, kForkserverFlag}, fds);
  if (!pid) throw_os_error(pid.error(), "posix_spawn of the forkserver");
  auto pidfd = platform::open_pidfd(*pid);
  if (!pidfd) {
    platform::kill_and_reap(*pid);
    throw_os_error(pidfd.error(), "pidfd_open of the forkserver");
  }
  c.socket = std::move(pair->first);
  c.pidfd = std::move(*pidfd);
  // [sync:forkserver.running] release: pairs with the acquire in forkserver_shutdown().
  c.running.store(true, std::memory_order_release);
}

void stop_server_locked(Client& c) noexcept {
  if (!c.socket) return;
  // relaxed: written under the mutex; the acquire side only skips work when it reads false.
  c.running.store(false, std::memory_order_relaxed);
  c.socket.reset();  // the server sees end of file and exits
  if (c.pidfd) {
    // A copy of the socket kept by some other process (a raw fork) would keep the server
    // waiting for more; do not let it hold this process's exit hostage.
    auto ended = platform::wait_readable(c.pidfd.get(), kServerExitGrace.count());
    if (!ended || !*ended) (void)platform::signal_pidfd(c.pidfd.get(), SIGKILL);
    (void)platform::reap_pidfd(c.pidfd.get(), true);
  }
  c.pidfd.reset();
}

// Fails with EMFILE (throwing) unless this process can take the two descriptors of a reply.
// Reserving them first means a reply is never cut short by our own descriptor limit, which
// would leave a forked child without the pidfd that tracks it.
std::pair<platform::UniqueFd, platform::UniqueFd> reserve_reply_descriptors(const Client& c) {
  auto first = platform::dup_cloexec(c.socket.get());
  if (!first) throw_os_error(first.error(), "descriptors for a forkserver child");
  auto second = platform::dup_cloexec(c.socket.get());
  if (!second) throw_os_error(second.error(), "descriptors for a forkserver child");
  return {std::move(*first), std::move(*second)};
}

}  // namespace

ForkserverChild forkserver_start(std::span<const std::byte>, std::span<const int> fds) {
  if (fds.size() > kMaxDescriptors) {
    throw ValueError("too many file descriptors for one forkserver child (at most " +
                     std::to_string(kMaxDescriptors - 1) + " with its arguments)");
  }
  auto& c = client();
  std::lock_guard lock(c.mutex);
  for (int attempt = 0;; ++attempt) {
    if (!c.socket) start_server_locked(c);
    auto reserved = reserve_reply_descriptors(c);
    const Request request{kRequestMagic, static_cast<std::uint32_t>(fds.size())};
    auto sent = platform::send_message(c.socket.get(), std::as_bytes(std::span(&request, 1)), fds);
    if (!sent) {
      // The server is gone (killed from outside): start a new one, once.
      stop_server_locked(c);
      if (attempt == 0 && sent.error() == std::errc::broken_pipe) continue;
      throw_os_error(sent.error(), "request to the forkserver");
    }
    auto ready = platform::wait_readable(c.socket.get(), kReplyTimeout.count());
    if (!ready || !*ready) {
      stop_server_locked(c);  // a server that does not answer is useless: the next start makes another
      throw ProcessError(
          "the forkserver did not answer within " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kReplyTimeout).count()) +
          " s; it was stopped");
    }
    reserved = {};  // the reply's descriptors take these places
    auto reply = platform::receive_message(c.socket.get(), sizeof(Reply), 2);
    if (!reply || reply->bytes.size() != sizeof(Reply)) {
      stop_server_locked(c);
      throw ProcessError("the forkserver ended without starting the process");
    }
    Reply r{};
    std::memcpy(&r, reply->bytes.data(), sizeof r);
    if (r.pid_or_error <= 0) throw_os_error(-r.pid_or_error, "the forkserver could not start the process");
    if (reply->truncated || reply->fds.size() != 2) {
      // Without its pidfd the child cannot be tracked: stop it. It is the server's child and not
      // reaped until the server sees it end, so its pid cannot have been reused yet.
      platform::signal_pid(r.pid_or_error, SIGKILL);
      throw_os_error(EMFILE, "receiving the descriptors of a forkserver child");
    }
    return ForkserverChild{r.pid_or_error, std::move(reply->fds[0]), std::move(reply->fds[1])};
  }
}

void forkserver_shutdown() noexcept {
  auto& c = client();
  // [sync:forkserver.running] acquire: pairs with the release in start_server_locked(); a
  // process that never started a server (every fork child) returns without writing anything.
  if (!c.running.load(std::memory_order_acquire)) return;
  std::lock_guard lock(c.mutex);
  stop_server_locked(c);
}

void forkserver_forget() noexcept {
  auto& c = client();
  // A fork child: the server belongs to the parent. Nothing to do (and no page to copy) when
  // the parent had none. relaxed: the child is single-threaded.
  if (!c.running.load(std::memory_order_relaxed)) return;
  new (&c.mutex) std::mutex();  // another thread of the parent may have held it
  c.socket.reset();
  c.pidfd.reset();
  c.running.store(false, std::memory_order_relaxed);  // relaxed: single-threaded, as above
}

namespace {

void reply_error(int err) {
  const Reply r{-err};
  (void)platform::send_message(kServerSocketFd, std::as_bytes(std::span(&r, 1)), {});
}

// Serves one request; returns false when the socket is closed. Every request gets a reply, so
// the client never waits for an answer that will not come.
bool serve_request(std::map<pid_t, platform::UniqueFd>& status_writers) {
  auto message = platform::receive_message(kServerSocketFd, sizeof(Request), kMaxDescriptors);
  if (!message) return message.error() == std::errc::interrupted;
  if (message->bytes.empty() && message->fds.empty() && !message->truncated) return false;  // end of file
  if (message->truncated) {
    reply_error(message->bytes.size() == sizeof(Request) ? EMFILE : EBADMSG);
    return true;
  }
  Request request{};
  if (message->bytes.size() != sizeof request) {
    reply_error(EBADMSG);
    return true;
  }
  std::memcpy(&request, message->bytes.data(), sizeof request);
  if (request.magic != kRequestMagic || request.descriptors != message->fds.size() || message->fds.empty()) {
    reply_error(EBADMSG);
    return true;
  }
  auto pipe = platform::make_pipe();
  if (!pipe) {
    reply_error(pipe.error().value());
    return true;
  }
  auto pid = platform::fork_process();
  if (!pid) {
    reply_error(pid.error().value());
    return true;
  }
  if (*pid == 0) {
    // The child: payload at 3, the parent's pidfd at 4, argument descriptors from 5; nothing else.
    platform::reset_child_signals();
    std::vector<int> fds{message->fds[0].get(), kServerParentFd};
    for (std::size_t i = 1; i < message->fds.size(); ++i) fds.push_back(message->fds[i].get());
    if (auto arranged = platform::arrange_child_fds(fds); !arranged) {
      std::fprintf(stderr, "mproc forkserver: cannot arrange the child's descriptors: %s\n",
                   arranged.error().message().c_str());
      platform::exit_now(1);
    }
    for (auto& fd : message->fds) (void)fd.release();  // already closed by arrange_child_fds
    boot_from_payload();
  }
  auto pidfd = platform::open_pidfd(*pid);
  if (!pidfd) {
    platform::kill_and_reap(*pid);
    reply_error(pidfd.error().value());
    return true;
  }
  status_writers[*pid] = std::move(pipe->second);
  const Reply r{*pid};
  const int out_fds[] = {pidfd->get(), pipe->first.get()};
  (void)platform::send_message(kServerSocketFd, std::as_bytes(std::span(&r, 1)), out_fds);
  return true;
}

void report_ended_children(std::map<pid_t, platform::UniqueFd>& status_writers) {
  while (auto ended = platform::reap_any_child()) {
    auto it = status_writers.find(ended->first);
    if (it == status_writers.end()) continue;
    const int status = ended->second;
    (void)platform::write_all(it->second.get(), &status, sizeof status);
    status_writers.erase(it);  // closes the write end
  }
}

}  // namespace

void forkserver_main() noexcept {
  platform::set_process_title("mproc-forksrv");
  platform::ignore_interrupts();  // Ctrl-C reaches the whole process group: the parent decides
  auto sigchld = platform::make_sigchld_fd();
  if (!sigchld) {
    std::fprintf(stderr, "mproc forkserver: signalfd: %s\n", sigchld.error().message().c_str());
    platform::exit_now(1);
  }
  std::map<pid_t, platform::UniqueFd> status_writers;
  const int watched[] = {kServerSocketFd, sigchld->get(), kServerParentFd};
  for (;;) {
    bool ready[3] = {false, false, false};
    auto n = platform::poll_readable(watched, ready, -1);
    if (!n) {
      if (n.error() == std::errc::interrupted) continue;
      break;
    }
    if (ready[1]) {
      platform::drain_signal_fd(sigchld->get());
      report_ended_children(status_writers);
    }
    if (ready[0] && !serve_request(status_writers)) break;
    if (ready[2]) break;  // the parent ended
  }
  platform::exit_now(0);
}

}  // namespace mproc::detail
