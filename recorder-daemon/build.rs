//! `include_dir!` cannot tell cargo which files it read on stable Rust, so the web interface
//! is declared here: an edit under `ui/` rebuilds the binary that embeds it.
fn main() {
    println!("cargo:rerun-if-changed=ui");
}
