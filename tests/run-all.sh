#!/bin/sh
# Builds the extension and every test with g++ and with clang++ (both with
# -Wall -Wextra -Wpedantic -Werror), then runs the whole suite through ctest
# with each build. Usage: tests/run-all.sh   (from anywhere)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -d tests/node/node_modules/better-sqlite3 ]; then
  echo "tests/node needs better-sqlite3: run  npm install --prefix tests/node" >&2
  exit 1
fi
jobs=$(nproc 2>/dev/null || echo 2)
for compiler in g++ clang++; do
  build="build/test-$compiler"
  # The PostgreSQL tests do not depend on the compiler: run them once.
  postgres=OFF
  [ "$compiler" = g++ ] && postgres=ON
  echo "== $compiler: build in $build"
  # The brief benchmark run (ctest label bench) once, with g++: valgrind 3.19
  # cannot read the DWARF 5 of clang++ 14, and once is what it is for.
  smoke=ON
  [ "$compiler" = g++ ] || smoke=OFF
  cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$compiler" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRUNS_BENCH_SMOKE=$smoke -DRUNS_TEST_POSTGRES="$postgres"
  cmake --build "$build" -j "$jobs"
  echo "== $compiler: tests"
  ctest --test-dir "$build" --output-on-failure -j "$jobs"
done
