"""CPython's Pool, the peer figures for mproc's Pool benchmarks (2 workers, fork, by default):
  * apply_async_pipelined_us: apply_async(add, (i, 1)) for every i below --tasks, all submitted,
    then every result got (microseconds per task);
  * apply_roundtrip_us: apply(add, (i, 1)) one after another, --calls times (microseconds per call);
  * map_trivial_per_s: map(square, range(--items)) with map's default chunksize (items per second);
  * create_to_first_result_ms: Pool(workers) construction to the first apply() result, the pool
    then terminated outside the timing (milliseconds; the median of CREATES pools a repetition);
  * sum_of_powers_pool_s and sum_of_powers_serial_s: the seeds' CPU job, the sum of i + i**2 + i**3
    for i below --n, cut into 4 pieces a worker and mapped over the pool, against the same sum in
    this one process (seconds).
Apart from create_to_first_result, each measure runs on a fresh pool that has already answered one
apply(), so process creation is not counted, as in the C++ harness; every run checks its results'
sum. Prints one JSON object of medians over the repetitions (argument 1, default 5: about 30 s
on 2 cores, most of it apply_async_pipelined's 10**5 tasks; the cheaper measures are noisy)."""
import argparse
import json
import multiprocessing as mp
import statistics
import time

CREATES = 5            # pools created a repetition for create_to_first_result
PIECES_PER_WORKER = 4  # sum_of_powers pieces: a few per worker, so a slow worker does not hold up the end


def add(a, b):
    return a + b


def square(x):
    return x * x


def powers(first, last):
    """The seeds' job over [first, last): the sum of i + i**2 + i**3."""
    res = 0
    for i in range(first, last):
        res += i + i**2 + i**3
    return res


def powers_closed_form(n):
    """sum of i + i**2 + i**3 for i below n, to check the pieces' total."""
    s1 = n * (n - 1) // 2
    return s1 + (n - 1) * n * (2 * n - 1) // 6 + s1 * s1


class WarmPool:
    """A pool whose workers have all started and answered one apply(); terminated on exit."""

    def __init__(self, ctx, workers):
        self.pool = ctx.Pool(workers)

    def __enter__(self):
        assert self.pool.apply(add, (1, 1)) == 2
        return self.pool

    def __exit__(self, *exc):
        self.pool.terminate()
        self.pool.join()


def apply_async_pipelined(ctx, workers, tasks):
    with WarmPool(ctx, workers) as pool:
        t0 = time.perf_counter()
        pending = [pool.apply_async(add, (i, 1)) for i in range(tasks)]
        results = [r.get() for r in pending]
        elapsed = time.perf_counter() - t0
    assert sum(results) == tasks * (tasks + 1) // 2, sum(results)
    return elapsed / tasks * 1e6


def apply_roundtrip(ctx, workers, calls):
    with WarmPool(ctx, workers) as pool:
        total = 0
        t0 = time.perf_counter()
        for i in range(calls):
            total += pool.apply(add, (i, 1))
        elapsed = time.perf_counter() - t0
    assert total == calls * (calls + 1) // 2, total
    return elapsed / calls * 1e6


def map_trivial(ctx, workers, items):
    with WarmPool(ctx, workers) as pool:
        t0 = time.perf_counter()
        results = pool.map(square, range(items))
        elapsed = time.perf_counter() - t0
    assert sum(results) == (items - 1) * items * (2 * items - 1) // 6, sum(results)
    return items / elapsed


def create_to_first_result(ctx, workers):
    times = []
    for _ in range(CREATES):
        t0 = time.perf_counter()
        pool = ctx.Pool(workers)
        first = pool.apply(add, (1, 1))
        times.append(time.perf_counter() - t0)
        pool.terminate()
        pool.join()
        assert first == 2, first
    return statistics.median(times) * 1e3


def sum_of_powers_pool(ctx, workers, n):
    pieces = workers * PIECES_PER_WORKER
    bounds = [(k * n // pieces, (k + 1) * n // pieces) for k in range(pieces)]
    with WarmPool(ctx, workers) as pool:
        t0 = time.perf_counter()
        total = sum(pool.starmap(powers, bounds, chunksize=1))
        elapsed = time.perf_counter() - t0
    assert total == powers_closed_form(n), total
    return elapsed


def sum_of_powers_serial(n):
    t0 = time.perf_counter()
    total = powers(0, n)
    elapsed = time.perf_counter() - t0
    assert total == powers_closed_form(n), total
    return elapsed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repetitions", nargs="?", type=int, default=5, help="runs of each measure (default 5)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--start-method", default="fork", choices=mp.get_all_start_methods())
    # The figure is 10**5 tasks; at CPython's ~40 us a task that is 4 s a repetition.
    parser.add_argument("--tasks", type=int, default=10**5, help="apply_async tasks a repetition")
    parser.add_argument("--calls", type=int, default=2000, help="apply calls a repetition")
    parser.add_argument("--items", type=int, default=10**6, help="map items a repetition")
    parser.add_argument("--n", type=int, default=10**6, help="sum_of_powers bound")
    args = parser.parse_args()
    ctx = mp.get_context(args.start_method)

    def median(f, *fargs):
        return statistics.median(f(*fargs) for _ in range(args.repetitions))

    print(json.dumps({
        "apply_async_pipelined_us": median(apply_async_pipelined, ctx, args.workers, args.tasks),
        "apply_roundtrip_us": median(apply_roundtrip, ctx, args.workers, args.calls),
        "map_trivial_per_s": median(map_trivial, ctx, args.workers, args.items),
        "create_to_first_result_ms": median(create_to_first_result, ctx, args.workers),
        "sum_of_powers_pool_s": median(sum_of_powers_pool, ctx, args.workers, args.n),
        "sum_of_powers_serial_s": median(sum_of_powers_serial, args.n),
    }))
