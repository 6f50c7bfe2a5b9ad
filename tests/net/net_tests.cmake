# Listener, Client and SocketConnection (issue 7): mproc to mproc, hostile frames, and CPython's
# multiprocessing.connection in both directions for each Python version present.
mproc_add_test(listener_test net/listener_test.cpp)
mproc_add_test(pickle_test net/pickle_test.cpp)
