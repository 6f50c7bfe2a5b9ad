"""CPython's Lock, the peer figures for bench/sync_bench.cpp: an uncontended acquire+release
(nanoseconds) and seed 001's job, 4 processes x 100,000 locked increments of a Value (increments
per second). Prints one JSON object."""
import json
import multiprocessing as mp
import statistics
import sys
import time


def increment(count, lock, n):
    for _ in range(n):
        lock.acquire()
        count.value += 1
        lock.release()


def four_processes(n):
    count = mp.Value("i", 0, lock=False)
    lock = mp.Lock()
    procs = [mp.Process(target=increment, args=(count, lock, n)) for _ in range(4)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    assert count.value == 4 * n, count.value
    return 4 * n / elapsed


def uncontended(rounds):
    lock = mp.Lock()
    t0 = time.perf_counter()
    for _ in range(rounds):
        lock.acquire()
        lock.release()
    return (time.perf_counter() - t0) / rounds * 1e9


if __name__ == "__main__":
    mp.set_start_method("fork")
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(json.dumps({
        "uncontended_ns": statistics.median(uncontended(200_000) for _ in range(runs)),
        "four_processes_per_s": statistics.median(four_processes(100_000) for _ in range(runs)),
    }))
