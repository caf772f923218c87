#!/bin/sh
# The full run (what CI runs): builds the extension and every test three times
# and runs the whole suite through ctest with each build (all with the warnings
# of cmake/compiler_flags.cmake as errors):
#   build/test-g++       g++; also the shell and unit tests under valgrind memcheck,
#                        the PostgreSQL tests, the ecosystem tests (other languages'
#                        clients, packages, lintian) and one brief benchmark run
#                        (none depends on the compiler, so they run in this build only)
#   build/test-clang++   clang++
#   build/test-sanitize  clang++ with AddressSanitizer + UndefinedBehaviorSanitizer,
#                        and the libFuzzer target: its seed corpus, then 30 s of fuzzing
# docs/reliability.md explains the checked builds.
#
# The quick run, for the edit-build-test loop: one build (build/test-quick, the
# default compiler), and the quick tier only, `ctest -LE slow` (no heap-limit or
# fault sweeps, races, torture, PostgreSQL, installs, valgrind, fuzzing or
# benchmarks); a test whose host is missing (node's better-sqlite3, Tcl, Perl)
# is listed as skipped with the reason.
# Usage: tests/run-all.sh [--quick]   (from anywhere)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=""
case "${1:-}" in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: tests/run-all.sh [--quick]" >&2; exit 2 ;;
esac
if [ -z "$quick" ] && [ ! -d tests/node/node_modules/better-sqlite3 ]; then
  echo "tests/node needs better-sqlite3: run  npm install --prefix tests/node" >&2
  exit 1
fi
jobs=$(nproc 2>/dev/null || echo 2)
run() {  # run NAME COMPILER [CMAKE OPTIONS...]; CTEST_ARGS: more ctest options
  name=$1 compiler=$2
  shift 2
  build="build/test-$name"
  start=$(date +%s)
  echo "== $name: build in $build"
  cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$compiler" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
  cmake --build "$build" -j "$jobs"
  built=$(date +%s)
  echo "== $name: tests"
  ctest --test-dir "$build" --output-on-failure -j "$jobs" ${CTEST_ARGS:-}
  echo "== $name: built in $((built - start)) s, tested in $(($(date +%s) - built)) s"
}
if [ -n "$quick" ]; then
  CTEST_ARGS="-LE slow" run quick c++ -DRUNS_VALGRIND=OFF -DRUNS_SANITIZE=OFF -DRUNS_FUZZ=OFF \
    -DRUNS_TEST_POSTGRES=OFF -DRUNS_TEST_ECOSYSTEM=ON -DRUNS_BENCH_SMOKE=OFF
  exit 0
fi
run g++ g++ -DRUNS_VALGRIND=ON -DRUNS_SANITIZE=OFF -DRUNS_FUZZ=OFF \
  -DRUNS_TEST_POSTGRES=ON -DRUNS_TEST_ECOSYSTEM=ON -DRUNS_BENCH_SMOKE=ON
run clang++ clang++ -DRUNS_SANITIZE=OFF -DRUNS_VALGRIND=OFF -DRUNS_FUZZ=OFF \
  -DRUNS_TEST_POSTGRES=OFF -DRUNS_TEST_ECOSYSTEM=OFF -DRUNS_BENCH_SMOKE=OFF
run sanitize clang++ -DRUNS_SANITIZE=ON -DRUNS_FUZZ=ON -DRUNS_VALGRIND=OFF \
  -DRUNS_TEST_POSTGRES=OFF -DRUNS_TEST_ECOSYSTEM=OFF -DRUNS_BENCH_SMOKE=OFF
