# The shared client cases (tests/clients/cases.json) in Tcl's sqlite3 package
# (Debian's libsqlite3-tcl), as a Tcl program would use it:
#   tclsh tests/clients/client.tcl build/runs.so
# A failing statement raises a Tcl error (catch returns 1) whose result is the
# message; `db errorcode` is the primary result code. Tcl reads the cases with
# SQLite's own JSON functions: Tcl 8.6 has no JSON parser of its own.
package require sqlite3

if {[llength $argv] != 1} {
  puts stderr "usage: tclsh client.tcl EXTENSION"
  exit 2
}
set extension [lindex $argv 0]
set cases [file join [file dirname [file normalize [info script]]] cases.json]
set f [open $cases]
fconfigure $f -encoding utf-8
set json [read $f]
close $f

set tmp [file join [expr {[info exists env(TMPDIR)] ? $env(TMPDIR) : "/tmp"}] \
             "sqlite-runs-tcl-[pid]"]
file delete -force $tmp
file mkdir $tmp

# The three lines a Tcl program writes.
sqlite3 db [file join $tmp app.db]
db enable_load_extension 1
db eval {SELECT load_extension($extension)}

set null "(null)"
db nullvalue $null
db timeout 5000

sqlite3 cases :memory:
set passed 0
set failed 0
proc check {name ok detail} {
  global passed failed
  if {$ok} {
    incr passed
    puts "ok - $name"
  } else {
    incr failed
    puts "not ok - $name: $detail"
  }
}

set number 0
cases eval {SELECT key AS i, value AS step FROM json_each($json, '$.steps')} {
  incr number
  set sql [cases onecolumn {SELECT json_extract($step, '$.sql')}]
  # tclsqlite binds Tcl variables ($p1, $p2, ...), not positional parameters.
  set n 0
  cases eval {SELECT type, value FROM json_each($step, '$.args')} arg {
    incr n
    switch -- $arg(type) {
      integer { set p$n [expr {wide($arg(value))}] }
      null    { unset -nocomplain p$n }
      default { set p$n $arg(value) }
    }
    set i [string first ? $sql]
    set sql [string replace $sql $i $i "\$p$n"]
  }
  set name "$number: $sql"
  set code [catch {db onecolumn $sql} result]
  if {[cases exists {SELECT 1 WHERE json_type($step, '$.error') IS NOT NULL}]} {
    cases eval {SELECT json_extract($step, '$.error.message') AS message,
                       json_extract($step, '$.error.code') AS xcode} {}
    regsub -all {\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z} $result TIME shown
    check $name [expr {$code == 1 && $shown eq $message && [db errorcode] == ($xcode & 255)}] \
        "expected error '$message' ([expr {$xcode & 255}]), got code $code '$result' ([db errorcode])"
  } else {
    set expected [cases onecolumn {SELECT CASE WHEN json_type($step, '$.result') = 'null'
                                          THEN $null ELSE json_extract($step, '$.result') END}]
    check $name [expr {$code == 0 && $result eq $expected}] "expected '$expected', got '$result'"
  }
}
db close
cases close
file delete -force $tmp
if {$number == 0} {
  puts "no cases found in $cases"
  exit 1
}
puts "$passed passed, $failed failed"
exit [expr {$failed > 0}]
