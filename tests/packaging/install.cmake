# cmake -DBUILD_DIR=<mproc build> -DPREFIX=<dir> -P install.cmake
# Installs the build into an empty PREFIX: a header deleted from include/mproc/ must not survive
# from an earlier run and make the consumers pass.
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
                COMMAND_ERROR_IS_FATAL ANY)
