//! static_client CASES_JSON DATABASE: libsqlite-runs.a linked in (build.rs),
//! registered with sqlite3_auto_extension() before the first connection opens,
//! and the shared cases run on a plain rusqlite connection.
#[cfg(runs_static)]
use rusqlite::ffi;
#[cfg(runs_static)]
use rusqlite::Connection;
#[cfg(runs_static)]
use std::os::raw::{c_char, c_int, c_void};

#[cfg(runs_static)]
extern "C" {
    // sqlite-runs.h
    fn sqlite3_runs_init(
        db: *mut ffi::sqlite3,
        error_message: *mut *mut c_char,
        api: *const c_void, // const sqlite3_api_routines*: unused when linked
    ) -> c_int;
}

#[cfg(not(runs_static))]
fn main() {
    println!("skipped: built without RUNS_STATIC_LIBS (the build has no static library)");
    std::process::exit(77);
}

#[cfg(runs_static)]
fn main() -> rusqlite::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let cases = std::fs::read_to_string(&args[1]).expect("cases.json");
    let _ = std::fs::remove_file(&args[2]);
    // SAFETY: sqlite3_auto_extension() calls the entry point with the
    // arguments of an extension entry point, as declared above.
    let rc = unsafe {
        ffi::sqlite3_auto_extension(Some(std::mem::transmute::<
            unsafe extern "C" fn(*mut ffi::sqlite3, *mut *mut c_char, *const c_void) -> c_int,
            unsafe extern "C" fn(),
        >(sqlite3_runs_init)))
    };
    assert_eq!(rc, ffi::SQLITE_OK);
    let db = Connection::open(&args[2])?;
    db.query_row("SELECT runs_busy_timeout(5000)", [], |row| row.get::<_, i64>(0))?;
    let (passed, failed) = runs_client::run_cases(&db, &cases);
    std::process::exit(if passed > 0 && failed == 0 { 0 } else { 1 });
}
