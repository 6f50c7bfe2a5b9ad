"""CPython's multiprocessing.Manager, the peer of bench/manager_bench.cpp: microseconds per
list.append proxy call, and per dict set + get pair (two calls), medians of the repetitions
(argument 1, default 5). Prints one JSON object."""
import json
import multiprocessing as mp
import statistics
import sys
import time

CALLS = 5000


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    appends, setgets = [], []
    with mp.Manager() as manager:
        for _ in range(reps):
            lst = manager.list()
            t = time.perf_counter()
            for i in range(CALLS):
                lst.append(i)
            appends.append((time.perf_counter() - t) / CALLS * 1e6)
            assert len(lst) == CALLS
            d = manager.dict()
            t = time.perf_counter()
            for i in range(CALLS):
                d["k"] = i
                assert d["k"] == i
            setgets.append((time.perf_counter() - t) / CALLS * 1e6)
    print(json.dumps({"list_append_us": statistics.median(appends), "dict_set_get_us": statistics.median(setgets)}))


if __name__ == "__main__":
    main()
