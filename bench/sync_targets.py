"""Issue 3's Lock targets as pairs for bench/paired.py (run_sync_pairs.sh): (mproc case of
sync_bench, its peer, the target). Throughput cases compare increments/s (mproc / peer, at least
the target); the uncontended case compares ns per acquire+release (mproc / peer, at most)."""

PAIRS = [
    # Uncontended acquire+release: faster than a process-shared pthread mutex.
    ("BM_LockUncontended", "BM_PthreadMutexUncontended", 1.0),
    # Seed 001's job, 4 processes x 100,000 locked increments: 1.0x the pthread mutex, 10x the
    # POSIX semaphore.
    ("BM_LockFourProcesses", "BM_PthreadMutexFourProcesses", 1.0),
    ("BM_LockFourProcesses", "BM_PosixSemaphoreFourProcesses", 10.0),
    # The same job through the Value's own RLock (get_lock()), held to the same bars.
    ("BM_ValueGetLockFourProcesses", "BM_PthreadMutexFourProcesses", 1.0),
    ("BM_ValueGetLockFourProcesses", "BM_PosixSemaphoreFourProcesses", 10.0),
]
