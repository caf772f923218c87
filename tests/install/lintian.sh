#!/bin/sh
# Builds the Debian package the way docs/install.md tells a packager to (a
# build of its own, configured for the prefix /usr, without the tests), then
# checks it with lintian, Debian's package checker: no error and no warning
# (info tags are shown, and pass). The library in the package must be hardened
# like the one of the build (tests/install/hardened.sh).
#   lintian.sh SOURCE_DIR WORK_DIR CMAKE CPACK CXX_COMPILER LINTIAN
set -eu
source=$1 work=$2 cmake=$3 cpack=$4 cxx=$5 lintian=$6
fail() { echo "FAIL: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
"$cmake" -S "$source" -B "$work/build" -DCMAKE_INSTALL_PREFIX=/usr -DRUNS_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_COMPILER=$cxx" > "$work/build.log" 2>&1 &&
  "$cmake" --build "$work/build" -j 2 >> "$work/build.log" 2>&1 ||
  { cat "$work/build.log"; fail "building the library for the package"; }
(cd "$work/build" && "$cpack" -G DEB -B "$work/package") > "$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack -G DEB"; }
set -- "$work"/package/*.deb
[ $# -eq 1 ] && [ -f "$1" ] || fail "cpack made no single .deb: $(ls "$work/package")"
deb=$1
echo "== lintian $(basename "$deb")"
"$lintian" --info --display-info --fail-on error,warning "$deb" || fail "lintian reports errors or warnings"
echo "ok: lintian: no error, no warning"
dpkg-deb -x "$deb" "$work/root"
set -- "$work"/root/usr/lib/*/sqlite-runs/runs.so
sh "$(dirname "$0")/hardened.sh" readelf "$1"
