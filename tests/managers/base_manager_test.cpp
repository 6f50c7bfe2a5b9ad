// BaseManager (issue 7): registered types served over TCP, to clients in other processes under
// every start method; right and wrong keys; the errors a call can meet; a shared object whose
// methods wait; a started server process; and clients that misbehave.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "children.hpp"
#include "expect_error.hpp"
#include "mproc/listener.hpp"
#include "mproc/managers.hpp"
#include "mproc/process.hpp"

namespace {

using namespace std::chrono_literals;

// A type that is not thread-safe: the server must call one object's methods one at a time.
class Counter {
 public:
  Counter() = default;
  explicit Counter(long start) : value_(start) {}
  void add(long n) {
    const long seen = value_;
    std::this_thread::yield();  // widens the window a lost update needs
    value_ = seen + n;
  }
  [[nodiscard]] long value() const { return value_; }
  std::string describe(const std::string& prefix) const { return prefix + std::to_string(value_); }
  long at(int i) const {
    if (i != 0) throw mproc::IndexError("counter index out of range");
    return value_;
  }
  void fail() { throw std::runtime_error("it failed"); }

 private:
  long value_ = 0;
};

struct CounterProxy : mproc::BaseProxy {
  using BaseProxy::BaseProxy;
  void add(long n) const { call<void>("add", n); }
  [[nodiscard]] long value() const { return call<long>("value"); }
};

mproc::Methods<Counter> counter_methods() {
  return mproc::Methods<Counter>()
      .def("add", &Counter::add)
      .def("value", &Counter::value)
      .def("describe", &Counter::describe)
      .def("at", &Counter::at)
      .def("fail", &Counter::fail)
      .def("reset", [](Counter& c, long to) { c = Counter(to); });
}

// A queue whose get() waits for a put(): the server must not hold a lock across it.
class BlockingQueue {
 public:
  void put(int v) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(v);
    }
    ready_.notify_one();
  }
  int get() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !items_.empty(); });
    const int v = items_.front();
    items_.pop_front();
    return v;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<int> items_;
};

// A server in a thread of this process (CPython's get_server().serve_forever()), stopped and
// joined at the end of the scope, whatever happened.
class ServerThread {
 public:
  explicit ServerThread(mproc::BaseManager& server) : server_(server) {
    address_ = server_.listen();
    thread_ = std::thread([this] { server_.serve_forever(); });
  }
  ~ServerThread() {
    server_.shutdown();
    thread_.join();
  }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;
  [[nodiscard]] const mproc::Address& address() const { return address_; }

 private:
  mproc::BaseManager& server_;
  mproc::Address address_{""};
  std::thread thread_;
};

mproc::BaseManager counter_server(const std::string& key = "secret", mproc::ManagerOptions options = {}) {
  mproc::BaseManager server({"127.0.0.1", 0}, key, options);
  server.register_type<Counter>("Counter", counter_methods());
  server.register_type<Counter>(
      "CounterFrom", [](long start) { return Counter(start); }, counter_methods());
  return server;
}

// A client in another process: connects with the key, makes a counter and adds to it.
void add_from_child(mproc::Address address, std::string key, CounterProxy shared, int times) {
  auto remote = mproc::BaseManager::connect(address, key);
  auto own = remote.create<CounterProxy>("CounterFrom", 100L);
  for (int i = 0; i < times; ++i) {
    shared.add(1);
    own.add(1);
  }
  if (own.value() != 100 + times) throw std::runtime_error("the child's own counter is wrong");
}

// f() throws E whose message begins with `prefix` (the rest names a port or an errno's text).
template <class E, class F>
void expect_error_starting(F&& f, const std::string& prefix) {
  try {
    f();
    ADD_FAILURE() << "expected an exception: " << prefix << "...";
  } catch (const E& e) {
    EXPECT_EQ(std::string(e.what()).substr(0, prefix.size()), prefix) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type (" << typeid(e).name() << "): " << e.what();
  }
}

class BaseManagerTest : public testing::TestWithParam<mproc::StartMethod> {};

TEST_P(BaseManagerTest, RegisteredTypeOverTcpFromChildren) {
  auto server = counter_server();
  ServerThread serving(server);
  ASSERT_TRUE(serving.address().is_tcp());
  ASSERT_NE(serving.address().port(), 0);

  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto shared = remote.create<CounterProxy>("Counter");
  mproc_test::Children children;
  for (int i = 0; i < 2; ++i) {
    children.start(mproc::get_context(GetParam())
                       .Process(add_from_child, serving.address(), std::string("secret"), shared, 300));
  }
  children.expect_all_exit(0);
  // One object's calls run one at a time: no increment is lost.
  EXPECT_EQ(shared.value(), 600);
  EXPECT_EQ(shared.call<std::string>("describe", "n="), "n=600");
}

INSTANTIATE_TEST_SUITE_P(Methods, BaseManagerTest,
                         testing::Values(mproc::StartMethod::fork, mproc::StartMethod::spawn,
                                         mproc::StartMethod::forkserver),
                         [](const auto& p) { return std::string(mproc::to_string(p.param)); });

TEST(BaseManager, WrongKeyIsRefusedAndTheServerGoesOn) {
  auto server = counter_server();
  ServerThread serving(server);
  expect_error<mproc::AuthenticationError>(
      [&] { (void)mproc::BaseManager::connect(serving.address(), "wrong"); }, "digest sent was rejected");
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto c = remote.create<CounterProxy>("Counter");
  c.add(2);
  EXPECT_EQ(c.value(), 2);
}

TEST(BaseManager, CallErrorsArriveWithTheirKind) {
  auto server = counter_server();
  ServerThread serving(server);
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  mproc::BaseProxy c = remote.create("CounterFrom", 7L);
  EXPECT_EQ(c.call<long>("value"), 7);
  c.call("reset", 3L);
  EXPECT_EQ(c.call<long>("at", 0), 3);

  expect_error<mproc::AttributeError>([&] { c.call("nope"); },
                                      "'CounterFrom' object has no attribute 'nope'");
  expect_error<mproc::TypeError>([&] { c.call("add", 1); },  // an int, not a long
                                 "CounterFrom.add() is (long) -> void; it was called as (int) -> void");
  expect_error<mproc::TypeError>([&] { (void)c.call<int>("value"); },
                                 "CounterFrom.value() is () -> long; it was called as () -> int");
  expect_error<mproc::TypeError>([&] { (void)remote.create("CounterFrom", "x"); },
                                 "CounterFrom() takes (long), not (std::string)");
  expect_error<mproc::KeyError>([&] { (void)remote.create("Nothing"); },
                                "no type named 'Nothing' is registered with the manager");
  expect_error<mproc::IndexError>([&] { (void)c.call<long>("at", 1); }, "counter index out of range");
  try {
    c.call("fail");
    ADD_FAILURE() << "fail() did not throw";
  } catch (const mproc::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::runtime_error");
    EXPECT_EQ(e.message(), "it failed");
  }
  // After every error the object and the connection still serve.
  EXPECT_EQ(c.call<long>("value"), 3);
  // The built-in types are served too.
  auto names = remote.list<std::string>();
  names.append("a");
  EXPECT_EQ(names.to_vector(), std::vector<std::string>{"a"});
}

void consume(mproc::Address address, std::string key, mproc::Value<int> got) {
  auto remote = mproc::BaseManager::connect(address, key);
  mproc::BaseProxy queue = remote.create("get_queue");
  got.value() = queue.call<int>("get");  // waits for the parent's put
}

// CPython's remote-queue example: every create("get_queue") is the same object, and a get()
// that waits in the server does not hold up the put() that will end it.
TEST(BaseManager, ASharedObjectWhoseMethodsWait) {
  auto queue = std::make_shared<BlockingQueue>();
  mproc::BaseManager server({"127.0.0.1", 0}, "secret");
  server.register_type<BlockingQueue>(
      "get_queue", [queue] { return queue; },
      mproc::Methods<BlockingQueue>()
          .def("put", &BlockingQueue::put)
          .def("get", &BlockingQueue::get)
          .concurrent());
  ServerThread serving(server);
  mproc::Value<int> got(0);
  mproc_test::Children children;
  children.start(mproc::get_context(mproc::StartMethod::forkserver)
                     .Process(consume, serving.address(), std::string("secret"), got));
  std::this_thread::sleep_for(100ms);  // lets the child reach its get() (the test holds either way)
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  remote.create("get_queue").call("put", 41);
  children.expect_all_exit(0);
  EXPECT_EQ(got.value(), 41);
}

// CPython's start(): the server in a child process, here with registered types (fork).
TEST(BaseManager, StartedServerProcess) {
  auto manager = counter_server();
  manager.start();
  EXPECT_NE(manager.address().port(), 0);
  expect_error<mproc::ProcessError>([&] { manager.start(); }, "Already started server");
  expect_error<mproc::ProcessError>([&] { manager.register_type<Counter>("Late", counter_methods()); },
                                    "register_type() comes before the manager serves: its server has its "
                                    "registrations already");
  auto c = manager.create<CounterProxy>("Counter");
  c.add(5);
  auto remote = mproc::BaseManager::connect(manager.address(), "secret");
  EXPECT_EQ(CounterProxy(c.ref()).value(), 5);
  auto d = remote.dict<std::string, int>();
  d.set("k", 1);
  EXPECT_EQ(d.get("k"), 1);
  manager.shutdown();
  manager.shutdown();  // idempotent
  const std::string gone = "no manager answers at " + manager.address().to_string() + " (";
  expect_error_starting<mproc::ProcessError>([&] { c.add(1); }, gone);
  expect_error<mproc::ProcessError>([&] { (void)manager.create("Counter"); }, "the manager has shut down");
  expect_error_starting<mproc::ProcessError>(
      [&] { (void)mproc::BaseManager::connect(manager.address(), "secret"); }, gone);
}

TEST(BaseManager, Misuse) {
  auto with_types = counter_server("secret", {.start_method = mproc::StartMethod::spawn});
  expect_error<mproc::ProcessError>([&] { with_types.start(); },
                                    "a manager with registered types starts its server with the fork start "
                                    "method: a spawned server could not rebuild the registrations");
  mproc::BaseManager idle({"127.0.0.1", 0}, "secret");
  expect_error<mproc::ProcessError>(
      [&] { (void)idle.list<int>(); },
      "the manager is not running: start() it, serve_forever() it, or connect() to one");
  // Built-in types only: any start method.
  mproc::BaseManager plain({"127.0.0.1", 0}, "secret", {.start_method = mproc::StartMethod::spawn});
  plain.start();
  auto l = plain.list<int>({1, 2});
  EXPECT_EQ(l.size(), 2U);
  plain.shutdown();
}

// The server ended this connection: the end of the stream, or a reset when it closed the socket
// with the client's bytes unread.
void expect_closed(mproc::SocketConnection& conn) {
  try {
    (void)conn.recv_bytes();
    ADD_FAILURE() << "the server answered";
  } catch (const mproc::EOFError&) {
  } catch (const mproc::OSError& e) {
    EXPECT_EQ(e.code(), std::error_code(ECONNRESET, std::system_category())) << e.what();
  }
}

// A server killed mid-session: its clients' calls fail with ProcessError instead of hanging,
// whether they travel on a shared-memory pipe (this machine) or would reconnect.
TEST(BaseManager, ADeadServerFailsItsClientsCalls) {
  auto server = counter_server();
  const auto address = server.listen();
  mproc_test::Children children;
  // fork: the child serves the socket this process bound.
  auto& serving = children.start(
      mproc::get_context(mproc::StartMethod::fork).Process([&server] { server.serve_forever(); }));
  server.shutdown();  // closes this process's copy of the listening socket; the child's serves
  auto remote = mproc::BaseManager::connect(address, "secret");
  auto c = remote.create<CounterProxy>("Counter");
  c.add(1);
  serving.kill();
  ASSERT_TRUE(serving.join(20s));
  expect_error<mproc::ProcessError>([&] { c.add(1); }, "the manager has shut down");
  expect_error_starting<mproc::ProcessError>([&] { c.add(1); },
                                             "no manager answers at " + address.to_string() + " (");
}

// A method that takes its time, so that a client can die while it runs.
struct Slow {
  int sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  }
};

void call_slowly(mproc::Address address, std::string key) {
  auto remote = mproc::BaseManager::connect(address, key);
  (void)remote.create("Slow").call<int>("sleep_ms", 5000);
}

// A client killed while the server runs its call (on its shared-memory pipe), and one that closes
// its socket while the server runs its call: the server answers into the void and serves on.
TEST(BaseManager, AClientThatDiesMidCallDoesNotStopTheServer) {
  auto server = counter_server();
  server.register_type<Slow>("Slow", mproc::Methods<Slow>().def("sleep_ms", &Slow::sleep_ms).concurrent());
  ServerThread serving(server);
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto c = remote.create<CounterProxy>("Counter");

  mproc_test::Children children;
  auto& caller = children.start(mproc::get_context(mproc::StartMethod::forkserver)
                                    .Process(call_slowly, serving.address(), std::string("secret")));
  std::this_thread::sleep_for(300ms);  // most likely inside sleep_ms by now (the test holds either way)
  caller.kill();
  ASSERT_TRUE(caller.join(20s));

  // On a bare socket (no pipe): create, call, and hang up before the answer.
  auto raw = mproc::Client(serving.address(), "secret");
  mproc::detail::ManagerRequest create;
  create.op = mproc::detail::kCreate;
  create.name = "Slow";
  create.a = mproc::dumps(std::tuple<>());
  create.signature = mproc::detail::call_signature<void>();
  raw.send(create);
  const auto made = raw.recv<mproc::detail::ManagerResponse>();
  ASSERT_EQ(made.status, 0) << made.message;
  mproc::detail::ManagerRequest call;
  call.op = mproc::detail::kCall;
  call.object = made.number;
  call.name = "sleep_ms";
  call.a = mproc::dumps(std::tuple<int>(200));
  call.signature = mproc::detail::call_signature<int, int>();
  raw.send(call);
  raw.close();
  std::this_thread::sleep_for(400ms);  // the answer has been sent to a closed socket by now

  c.add(3);
  EXPECT_EQ(c.value(), 3);
}

// Something that accepts connections at the address but never speaks: connect() gives up after
// its time limit instead of hanging.
TEST(BaseManager, ASilentServerDoesNotHangTheClient) {
  mproc::Listener mute({"127.0.0.1", 0});  // never accept()s: connections wait in its backlog
  const auto start = std::chrono::steady_clock::now();
  expect_error_starting<mproc::ProcessError>(
      [&] { (void)mproc::BaseManager::connect(mute.address(), "secret", 200ms); },
      "the manager at " + mute.address().to_string() + " did not complete the handshake (");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

// A factory that returns the same object every time: every id is that one object, and calls
// through different ids still run one at a time (the object is not thread-safe).
void add_to_shared(mproc::Address address, std::string key) {
  auto remote = mproc::BaseManager::connect(address, key);
  auto c = remote.create<CounterProxy>("SharedCounter");  // a new id, the same Counter
  for (int i = 0; i < 300; ++i) c.add(1);
}

TEST(BaseManager, OneSharedObjectBehindManyIdsIsStillSerialized) {
  auto shared = std::make_shared<Counter>();
  mproc::BaseManager server({"127.0.0.1", 0}, "secret");
  server.register_type<Counter>(
      "SharedCounter", [shared] { return shared; }, counter_methods());
  ServerThread serving(server);
  mproc_test::Children children;
  for (int i = 0; i < 3; ++i) {
    children.start(mproc::get_context(mproc::StartMethod::forkserver)
                       .Process(add_to_shared, serving.address(), std::string("secret")));
  }
  children.expect_all_exit(0);
  // Read through the server, under the object's mutex (the server's threads wrote it).
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  EXPECT_EQ(remote.create<CounterProxy>("SharedCounter").value(), 900);
}

// shutdown() before serve_forever() got going: serve_forever() returns at once.
TEST(BaseManager, ShutdownBeforeServing) {
  mproc::BaseManager server({"127.0.0.1", 0}, "secret");
  (void)server.listen();
  server.shutdown();
  server.serve_forever();
  expect_error<mproc::ProcessError>([&] { (void)server.list<int>(); }, "the manager has shut down");
}

// Many connections that never say a word: the server survives them (more than 64 at once are
// dropped at the door), and once they go, clients are served again.
TEST(BaseManager, AFloodOfSilentConnections) {
  auto server = counter_server();
  ServerThread serving(server);
  std::vector<mproc::SocketConnection> silent;
  for (int i = 0; i < 100; ++i) silent.push_back(mproc::Client(serving.address()));  // no key: no handshake
  silent.clear();
  // The server may still be counting the silent ones' threads out: a client can be dropped at the
  // door until then, and tries again.
  std::optional<mproc::BaseManager> remote;
  EXPECT_TRUE(mproc_test::eventually([&] {
    try {
      remote.emplace(mproc::BaseManager::connect(serving.address(), "secret"));
      return true;
    } catch (const mproc::ProcessError&) {
      return false;
    }
  }));
  ASSERT_TRUE(remote);
  auto c = remote->create<CounterProxy>("Counter");
  c.add(4);
  EXPECT_EQ(c.value(), 4);
}

// A queue in the server, reached over TCP: a consumer in another process waits in get() until a
// producer in a third puts; Empty and Full as mproc::Queue raises them.
void produce(mproc::QueueProxy<std::string> q, int n) {
  for (int i = 0; i < n; ++i) q.put("item " + std::to_string(i));
}

void consume_all(mproc::QueueProxy<std::string> q, int n, mproc::Value<int> got) {
  for (int i = 0; i < n; ++i) {
    if (q.get(20s) != "item " + std::to_string(i)) return;  // FIFO from one producer
    got.value() += 1;
  }
}

TEST_P(BaseManagerTest, AServerSideQueueBetweenProcesses) {
  mproc::BaseManager server({"127.0.0.1", 0}, "secret");
  ServerThread serving(server);
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto q = remote.Queue<std::string>();
  mproc::Value<int> got(0);
  mproc_test::Children children;
  auto ctx = mproc::get_context(GetParam());
  children.start(ctx.Process(consume_all, q, 50, got));  // waits in the server first
  children.start(ctx.Process(produce, q, 50));
  children.expect_all_exit(0);
  EXPECT_EQ(got.value(), 50);
  EXPECT_TRUE(q.empty());
}

TEST(BaseManager, ServerSideQueueSemantics) {
  mproc::BaseManager server({"127.0.0.1", 0}, "secret");
  ServerThread serving(server);
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto q = remote.Queue<int>(2);
  EXPECT_TRUE(q.empty());
  q.put(1);
  q.put(2, 1s);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 2U);
  const auto start = std::chrono::steady_clock::now();
  expect_error<mproc::Full>([&] { q.put(3, 50ms); }, "the queue is full");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  expect_error<mproc::Full>([&] { q.put_nowait(3); }, "the queue is full");
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.get_nowait(), 2);
  expect_error<mproc::Empty>([&] { (void)q.get_nowait(); }, "the queue is empty");
  expect_error<mproc::Empty>([&] { (void)q.get(20ms); }, "the queue is empty");
  // A get() waiting in the server when the server stops: the caller hears the manager is gone.
  auto waiting = std::async(std::launch::async, [&] {
    try {
      (void)q.get();
      return std::string("got something");
    } catch (const mproc::ProcessError& e) {
      return std::string(e.what());
    }
  });
  std::this_thread::sleep_for(100ms);
  server.shutdown();
  EXPECT_EQ(waiting.wait_for(10s), std::future_status::ready);
  // The wait ended in the server ("during the call"), or, on a slow machine, the request came
  // after the stop and found the connection closed.
  const std::string why = waiting.get();
  EXPECT_TRUE(why == "the manager shut down during the call" || why == "the manager has shut down") << why;
}

void work_through(mproc::JoinableQueueProxy<int> jobs, mproc::QueueProxy<int> results) {
  for (;;) {
    const int job = jobs.get();
    if (job < 0) {
      jobs.task_done();
      return;
    }
    results.put(job * job);
    jobs.task_done();
  }
}

// CPython's JoinableQueue through a manager: join() in the server waits until every item put
// has been marked done by the workers.
TEST(BaseManager, AServerSideJoinableQueue) {
  mproc::BaseManager server({"127.0.0.1", 0}, "secret");
  ServerThread serving(server);
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto jobs = remote.JoinableQueue<int>();
  auto results = remote.Queue<int>();
  mproc_test::Children children;
  for (int w = 0; w < 2; ++w) {
    children.start(mproc::get_context(mproc::StartMethod::spawn).Process(work_through, jobs, results));
  }
  for (int i = 1; i <= 20; ++i) jobs.put(i);
  jobs.join();  // every job done: all 20 results are in
  EXPECT_EQ(results.qsize(), 20U);
  int sum = 0;
  for (int i = 0; i < 20; ++i) sum += results.get_nowait();
  EXPECT_EQ(sum, 2870);  // 1^2 + ... + 20^2
  jobs.put(-1);
  jobs.put(-1);
  jobs.join();
  children.expect_all_exit(0);
  expect_error<mproc::ValueError>([&] { jobs.task_done(); }, "task_done() called too many times");
}

void wait_for_the_event(mproc::EventProxy go, mproc::QueueProxy<std::string> said) {
  said.put(go.wait(20s) ? "went" : "timed out");
}

// A server-side Event: processes reached through the manager wait in the server until it is set.
TEST(BaseManager, AServerSideEvent) {
  mproc::BaseManager server({"127.0.0.1", 0}, "secret");
  ServerThread serving(server);
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto go = remote.Event();
  auto said = remote.Queue<std::string>();
  EXPECT_FALSE(go.is_set());
  EXPECT_FALSE(go.wait(20ms));
  EXPECT_FALSE(go.wait(-1s));  // negative: at once
  mproc_test::Children children;
  for (int i = 0; i < 2; ++i) {
    children.start(mproc::get_context(mproc::StartMethod::spawn).Process(wait_for_the_event, go, said));
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(said.qsize(), 0U);  // both still waiting
  go.set();
  children.expect_all_exit(0);
  EXPECT_EQ(said.get(5s), "went");
  EXPECT_EQ(said.get(5s), "went");
  EXPECT_TRUE(go.is_set());
  EXPECT_TRUE(go.wait());
  go.clear();
  EXPECT_FALSE(go.is_set());
}

void wait_for_an_item(mproc::QueueProxy<int> q, mproc::Event started) {
  (void)q.qsize();  // the link is up
  started.set();
  (void)q.get();
}

// A consumer killed while its get() waits in the server must not take the next item with it.
TEST(BaseManager, AConsumerKilledWhileWaitingDoesNotTakeTheNextItem) {
  mproc::BaseManager server({"127.0.0.1", 0}, "secret");
  ServerThread serving(server);
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto q = remote.Queue<int>();
  mproc::Event started;
  mproc_test::Children children;
  auto& consumer = children.start(
      mproc::get_context(mproc::StartMethod::forkserver).Process(wait_for_an_item, q, started));
  ASSERT_TRUE(started.wait(20s));
  std::this_thread::sleep_for(200ms);  // into its get() in the server, most likely
  consumer.kill();
  ASSERT_TRUE(consumer.join(20s));
  q.put(7);
  std::this_thread::sleep_for(300ms);  // time enough for a dead consumer's get() to take it
  EXPECT_EQ(q.get(5s), 7);
}

std::size_t threads_in_this_process() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Each client thread has its own link; when the thread ends, its link closes and the server's
// thread for it ends too (the server is in this process, so its threads are counted here).
TEST(BaseManager, AClientThreadsLinkEndsWithTheThread) {
  auto server = counter_server();
  ServerThread serving(server);
  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto c = remote.create<CounterProxy>("Counter");
  const std::size_t before = threads_in_this_process();
  for (int round = 0; round < 8; ++round) {
    std::thread([&] { c.add(1); }).join();
  }
  EXPECT_EQ(c.value(), 8);
  EXPECT_TRUE(mproc_test::eventually([&] { return threads_in_this_process() <= before; }))
      << threads_in_this_process() << " threads, " << before << " before";
}

// A client with the key that sends garbage, or announces a request larger than the server takes,
// loses its connection; one that connects and says nothing holds up nobody. The others are served.
TEST(BaseManager, MisbehavingClientsLoseOnlyTheirConnection) {
  auto server = counter_server("secret", {.max_request = 4096});
  ServerThread serving(server);

  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(silent, 0);
  mproc::SocketConnection silent_conn(silent);
  {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(serving.address().port()));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  }

  auto garbage = mproc::Client(serving.address(), "secret");
  garbage.send_bytes(std::string_view("not a request"));
  expect_closed(garbage);

  auto oversized = mproc::Client(serving.address(), "secret");
  const std::string big(8192, 'x');
  oversized.send_bytes(big);
  expect_closed(oversized);

  auto remote = mproc::BaseManager::connect(serving.address(), "secret");
  auto c = remote.create<CounterProxy>("Counter");
  c.add(1);
  EXPECT_EQ(c.value(), 1);
  // A request over the limit from a proxy: the connection ends, the caller hears the manager is gone.
  auto names = remote.list<std::string>();
  expect_error<mproc::ProcessError>([&] { names.append(std::string(8192, 'y')); },
                                    "the manager has shut down");
  EXPECT_EQ(c.value(), 1);  // a new connection, the same server
}

}  // namespace
