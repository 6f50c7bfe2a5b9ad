# The GPIO layer (issue 6): the simulated 74HC595, the LED-row driver, the backends' contract, and
# the running-light example under SIGINT (it runs examples/waterlight, so it needs that built).
mproc_add_test(hal_test hal/hal_test.cpp)
target_link_libraries(hal_test PRIVATE mproc::hal)
target_compile_definitions(hal_test PRIVATE MPROC_EXAMPLES_DIR="${PROJECT_BINARY_DIR}/examples")
if(MPROC_BUILD_EXAMPLES)
  add_dependencies(hal_test waterlight)  # defined later (examples/), resolved at generation
endif()
