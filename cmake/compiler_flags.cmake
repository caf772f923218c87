# The flags every target of this project is compiled with, stated once.
#
# Warnings: these flags for every target, and warnings as errors through CMake's
# own CMAKE_COMPILE_WARNING_AS_ERROR, on by default when sqlite-runs is the
# top-level project (a project that embeds it with add_subdirectory or
# FetchContent keeps its own choice). Turn it off for one build with
# `cmake --compile-no-warning-as-error` or -DCMAKE_COMPILE_WARNING_AS_ERROR=OFF.
set(RUNS_WARNING_FLAGS -Wall -Wextra -Wpedantic)
add_compile_options(${RUNS_WARNING_FLAGS})
# g++ 12 at -O3 (Release) reports -Wrestrict inside libstdc++'s std::string
# (char_traits.h, "accessing 9223372036854775809 or more bytes"): GCC bug
# 105651, a false positive fixed in g++ 13. Off for g++ 12 only.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  add_compile_options(-Wno-restrict)
endif()
if(PROJECT_IS_TOP_LEVEL AND NOT DEFINED CMAKE_COMPILE_WARNING_AS_ERROR)
  set(CMAKE_COMPILE_WARNING_AS_ERROR ON)
endif()

# RUNS_HARDEN: the hardening Debian applies to its own packages (dpkg-buildflags
# with hardening=+all, less PIE, which a shared module has anyway): a stack
# protector, the checked variants of the C library's string and memory
# functions (_FORTIFY_SOURCE=2, which needs optimisation: not in Debug builds,
# nor with the sanitizers, whose interceptors replace those functions), and
# full RELRO (-z relro -z now: the relocations are resolved at load time and
# made read-only). tests/CMakeLists.txt checks the built library
# (library.hardened), tests/install/lintian.sh the Debian package.
option(RUNS_HARDEN "Build with Debian's hardening flags (stack protector, _FORTIFY_SOURCE, full RELRO)" ON)
if(RUNS_HARDEN)
  add_compile_options(-fstack-protector-strong)
  if(NOT RUNS_SANITIZE)
    add_compile_options("$<$<NOT:$<CONFIG:Debug>>:-U_FORTIFY_SOURCE;-D_FORTIFY_SOURCE=2>")
  endif()
  add_link_options(LINKER:-z,relro,-z,now)
endif()
