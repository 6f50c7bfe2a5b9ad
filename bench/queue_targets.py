"""Issue 4's queue and pipe targets, shared by run_queue_bench.sh (medians) and run_queue_pairs.sh
(paired ratios): each mproc case of queue_bench, its peer, its targets and CPython's figure."""

# Each mproc case's peer in queue_bench (PEERS), the targets (TARGETS) and CPython's figure
# (CPYTHON); an mproc case absent from the binary is skipped. Throughput cases compare items/s
# (mproc / peer, at least the target); round trips compare the time per round trip (mproc / peer,
# at most the target).
PEERS = {
    "BM_MprocQueue_1P1C": "BM_BoostSpscQueue_1P1C", "BM_MprocQueueSpsc_1P1C": "BM_BoostSpscQueue_1P1C",
    "BM_MprocPipe_1P1C": "BM_BoostSpscQueue_1P1C",
    "BM_MprocQueue_2P2C": "BM_BoostLockfreeQueue_2P2C",
    "BM_MprocQueueLanes_1P1C": "BM_BoostSpscQueue_1P1C",
    "BM_MprocQueueLanes_2P2C": "BM_BoostLockfreeQueue_2P2C",
    "BM_MprocPipe_PingPongSpin": "BM_BoostSpscQueue_PingPong",
    "BM_MprocPipe_PingPongSleep": "BM_RawFutex_PingPong",
    "BM_MprocPipe_WakeSleeping/iterations:2000": "BM_RawFutex_WakeSleeping/iterations:2000",
    "BM_MprocQueueString/64": "BM_InterprocessMessageQueue/64",
    "BM_MprocQueueString/4096": "BM_InterprocessMessageQueue/4096",
    "BM_MprocQueueLanesString/64": "BM_InterprocessMessageQueue/64",
    "BM_MprocQueueLanesString/4096": "BM_InterprocessMessageQueue/4096",
}
# Also printed, without a target: the same peers with yielding waits (spin, then sched_yield), the
# fairer bar when processes outnumber the free cores.
ALSO = {
    "BM_MprocQueue_1P1C": "BM_BoostSpscQueue_1P1C_Yield",
    "BM_MprocQueueSpsc_1P1C": "BM_BoostSpscQueue_1P1C_Yield",
    "BM_MprocPipe_1P1C": "BM_BoostSpscQueue_1P1C_Yield",
    "BM_MprocQueue_2P2C": "BM_BoostLockfreeQueue_2P2C_Yield",
    "BM_MprocQueueLanes_1P1C": "BM_BoostSpscQueue_1P1C_Yield",
    "BM_MprocQueueLanes_2P2C": "BM_BoostLockfreeQueue_2P2C_Yield",
}
TARGETS = {  # issue 4's Performance section: (target against the peer, target against CPython)
    "BM_MprocQueue_1P1C": (1.0, 500),
    "BM_MprocQueueSpsc_1P1C": (1.0, 500),
    "BM_MprocPipe_1P1C": (1.0, 500),
    "BM_MprocQueue_2P2C": (5.0, 500),
    "BM_MprocQueueLanes_1P1C": (1.0, 500),  # QueueOptions::lanes: the Queue targets
    "BM_MprocQueueLanes_2P2C": (5.0, 500),
    "BM_MprocPipe_PingPongSpin": (1.0, None),
    "BM_MprocPipe_PingPongSleep": (1.2, None),
    # "both sides sleeping": one way to a parked receiver (a round trip is two of them)
    "BM_MprocPipe_WakeSleeping/iterations:2000": (1.2, None),
    "BM_MprocQueueString/64": (5.0, None),
    "BM_MprocQueueString/4096": (5.0, None),
    "BM_MprocQueueLanesString/64": (5.0, None),
    "BM_MprocQueueLanesString/4096": (5.0, None),
}
CPYTHON = {  # queue_bench case -> the key of bench/peers/cpython_queue.py's figure
    "BM_MprocQueue_1P1C": "queue_1p1c_per_s",
    "BM_MprocQueueSpsc_1P1C": "queue_1p1c_per_s",
    "BM_MprocPipe_1P1C": "queue_1p1c_per_s",
    "BM_MprocQueue_2P2C": "queue_2p2c_per_s",
    "BM_MprocQueueLanes_1P1C": "queue_1p1c_per_s",
    "BM_MprocQueueLanes_2P2C": "queue_2p2c_per_s",
    "BM_MprocPipe_PingPongSpin": "pipe_round_trip_us",
    "BM_MprocPipe_PingPongSleep": "pipe_round_trip_us",
    "BM_MprocQueueString/64": "queue_bytes64_per_s",
    "BM_MprocQueueString/4096": "queue_bytes4096_per_s",
    "BM_MprocQueueLanesString/64": "queue_bytes64_per_s",
    "BM_MprocQueueLanesString/4096": "queue_bytes4096_per_s",
    "BM_BoostSpscQueue_1P1C": "queue_1p1c_per_s",
    "BM_BoostSpscQueue_1P1C_Yield": "queue_1p1c_per_s",
    "BM_BoostLockfreeQueue_2P2C": "queue_2p2c_per_s",
    "BM_BoostLockfreeQueue_2P2C_Yield": "queue_2p2c_per_s",
    "BM_BoostSpscQueue_PingPong": "pipe_round_trip_us",
    "BM_RawFutex_PingPong": "pipe_round_trip_us",
    "BM_InterprocessMessageQueue/64": "queue_bytes64_per_s",
    "BM_InterprocessMessageQueue/4096": "queue_bytes4096_per_s",
}
