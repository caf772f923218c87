#!/bin/sh
# The library carries the hardening Debian applies to its own packages
# (cmake/compiler_flags.cmake): full RELRO, that is a GNU_RELRO segment and
# BIND_NOW (every relocation resolved at load time, then made read-only), and
# a stack protector (-fstack-protector-strong: functions with arrays or
# addresses of locals call __stack_chk_fail when their canary is overwritten).
#   hardened.sh READELF LIBRARY
set -eu
readelf=$1 library=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
"$readelf" -lW "$library" | grep -q 'GNU_RELRO' || fail "no GNU_RELRO segment in $library"
echo "ok: GNU_RELRO segment"
dynamic=$("$readelf" -dW "$library")
echo "$dynamic" | grep -Eq '\(FLAGS\).*BIND_NOW' || fail "no BIND_NOW in the FLAGS of $library:
$(echo "$dynamic" | grep FLAGS)"
echo "$dynamic" | grep -Eq '\(FLAGS_1\).*NOW' || fail "no NOW in the FLAGS_1 of $library"
echo "ok: BIND_NOW"
"$readelf" --dyn-syms -W "$library" | grep -Eq ' UND +__stack_chk_fail(@|$)' ||
  fail "$library does not reference __stack_chk_fail: built without -fstack-protector-strong"
echo "ok: stack protector (__stack_chk_fail referenced)"
