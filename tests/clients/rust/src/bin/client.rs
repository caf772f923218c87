//! client CASES_JSON DATABASE EXTENSION: loads runs.so into rusqlite's
//! connection, as a Rust program would, and runs the shared cases.
use rusqlite::{Connection, LoadExtensionGuard};

fn main() -> rusqlite::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let cases = std::fs::read_to_string(&args[1]).expect("cases.json");
    let _ = std::fs::remove_file(&args[2]);
    // The lines a Rust program writes.
    let db = Connection::open(&args[2])?;
    unsafe {
        let _guard = LoadExtensionGuard::new(&db)?;
        db.load_extension(&args[3], None)?;
    }
    db.query_row("SELECT runs_busy_timeout(5000)", [], |row| row.get::<_, i64>(0))?;
    let (passed, failed) = runs_client::run_cases(&db, &cases);
    std::process::exit(if passed > 0 && failed == 0 { 0 } else { 1 });
}
