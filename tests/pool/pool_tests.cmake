# Pool (issue 5): the API forms, CPython's errors, stealing, and the failures where CPython hangs.
mproc_add_test(pool_test pool/pool_test.cpp)
mproc_add_test(spill_test pool/spill_test.cpp)
