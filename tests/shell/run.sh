#!/bin/sh
# Runs a sqlite3 shell script against the built extension and compares what it
# prints, errors included, with NAME.expected beside it.
#   run.sh SQLITE3 EXTENSION tests/shell/NAME.sql
# The script may say `.load EXTENSION`: the word is replaced by the library's
# path (without its suffix, as a user would type it). Each script runs in a
# fresh temporary folder, so file databases it creates start empty.
set -eu
shell=$1 extension=${2%.so} script=$3
expected=${script%.sql}.expected
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#EXTENSION#$extension#g" "$script" > "$work/script.sql"
cd "$work"
"$shell" -batch < script.sql > actual 2>&1 || true
if diff -u "$expected" actual; then
  echo "shell test $(basename "$script"): output matches"
else
  echo "shell test $(basename "$script"): output differs from $expected" >&2
  exit 1
fi
