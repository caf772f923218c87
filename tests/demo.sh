#!/bin/sh
# Builds the extension and shows its main job in the sqlite3 shell: migrate a
# fresh database, start a run, see a second start refused, then let several
# processes race to start the same run, where exactly one wins.
#   tests/demo.sh [PROCESSES]   (default 8)
# RUNS_DEMO_BUILD: the build directory (default: build/ in the repository).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
processes=${1:-8}
build=${RUNS_DEMO_BUILD:-$root/build}
cmake -S "$root" -B "$build" -DRUNS_BUILD_TESTS=OFF > /dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" > /dev/null
ext="$build/runs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/app.db"

show() { printf '\n$ %s\n' "$1"; }

show "sqlite3 app.db   # migrate, start a run, try a second one"
sqlite3 -batch "$db" "PRAGMA journal_mode = WAL" > /dev/null
sqlite3 -batch "$db" 2>&1 <<SQL || true
.load $ext
.output /dev/null
SELECT runs_busy_timeout(5000);
.output
SELECT 'runs_migrate() -> ' || runs_migrate();
SELECT 'start_run(''full'') -> ' || start_run('full');
SELECT 'start_run(''full'') -> ' || start_run('full');
SQL

show "sqlite3 app.db   # finish it"
sqlite3 -batch "$db" <<SQL
.load $ext
.output /dev/null
SELECT runs_busy_timeout(5000);
.output
SELECT 'mark_run_running(1) -> ' || mark_run_running(1);
SELECT 'complete_run(1) -> ' || complete_run(1);
SELECT 'active_run() -> ' || coalesce(active_run(), 'NULL');
SQL

show "$processes processes run SELECT start_run('nightly-import') at the same time"
# A run belongs to the process that started it and is reclaimed once that
# process has exited, so each racer keeps its shell open until every racer
# has tried: it reports on the fifo "tried", then waits for a line on "done".
mkfifo "$work/tried" "$work/done"
exec 3<> "$work/tried" 4<> "$work/done"
i=0
while [ "$i" -lt "$processes" ]; do
  sqlite3 -batch "$db" > "$work/out.$i" 2> "$work/err.$i" 3>&- 4>&- <<SQL &
.load $ext
.output /dev/null
SELECT runs_busy_timeout(5000);
.output
SELECT start_run('nightly-import', 'worker-$i');
.shell echo $i > $work/tried; read line < $work/done
SQL
  i=$((i + 1))
done
i=0
while [ "$i" -lt "$processes" ]; do read -r line <&3; i=$((i + 1)); done
i=0
while [ "$i" -lt "$processes" ]; do echo go >&4; i=$((i + 1)); done
wait
exec 3>&- 4>&-
winners=0
i=0
while [ "$i" -lt "$processes" ]; do
  if [ -s "$work/out.$i" ]; then
    winners=$((winners + 1))
    echo "worker-$i: started run $(cat "$work/out.$i")"
  else
    echo "worker-$i: $(sed 's/^Error: stepping, //; s/^Runtime error[^:]*: //' "$work/err.$i")"
  fi
  i=$((i + 1))
done
echo "winners: $winners of $processes"

show "SELECT id, scope, status, triggered_by FROM runs"
sqlite3 -batch -header -column "$db" "SELECT id, scope, status, triggered_by FROM runs"
[ "$winners" -eq 1 ]
