//! The invocation's deadline, as the Lambda runtime gives it (`Lambda-Runtime-Deadline-Ms`),
//! kept for the task serving the invocation so that long work (a broadcast, a worker's
//! chunk) can stop in time and hand over what is left instead of being cut off.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The time an invocation gets when no deadline was given (the handler tests).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(25);

/// Runs `work` with the deadline `deadline_ms` (epoch ms).
pub async fn within<F: Future>(deadline_ms: u64, work: F) -> F::Output {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    DEADLINE.scope(Instant::now() + left, work).await
}

/// When the current invocation ends.
pub fn deadline() -> Instant {
    DEADLINE
        .try_with(|deadline| *deadline)
        .unwrap_or_else(|_| Instant::now() + DEFAULT_BUDGET)
}

/// `margin` before the current invocation ends (now, if that has passed).
pub fn before_end(margin: Duration) -> Instant {
    let deadline = deadline();
    deadline
        .checked_sub(margin)
        .unwrap_or(deadline)
        .max(Instant::now().min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_is_the_invocations_or_a_default() {
        let outside = deadline();
        assert!(outside > Instant::now() + DEFAULT_BUDGET - Duration::from_secs(1));
        let in_ten = chrono::Utc::now().timestamp_millis() as u64 + 10_000;
        within(in_ten, async {
            let left = deadline() - Instant::now();
            assert!(left <= Duration::from_secs(10) && left > Duration::from_secs(9));
            let margin = before_end(Duration::from_secs(4)) - Instant::now();
            assert!(margin <= Duration::from_secs(6));
        })
        .await;
    }
}
