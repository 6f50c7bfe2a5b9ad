# Manager and its proxies (issue 7).
mproc_add_test(manager_test managers/manager_test.cpp)
mproc_add_test(base_manager_test managers/base_manager_test.cpp)
