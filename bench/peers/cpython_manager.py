"""CPython's multiprocessing.Manager, the peer of bench/manager_bench.cpp: microseconds per
list.append proxy call, per dict set + get pair (two calls), and per call of a registered type's
method (BaseManager.register), and per queue put + get pair (two calls), medians of the repetitions
(argument 1, default 5). Prints one JSON object."""
import json
import multiprocessing as mp
from multiprocessing.managers import BaseManager
import statistics
import sys
import time

CALLS = 5000


class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k

    def value(self):
        return self.n


class CounterManager(BaseManager):
    pass


CounterManager.register("Counter", Counter)


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    appends, setgets, queues = [], [], []
    with mp.Manager() as manager:
        for _ in range(reps):
            lst = manager.list()
            t = time.perf_counter()
            for i in range(CALLS):
                lst.append(i)
            appends.append((time.perf_counter() - t) / CALLS * 1e6)
            assert len(lst) == CALLS
            q = manager.Queue()
            t = time.perf_counter()
            for i in range(CALLS):
                q.put(i)
                assert q.get() == i
            queues.append((time.perf_counter() - t) / CALLS * 1e6)
            d = manager.dict()
            t = time.perf_counter()
            for i in range(CALLS):
                d["k"] = i
                assert d["k"] == i
            setgets.append((time.perf_counter() - t) / CALLS * 1e6)
    methods = []
    with CounterManager() as manager:
        for _ in range(reps):
            counter = manager.Counter()
            t = time.perf_counter()
            for _ in range(CALLS):
                counter.add(1)
            methods.append((time.perf_counter() - t) / CALLS * 1e6)
            assert counter.value() == CALLS
    print(json.dumps({"list_append_us": statistics.median(appends), "dict_set_get_us": statistics.median(setgets),
                      "method_call_us": statistics.median(methods),
                      "queue_put_get_us": statistics.median(queues)}))


if __name__ == "__main__":
    main()
