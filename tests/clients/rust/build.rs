// static_client links libsqlite-runs.a: RUNS_STATIC_LIBS holds its link
// flags (the archive and the C++ runtime, as pkg-config --libs
// sqlite-runs-static gives them once installed). client loads runs.so at run
// time and links nothing of sqlite-runs.
fn main() {
    println!("cargo:rerun-if-env-changed=RUNS_STATIC_LIBS");
    if let Ok(libs) = std::env::var("RUNS_STATIC_LIBS") {
        for flag in libs.split_whitespace() {
            println!("cargo:rustc-link-arg-bin=static_client={flag}");
        }
    }
}
