#!/bin/sh
# Runs a sqlite3 shell script against the built extension and compares what it
# prints, errors included, with NAME.expected beside it.
#   run.sh SQLITE3 EXTENSION tests/shell/NAME.sql [SOURCE_DIR]
# The script may say `.load EXTENSION`: the word is replaced by the library's
# path (without its suffix, as a user would type it). The word SOURCE_DIR is
# replaced by the repository's root (the 4th argument; by default the folder
# two levels above this script), so a script can `.read SOURCE_DIR/sql/...`.
# In NAME.expected, the word SCHEMA_VERSION stands for the library's latest
# schema version, the highest NNN of SOURCE_DIR/sql/NNN_*.sql.
# Each script runs in a fresh temporary folder, so file databases it creates
# start empty.
set -eu
shell=$1 extension=${2%.so} script=$3
source_dir=${4:-$(cd "$(dirname "$0")/../.." && pwd)}
expected=${script%.sql}.expected
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e "s#EXTENSION#$extension#g" -e "s#SOURCE_DIR#$source_dir#g" "$script" > "$work/script.sql"
latest=$(basename "$(ls "$source_dir"/sql/[0-9][0-9][0-9]_*.sql | sort | tail -n 1)")
latest=$(expr "${latest%%_*}" + 0)
sed -e "s#SCHEMA_VERSION#$latest#g" "$expected" > "$work/expected"
cd "$work"
"$shell" -batch < script.sql > actual 2>&1 || true
if diff -u "$work/expected" actual; then
  echo "shell test $(basename "$script"): output matches"
else
  echo "shell test $(basename "$script"): output differs from $expected" >&2
  exit 1
fi
