//! What the benchmarks share: one report line per measurement.

use std::time::Duration;

/// Prints count, rate, p50, p99 and max of `samples` taken over `total`.
pub fn report(what: &str, total: Duration, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:<15} {} in {total:.2?}: {:.0}/s, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        samples.len(),
        samples.len() as f64 / total.as_secs_f64(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
