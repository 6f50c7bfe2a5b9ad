# Installation, and the two ways an installed mproc is found: find_package(mproc) (the CMake
# package files) and pkg-config (mproc.pc). Included by the top-level CMakeLists when MPROC_INSTALL
# is on. tests/packaging/ builds a consumer against every one of them.
#
# Installed layout (relative to CMAKE_INSTALL_PREFIX):
#   include/mproc/*.hpp                   the public headers; runtime/ is never installed
#   <libdir>/libmproc.a (or .so)          <libdir> is CMAKE_INSTALL_LIBDIR (GNUInstallDirs)
#   <libdir>/cmake/mproc/                 mprocConfig.cmake, mprocConfigVersion.cmake, mprocTargets*.cmake
#   <libdir>/pkgconfig/mproc.pc
include(CMakePackageConfigHelpers)

set(MPROC_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/mproc")

# include/mproc/hal/ belongs to mproc::hal, which is not installed yet (docs/hal.md).
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/mproc" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp" PATTERN "hal" EXCLUDE)
# Destinations default to GNUInstallDirs' (lib, bin); the include directory is already the target's
# INSTALL_INTERFACE (runtime/CMakeLists.txt).
install(TARGETS mproc EXPORT mprocTargets)
install(EXPORT mprocTargets NAMESPACE mproc:: DESTINATION "${MPROC_INSTALL_CMAKEDIR}")

# mprocConfig.cmake sits next to the build-tree mprocTargets.cmake below, so the build tree is a
# package too: find_package(mproc) with mproc_DIR=<this build directory> works without installing.
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/mprocConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/mprocConfig.cmake"
                              INSTALL_DESTINATION "${MPROC_INSTALL_CMAKEDIR}")
# SameMajorVersion: find_package(mproc 1.2) accepts 1.2 and any later 1.y. While the major version
# is 0 it accepts every 0.y, though 0.y releases promise no compatibility with each other.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/mprocConfigVersion.cmake"
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES "${PROJECT_BINARY_DIR}/mprocConfig.cmake" "${PROJECT_BINARY_DIR}/mprocConfigVersion.cmake"
        DESTINATION "${MPROC_INSTALL_CMAKEDIR}")

# The build-tree export, as fmt has one, so that targets depending on mproc can be exported without
# installing mproc: a project that gets mproc through add_subdirectory() or FetchContent (with
# MPROC_INSTALL=ON) can export() its own targets that link mproc::mproc, and the build tree itself
# can be found as a package (above). tests/packaging runs find_package against this file.
export(EXPORT mprocTargets NAMESPACE mproc:: FILE "${PROJECT_BINARY_DIR}/mprocTargets.cmake")

# mproc.pc is relocatable: its prefix is found from the .pc file's own location (${pcfiledir}), so
# `cmake --install build --prefix <anywhere>` yields a working file, as the CMake package files do.
# An absolute CMAKE_INSTALL_LIBDIR or INCLUDEDIR cannot move, so those are written as given.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(MPROC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(MPROC_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(MPROC_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _mproc_pc_up "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")  # ../..
  string(REGEX REPLACE "/$" "" _mproc_pc_up "${_mproc_pc_up}")
  set(MPROC_PC_PREFIX "\${pcfiledir}/${_mproc_pc_up}")
  set(MPROC_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(MPROC_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(MPROC_PC_CFLAGS "")
if(BUILD_SHARED_LIBS)
  set(MPROC_PC_CFLAGS " -DMPROC_SHARED")  # the PUBLIC definition of runtime/CMakeLists.txt
endif()
list(TRANSFORM CMAKE_DL_LIBS PREPEND "-l" OUTPUT_VARIABLE _mproc_pc_dl)
list(JOIN _mproc_pc_dl " " MPROC_PC_LIBS_PRIVATE)
configure_file("${CMAKE_CURRENT_LIST_DIR}/mproc.pc.in" "${PROJECT_BINARY_DIR}/mproc.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/mproc.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
