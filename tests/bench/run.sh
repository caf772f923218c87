#!/bin/sh
# The benchmark suite, one command: builds in Release (-O2) in build/bench,
# runs every benchmark (about 5 minutes) and prints the tables of
# docs/performance.md; the raw results stay in build/bench/results/.
#   tests/bench/run.sh                  print the tables
#   tests/bench/run.sh --update-docs    and write them into docs/performance.md
set -eu
update_docs=""
if [ "${1:-}" = "--update-docs" ]; then update_docs=yes; fi
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >&2
cmake --build build/bench -j 2 --target runs cycle_bench contention memory_bench >&2
rm -rf build/bench/results
tests/bench/measure.sh build/bench build/bench/results
if [ -n "$update_docs" ]; then
  /usr/bin/python3 tests/bench/report.py build/bench/results --into docs/performance.md
  echo "docs/performance.md: tables updated; review its findings against them" >&2
fi
