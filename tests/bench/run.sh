#!/bin/sh
# The benchmark suite, one command: builds in Release (-O2) in build/bench,
# runs every benchmark (about 22 minutes) and prints the tables of
# docs/performance.md; the raw results stay in build/bench/results/.
#   tests/bench/run.sh                  print the tables
#   tests/bench/run.sh --update-docs    and write them into docs/performance.md
#   tests/bench/run.sh --busy-only [--update-docs]
#                                       only SQLite's busy handler against
#                                       runs_busy_timeout() (item 7; 10 s per
#                                       configuration and round: about 17
#                                       minutes; BUSY_SECONDS=3 for a shorter run)
set -eu
update_docs=""
busy_only=""
for arg in "$@"; do
  case "$arg" in
    --update-docs) update_docs=yes ;;
    --busy-only) busy_only=--busy-only ;;
    *) echo "usage: $0 [--busy-only] [--update-docs]" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >&2
cmake --build build/bench -j 2 --target runs cycle_bench contention memory_bench >&2
rm -rf build/bench/results
tests/bench/measure.sh $busy_only build/bench build/bench/results
if [ -n "$update_docs" ]; then
  /usr/bin/python3 tests/bench/report.py build/bench/results --into docs/performance.md
  echo "docs/performance.md: tables updated; review its findings against them" >&2
fi
