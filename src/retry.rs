//! Retries of calls to remote services (model providers, cloud sandboxes): exponential
//! backoff with jitter, the service's `Retry-After` honoured, a bounded number of attempts
//! and a bounded total wait.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

/// An error that may go away when the call is tried again.
pub trait Transient {
    /// Whether trying again may help (429, 5xx, timeouts, dropped connections).
    fn is_retryable(&self) -> bool;
    /// How long the service asked us to wait, if it did.
    fn retry_after(&self) -> Option<Duration>;
}

/// How hard to try.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The most time spent waiting between attempts, over the whole call.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Retries of infrastructure failures (a container that would not start, an engine
    /// hiccup, a build that broke): `retries` more attempts, waiting 2 s, then longer.
    pub fn infrastructure(retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: retries as usize + 1,
            min_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(300),
        }
    }

    /// The waits before each retry, for loops that keep their own state between attempts:
    /// exponential with jitter, at most `max_attempts - 1` of them, within
    /// `max_total_wait`.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let mut waited = Duration::ZERO;
        let limit = self.max_total_wait;
        use backon::BackoffBuilder;
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .build()
            .take_while(move |delay| {
                waited += *delay;
                waited <= limit
            })
    }
}

/// Runs `call` until it succeeds, fails in a way that retrying cannot help, or the policy
/// is spent; `on_retry` hears of each retried failure and the wait before the next try.
pub async fn run<T, E, F, Fut>(
    policy: &RetryPolicy,
    call: F,
    mut on_retry: impl FnMut(&E, Duration),
) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let backoff = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_attempts.saturating_sub(1));
    let mut waited = Duration::ZERO;
    call.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(E::is_retryable)
        .adjust(|error, delay| {
            // The service knows best how long to wait; the total stays bounded either way.
            let delay = delay.map(|d| error.retry_after().unwrap_or(d))?;
            if waited + delay > policy.max_total_wait {
                return None;
            }
            waited += delay;
            Some(delay)
        })
        .notify(|error, delay| on_retry(error, delay))
        .await
}

/// Reads a `Retry-After` header: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infrastructure_delays_grow_and_stop_after_the_retries() {
        let delays: Vec<Duration> = RetryPolicy::infrastructure(3).delays().collect();
        assert_eq!(delays.len(), 3);
        assert!(delays[0] >= Duration::from_secs(2), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(120)));
        assert_eq!(RetryPolicy::infrastructure(0).delays().count(), 0);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        // Out of range or negative: no hint, never a panic.
        assert_eq!(parse_retry_after("1e30"), None);
        assert_eq!(parse_retry_after("-2"), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
