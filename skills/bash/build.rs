//! The interpreter recurses once per nested construct and function call: give it 4 MiB of stack
//! instead of the workspace's 64 KiB (the later -zstack-size wins at link time).
fn main() {
    println!("cargo:rustc-link-arg=-zstack-size=4194304");
}
