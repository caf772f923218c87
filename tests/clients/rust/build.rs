// static_client links libsqlite-runs.a: RUNS_STATIC_LIBS holds its link
// flags (the archive and the C++ runtime, as pkg-config --libs
// sqlite-runs-static gives them once installed). client loads runs.so at run
// time and links nothing of sqlite-runs.
fn main() {
    println!("cargo:rerun-if-env-changed=RUNS_STATIC_LIBS");
    let libs = std::env::var("RUNS_STATIC_LIBS").unwrap_or_default();
    if !libs.trim().is_empty() {
        // static_client is built without it otherwise, and says so when run.
        println!("cargo:rustc-cfg=runs_static");
        for flag in libs.split_whitespace() {
            if !flag.starts_with('-') {
                // The archive: relink when it is rebuilt.
                println!("cargo:rerun-if-changed={flag}");
            }
            println!("cargo:rustc-link-arg-bin=static_client={flag}");
        }
    }
}
