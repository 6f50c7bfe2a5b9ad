# Manager and its proxies (issue 7).
mproc_add_test(manager_test managers/manager_test.cpp)
