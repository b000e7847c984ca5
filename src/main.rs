//! The `tagbeez` binary. The service modes arrive with the service issue; for now it loads the
//! embedded-to-be model files from `model/` and prints what it would serve.
fn main() {
    println!("tagbeez {}", env!("CARGO_PKG_VERSION"));
}
