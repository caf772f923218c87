#!/bin/sh
# Builds sqlite-runs as a subproject (tests/install/subproject: add_subdirectory
# from a tiny parent project) and uses what it built: its files land in its own
# binary folder, not the parent's; its tests are off; the parent's build type
# is kept; the parent's C program linked with sqlite-runs::static runs the
# shared client cases; the sqlite3 shell loads the module.
#   subproject.sh SOURCE_DIR WORK_DIR CMAKE CC CXX SQLITE3 VERSION
set -eu
source=$1 work=$2 cmake=$3 cc=$4 cxx=$5 sqlite3=$6 version=$7
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
build=$work/build
"$cmake" -S "$source/tests/install/subproject" -B "$build" "-DRUNS_SOURCE=$source" \
  "-DCMAKE_C_COMPILER=$cc" "-DCMAKE_CXX_COMPILER=$cxx" -DCMAKE_BUILD_TYPE=Debug \
  > "$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "configuring the parent project"; }
echo "ok: configured"
tests=$(find "$build" -name CTestTestfile.cmake)
[ -z "$tests" ] && [ ! -e "$build/sqlite-runs/tests" ] ||
  fail "sqlite-runs' tests are configured, though it is not the top-level project: $tests"
echo "ok: no tests of sqlite-runs in the parent"
"$cmake" --build "$build" -j 2 --target runs parent_static > "$work/build.log" 2>&1 ||
  { cat "$work/build.log"; fail "building runs and parent_static"; }
module=$build/sqlite-runs/runs.so
[ -f "$module" ] || fail "no $module"
[ -f "$build/sqlite-runs/generated/version.h" ] || fail "no generated/ in sqlite-runs' binary folder"
for stray in runs.so libsqlite-runs.a generated static; do
  [ ! -e "$build/$stray" ] || fail "$stray was written into the parent's binary folder"
done
echo "ok: built into sqlite-runs' own binary folder"
"$build/parent_static" "$source/tests/clients/cases.json" "$work/static.db" > "$work/static.out" ||
  { cat "$work/static.out"; fail "parent_static, linked with sqlite-runs::static"; }
echo "ok: the parent's program links sqlite-runs::static: $(tail -1 "$work/static.out")"
answer=$(printf '.load %s\nSELECT runs_version(), json_extract(runs_debug(), %s);\n' \
  "${module%.so}" "'\$.build_type'" | "$sqlite3" -batch :memory: 2>&1)
[ "$answer" = "v$version|Debug" ] || fail "the sqlite3 shell, loading $module: got '$answer', expected 'v$version|Debug'"
echo "ok: the sqlite3 shell loads $module, built with the parent's build type (Debug)"
rm -rf "$work"
