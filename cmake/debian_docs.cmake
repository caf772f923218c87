# The two files Debian wants in a package's /usr/share/doc/<package>/, written
# at configure time into the build folder (cmake/packaging.cmake installs them
# into the package):
#   RUNS_DEBIAN_COPYRIGHT  copyright, in Debian's machine-readable format
#                          (copyright-format 1.0), made from LICENSE: its
#                          copyright line and its text, never a second copy
#   RUNS_DEBIAN_CHANGELOG  changelog.gz (the name for a native package), a
#                          Debian changelog with one entry for this version,
#                          compressed with gzip -9n as Debian Policy 12.7 asks
# The changelog's date is the configure time, or SOURCE_DATE_EPOCH when set
# (string(TIMESTAMP) honours it), for a reproducible package.
set(debian_dir "${PROJECT_BINARY_DIR}/package/debian")
set(RUNS_DEBIAN_COPYRIGHT "${debian_dir}/copyright")
set(RUNS_DEBIAN_CHANGELOG "${debian_dir}/changelog.gz")
set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${PROJECT_SOURCE_DIR}/LICENSE")

# LICENSE: a title line ("MIT License"), the copyright line, then the text.
file(STRINGS "${PROJECT_SOURCE_DIR}/LICENSE" license_lines)
set(copyright "")
set(license_text "")
foreach(line IN LISTS license_lines)
  if(copyright STREQUAL "" AND line MATCHES "^Copyright \\(c\\) (.+)$")
    set(copyright "${CMAKE_MATCH_1}")
  elseif(NOT copyright STREQUAL "")
    if(line STREQUAL "")
      string(APPEND license_text " .\n")
    else()
      string(APPEND license_text " ${line}\n")
    endif()
  endif()
endforeach()
if(copyright STREQUAL "")
  message(FATAL_ERROR "LICENSE has no line 'Copyright (c) YEAR HOLDER'")
endif()
string(REGEX REPLACE "^ \\.\n" "" license_text "${license_text}")  # the blank line after it
# Debian calls the MIT license of this text "Expat".
file(WRITE "${RUNS_DEBIAN_COPYRIGHT}"
"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ${CPACK_PACKAGE_NAME}

Files: *
Copyright: ${copyright}
License: Expat
${license_text}")

string(TIMESTAMP changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(WRITE "${debian_dir}/changelog"
"${CPACK_PACKAGE_NAME} (${CPACK_PACKAGE_VERSION}) unstable; urgency=medium

  * Version ${CPACK_PACKAGE_VERSION}, packaged with cpack -G DEB.

 -- ${CPACK_PACKAGE_CONTACT}  ${changelog_date}
")
find_program(GZIP gzip)
if(GZIP)
  execute_process(COMMAND "${GZIP}" -9nf "${debian_dir}/changelog" RESULT_VARIABLE gzip_result)
endif()
if(NOT GZIP OR NOT gzip_result EQUAL 0)
  message(FATAL_ERROR "gzip -9n failed on ${debian_dir}/changelog (apt-get install gzip)")
endif()
