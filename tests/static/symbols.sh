#!/bin/sh
# The static library defines one global symbol, its entry point, so that it
# coexists with any other statically linked extension or C++ code:
#   symbols.sh libsqlite-runs.a PROGRAM
# PROGRAM links the archive; none of the library's symbols may be global in it
# either (the C++ runtime's and SQLite's are the program's business).
set -eu
archive=$1 program=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
defined=$(nm -g --defined-only "$archive" | awk 'NF == 3 {print $3}')
echo "global symbols defined in $archive: $defined"
[ "$defined" = sqlite3_runs_init ] || fail "expected sqlite3_runs_init alone"
# Not even an undefined reference to a global sqlite3_api (SQLITE_CORE).
! nm "$archive" | grep -qw sqlite3_api || fail "$archive mentions sqlite3_api"
echo "ok: no sqlite3_api"
leaked=$(nm -g --defined-only -C "$program" | grep -E ' runs::|sqlite3_runs_' | grep -v ' sqlite3_runs_init$' || true)
[ -z "$leaked" ] || fail "$program exports the library's symbols: $leaked"
nm -g --defined-only "$program" | grep -q ' T sqlite3_runs_init$' || fail "$program lacks sqlite3_runs_init"
echo "ok: $program defines sqlite3_runs_init and no other symbol of the library as global"
