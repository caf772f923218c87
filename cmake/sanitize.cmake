# Checked builds (docs/reliability.md says what each one found and how long it ran).
#
# RUNS_SANITIZE: the extension, the tests and their helper programs are built
#   with AddressSanitizer and UndefinedBehaviorSanitizer; -fno-sanitize-recover
#   makes any finding abort, so the test fails. The sanitizer runtime is a shared
#   library (g++'s default, -shared-libasan for clang++), so that the
#   instrumented runs.so can be loaded into hosts that are not instrumented
#   (the sqlite3 shell, python3, node): tests/CMakeLists.txt starts those with
#   RUNS_SANITIZE_PRELOAD in LD_PRELOAD. libstdc++ is preloaded too: a C host
#   loads it only with runs.so, too late for ASan's __cxa_throw interceptor
#   ("CHECK failed: ... real___cxa_throw").
# RUNS_VALGRIND: also run the shell tests and the unit tests under valgrind
#   memcheck (tests/CMakeLists.txt). Valgrind 3.19 cannot read clang 14's
#   DWARF 5, so clang++ builds then emit DWARF 4.
# RUNS_FUZZ: build the libFuzzer target tests/fuzz (clang++ only).
option(RUNS_SANITIZE "Build everything with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(RUNS_VALGRIND "Also run the shell and unit tests under valgrind memcheck" OFF)
option(RUNS_FUZZ "Build the libFuzzer target in tests/fuzz (clang++)" OFF)

if(RUNS_SANITIZE AND RUNS_VALGRIND)
  message(FATAL_ERROR "RUNS_SANITIZE and RUNS_VALGRIND do not mix: use two build folders")
endif()
if(RUNS_FUZZ AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "RUNS_FUZZ needs clang++ (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
endif()

if(RUNS_SANITIZE)
  set(sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    list(APPEND sanitize_flags -shared-libasan)
    set(asan_runtime_name libclang_rt.asan-x86_64.so)
  else()
    set(asan_runtime_name libasan.so)
  endif()
  execute_process(COMMAND "${CMAKE_CXX_COMPILER}" -print-file-name=${asan_runtime_name}
                  OUTPUT_VARIABLE asan_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND "${CMAKE_CXX_COMPILER}" -print-file-name=libstdc++.so
                  OUTPUT_VARIABLE stdcxx_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
  foreach(lib IN ITEMS "${asan_runtime}" "${stdcxx_runtime}")
    if(NOT IS_ABSOLUTE "${lib}" OR NOT EXISTS "${lib}")
      message(FATAL_ERROR "RUNS_SANITIZE: ${CMAKE_CXX_COMPILER} does not know where ${lib} is "
                          "(install libasan8 / libclang-rt-dev)")
    endif()
  endforeach()
  set(RUNS_SANITIZE_PRELOAD "${asan_runtime} ${stdcxx_runtime}")
  add_compile_options(${sanitize_flags})
  add_link_options(${sanitize_flags})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # clang's shared runtime lives outside the loader's search path.
    get_filename_component(asan_runtime_dir "${asan_runtime}" DIRECTORY)
    add_link_options("-Wl,-rpath,${asan_runtime_dir}")
  endif()
endif()

if(RUNS_VALGRIND AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  add_compile_options(-gdwarf-4)
endif()
