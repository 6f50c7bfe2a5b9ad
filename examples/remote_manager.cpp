// CPython's "Using a remote manager" example (multiprocessing docs): a server holds a queue, and
// clients on any machine put into it and get from it over TCP, with an authkey.
//
//   class QueueManager(BaseManager): pass
//   QueueManager.register('get_queue', callable=lambda: queue)
//   m = QueueManager(address=('', 50000), authkey=b'abracadabra')
//   m.get_server().serve_forever()                       # the server
//   m = QueueManager(address=('server', 50000), authkey=b'abracadabra'); m.connect()
//   m.get_queue().put('hello')                           # one client
//   m.get_queue().get()                                  # another
//
// Usage:
//   remote_manager serve PORT KEY          serves until interrupted
//   remote_manager put HOST PORT KEY TEXT  puts TEXT into the server's queue
//   remote_manager get HOST PORT KEY       takes the next item (waits for one)
//   remote_manager                         all three on this machine: a server thread on a free
//                                          port, a getter and a putter process
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <mproc/mproc.hpp>

// The server's queue: thread-safe, because the server calls it from each client's thread, and a
// get() that waits must not hold up the put() that ends the wait (hence concurrent() below).
class JobQueue {
 public:
  void put(const std::string& item) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(item);
    }
    ready_.notify_one();
  }
  std::string get() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !items_.empty(); });
    std::string item = std::move(items_.front());
    items_.pop_front();
    return item;
  }
  std::size_t qsize() {
    std::lock_guard lock(mutex_);
    return items_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::string> items_;
};

// The client's view of it (CPython's AutoProxy, written out).
struct JobQueueProxy : mproc::BaseProxy {
  using BaseProxy::BaseProxy;
  void put(const std::string& item) const { call("put", item); }
  [[nodiscard]] std::string get() const { return call<std::string>("get"); }
};

mproc::BaseManager queue_manager(const mproc::Address& address, const std::string& key) {
  static auto queue = std::make_shared<JobQueue>();  // every get_queue() is this one
  mproc::BaseManager m(address, key);
  m.register_type<JobQueue>("get_queue", [] { return queue; },
                            mproc::Methods<JobQueue>()
                                .def("put", &JobQueue::put)
                                .def("get", &JobQueue::get)
                                .def("qsize", &JobQueue::qsize)
                                .concurrent());
  return m;
}

void put(mproc::Address address, std::string key, std::string text) {
  auto m = mproc::BaseManager::connect(address, key);
  m.create<JobQueueProxy>("get_queue").put(text);
}

void get(mproc::Address address, std::string key) {
  auto m = mproc::BaseManager::connect(address, key);
  std::cout << "got: " << m.create<JobQueueProxy>("get_queue").get() << std::endl;
}

int main(int argc, char** argv) {
  mproc::init(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "serve" && argc == 4) {
      auto m = queue_manager({"0.0.0.0", std::atoi(argv[2])}, argv[3]);
      std::cout << "serving on " << m.listen().to_string() << std::endl;
      m.serve_forever();
    } else if (mode == "put" && argc == 6) {
      put({argv[2], std::atoi(argv[3])}, argv[4], argv[5]);
    } else if (mode == "get" && argc == 5) {
      get({argv[2], std::atoi(argv[3])}, argv[4]);
    } else if (argc == 1) {
      auto m = queue_manager({"127.0.0.1", 0}, "abracadabra");
      const auto address = m.listen();
      std::thread server([&] { m.serve_forever(); });
      auto ctx = mproc::get_context(mproc::StartMethod::spawn);
      auto getter = ctx.Process(get, address, std::string("abracadabra"));
      getter.start();  // waits in the server for an item
      auto putter = ctx.Process(put, address, std::string("abracadabra"), std::string("hello"));
      putter.start();
      putter.join();
      getter.join();
      try {
        (void)mproc::BaseManager::connect(address, "wrong key");
      } catch (const mproc::AuthenticationError& e) {
        std::cout << "a wrong key: " << e.what() << std::endl;
      }
      m.shutdown();
      server.join();
      return (*getter.exitcode() == 0 && *putter.exitcode() == 0) ? 0 : 1;
    } else {
      std::cerr << "usage: remote_manager [serve PORT KEY | put HOST PORT KEY TEXT | get HOST PORT KEY]\n";
      return 2;
    }
  } catch (const mproc::Error& e) {
    std::cerr << "remote_manager: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
