# Queue, Pipe and their rings (issue 4): the lock-free cores with threads (ThreadSanitizer), against
# models (rapidcheck) and with processes killed at every step; the handles across processes.
mproc_add_test(mpmc_ring_test queues/mpmc_ring_test.cpp)
target_link_libraries(mpmc_ring_test PRIVATE rapidcheck)
mproc_add_test(queue_test queues/queue_test.cpp)
mproc_add_test(pipe_test queues/pipe_test.cpp)
target_link_libraries(pipe_test PRIVATE rapidcheck)
mproc_add_test(lane_queue_test queues/lane_queue_test.cpp)
target_link_libraries(lane_queue_test PRIVATE rapidcheck)
