#!/bin/sh
# Runs every benchmark with the programs of an existing build and writes the
# results to RESULTS, then the markdown report (RESULTS/performance.md).
#   tests/bench/measure.sh [--brief | --busy-only] BUILD RESULTS
# tests/bench/run.sh builds in Release and calls this; ctest calls it with
# --brief (seconds, not minutes: it checks that everything runs). --busy-only
# runs the busy handler comparison alone (item 7, from C and from Python). BUSY_SECONDS (default 10)
# and BUSY_ROUNDS (default 2) set its length per configuration.
set -eu
brief=""
busy_only=""
if [ "${1:-}" = "--brief" ]; then brief=--brief; shift; fi
if [ "${1:-}" = "--busy-only" ]; then busy_only=yes; shift; fi
[ $# -eq 2 ] || { echo "usage: $0 [--brief | --busy-only] BUILD RESULTS" >&2; exit 2; }
bench=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
mkdir -p "$2"
results=$(cd "$2" && pwd)
ext="$build/runs.so"
bin="$build/tests/bench"
python=/usr/bin/python3   # Debian's: the pyenv python3 cannot load extensions
# Scratch databases go next to the results: a real disk, so fsyncs cost.
export RUNS_BENCH_DIR="$results"
cd "$results"

if [ -n "$brief" ]; then
  reps=1; seconds=0.2; procs=2; history_flag=--brief; cycles=2000; conns=3
  busy_seconds=0.2; busy_rounds=1; busy_loads=idle; py_procs=2; busy_keys=one
else
  reps=9; seconds=3; procs=2,4,8,16; history_flag=""; cycles=1000000; conns=100
  busy_seconds=${BUSY_SECONDS:-10}; busy_rounds=${BUSY_ROUNDS:-2}; busy_loads=idle,busy; py_procs=4,12
  busy_keys=one,separate
fi

echo "== machine" >&2
"$python" "$bench/machine.py" "$build" > machine.json

# Item 7: SQLite's busy handler against runs_busy_timeout(5000), side by side
# (each configuration runs both in turn, in reverse order every other round),
# on an idle machine and with one more process keeping a core busy.
echo "== busy handlers (item 7)" >&2
"$bin/contention" --extension "$ext" --processes $procs --seconds $busy_seconds \
  --rounds $busy_rounds --load $busy_loads --keys $busy_keys \
  --variants extension,extension+runs_busy_timeout --json busy.jsonl >&2
"$python" "$bench/python_contention.py" "$ext" --processes $py_procs --seconds $busy_seconds \
  --rounds $busy_rounds --load $busy_loads --keys $busy_keys --json busy_python.jsonl
if [ -n "$busy_only" ]; then
  "$python" "$bench/report.py" "$results" > performance.md
  cat performance.md
  exit 0
fi

echo "== cycle_bench: cycle (items 1) and active_run (item 3)" >&2
"$bin/cycle_bench" "$ext" $history_flag --benchmark_repetitions=$reps \
  --benchmark_enable_random_interleaving=true --benchmark_display_aggregates_only=true \
  --benchmark_out=cycle.json --benchmark_out_format=json >&2

echo "== python_cycle (item 2)" >&2
"$python" "$bench/python_cycle.py" "$ext" $brief --json python.json > /dev/null

echo "== contention (item 4)" >&2
"$bin/contention" --extension "$ext" --processes $procs --seconds $seconds \
  --variants extension,handwritten,extension+backoff,extension+backoff-start,extension+flock --json contention.jsonl >&2

echo "== memory (item 5)" >&2
"$bin/memory_bench" "$ext" connections $conns > memory_connections.json
"$bin/memory_bench" "$ext" cycles $cycles > memory_cycles.json

echo "== profile (item 6)" >&2
if command -v valgrind > /dev/null; then
  "$python" "$bench/profile.py" "$bin/memory_bench" "$ext" $brief --json profile.json > /dev/null
else
  echo "valgrind is not installed: no profile" >&2
  rm -f profile.json
fi

"$python" "$bench/report.py" "$results" > performance.md
echo "== $results/performance.md" >&2
cat performance.md
