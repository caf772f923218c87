#!/bin/sh
# Builds tests/clients/go/src/runscases offline in GOPATH mode, against
# Debian's go-sqlite3 sources (/usr/share/gocode), and runs the shared cases:
#   run.sh load   BUILD_DIR EXTENSION          the driver loads runs.so
#   run.sh static BUILD_DIR LIBS INCLUDE       libsqlite-runs.a linked in (cgo);
#       LIBS: the archive and the C++ runtime, INCLUDE: the folder of sqlite-runs.h
# The Go build cache lives in BUILD_DIR/go, so go-sqlite3 compiles once.
set -eu
mode=$1 build=$(mkdir -p "$2" && cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
export GO111MODULE=off GOFLAGS= GOPROXY=off
export GOPATH="$here:/usr/share/gocode" GOCACHE="$build/go/cache"
mkdir -p "$build/go"
case $mode in
  load)
    go build -o "$build/go/runscases" runscases
    exec "$build/go/runscases" "$here/../cases.json" "$build/go/load.db" "$3"
    ;;
  static)
    # Go's build cache knows the link flags, not the archive's content: link a
    # copy named after its checksum, so that a rebuilt library is relinked.
    libs=""
    for flag in $3; do
      case $flag in
        *.a) copy=$build/go/lib-$(sha256sum "$flag" | cut -c1-16).a
             [ -f "$copy" ] || cp "$flag" "$copy"
             flag=$copy ;;
      esac
      libs="$libs $flag"
    done
    CGO_CFLAGS="-I$4" CGO_LDFLAGS="$libs" \
      go build -tags runs_static -o "$build/go/runscases-static" runscases
    exec "$build/go/runscases-static" "$here/../cases.json" "$build/go/static.db"
    ;;
  *) echo "mode must be load or static" >&2; exit 2 ;;
esac
