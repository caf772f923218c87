#!/bin/sh
# A cron job that owns one run of the key 'nightly' for its whole life.
#   cron_job.sh DATABASE STEPS COMMAND [ARGUMENT...]
# runs COMMAND ARGUMENT... STEP once per step, 1 to STEPS, reporting progress.
set -eu
db=$1 steps=$2
shift 2
ext=${SQLITE_RUNS_EXTENSION:-build/runs}

runs() {  # one SQL statement, on a connection that records this script as owner
  sqlite3 -batch -bail "$db" ".load $ext" ".output /dev/null" "SELECT runs_busy_timeout(5000)" \
    "SELECT runs_owner_pid($$)" ".output" "$1"
}

answer=$(runs "SELECT try_start_run('nightly', 'cron', 'nightly')")
case $answer in
  '{"started":true,"id":'*) ;;
  *) echo "cron_job: another run holds the key: $answer"; exit 0 ;;
esac
id=${answer#'{"started":true,"id":'}
id=${id%%,*}
runs "SELECT mark_run_running($id)" > /dev/null
step=1
while [ "$step" -le "$steps" ]; do
  "$@" "$step"
  runs "SELECT update_run_progress($id, $step, $steps, 'step $step')" > /dev/null
  step=$((step + 1))
done
echo "cron_job: run $id $(runs "SELECT complete_run($id)")"
