//! The shared client cases (tests/clients/cases.json) on a rusqlite Connection
//! that has sqlite-runs, loaded (src/bin/client.rs) or linked (src/bin/static_client.rs).
//!
//! A failing statement returns rusqlite::Error::SqliteFailure(e, Some(message)):
//! e.code is the primary code as an ErrorCode (ConstraintViolation for
//! "already active"), e.extended_code the extended one (2067). i64 binds as
//! INTEGER, &str as TEXT.
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => format!("{b:?}"),
    }
}

fn mask_timestamps(text: &str) -> String {
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let matches = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| {
                if *s == b'd' { b.is_ascii_digit() } else { s == b }
            });
        if matches {
            out.push_str("TIME");
            i += shape.len();
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Runs every step; prints a line per step. Returns (passed, failed).
pub fn run_cases(db: &Connection, cases_json: &str) -> (usize, usize) {
    let cases: serde_json::Value = serde_json::from_str(cases_json).expect("cases.json");
    let (mut passed, mut failed) = (0, 0);
    for (i, step) in cases["steps"].as_array().expect("steps").iter().enumerate() {
        let sql = step["sql"].as_str().unwrap();
        let args: Vec<Value> = step["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| match v {
                        serde_json::Value::Null => Value::Null,
                        serde_json::Value::Number(n) => Value::Integer(n.as_i64().unwrap()),
                        other => Value::Text(other.as_str().unwrap().to_owned()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let got = match db.query_row(sql, params_from_iter(args.iter()), |row| row.get::<_, Value>(0)) {
            Ok(value) => format!("value {}", shown(&value)),
            Err(rusqlite::Error::SqliteFailure(e, message)) => format!(
                "error {:?} {} {}",
                e.code,
                e.extended_code,
                mask_timestamps(&message.unwrap_or_default())
            ),
            Err(other) => format!("other error {other}"),
        };
        let want = if let Some(error) = step.get("error") {
            let code = error["code"].as_i64().unwrap() as i32;
            format!(
                "error {:?} {} {}",
                rusqlite::ffi::Error::new(code).code,
                code,
                error["message"].as_str().unwrap()
            )
        } else {
            match &step["result"] {
                serde_json::Value::Null => "value NULL".into(),
                serde_json::Value::String(s) => format!("value {s}"),
                other => format!("value {other}"),
            }
        };
        let name = format!("{}: {}", i + 1, sql);
        if got == want {
            passed += 1;
            println!("ok - {name}");
        } else {
            failed += 1;
            println!("not ok - {name}\n  expected {want}\n  got      {got}");
        }
    }
    println!("{passed} passed, {failed} failed");
    (passed, failed)
}
