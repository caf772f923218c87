#!/bin/sh
# The benchmark suite, one command: builds in Release (-O2) in build/bench,
# runs every benchmark (about 7 minutes) and prints the tables of
# docs/performance.md; the raw results stay in build/bench/results/.
#   tests/bench/run.sh
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >&2
cmake --build build/bench -j 2 --target runs cycle_bench contention memory_bench >&2
rm -rf build/bench/results
exec tests/bench/measure.sh build/bench build/bench/results
