# Tests of the synchronization primitives and shared values.
mproc_add_test(lock_test sync/lock_test.cpp)
