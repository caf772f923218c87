# cmake --install and cpack: where sqlite-runs goes, and how other builds find it.
#
#   <libdir>/sqlite-runs/runs.so                      the extension; a folder of its
#                                                     own, as for other loadable modules
#   <libdir>/libsqlite-runs.a, <includedir>/sqlite-runs.h
#                                                     the static library and its header
#   <libdir>/cmake/sqlite-runs/                       find_package(sqlite-runs)
#   <libdir>/pkgconfig/sqlite-runs.pc                 pkg-config --variable=extension sqlite-runs
#   <libdir>/pkgconfig/sqlite-runs-static.pc          pkg-config --cflags --libs sqlite-runs-static
#   <datadir>/sqlite-runs/sql/NNN_name.sql            the migrations, for migration tools
#   <datadir>/doc/sqlite-runs/                        README.md and docs/
#
# <libdir> is GNUInstallDirs' CMAKE_INSTALL_LIBDIR (lib, or lib/x86_64-linux-gnu
# when the prefix is /usr on Debian), <datadir> its CMAKE_INSTALL_DATADIR (share).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(RUNS_INSTALL_MODULEDIR "${CMAKE_INSTALL_LIBDIR}/sqlite-runs")
set(RUNS_INSTALL_EXTENSION "${RUNS_INSTALL_MODULEDIR}/runs.so")
set(RUNS_INSTALL_SQLDIR "${CMAKE_INSTALL_DATADIR}/sqlite-runs/sql")
set(RUNS_INSTALL_DOCDIR "${CMAKE_INSTALL_DATADIR}/doc/sqlite-runs")
set(RUNS_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/sqlite-runs")
set(RUNS_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")

install(TARGETS runs runs_static EXPORT sqlite-runs-targets
  LIBRARY DESTINATION "${RUNS_INSTALL_MODULEDIR}"
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  PUBLIC_HEADER DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/sql/" DESTINATION "${RUNS_INSTALL_SQLDIR}"
        FILES_MATCHING PATTERN "*.sql")
install(FILES "${PROJECT_SOURCE_DIR}/README.md" DESTINATION "${RUNS_INSTALL_DOCDIR}")
install(DIRECTORY "${PROJECT_SOURCE_DIR}/docs/" DESTINATION "${RUNS_INSTALL_DOCDIR}/docs")

# The CMake package: relocatable, every path relative to where it is found.
install(EXPORT sqlite-runs-targets NAMESPACE sqlite-runs:: DESTINATION "${RUNS_INSTALL_CMAKEDIR}")
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/sqlite-runs-config.cmake.in"
  "${PROJECT_BINARY_DIR}/package/sqlite-runs-config.cmake"
  INSTALL_DESTINATION "${RUNS_INSTALL_CMAKEDIR}"
  PATH_VARS RUNS_INSTALL_EXTENSION RUNS_INSTALL_SQLDIR)
# 0.x: a new minor version may change the schema or the functions.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/package/sqlite-runs-config-version.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/package/sqlite-runs-config.cmake"
              "${PROJECT_BINARY_DIR}/package/sqlite-runs-config-version.cmake"
        DESTINATION "${RUNS_INSTALL_CMAKEDIR}")

# The pkg-config file names absolute paths, so it is written when installing,
# for the prefix of that install (cmake --install --prefix, cpack), not for the
# one given at configure time.
set(RUNS_INSTALL_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
set(RUNS_INSTALL_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
foreach(dir IN ITEMS LIBDIR INCLUDEDIR MODULEDIR SQLDIR)
  set(path "${RUNS_INSTALL_${dir}}")
  if(IS_ABSOLUTE "${path}")
    set(RUNS_PC_${dir} "${path}")
  else()
    set(RUNS_PC_${dir} "\${prefix}/${path}")
  endif()
endforeach()
set(RUNS_PC_EXTENSIONDIR "${RUNS_PC_MODULEDIR}")
if(IS_ABSOLUTE "${RUNS_INSTALL_PKGCONFIGDIR}")
  set(pc_destination "${RUNS_INSTALL_PKGCONFIGDIR}")
else()
  set(pc_destination "\${CMAKE_INSTALL_PREFIX}/${RUNS_INSTALL_PKGCONFIGDIR}")
endif()
# The static library's link line names the C++ runtime, for a C program.
list(TRANSFORM RUNS_CXX_RUNTIME PREPEND "-l" OUTPUT_VARIABLE RUNS_PC_CXX_RUNTIME)
list(JOIN RUNS_PC_CXX_RUNTIME " " RUNS_PC_CXX_RUNTIME)
# A folder of its own for each destination: installs may run in parallel.
foreach(pc_name IN ITEMS sqlite-runs sqlite-runs-static)
  configure_file("${PROJECT_SOURCE_DIR}/cmake/${pc_name}.pc.in" "${PROJECT_BINARY_DIR}/package/${pc_name}.pc.in" @ONLY)
  install(CODE "
    file(READ \"${PROJECT_BINARY_DIR}/package/${pc_name}.pc.in\" pc)
    string(REPLACE \"%PREFIX%\" \"\${CMAKE_INSTALL_PREFIX}\" pc \"\${pc}\")
    string(MD5 pc_tmp \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
    set(pc_tmp \"${PROJECT_BINARY_DIR}/package/install-\${pc_tmp}\")
    file(WRITE \"\${pc_tmp}/${pc_name}.pc\" \"\${pc}\")
    file(INSTALL DESTINATION \"${pc_destination}\"
         TYPE FILE FILES \"\${pc_tmp}/${pc_name}.pc\")
    file(REMOVE_RECURSE \"\${pc_tmp}\")
  ")
endforeach()

# cpack -G DEB: a Debian package that installs under /usr, clean for lintian
# (tests/install/lintian.sh) when built as docs/install.md says: configured
# with the prefix /usr, so that the library and the pkg-config file go to
# Debian's multiarch <libdir> (lib/x86_64-linux-gnu), where a module needs no
# ldconfig call in maintainer scripts and pkg-config finds the file for the
# right architecture.
set(CPACK_PACKAGE_NAME "sqlite-runs")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
# A native package (no Debian revision: 0.1.0): upstream makes it from its own
# tree, so its changelog is changelog.gz. (With a revision, 0.1.0-1, lintian
# wants the only changelog entry to close the bug that asked for the package.)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "SQLite extension: at most one active run per key, across processes")
# Lines of at most 80 characters (Debian Policy 3.4.1).
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
  "A SQLite loadable extension that keeps at most one active run (a pipeline,"
  "an import, a sync) per key, across every process that opens the database."
  "Load runs.so into any SQLite 3.34 or later: the sqlite3 shell, Python, Node,"
  "Tcl, Perl.")
set(RUNS_PACKAGE_MAINTAINER "sqlite-runs authors <maintainers@sqlite-runs.invalid>"
    CACHE STRING "The Debian package's Maintainer, and the author of its changelog entry")
set(CPACK_PACKAGE_CONTACT "${RUNS_PACKAGE_MAINTAINER}")
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME "DEB-DEFAULT")
set(CPACK_DEBIAN_PACKAGE_SECTION "database")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # libc6, libstdc++6, libgcc-s1: never libsqlite3
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "sqlite3")
# The license goes with the docs: as LICENSE, or in a Debian package as its
# copyright file (machine-readable, made from LICENSE), with the package's
# changelog.gz (cmake/debian_docs.cmake writes both at configure time).
# cpack tells the install which one it is (CPACK_CUSTOM_INSTALL_VARIABLES).
include("${CMAKE_CURRENT_LIST_DIR}/debian_docs.cmake")
set(CPACK_CUSTOM_INSTALL_VARIABLES "RUNS_DEBIAN_PACKAGE=ON")
install(CODE "
  if(RUNS_DEBIAN_PACKAGE)
    set(license_files \"${RUNS_DEBIAN_COPYRIGHT}\" \"${RUNS_DEBIAN_CHANGELOG}\")
  else()
    set(license_files \"${PROJECT_SOURCE_DIR}/LICENSE\")
  endif()
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${RUNS_INSTALL_DOCDIR}\" TYPE FILE
       FILES \${license_files})
")
set(CPACK_SOURCE_GENERATOR "TGZ")
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build/" "/node_modules/" "__pycache__")
# CPack's configuration belongs to the top-level project: an embedding project
# packages itself.
if(PROJECT_IS_TOP_LEVEL)
  include(CPack)
endif()
