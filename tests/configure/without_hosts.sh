#!/bin/sh
# Configures the project on a machine that has none of the optional hosts: on
# PATH only CMake, make, the compilers and their tools (binutils) and POSIX utilities; CMake's
# system paths off (SQLite's header and library given); GoogleTest and Google
# Benchmark disabled. Configuring must succeed, and ctest must report each
# missing host's tests as skipped, and tests/skipped.sh with the reason
# (tests/CMakeLists.txt, runs_skip): never a configure error, never a silent pass.
# (/usr/bin/python3 cannot be hidden: tests/CMakeLists.txt asks for it by path.)
#   without_hosts.sh SOURCE_DIR WORK_DIR CMAKE CTEST CXX SQLITE3_INCLUDE_DIR SQLITE3_LIBRARY
set -eu
source=$1 work=$2 cmake=$3 ctest=$4 cxx=$5 include=$6 library=$7
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work/bin"
for tool in sh make as ld ld.bfd objcopy cc gzip cat sed grep awk uname rm mkdir; do
  path=$(command -v "$tool") && ln -s "$path" "$work/bin/$tool"
done
PATH=$work/bin "$cmake" -S "$source" -B "$work/build" "-DCMAKE_CXX_COMPILER=$cxx" \
  -DCMAKE_FIND_USE_CMAKE_SYSTEM_PATH=OFF "-DSQLITE3EXT_INCLUDE_DIR=$include" \
  "-DSQLite3_INCLUDE_DIR=$include" "-DSQLite3_LIBRARY=$library" \
  -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON \
  -DRUNS_VALGRIND=ON -DRUNS_TEST_ECOSYSTEM=ON > "$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; fail "configuring without the optional hosts"; }
grep '^-- Skipping' "$work/configure.log"
# The tests skipped at configure time, by name: "-- Skipping NAME: REASON".
names=$(sed -n 's/^-- Skipping \([^:]*\): .*/\1/p' "$work/configure.log")
for expected in "gtest: no GoogleTest" "shell: no sqlite3 shell" "node: no node" "client.tcl: no Tcl" \
                "client.perl: no Perl" "bench.brief: no Google Benchmark" "package.lintian: no lintian" \
                "valgrind: no valgrind" "library.hardened: no readelf"; do
  grep -qF -- "-- Skipping $expected" "$work/configure.log" || fail "configure does not skip '$expected ...'"
  "$ctest" --test-dir "$work/build" -N | grep -qE "Test +#[0-9]+: ${expected%%:*}\$" ||
    fail "ctest does not list ${expected%%:*}"
done
echo "ok: configured; each missing host's tests are listed under their own names"
# Running them: every one is reported skipped, none fails, and
# tests/skipped.sh gives each one's reason, as configure said it.
regex="^($(echo "$names" | sed 's/\./\\./g' | paste -sd '|'))\$"
"$ctest" --test-dir "$work/build" -R "$regex" > "$work/ctest.log" 2>&1 ||
  { cat "$work/ctest.log"; fail "a skipped test failed"; }
listed=$(echo "$names" | wc -l)
skipped=$(grep -c '(Skipped)$' "$work/ctest.log")
[ "$listed" -eq "$skipped" ] || { cat "$work/ctest.log"; fail "$listed tests skipped at configure time, $skipped reported skipped"; }
sh "$(dirname "$0")/../skipped.sh" "$work/build" > "$work/skipped.log"
sed -n 's/^-- Skipping //p' "$work/configure.log" | sort > "$work/configured.reasons"
sed -n 's/^  //p' "$work/skipped.log" | sort > "$work/listed.reasons"
diff -u "$work/configured.reasons" "$work/listed.reasons" ||
  fail "tests/skipped.sh does not list each skipped test with configure's reason"
echo "ok: all $skipped reported as skipped, each with its reason"
rm -rf "$work"
