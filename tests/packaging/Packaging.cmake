# Packaging tests: a consumer project for each way of using mproc, configured, built and run from
# scratch by `ctest --build-and-test` (fmt's test/find-package-test and add-subdirectory-test).
#
#   packaging.install                  cmake --install of this build into packaging/prefix (fixture)
#   packaging.find-package             find_package(mproc) in that prefix
#   packaging.pkg-config               c++ $(pkg-config --cflags --libs mproc) against that prefix
#   packaging.find-package-build-tree  find_package(mproc) in this build tree (mproc_DIR; export())
#   packaging.add-subdirectory         add_subdirectory(<mproc source tree>)
#   packaging.fetchcontent             FetchContent_Declare(mproc SOURCE_DIR <mproc source tree>)
#
# Every consumer builds tests/packaging/consumer.cpp, which starts a child process and fails unless
# the child ran. The add-subdirectory and fetchcontent consumers compile the library again.

if(MPROC_SANITIZE)
  # The consumers would have to link the sanitizer runtimes as well, and the packaging does not
  # change with sanitizers: the unsanitized build (make test) runs these tests.
  message(STATUS "mproc: packaging tests are not registered in a sanitizer build")
  return()
endif()

set(_mproc_pkg_dir "${CMAKE_CURRENT_BINARY_DIR}/packaging")
set(_mproc_pkg_prefix "${_mproc_pkg_dir}/prefix")

# Options of every consumer build: the same compiler and flags as this build.
set(_mproc_pkg_options "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}" "-DCMAKE_CXX_FLAGS=${CMAKE_CXX_FLAGS}"
                       "-DMPROC_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
                       "-DMPROC_EXPECTED_VERSION=${PROJECT_VERSION}")
if(CMAKE_GENERATOR MATCHES "Ninja")
  # Ninja would start nproc + 2 compilers per consumer, next to the other tests that ctest -j runs.
  list(APPEND _mproc_pkg_options -DCMAKE_JOB_POOLS=packaging=1 -DCMAKE_JOB_POOL_COMPILE=packaging
                                 -DCMAKE_JOB_POOL_LINK=packaging)
endif()

# _mproc_add_consumer_test(<test name> <project> <extra -D options>...): builds the consumer project
# tests/packaging/<project>/ and runs its `consumer`. Each run configures from an empty cache
# (--fresh), so that what the test sees is mproc's defaults, not an earlier run's, but keeps the
# object files (--build-noclean): the build tool rebuilds only what changed in mproc.
function(_mproc_add_consumer_test name project)
  add_test(NAME packaging.${name}
           COMMAND "${CMAKE_CTEST_COMMAND}"
                   --build-and-test "${CMAKE_CURRENT_LIST_DIR}/${project}" "${_mproc_pkg_dir}/${name}"
                   --build-generator "${CMAKE_GENERATOR}"
                   --build-makeprogram "${CMAKE_MAKE_PROGRAM}"
                   --build-project mproc_consumer
                   --build-noclean
                   --build-options --fresh --no-warn-unused-cli ${_mproc_pkg_options} ${ARGN}
                   --test-command consumer)
  set_tests_properties(packaging.${name} PROPERTIES LABELS packaging TIMEOUT 900)
endfunction()

if(MPROC_INSTALL)
  add_test(NAME packaging.install
           COMMAND "${CMAKE_COMMAND}" "-DBUILD_DIR=${PROJECT_BINARY_DIR}" "-DPREFIX=${_mproc_pkg_prefix}"
                   -P "${CMAKE_CURRENT_LIST_DIR}/install.cmake")
  set_tests_properties(packaging.install PROPERTIES LABELS packaging FIXTURES_SETUP mproc_installed)

  _mproc_add_consumer_test(find-package find-package "-DCMAKE_PREFIX_PATH=${_mproc_pkg_prefix}"
                           "-DMPROC_EXPECTED_DIR=${_mproc_pkg_prefix}/${CMAKE_INSTALL_LIBDIR}/cmake/mproc")
  set_tests_properties(packaging.find-package PROPERTIES FIXTURES_REQUIRED mproc_installed)

  # The same consumer against the build tree: what the export() in cmake/MprocInstall.cmake is for.
  _mproc_add_consumer_test(find-package-build-tree find-package "-Dmproc_DIR=${PROJECT_BINARY_DIR}"
                           "-DMPROC_EXPECTED_DIR=${PROJECT_BINARY_DIR}")

  find_program(MPROC_PKG_CONFIG_EXECUTABLE pkg-config)
  if(MPROC_PKG_CONFIG_EXECUTABLE)
    add_test(NAME packaging.pkg-config
             COMMAND "${CMAKE_COMMAND}" "-DPKG_CONFIG=${MPROC_PKG_CONFIG_EXECUTABLE}"
                     "-DCXX=${CMAKE_CXX_COMPILER}" "-DPREFIX=${_mproc_pkg_prefix}"
                     "-DLIBDIR=${CMAKE_INSTALL_LIBDIR}" "-DVERSION=${PROJECT_VERSION}"
                     "-DSOURCE=${CMAKE_CURRENT_LIST_DIR}/consumer.cpp"
                     "-DOUTPUT=${_mproc_pkg_dir}/pkg-config/consumer"
                     -P "${CMAKE_CURRENT_LIST_DIR}/pkg-config/consumer.cmake")
    set_tests_properties(packaging.pkg-config PROPERTIES LABELS packaging TIMEOUT 300
                                                         FIXTURES_REQUIRED mproc_installed)
    file(MAKE_DIRECTORY "${_mproc_pkg_dir}/pkg-config")
  else()
    message(WARNING "mproc: pkg-config not found; the pkg-config packaging test is not registered")
  endif()
endif()

_mproc_add_consumer_test(add-subdirectory add-subdirectory)
_mproc_add_consumer_test(fetchcontent fetchcontent)
