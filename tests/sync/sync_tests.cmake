# Tests of the synchronization primitives and shared values.
mproc_add_test(lock_test sync/lock_test.cpp)

# Semaphore, BoundedSemaphore, Condition, Event, Barrier: the handles across processes, and their
# cores with threads (ThreadSanitizer) and against models (rapidcheck).
mproc_add_test(sync_primitives_test sync/primitives_test.cpp)
mproc_add_test(sync_primitives_core_test sync/primitives_core_test.cpp)
target_link_libraries(sync_primitives_core_test PRIVATE rapidcheck)
