//! Idempotent removal, for every provider: removing a container, network, volume, image or
//! sandbox that someone else is removing at the same moment (another apply reaping the
//! same dead run, `helios gc`) or has removed already is not a failure. The providers map
//! their answers onto [`Removal`]; [`remove_idempotently`] decides, so the rule is written
//! once and the fake environment's tests exercise the same code as Docker's.

use std::future::Future;
use std::time::Duration;

use super::{EnvError, Provider};

/// How a provider answered one removal call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removed by this call.
    Removed,
    /// Not there (Docker's 404): removed already, by someone.
    Gone,
    /// Busy (Docker's 409: "removal already in progress", a network whose endpoints are
    /// still being removed, a volume whose container is going): asked again until it
    /// answers otherwise.
    Busy,
}

/// How long a busy object is waited for before its removal counts as failed. Docker removes
/// a container in well under a second; a killed one with a large writable layer, in a few.
pub const BUSY_PATIENCE: Duration = Duration::from_secs(60);

/// How often a busy object is asked again.
const BUSY_POLL: Duration = Duration::from_millis(250);

/// Removes `what` with `remove` (one call), asking again while the provider says it is busy:
/// `Removed` and `Gone` both count as removed. An object still busy after `patience` is an
/// error naming it.
pub async fn remove_idempotently<F, Fut>(
    provider: Provider,
    what: &str,
    patience: Duration,
    mut remove: F,
) -> Result<Removal, EnvError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Removal, EnvError>>,
{
    let started = tokio::time::Instant::now();
    loop {
        match remove().await? {
            Removal::Busy if started.elapsed() < patience => {
                tokio::time::sleep(BUSY_POLL).await;
            }
            Removal::Busy => {
                return Err(EnvError::engine(
                    provider,
                    format!(
                        "{what} was still busy (being removed or in use) after {}s",
                        patience.as_secs_f64()
                    ),
                ));
            }
            done => return Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn busy_is_asked_again_until_gone_and_counts_as_removed() {
        let calls = AtomicUsize::new(0);
        let answer =
            remove_idempotently(Provider::Docker, "container `c`", BUSY_PATIENCE, || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Ok(Removal::Busy),
                    _ => Ok(Removal::Gone),
                }
            })
            .await;
        assert_eq!(answer.unwrap(), Removal::Gone);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_past_the_patience_is_an_error_naming_the_object() {
        let error = remove_idempotently(
            Provider::Docker,
            "network `n`",
            Duration::from_secs(2),
            || async { Ok(Removal::Busy) },
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("network `n`"), "{error}");
        assert!(error.is_retryable());
    }
}
