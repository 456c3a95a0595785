//! Crash points: places where a test can make the process die, to prove that no instant of a
//! multi-step write loses an acknowledged message.
//!
//! Built with the `failpoints` feature (only the test suite is), `FAILPOINTS=<name>=return`
//! makes [`point`] abort the process at `<name>` as `kill -9` would: no destructor, no flush,
//! no reply. Without the feature [`point`] is empty and compiles away.

/// Aborts the process here when the test set crash point `name`.
#[inline]
pub fn point(name: &str) {
    #[cfg(feature = "failpoints")]
    if fail::eval(name, |_| ()).is_some() {
        eprintln!("crash point {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Reads `FAILPOINTS` once at start (a no-op without the `failpoints` feature); keep the
/// returned guard alive for the life of the process.
pub fn setup() -> impl Sized {
    #[cfg(feature = "failpoints")]
    return fail::FailScenario::setup();
    #[cfg(not(feature = "failpoints"))]
    ()
}
