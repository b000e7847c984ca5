//! The `tagbeez` binary. Its modes (Lambda, local server, CLI) arrive with the service; until
//! then it only names itself, so the crate already builds the binary the Lambda will run.
fn main() {
    println!("tagbeez {}", env!("CARGO_PKG_VERSION"));
}
