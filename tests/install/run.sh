#!/bin/sh
# Installs the built library as a user would, then uses it from where it was
# installed: the sqlite3 shell loads the path that pkg-config reports, and the
# consumer project (tests/install/consumer) finds it with find_package().
#   run.sh prefix|deb BUILD_DIR SOURCE_DIR LIBDIR VERSION CMAKE CPACK SQLITE3
# prefix: cmake --install --prefix into a scratch folder (and once more with
#         DESTDIR, which must give the same files and a .pc naming the prefix).
# deb:    cpack -G DEB, check the package's fields and files, extract it with
#         dpkg-deb -x into a scratch root and use it from there.
set -eu
mode=$1 build=$2 source=$3 libdir=$4 version=$5 cmake=$6 cpack=$7 sqlite3=$8
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
same() {  # same WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
  echo "ok: $1"
}

case $mode in
  prefix)
    prefix=$work/prefix
    "$cmake" --install "$build" --prefix "$prefix" > "$work/install.log"
    root=""
    # The same install staged with DESTDIR: same files, and the .pc names the
    # final prefix, not the staging folder.
    DESTDIR=$work/stage "$cmake" --install "$build" --prefix /opt/sqlite-runs > /dev/null
    same "DESTDIR install holds the same files" \
      "$(cd "$work/stage/opt/sqlite-runs" && find . | sort)" "$(cd "$prefix" && find . | sort)"
    same "DESTDIR install's pkg-config prefix" \
      "$(sed -n 's/^prefix=//p' "$work/stage/opt/sqlite-runs/$libdir/pkgconfig/sqlite-runs.pc")" \
      /opt/sqlite-runs
    ;;
  deb)
    (cd "$build" && "$cpack" -G DEB -B "$work/package" > "$work/cpack.log") ||
      { cat "$work/cpack.log"; fail "cpack -G DEB"; }
    arch=$(dpkg --print-architecture)
    deb=$work/package/sqlite-runs_${version}_$arch.deb
    [ -f "$deb" ] || fail "no $deb; cpack made: $(ls "$work/package")"
    same "Package" "$(dpkg-deb -f "$deb" Package)" sqlite-runs
    same "Version" "$(dpkg-deb -f "$deb" Version)" "$version"
    same "Architecture" "$(dpkg-deb -f "$deb" Architecture)" "$arch"
    same "Section" "$(dpkg-deb -f "$deb" Section)" database
    depends=$(dpkg-deb -f "$deb" Depends)
    case $depends in *libc6*libstdc++6*) ;; *) fail "Depends lacks libc6 and libstdc++6: $depends" ;; esac
    case $depends in *sqlite*) fail "Depends names SQLite, which the extension never links: $depends" ;; esac
    echo "ok: Depends: $depends"
    same "files outside /usr" "$(dpkg-deb -c "$deb" | awk '{print $6}' | grep -v '^\./usr/' || true)" ""
    files=$(dpkg-deb -c "$deb" | awk '{print $6}')
    for doc in copyright changelog.gz; do
      echo "$files" | grep -qx "./usr/share/doc/sqlite-runs/$doc" || fail "no /usr/share/doc/sqlite-runs/$doc"
    done
    echo "ok: copyright and changelog.gz"
    dpkg-deb -x "$deb" "$work/root"
    root=$work/root
    prefix=/usr
    ;;
  *) fail "mode must be prefix or deb, not $mode" ;;
esac

installed=$root$prefix
extension=$prefix/$libdir/sqlite-runs/runs.so
[ -f "$root$extension" ] || fail "no $root$extension"
echo "ok: $extension"

# The migrations and the docs, as in the source tree.
for sql in "$source"/sql/[0-9][0-9][0-9]_*.sql; do
  cmp "$sql" "$installed/share/sqlite-runs/sql/$(basename "$sql")" || fail "$sql differs when installed"
done
diff -r "$source/docs" "$installed/share/doc/sqlite-runs/docs" || fail "docs/ differs when installed"
cmp "$source/README.md" "$installed/share/doc/sqlite-runs/README.md" || fail "README.md differs"
if [ "$mode" = prefix ]; then  # the package has its copyright file instead
  cmp "$source/LICENSE" "$installed/share/doc/sqlite-runs/LICENSE" || fail "LICENSE differs when installed"
fi
echo "ok: sql/, docs/ and README.md"

# pkg-config, restricted to this install's .pc.
pc() { PKG_CONFIG_LIBDIR=$installed/$libdir/pkgconfig PKG_CONFIG_PATH= pkg-config "$@" sqlite-runs; }
same "pkg-config --modversion" "$(pc --modversion)" "$version"
same "pkg-config --variable=extension" "$(pc --variable=extension)" "$extension"
same "pkg-config --variable=sqldir" "$(pc --variable=sqldir)" "$prefix/share/sqlite-runs/sql"
same "pkg-config --cflags --libs" "$(pc --cflags --libs | tr -d ' ')" ""
pcs() { PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 PKG_CONFIG_LIBDIR=$installed/$libdir/pkgconfig PKG_CONFIG_PATH= pkg-config "$@" sqlite-runs-static; }
same "pkg-config --modversion sqlite-runs-static" "$(pcs --modversion)" "$version"
same "pkg-config --cflags sqlite-runs-static" "$(pcs --cflags | sed "s/ *$//")" "-I$prefix/include"
same "pkg-config --libs sqlite-runs-static" "$(pcs --libs | sed "s/ *$//")" "-L$prefix/$libdir -lsqlite-runs -lstdc++ -lm"
[ -f "$installed/include/sqlite-runs.h" ] || fail "no $installed/include/sqlite-runs.h"
[ -f "$installed/$libdir/libsqlite-runs.a" ] || fail "no $installed/$libdir/libsqlite-runs.a"
# A C program linked with those flags (the root prepended to the paths, for
# the extracted package) and SQLite runs the shared client cases.
cc -DRUNS_STATIC -o "$work/static-cases" "$source/tests/clients/cases_host.c" \
  $(pcs --cflags --libs | sed "s# -I/# -I$root/#; s#^-I/#-I$root/#; s# -L/# -L$root/#") -lsqlite3 ||
  fail "linking a C program with pkg-config --cflags --libs sqlite-runs-static"
"$work/static-cases" "$source/tests/clients/cases.json" "$work/static.db" > "$work/static.out" ||
  { cat "$work/static.out"; fail "the shared cases, linked with pkg-config's flags"; }
echo "ok: linked with pkg-config's sqlite-runs-static: $(tail -1 "$work/static.out")"

# The sqlite3 shell loads it from there, by the path pkg-config gave (without
# the suffix, as a user types it).
cat > "$work/use.sql" <<EOF
.load $root${extension%.so}
SELECT runs_migrate();
SELECT start_run('nightly');
SELECT start_run('nightly');
SELECT json_extract(runs_debug(), '\$.version');
SELECT cancel_run(1);
EOF
"$sqlite3" -batch :memory: < "$work/use.sql" > "$work/use.out" 2>&1 || true
sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z/TIME/' "$work/use.out" > "$work/use.actual"
# runs_migrate() returns the latest schema version: the highest NNN of sql/NNN_*.sql.
latest=$(basename "$(ls "$source"/sql/[0-9][0-9][0-9]_*.sql | sort | tail -n 1)")
latest=$(expr "${latest%%_*}" + 0)
cat > "$work/use.expected" <<EOF
$latest
1
Runtime error near line 4: start_run(): run 1 is already active (scope 'nightly', status 'pending', since TIME): wait for it to finish, or end it with complete_run(), fail_run() or cancel_run() (19)
v$version
updated
EOF
diff -u "$work/use.expected" "$work/use.actual" || fail "the sqlite3 shell, loading $root$extension"
echo "ok: the sqlite3 shell loads $root$extension"

# A CMake project finds it with find_package(sqlite-runs) and loads it.
"$cmake" -S "$source/tests/install/consumer" -B "$work/consumer" \
  "-DCMAKE_PREFIX_PATH=$installed" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_BUILD_TYPE=Debug > "$work/consumer.log" 2>&1 ||
  { cat "$work/consumer.log"; fail "configuring the consumer project"; }
"$cmake" --build "$work/consumer" > "$work/consumer.log" 2>&1 ||
  { cat "$work/consumer.log"; fail "building the consumer project"; }
"$work/consumer/consumer" > "$work/consumer.out" 2>&1 || { cat "$work/consumer.out"; fail "consumer"; }
sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z/TIME/' "$work/consumer.out" > "$work/consumer.actual"
cat > "$work/consumer.expected" <<EOF
package version: $version
extension (target): $root$extension
extension (variable): $root$extension
sql dir: $installed/share/sqlite-runs/sql
$latest
1
error 2067: start_run(): run 1 is already active (scope 'nightly', status 'pending', since TIME): wait for it to finish, or end it with complete_run(), fail_run() or cancel_run()
updated
cancelled
EOF
diff -u "$work/consumer.expected" "$work/consumer.actual" || fail "the consumer project"
echo "ok: find_package(sqlite-runs) from $installed, and the consumer loads it"
"$work/consumer/consumer_static" "$source/tests/clients/cases.json" "$work/consumer-static.db" \
  > "$work/consumer-static.out" || { cat "$work/consumer-static.out"; fail "consumer_static"; }
echo "ok: the consumer links sqlite-runs::static and SQLite alone: $(tail -1 "$work/consumer-static.out")"
