// The manager's server (runtime/managers/server.cpp): the objects, the requests' meaning, and the
// loop that serves connections. Used by a server process (BaseManager::start, Manager) and by
// BaseManager::serve_forever in the caller's own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mproc/connection.hpp"
#include "mproc/listener.hpp"
#include "mproc/managers.hpp"

namespace mproc::detail {

/// How a response failed; the client throws the matching exception.
enum ManagerStatus : std::uint8_t {
  kOk = 0,
  kIndexError,
  kKeyError,
  kAttributeError,
  kValueError,
  kTypeError,
  kRemoteError,
  kEmpty,
  kFull,
  kShuttingDown,  // a wait in the server ended because the server stops
};

/// How long either side of a new connection waits for the other during the handshake (and a
/// client for its pipe to be attached).
inline constexpr std::chrono::milliseconds kHandshakeTimeout{20000};

/// A manager's listening socket: no key at this level (the handshake runs in each connection's
/// thread, see ServerState::serve), and a backlog for many clients connecting at once.
inline Listener manager_listener(const Address& address) {
  return Listener(address, std::nullopt, 128);
}

/// How many connections may be in their handshake at once; more are dropped at once (a flood of
/// silent connections then costs 64 threads for 20 s, not the server).
inline constexpr int kMaxHandshakes = 64;

/// Asked by a call that waits (a server-side queue's get): whether its client has gone.
using ClientGone = std::function<bool()>;

using TypeRegistry = std::map<std::string, TypeEntry, std::less<>>;

class ObjectTable;

/// What the serving threads share; kept alive by each of them.
class ServerState : public std::enable_shared_from_this<ServerState> {
 public:
  ServerState(TypeRegistry types, std::size_t max_request);
  ~ServerState();
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;

  /// Serves `listener` until stop() (the object must be owned by a std::shared_ptr): a thread per
  /// connection, each authenticated with `authkey` in that thread, so a silent client cannot hold
  /// up the others. Returns when every connection's thread has ended (a method that never
  /// returns keeps it waiting).
  void serve(Listener& listener, const std::string& authkey);
  /// Makes serve() return and ends every connection; callable from any thread, idempotent.
  void stop() noexcept;
  [[nodiscard]] bool stopped() const noexcept;

  /// The answer to one request; client_gone (may be empty) tells a call that waits whether its
  /// client is still there.
  ManagerResponse handle(const ManagerRequest& request, const ClientGone& client_gone = {});
  [[nodiscard]] std::size_t max_request() const noexcept { return max_request_; }

  /// A new connection's bookkeeping: nullopt when too many connections are still in their
  /// handshake (the caller drops this one). Otherwise a duplicate of its descriptor, which stop()
  /// shuts down (a duplicate, so that the number stays this connection's even after the
  /// connection's own descriptor is closed), and the connection counts as running.
  std::optional<int> admit(int fd);
  /// The connection passed its handshake.
  void authenticated() noexcept;
  /// The connection's thread ends: closes the duplicate; the last one wakes serve().
  void leave(int duplicate, bool was_authenticated) noexcept;

 private:
  /// Joins the connection threads that have finished (all of them when `all`): a thread is
  /// joined, not detached, so that nothing of it (its thread-local state) outlives serve().
  void reap(bool all);

 public:
 private:
  std::atomic<bool> stop_{false};  // before objects_, which keeps a reference to it
  std::unique_ptr<ObjectTable> objects_;
  std::mutex mutex_;  // guards what follows
  std::condition_variable idle_;
  int listener_fd_ = -1;
  std::set<int> live_;                              // the duplicates of the connections' descriptors
  int running_ = 0;                                 // connection threads
  std::map<std::thread::id, std::thread> threads_;  // joined once finished (see reap)
  std::vector<std::thread::id> finished_;
  int handshaking_ = 0;  // of which not yet authenticated
  std::size_t max_request_;
};

/// A server process's body: listens at `address`, reports the address bound (or why it could not
/// bind) on `report`, and serves until a shutdown request.
void run_server(const Address& address, const std::string& authkey, TypeRegistry types,
                std::size_t max_request, Connection report);

}  // namespace mproc::detail
