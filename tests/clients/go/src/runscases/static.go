//go:build runs_static

package main

// The static library, registered for every connection the program opens
// from now on. CGO_CFLAGS and CGO_LDFLAGS give its header and archive
// (pkg-config --cflags --libs sqlite-runs-static once installed).

/*
#cgo LDFLAGS: -lsqlite3
#include <sqlite3.h>
#include <sqlite-runs.h>

static int register_runs(void) {
	return sqlite3_auto_extension((void (*)(void))sqlite3_runs_init);
}
*/
import "C"

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

func init() { registerDriver = staticDriver }

func staticDriver(args []string) (string, error) {
	if len(args) != 0 {
		return "", errors.New("the static build takes no extension path")
	}
	if rc := C.register_runs(); rc != C.SQLITE_OK {
		return "", fmt.Errorf("sqlite3_auto_extension: %d", int(rc))
	}
	sql.Register("sqlite3_runs_static", &sqlite3.SQLiteDriver{ConnectHook: busyTimeout})
	return "sqlite3_runs_static", nil
}
