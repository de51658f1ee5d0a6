//! Console progress while a long wait is pending: cucumber's writer prints a step only when it
//! ends, so a scenario waiting 90 s for a deadline would otherwise look hung.

use std::future::Future;
use std::time::Duration;

/// How often a pending wait reports.
pub const EVERY: Duration = Duration::from_secs(5);

/// Awaits `fut`; while it is pending, prints `    … waiting for <what> (12 s)` to stdout every
/// [`EVERY`].
pub async fn waiting<F: Future>(what: &str, fut: F) -> F::Output {
    report_while(what, EVERY, fut, |line| println!("{line}")).await
}

/// Awaits `fut`, handing a progress line to `report` every `every` while it is pending.
pub async fn report_while<F: Future>(what: &str, every: Duration, fut: F, mut report: impl FnMut(String)) -> F::Output {
    let start = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(start + every, every);
    // A stalled executor should not print a burst of lines afterwards.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            _ = ticks.tick() => report(line(what, start.elapsed())),
        }
    }
}

/// The progress line for a wait on `what` pending for `elapsed`.
pub fn line(what: &str, elapsed: Duration) -> String {
    format!("    … waiting for {what} ({} s)", elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reports_every_period_while_pending_and_returns_the_output() {
        let mut lines = Vec::new();
        let out = report_while(
            "the switch",
            Duration::from_secs(5),
            async {
                tokio::time::sleep(Duration::from_secs(12)).await;
                42
            },
            |l| lines.push(l),
        )
        .await;
        assert_eq!(out, 42);
        assert_eq!(lines, ["    … waiting for the switch (5 s)", "    … waiting for the switch (10 s)"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_future_prints_nothing() {
        let mut lines = Vec::new();
        let out = report_while("x", Duration::from_secs(5), async { "done" }, |l| lines.push(l)).await;
        assert_eq!(out, "done");
        assert!(lines.is_empty());
    }
}
