// The manager's server (runtime/managers/server.cpp): the objects, the requests' meaning, and the
// loop that serves connections. Used by a server process (BaseManager::start, Manager) and by
// BaseManager::serve_forever in the caller's own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

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
};

/// How long either side of a new connection waits for the other during the handshake (and a
/// client for its pipe to be attached).
inline constexpr std::chrono::milliseconds kHandshakeTimeout{20000};

using TypeRegistry = std::map<std::string, TypeEntry, std::less<>>;

class ObjectTable;

/// What the serving threads share; kept alive by each of them, so a thread still finishing a call
/// after serve_forever() returned touches nothing freed.
class ServerState : public std::enable_shared_from_this<ServerState> {
 public:
  ServerState(TypeRegistry types, std::size_t max_request);
  ~ServerState();
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;

  /// Serves `listener` until stop() (the object must be owned by a std::shared_ptr): a thread per connection,
  /// each authenticated with `authkey` (in that thread, so a silent client cannot hold up the others).
  void serve(Listener& listener, const std::string& authkey);
  /// Makes serve() return and ends every connection; callable from any thread, idempotent.
  void stop() noexcept;
  [[nodiscard]] bool stopped() const noexcept;

  /// The answer to one request.
  ManagerResponse handle(const ManagerRequest& request);
  [[nodiscard]] std::size_t max_request() const noexcept { return max_request_; }

  /// Connections that stop() must end (their socket descriptors).
  void track(int fd);
  void untrack(int fd);

 private:
  std::unique_ptr<ObjectTable> objects_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;  // guards listener_fd_ and live_
  int listener_fd_ = -1;
  std::set<int> live_;
  std::size_t max_request_;
};

/// A server process's body: listens at `address`, reports the address bound (or why it could not
/// bind) on `report`, and serves until a shutdown request.
void run_server(const Address& address, const std::string& authkey, TypeRegistry types,
                std::size_t max_request, Connection report);

}  // namespace mproc::detail
