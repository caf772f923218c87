// The shared client cases (tests/clients/cases.json) in Go's database/sql
// with mattn/go-sqlite3 (Debian's golang-github-mattn-go-sqlite3-dev, which
// links the system's SQLite), as a Go program would use it. Built offline in
// GOPATH mode (tests/clients/go_client.sh):
//
//	runscases CASES_JSON DATABASE EXTENSION   a driver registered with the
//	    extension in its Extensions: every connection of the pool loads it
//	runscases CASES_JSON DATABASE             built with -tags runs_static:
//	    libsqlite-runs.a linked in, registered with sqlite3_auto_extension()
//
// A failing statement returns a sqlite3.Error: Code is the primary result
// code (sqlite3.ErrConstraint), ExtendedCode the extended one
// (sqlite3.ErrConstraintUnique, 2067, for "already active"); Error() is
// SQLite's message. int64 binds as INTEGER.
package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"

	"github.com/mattn/go-sqlite3"
)

type step struct {
	SQL    string        `json:"sql"`
	Args   []interface{} `json:"args"`
	Result interface{}   `json:"result"`
	Error  *struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
	} `json:"error"`
}

var timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`)

// registerDriver is loadingDriver, or staticDriver with -tags runs_static.
var registerDriver = loadingDriver

func loadingDriver(args []string) (string, error) {
	if len(args) != 1 {
		return "", errors.New("give the extension's path")
	}
	// The lines a Go program writes.
	sql.Register("sqlite3_runs", &sqlite3.SQLiteDriver{Extensions: []string{args[0]}, ConnectHook: busyTimeout})
	return "sqlite3_runs", nil
}

// busyTimeout gives each connection of the pool the library's busy handler,
// in place of the one go-sqlite3 sets.
func busyTimeout(conn *sqlite3.SQLiteConn) error {
	_, err := conn.Exec("SELECT runs_busy_timeout(5000)", nil)
	return err
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: runscases CASES_JSON DATABASE [EXTENSION]")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var cases struct {
		Steps []step `json:"steps"`
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&cases); err != nil {
		panic(err)
	}
	driver, err := registerDriver(os.Args[3:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Remove(os.Args[2])
	db, err := sql.Open(driver, "file:"+os.Args[2])
	if err != nil {
		panic(err)
	}
	defer db.Close()
	passed, failed := 0, 0
	for i, s := range cases.Steps {
		args := make([]interface{}, len(s.Args))
		for k, a := range s.Args {
			if n, ok := a.(json.Number); ok {
				args[k], _ = n.Int64()
			} else {
				args[k] = a
			}
		}
		var value sql.NullString
		var got, want string
		err := db.QueryRow(s.SQL, args...).Scan(&value)
		var se sqlite3.Error
		switch {
		case err == nil && value.Valid:
			got = "value " + value.String
		case err == nil:
			got = "value NULL"
		case errors.As(err, &se):
			got = fmt.Sprintf("error %d/%d %s", int(se.Code), int(se.ExtendedCode),
				timestamp.ReplaceAllString(se.Error(), "TIME"))
		default:
			got = "other error " + err.Error()
		}
		if s.Error != nil {
			want = fmt.Sprintf("error %d/%d %s", s.Error.Code&0xff, s.Error.Code, s.Error.Message)
		} else if s.Result == nil {
			want = "value NULL"
		} else {
			want = fmt.Sprintf("value %v", s.Result)
		}
		name := fmt.Sprintf("%d: %s", i+1, s.SQL)
		if got == want {
			passed++
			fmt.Println("ok - " + name)
		} else {
			failed++
			fmt.Printf("not ok - %s\n  expected %s\n  got      %s\n", name, want, got)
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}
