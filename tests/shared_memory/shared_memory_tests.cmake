# Tests of SharedMemory and ShareableList, including CPython interoperability.
#
# The lifetime tests run a separate program (what a process leaves behind shows only after it has
# exited through its exit handlers); the interop tests run python3, python3.12 and python3.13 and
# SKIP, saying why, for a version that is not installed.
add_executable(mproc_shm_helper shared_memory/programs/shm_helper.cpp)
target_link_libraries(mproc_shm_helper PRIVATE mproc::mproc)
mproc_set_warnings(mproc_shm_helper)

mproc_add_test(shared_memory_test
  shared_memory/shared_memory_test.cpp
  shared_memory/shareable_list_test.cpp)
target_compile_definitions(shared_memory_test PRIVATE MPROC_SHM_HELPER="$<TARGET_FILE:mproc_shm_helper>")
add_dependencies(shared_memory_test mproc_shm_helper)

mproc_add_test(shared_memory_cpython_test shared_memory/cpython_interop_test.cpp)
