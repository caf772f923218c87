#!/bin/sh
# The shared client cases on another SQLite release, built from the
# amalgamation that an npm package of better-sqlite3 carries (npm pack; no
# other download is possible here):
#   run.sh PACKAGE SQLITE_VERSION BUILD_DIR CC EXTENSION STATIC_LIBS INCLUDE
# PACKAGE is better-sqlite3's version (7.1.2 carries SQLite 3.34.0), and
# SQLITE_VERSION the release it must hold. The tarball, the amalgamation and
# its object (compiled once, -O1) are kept in BUILD_DIR/versions/PACKAGE.
# tests/clients/cases_host.c is then built against that SQLite twice: loading
# runs.so (EXTENSION) with sqlite3_load_extension(), and linking the static
# library (STATIC_LIBS, INCLUDE: the folder of sqlite-runs.h), which also
# proves it calls nothing that this SQLite lacks. Exits 77 (skipped) when npm
# cannot fetch the package.
set -eu
package=$1 version=$2 build=$3 cc=$4 extension=$5 static_libs=$6 include=$7
source=$(cd "$(dirname "$0")/../.." && pwd)
dir=$build/versions/$package
mkdir -p "$dir"
tarball=$dir/better-sqlite3-$package.tgz
if [ ! -f "$tarball" ]; then
  if ! (cd "$dir" && npm pack "better-sqlite3@$package" --silent > npm.log 2>&1); then
    cat "$dir/npm.log"
    echo "skipped: npm pack better-sqlite3@$package failed (is the npm registry reachable?)"
    exit 77
  fi
fi
if [ ! -f "$dir/sqlite3.o" ]; then
  rm -rf "$dir/package" "$dir/sqlite3"
  tar -xzf "$tarball" -C "$dir" package/deps
  if [ -f "$dir/package/deps/sqlite3.tar.gz" ]; then   # better-sqlite3 7.x
    mkdir -p "$dir/sqlite3"
    tar -xzf "$dir/package/deps/sqlite3.tar.gz" -C "$dir/sqlite3"
  else                                                  # later: deps/sqlite3/
    mv "$dir/package/deps/sqlite3" "$dir/sqlite3"
  fi
  found=$(sed -n 's/^#define SQLITE_VERSION  *"\(.*\)"/\1/p' "$dir/sqlite3/sqlite3.h")
  [ "$found" = "$version" ] || { echo "FAIL: better-sqlite3@$package holds SQLite $found, not $version"; exit 1; }
  # JSON1 is built in from 3.38.0 on; before, the define adds it (as
  # distributions do). The cases read JSON, and run_info() writes it.
  "$cc" -O1 -w -DSQLITE_ENABLE_JSON1 -c -o "$dir/sqlite3.o.new" "$dir/sqlite3/sqlite3.c"
  mv "$dir/sqlite3.o.new" "$dir/sqlite3.o"
fi
status=0
"$cc" -O1 -I"$dir/sqlite3" -o "$dir/host" "$source/tests/clients/cases_host.c" "$dir/sqlite3.o" \
  -ldl -lpthread -lm
echo "== runs.so loaded into SQLite $version"
"$dir/host" "$source/tests/clients/cases.json" "$dir/load.db" "$extension" || status=1
# -I order: this SQLite's sqlite3.h before the system's.
"$cc" -O1 -DRUNS_STATIC -I"$dir/sqlite3" -I"$include" -o "$dir/host-static" \
  "$source/tests/clients/cases_host.c" $static_libs "$dir/sqlite3.o" -ldl -lpthread -lm
echo "== libsqlite-runs.a linked with SQLite $version"
"$dir/host-static" "$source/tests/clients/cases.json" "$dir/static.db" || status=1
exit $status
