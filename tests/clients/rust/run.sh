#!/bin/sh
# Builds tests/clients/rust offline (Debian's cargo and rustc, crates from
# /usr/share/cargo/registry) into BUILD_DIR/rust, and runs the shared cases:
#   run.sh BUILD_DIR STATIC_LIBS                 builds both programs, once
#   run.sh BUILD_DIR STATIC_LIBS load EXTENSION  client: loads runs.so
#   run.sh BUILD_DIR STATIC_LIBS static          static_client: libsqlite-runs.a
# STATIC_LIBS: static_client's link flags (the archive and the C++ runtime).
set -eu
build=$(mkdir -p "$1" && cd "$1" && pwd) libs=$2
here=$(cd "$(dirname "$0")" && pwd)
target=$build/rust
# Debian's toolchain, whatever a rustup installation puts first on PATH.
export CARGO_HOME="$target/cargo-home" CARGO_TARGET_DIR="$target" RUSTC=/usr/bin/rustc
export RUNS_STATIC_LIBS="$libs"
# Built from a copy in the build folder (mtimes kept, so that cargo rebuilds
# only what changed): Cargo.lock, resolved against Debian's registry, and the
# build stay out of the source tree. Cargo reads .cargo/config.toml from the
# folder it runs in.
mkdir -p "$target/project"
cp -pR "$here/Cargo.toml" "$here/build.rs" "$here/src" "$here/.cargo" "$target/project/"
(cd "$target/project" && /usr/bin/cargo build --offline --quiet) || exit 1
case ${3:-build} in
  build) ;;
  load) exec "$target/debug/client" "$here/../cases.json" "$target/load.db" "$4" ;;
  static) exec "$target/debug/static_client" "$here/../cases.json" "$target/static.db" ;;
  *) echo "usage: run.sh BUILD_DIR STATIC_LIBS [load EXTENSION | static]" >&2; exit 2 ;;
esac
