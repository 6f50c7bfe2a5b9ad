# cmake -DPKG_CONFIG=<pkg-config> -DCXX=<compiler> -DPREFIX=<install prefix> -DLIBDIR=<relative libdir>
#       -DVERSION=<expected> -DSOURCE=<consumer.cpp> -DOUTPUT=<executable> -P consumer.cmake
# Builds the consumer the way a Makefile user would, with nothing but the installed mproc.pc:
#   g++ -std=c++20 consumer.cpp $(pkg-config --cflags --libs mproc)
# then runs it.
set(ENV{PKG_CONFIG_PATH} "${PREFIX}/${LIBDIR}/pkgconfig")

execute_process(COMMAND "${PKG_CONFIG}" --validate mproc COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${PKG_CONFIG}" --modversion mproc OUTPUT_VARIABLE found_version
                OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
if(NOT found_version STREQUAL VERSION)
  message(FATAL_ERROR "pkg-config found mproc ${found_version}, expected ${VERSION}")
endif()
execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs mproc OUTPUT_VARIABLE flags
                OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
separate_arguments(flags UNIX_COMMAND "${flags}")
# The rpath only matters for a shared libmproc, which is not in the loader's default paths.
execute_process(COMMAND "${CXX}" -std=c++20 "${SOURCE}" ${flags} "-Wl,-rpath,${PREFIX}/${LIBDIR}"
                        -o "${OUTPUT}"
                COMMAND_ECHO STDOUT COMMAND_ERROR_IS_FATAL ANY)
execute_process(COMMAND "${OUTPUT}" RESULT_VARIABLE status)
if(NOT status STREQUAL "0")
  message(FATAL_ERROR "${OUTPUT} exited with ${status}")
endif()
