// Listener/Client (issue 7): a send_bytes/recv_bytes round trip over TCP loopback against the
// control, a raw socket ping-pong of the same size (send/recv of the message alone, no framing,
// no library), both to a fork()ed echo process. bench/run_net_bench.sh prints the ratio.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_main.hpp"
#include <mproc/mproc.hpp>

namespace {

bool read_all(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::recv(fd, c, n, 0);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_all(int fd, const void* p, std::size_t n) {
  const auto* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t r = ::send(fd, c, n, MSG_NOSIGNAL);
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// The control: a TCP loopback connection and fixed-size messages echoed back.
void BM_RawTcpPingPong(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(server, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(server, 1);
  ::getsockname(server, reinterpret_cast<sockaddr*>(&a), &len);
  const pid_t child = ::fork();
  if (child == 0) {
    const int c = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ::_exit(1);
    std::vector<char> buf(size);
    while (read_all(c, buf.data(), size) && write_all(c, buf.data(), size)) {
    }
    ::_exit(0);
  }
  const int conn = ::accept(server, nullptr, nullptr);
  const int one = 1;
  ::setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> buf(size, 'x');
  for (auto _ : state) {
    if (!write_all(conn, buf.data(), size) || !read_all(conn, buf.data(), size)) state.SkipWithError("echo");
  }
  ::close(conn);
  ::close(server);
  ::waitpid(child, nullptr, 0);
}

void echo(mproc::Address address) {
  auto c = mproc::Client(address);
  try {
    for (;;) c.send_bytes(c.recv_bytes());
  } catch (const mproc::EOFError&) {
  }
}

void BM_ListenerClientPingPong(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto listener = mproc::Listener({"127.0.0.1", 0});
  mproc::Process p(echo, listener.address());
  p.start();
  auto conn = listener.accept();
  std::vector<std::byte> message(size, std::byte{'x'});
  for (auto _ : state) {
    conn.send_bytes(message);
    if (conn.recv_bytes().size() != size) state.SkipWithError("echo");
  }
  conn.close();
  p.join();
}

BENCHMARK(BM_RawTcpPingPong)->Arg(64)->Arg(4096)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ListenerClientPingPong)->Arg(64)->Arg(4096)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

MPROC_BENCHMARK_MAIN();
