#!/bin/sh
# Lists the tests that the last ctest run in BUILD_DIR skipped, each with its
# reason. ctest's own summary names them "(Skipped)" without one; LastTest.log
# has their output, and there a skipped test is (the rules of
# tests/CMakeLists.txt): a GoogleTest test whose output says "[  SKIPPED ]",
# its reason the line after "FILE:LINE: Skipped"; or a test whose output ends
# with "skipped: REASON" lines before it exits 77 (runs_skip, and every script
# that skips). ctest runs this after the tests (CTestCustom.cmake, written by
# tests/CMakeLists.txt); by hand:
#   tests/skipped.sh BUILD_DIR
set -eu
log=${1:-.}/Testing/Temporary/LastTest.log
[ -f "$log" ] || exit 0
awk '
  function report() {
    if (name == "") return
    if (!gtest_skip && last !~ /^skipped: /) return
    if (count++ == 0) print "Skipped, and why:"
    print "  " name ": " (reason == "" ? "(it printed no reason)" : reason)
  }
  /^[0-9]+\/[0-9]+ Test: / {
    name = $0; sub(/^[0-9]+\/[0-9]+ Test: /, "", name)
    reason = ""; skips = ""; output = 0; previous = ""; last = ""; gtest_skip = 0; next
  }
  /^Output:$/ { output = 1; getline; next }  # and its line of dashes
  /^<end of output>$/ {
    output = 0
    if (reason == "") reason = skips
    report(); name = ""; next
  }
  !output { next }
  /^\[  SKIPPED \]/ { gtest_skip = 1 }
  previous ~ /: Skipped$/ && reason == "" { reason = $0 }
  /^skipped: / { r = substr($0, 10); skips = skips == "" ? r : skips "; " r }
  { previous = $0; if ($0 != "") last = $0 }
' "$log"
