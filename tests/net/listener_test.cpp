// Listener, Client and SocketConnection (issue 7, first part): mproc to mproc over TCP and Unix
// sockets, the authkey handshake with right and wrong keys, the frame format's edges and hostile
// frames, and CPython's multiprocessing.connection in both directions for each Python present
// (3.11 speaks the legacy HMAC-MD5 handshake, 3.12 and 3.13 the {sha256} one).
#include "mproc/listener.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "children.hpp"
#include "expect_error.hpp"
#include "mproc/process.hpp"
#include "shared_memory/shm_test_support.hpp"

namespace {

using namespace std::chrono_literals;

void echo_client(mproc::Address address, std::string key) {
  auto conn = mproc::Client(address, key);
  for (;;) {
    std::vector<std::byte> m;
    try {
      m = conn.recv_bytes();
    } catch (const mproc::EOFError&) {
      return;
    }
    conn.send_bytes(m);
  }
}

TEST(Listener, TcpRoundTripWithAuthentication) {
  auto listener = mproc::Listener({"127.0.0.1", 0}, "secret");
  ASSERT_TRUE(listener.address().is_tcp());
  ASSERT_GT(listener.address().port(), 0);
  mproc_test::Children children;
  children.start(mproc::Process(echo_client, listener.address(), std::string("secret")));
  auto conn = listener.accept();
  ASSERT_TRUE(listener.last_accepted());
  EXPECT_EQ(listener.last_accepted()->host(), "127.0.0.1");
  for (std::size_t n : {0UL, 1UL, 100UL, 16384UL, 16385UL, 3UL << 20}) {
    std::vector<std::byte> m(n);
    for (std::size_t i = 0; i < n; ++i) m[i] = static_cast<std::byte>(i * 7);
    conn.send_bytes(m);
    EXPECT_EQ(conn.recv_bytes(), m) << n << " bytes";
  }
  conn.send(std::vector<std::string>{"a", "bc"});
  EXPECT_EQ(conn.recv<std::vector<std::string>>(), (std::vector<std::string>{"a", "bc"}));
  EXPECT_FALSE(conn.poll(10ms));
  conn.close();
  children.expect_all_exit(0);
}

TEST(Listener, UnixSocket) {
  const std::string path = "/tmp/mproc-test-" + std::to_string(getpid()) + "-sock";
  {
    auto listener = mproc::Listener(path, "k");
    EXPECT_FALSE(listener.address().is_tcp());
    mproc_test::Children children;
    children.start(mproc::Process(echo_client, listener.address(), std::string("k")));
    auto conn = listener.accept();
    conn.send_bytes(std::string_view("over a unix socket"));
    EXPECT_EQ(conn.recv_text(), "over a unix socket");
    conn.close();
    children.expect_all_exit(0);
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "close() removes the socket's path";
}

void wrong_key_client(mproc::Address address) {
  try {
    (void)mproc::Client(address, "wrong");
  } catch (const mproc::AuthenticationError& e) {
    if (std::string(e.what()) == "digest sent was rejected") throw mproc::SystemExit(7);
  }
}

TEST(Listener, WrongKeyFailsOnBothSides) {
  auto listener = mproc::Listener({"127.0.0.1", 0}, "secret");
  mproc_test::Children children;
  children.start(mproc::Process(wrong_key_client, listener.address()));
  expect_error<mproc::AuthenticationError>([&] { (void)listener.accept(); }, "digest received was wrong");
  children.expect_all_exit(7);
}

TEST(Listener, Errors) {
  auto listener = mproc::Listener({"127.0.0.1", 0});
  const auto address = listener.address();
  listener.close();
  listener.close();  // idempotent
  expect_error<mproc::OSError>([&] { (void)listener.accept(); }, "listener is closed: Bad file descriptor");
  EXPECT_THROW((void)mproc::Client(address), mproc::OSError) << "nobody listens any more";
  EXPECT_THROW((void)mproc::Client(std::string("/tmp/mproc-no-such-socket")), mproc::FileNotFoundError);
  mproc::SocketConnection closed;
  EXPECT_THROW((void)closed.fileno(), mproc::OSError);
}

// A raw socket peer writing what it likes into a connection.
struct RawPeer {
  mproc::SocketConnection conn;
  int raw = -1;
  RawPeer() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    conn = mproc::SocketConnection(sv[0]);
    raw = sv[1];
  }
  ~RawPeer() {
    if (raw >= 0) ::close(raw);
  }
  void write(std::initializer_list<unsigned> bytes) {
    std::vector<unsigned char> b(bytes.begin(), bytes.end());
    ASSERT_EQ(::write(raw, b.data(), b.size()), static_cast<ssize_t>(b.size()));
  }
  void hang_up() {
    ::close(raw);
    raw = -1;
  }
};

// multiprocessing.connection.wait over sockets: only the connections with a message (or a peer
// that hung up) are returned, in the order given; a timeout returns none.
TEST(SocketConnection, WaitReturnsTheReadyOnes) {
  auto listener = mproc::Listener({"127.0.0.1", 0}, std::nullopt, 4);  // no key: no handshake to interleave
  auto c1 = mproc::Client(listener.address());
  auto s1 = listener.accept();
  auto c2 = mproc::Client(listener.address());
  auto s2 = listener.accept();
  auto c3 = mproc::Client(listener.address());
  auto s3 = listener.accept();

  EXPECT_TRUE(mproc::wait({&s1, &s2, &s3}, 20ms).empty());
  c2.send_bytes(std::string_view("two"));
  EXPECT_EQ(mproc::wait({&s1, &s2, &s3}), (std::vector<mproc::SocketConnection*>{&s2}));
  EXPECT_EQ(s2.recv_text(), "two");
  c3.close();  // the end of the stream is ready too
  c1.send_bytes(std::string_view("one"));
  ASSERT_TRUE(mproc_test::eventually([&] { return mproc::wait({&s1, &s2, &s3}, 0ms).size() == 2; }));
  EXPECT_EQ(mproc::wait({&s1, &s2, &s3}, 0ms), (std::vector<mproc::SocketConnection*>{&s1, &s3}));
  EXPECT_EQ(s1.recv_text(), "one");
  EXPECT_THROW((void)s3.recv_bytes(), mproc::EOFError);
  s3.close();
  expect_error<mproc::OSError>(
      [&] {
        (void)mproc::wait({&s1, &s3}, 0ms);
      },
      "handle is closed: Bad file descriptor");
}

// More connections than fit one small poll array, and a wait that a signal interrupts.
TEST(SocketConnection, WaitOnManyConnectionsAndThroughSignals) {
  auto listener = mproc::Listener({"127.0.0.1", 0}, std::nullopt, 32);
  std::vector<mproc::SocketConnection> clients, servers;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(mproc::Client(listener.address()));
    servers.push_back(listener.accept());
  }
  std::vector<mproc::SocketConnection*> all;
  for (auto& s : servers) all.push_back(&s);
  clients[17].send_bytes(std::string_view("seventeen"));
  EXPECT_EQ(mproc::wait(all, 10s), (std::vector<mproc::SocketConnection*>{&servers[17]}));
  EXPECT_EQ(servers[17].recv_text(), "seventeen");

  // SIGALRM with a handler (no SA_RESTART) interrupts the poll; the wait goes on for the rest.
  struct sigaction on_alarm {};
  on_alarm.sa_handler = [](int) {};
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGALRM, &on_alarm, &old), 0);
  itimerval once{};
  once.it_value.tv_usec = 50'000;
  ASSERT_EQ(::setitimer(ITIMER_REAL, &once, nullptr), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(mproc::wait(all, 300ms).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 290ms);
  ::sigaction(SIGALRM, &old, nullptr);
}

TEST(SocketConnection, HostileFrames) {
  {
    RawPeer p;  // announces 2^62 bytes, sends 3, hangs up: nothing near that is allocated
    p.write({0xff, 0xff, 0xff, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c'});
    p.hang_up();
    expect_error<mproc::OSError>([&] { (void)p.conn.recv_bytes(); },
                                 "got end of file during message: Broken pipe");
  }
  {
    RawPeer p;  // a negative length other than -1
    p.write({0x80, 0, 0, 1});
    EXPECT_THROW((void)p.conn.recv_bytes(), mproc::OSError);
    EXPECT_TRUE(p.conn.closed());
  }
  {
    RawPeer p;  // longer than maxlength: refused, and the connection closed (out of step)
    p.write({0, 0, 1, 0});
    expect_error<mproc::OSError>([&] { (void)p.conn.recv_bytes(100); },
                                 "bad message length: Message too long");
    EXPECT_TRUE(p.conn.closed());
  }
  {
    RawPeer p;
    p.hang_up();
    EXPECT_TRUE(p.conn.poll()) << "the end of the stream is readable";
    EXPECT_THROW((void)p.conn.recv_bytes(), mproc::EOFError);
  }
  {
    RawPeer p;  // not a challenge where one is expected
    p.write({0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'});
    expect_error<mproc::AuthenticationError>([&] { mproc::answer_challenge(p.conn, "k"); },
                                             "Protocol error, expected challenge");
  }
}

// --- CPython's multiprocessing.connection ------------------------------------------------------

struct PythonVersion {
  const char* label;
  const char* command;
  const char* version;
};

void PrintTo(const PythonVersion& py, std::ostream* out) {
  *out << py.command;
}

const PythonVersion kPythons[] = {
    {"Python311", "python3", "3.11"},
    {"Python312", "PYENV_VERSION=3.12.1 python3.12", "3.12"},
    {"Python313", "PYENV_VERSION=3.13.0 python3.13", "3.13"},
};

class CPythonConnection : public testing::TestWithParam<PythonVersion> {
 protected:
  void SetUp() override {
    auto probe = mproc_shm_test::run_command(std::string(GetParam().command) +
                                             " -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'");
    while (!probe.output.empty() && probe.output.back() == '\n') probe.output.pop_back();
    if (probe.exit_code != 0 || probe.output != GetParam().version) {
      GTEST_SKIP() << "Python " << GetParam().version << " is not available ('" << GetParam().command
                   << "': " << probe.output << ")";
    }
  }

  // Runs a Python script in a thread; join() gives its exit code and output.
  struct Script {
    std::thread thread;
    mproc_shm_test::CommandResult result;
    std::string path;
    std::atomic<bool> done{false};
    void join() {
      if (thread.joinable()) thread.join();
      std::remove(path.c_str());
    }
    ~Script() { join(); }
  };

  // accept(), but a script that ends without connecting (a Python error) fails the test instead
  // of leaving accept() waiting: a bare connection then wakes it, and its handshake fails.
  static mproc::SocketConnection accept_from(mproc::Listener& listener, Script& script) {
    std::atomic<bool> accepted{false};
    std::thread guard([&] {
      while (!accepted) {
        if (script.done) {
          try {
            (void)mproc::Client(listener.address());
          } catch (const std::exception&) {
          }
          return;
        }
        std::this_thread::sleep_for(10ms);
      }
    });
    struct Join {
      std::thread& t;
      std::atomic<bool>& a;
      ~Join() {
        a = true;
        t.join();
      }
    } join{guard, accepted};
    return listener.accept();
  }

  std::unique_ptr<Script> python(const std::string& body, const std::vector<std::string>& args) {
    static std::atomic<int> counter{0};
    auto s = std::make_unique<Script>();
    // relaxed: distinct values only.
    s->path = "/tmp/mproc-test-" + std::to_string(::getpid()) + "-conn-" +
              std::to_string(counter.fetch_add(1, std::memory_order_relaxed)) + ".py";
    {
      std::ofstream f(s->path);
      f << "import sys, time\nfrom multiprocessing.connection import Listener, Client\n" << body;
    }
    std::string command = std::string("timeout 30 env ") + GetParam().command + " " + s->path;
    for (const auto& a : args) command += " '" + a + "'";
    Script* raw = s.get();
    s->thread = std::thread([raw, command] {
      raw->result = mproc_shm_test::run_command(command + " 2>&1");
      raw->done = true;
    });
    return s;
  }
};

TEST_P(CPythonConnection, PythonClientTalksToCppListener) {
  auto listener = mproc::Listener({"127.0.0.1", 0}, "secret");
  auto script = python(R"PY(
c = Client(("127.0.0.1", int(sys.argv[1])), authkey=b"secret")
c.send_bytes(b"from python")
m = c.recv_bytes()
assert m == b"from c++" + bytes(range(256)) * 100, m[:40]
c.send_bytes(m[::-1])
c.close()
print("ok")
)PY",
                       {std::to_string(listener.address().port())});
  auto conn = accept_from(listener, *script);
  EXPECT_EQ(conn.recv_text(), "from python");
  std::string big = "from c++";
  for (int k = 0; k < 100; ++k) {
    for (int i = 0; i < 256; ++i) big += static_cast<char>(i);
  }
  conn.send_bytes(big);
  EXPECT_EQ(conn.recv_text(), std::string(big.rbegin(), big.rend()));
  script->join();
  EXPECT_EQ(script->result.exit_code, 0) << script->result.output;
  EXPECT_EQ(script->result.output, "ok\n");
}

TEST_P(CPythonConnection, CppClientTalksToPythonListener) {
  const std::string port_file = "/tmp/mproc-test-" + std::to_string(getpid()) + "-port";
  std::remove(port_file.c_str());
  auto script = python(R"PY(
with Listener(("127.0.0.1", 0), authkey=b"secret") as l:
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(l.address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    c = l.accept()
    m = c.recv_bytes()
    c.send_bytes(b"echo:" + m)
    c.close()
print("ok")
)PY",
                       {port_file});
  int port = 0;
  ASSERT_TRUE(mproc_test::eventually(
      [&] {
        std::ifstream f(port_file);
        return static_cast<bool>(f >> port);
      },
      20s));
  std::remove(port_file.c_str());
  auto conn = mproc::Client({"127.0.0.1", port}, "secret");
  conn.send_bytes(std::string_view("hello"));
  EXPECT_EQ(conn.recv_text(), "echo:hello");
  script->join();
  EXPECT_EQ(script->result.exit_code, 0) << script->result.output;
}

// The same wire format and handshake over Unix-domain sockets (a path, and an abstract name),
// in both directions.
TEST_P(CPythonConnection, UnixSocketsBothWays) {
  const std::string path = "/tmp/mproc-test-" + std::to_string(getpid()) + "-py.sock";
  auto listener = mproc::Listener(mproc::Address(path), "secret");
  auto script = python(R"PY(
c = Client(sys.argv[1], authkey=b"secret")
c.send_bytes(b"python over a path")
assert c.recv_bytes() == b"c++ over a path"
c.close()
with Listener("\0" + sys.argv[2], authkey=b"secret") as l:
    print("listening", flush=True)
    c = l.accept()
    c.send_bytes(b"echo:" + c.recv_bytes())
    c.close()
print("ok")
)PY",
                       {path, "mproc-test-" + std::to_string(getpid()) + "-py-abstract"});
  {
    auto conn = accept_from(listener, *script);
    EXPECT_EQ(conn.recv_text(), "python over a path");
    conn.send_bytes(std::string_view("c++ over a path"));
  }
  listener.close();
  EXPECT_FALSE(std::filesystem::exists(path)) << "close() removes the socket's path";
  const mproc::Address abstract(std::string(1, '\0') + "mproc-test-" + std::to_string(getpid()) +
                                "-py-abstract");
  std::optional<mproc::SocketConnection> conn;
  ASSERT_TRUE(mproc_test::eventually(
      [&] {
        try {
          conn.emplace(mproc::Client(abstract, "secret"));
          return true;
        } catch (const mproc::OSError&) {
          return false;  // not listening yet
        }
      },
      20s));
  conn->send_bytes(std::string_view("hi"));
  EXPECT_EQ(conn->recv_text(), "echo:hi");
  script->join();
  EXPECT_EQ(script->result.exit_code, 0) << script->result.output;
  EXPECT_EQ(script->result.output, "listening\nok\n");
}

// Python's conn.send(obj) / conn.recv(): pickles of plain data, both ways.
TEST_P(CPythonConnection, PickledValuesBothWays) {
  auto listener = mproc::Listener({"127.0.0.1", 0}, "secret");
  auto script = python(R"PY(
c = Client(("127.0.0.1", int(sys.argv[1])), authkey=b"secret")
c.send([1, "a", {"k": 2.5}, None, True, b"x", (1, 2), 2**70, -3.25, "\u6d41\u6c34\u706f"])
print(repr(c.recv()))
c.close()
)PY",
                       {std::to_string(listener.address().port())});
  auto conn = accept_from(listener, *script);
  namespace pk = mproc::pickle;
  const pk::Value v = conn.recv_pickle();
  const auto& items = std::get<pk::List>(v.v);
  ASSERT_EQ(items.size(), 10U);
  EXPECT_EQ(pk::from_value<int>(items[0]), 1);
  EXPECT_EQ(pk::from_value<std::string>(items[1]), "a");
  EXPECT_EQ((pk::from_value<std::map<std::string, double>>(items[2])),
            (std::map<std::string, double>{{"k", 2.5}}));
  EXPECT_EQ(pk::from_value<std::optional<int>>(items[3]), std::nullopt);
  EXPECT_TRUE(pk::from_value<bool>(items[4]));
  EXPECT_EQ(pk::from_value<pk::Bytes>(items[5]).data, (std::vector<std::byte>{std::byte{'x'}}));
  EXPECT_EQ((pk::from_value<std::pair<int, int>>(items[6])), std::make_pair(1, 2));
  EXPECT_TRUE(std::holds_alternative<pk::BigInt>(items[7].v));
  EXPECT_EQ(pk::from_value<double>(items[8]), -3.25);
  EXPECT_EQ(pk::from_value<std::string>(items[9]), "流水灯");
  conn.send_pickle(std::make_tuple(std::map<std::string, std::vector<int>>{{"x", {1, 2}}},
                                   std::optional<int>(), std::string("流水灯"), 2.5, -7L));
  script->join();
  EXPECT_EQ(script->result.exit_code, 0) << script->result.output;
  EXPECT_EQ(script->result.output, "({'x': [1, 2]}, None, '流水灯', 2.5, -7)\n");
}

TEST_P(CPythonConnection, WrongKeysAgainstPython) {
  auto listener = mproc::Listener({"127.0.0.1", 0}, "secret");
  auto script = python(R"PY(
from multiprocessing import AuthenticationError
try:
    Client(("127.0.0.1", int(sys.argv[1])), authkey=b"wrong")
except AuthenticationError as e:
    print("python:", e)
)PY",
                       {std::to_string(listener.address().port())});
  expect_error<mproc::AuthenticationError>([&] { (void)accept_from(listener, *script); },
                                           "digest received was wrong");
  script->join();
  EXPECT_EQ(script->result.output, "python: digest sent was rejected\n") << script->result.output;
}

INSTANTIATE_TEST_SUITE_P(Versions, CPythonConnection, testing::ValuesIn(kPythons),
                         [](const testing::TestParamInfo<PythonVersion>& p) {
                           return std::string(p.param.label);
                         });

}  // namespace
