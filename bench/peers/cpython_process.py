"""CPython's start + join of an empty child, per start method: the peer figure for
bench/process_bench.cpp. Prints one JSON object: {method: median seconds}."""
import json
import multiprocessing as mp
import statistics
import sys
import time


def empty():
    pass


def measure(method, rounds):
    ctx = mp.get_context(method)
    warm = ctx.Process(target=empty)  # start the forkserver outside the timing
    warm.start()
    warm.join()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        p = ctx.Process(target=empty)
        p.start()
        p.join()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(json.dumps({m: measure(m, rounds) for m in ("fork", "forkserver", "spawn")}))
