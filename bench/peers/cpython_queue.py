"""CPython's Queue and Pipe, the peer figures for bench/queue_bench.cpp, on the fork start method:
  * mp.Queue, 1 producer process -> 1 consumer process, 8-byte ints (items per second);
  * mp.Queue, 2 producers -> 2 consumers, the same ints (items per second);
  * mp.Pipe ping-pong, per round trip (microseconds);
  * mp.Queue of 64-byte and 4096-byte bytes objects, 1 -> 1 (items per second).
Throughput runs are timed from a common start line (the children report ready, then wait for one
Event) to the last consumer's end, so process creation is not counted, as in the C++ harness;
every run checks that each value arrived exactly once. Prints one JSON object of medians over the
repetitions (argument 1, default 3)."""
import json
import multiprocessing as mp
import statistics
import sys
import time

INTS = 200_000                                  # 8-byte ints per throughput run
ROUND_TRIPS = 20_000                            # Pipe round trips per run
BYTES_MESSAGES = {64: 200_000, 4096: 100_000}   # bytes objects per run, by size


def now():
    # CLOCK_MONOTONIC is one clock for all processes: a child's end and the parent's start compare.
    return time.clock_gettime(time.CLOCK_MONOTONIC)


class StartLine:
    """Children call the object when ready; start() waits for all of them, notes the time and
    releases them at once."""

    def __init__(self, parties):
        self.parties = parties
        self.ready = mp.Semaphore(0)
        self.go = mp.Event()

    def __call__(self):
        self.ready.release()
        self.go.wait()

    def start(self):
        for _ in range(self.parties):
            self.ready.acquire()
        t0 = now()
        self.go.set()
        return t0


def ints_producer(q, line, first, last):
    line()
    for v in range(first, last + 1):
        q.put(v)
    q.put(None)              # one sentinel per producer: each consumer stops at the first it gets
    q.close()
    q.join_thread()


def ints_consumer(q, line, results):
    line()
    count = total = 0
    while (v := q.get()) is not None:
        count += 1
        total += v
    results.put((count, total, now()))


def bytes_producer(q, line, size, n):
    line()
    pad = b"x" * (size - 8)
    for i in range(1, n + 1):
        q.put(i.to_bytes(8, "little") + pad)
    q.put(None)
    q.close()
    q.join_thread()


def bytes_consumer(q, line, size, results):
    line()
    count = 0
    while (m := q.get()) is not None:
        count += 1
        if len(m) != size or int.from_bytes(m[:8], "little") != count:
            count = -1       # lost, reordered or truncated: the parent's check fails
            break
    results.put((count, 0, now()))


def run(procs, line, results, n_consumers, expect):
    """Runs the processes from the start line; returns items per second to the last consumer's end."""
    try:
        for p in procs:
            p.start()
        t0 = line.start()
        got = [results.get(timeout=120) for _ in range(n_consumers)]
        for p in procs:
            p.join(timeout=120)
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        count, total = sum(g[0] for g in got), sum(g[1] for g in got)
        assert (count, total) == expect, ((count, total), expect)
        return expect[0] / (max(g[2] for g in got) - t0)
    finally:
        for p in procs:      # after a failure a producer may be stuck flushing into a full pipe
            if p.is_alive():
                p.terminate()
                p.join()


def ints_throughput(n_producers, n_consumers, n):
    q, results, line = mp.Queue(), mp.Queue(), StartLine(n_producers + n_consumers)
    share = n // n_producers
    bounds = [(i * share + 1, n if i == n_producers - 1 else (i + 1) * share) for i in range(n_producers)]
    procs = [mp.Process(target=ints_producer, args=(q, line, a, b)) for a, b in bounds]
    procs += [mp.Process(target=ints_consumer, args=(q, line, results)) for _ in range(n_consumers)]
    return run(procs, line, results, n_consumers, expect=(n, n * (n + 1) // 2))


def bytes_throughput(size, n):
    q, results, line = mp.Queue(), mp.Queue(), StartLine(2)
    procs = [mp.Process(target=bytes_producer, args=(q, line, size, n)),
             mp.Process(target=bytes_consumer, args=(q, line, size, results))]
    return run(procs, line, results, 1, expect=(n, 0))


def echo(conn):
    while (v := conn.recv()) is not None:
        conn.send(v)


def pipe_round_trip(rounds):
    a, b = mp.Pipe()
    p = mp.Process(target=echo, args=(b,))
    p.start()
    try:
        a.send(0)            # the child is up and echoing before timing starts
        assert a.recv() == 0
        t0 = now()
        for i in range(1, rounds + 1):
            a.send(i)
            assert a.recv() == i
        elapsed = now() - t0
        a.send(None)
        p.join(timeout=120)
        return elapsed / rounds * 1e6
    finally:
        if p.is_alive():
            p.terminate()
            p.join()


if __name__ == "__main__":
    mp.set_start_method("fork")
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3

    def median(f, *args):
        return statistics.median(f(*args) for _ in range(runs))

    print(json.dumps({
        "queue_1p1c_per_s": median(ints_throughput, 1, 1, INTS),
        "queue_2p2c_per_s": median(ints_throughput, 2, 2, INTS),
        "pipe_round_trip_us": median(pipe_round_trip, ROUND_TRIPS),
        "queue_bytes64_per_s": median(bytes_throughput, 64, BYTES_MESSAGES[64]),
        "queue_bytes4096_per_s": median(bytes_throughput, 4096, BYTES_MESSAGES[4096]),
    }))
