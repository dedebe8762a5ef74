//! Helpers shared by the integration tests. Each test crate uses part of them.
#![allow(dead_code)]

pub(crate) mod browser;
pub(crate) mod daytona;
pub(crate) mod git;
pub(crate) mod http;
pub(crate) mod project;

/// Whether `condition` holds within `limit`, checked every 100 ms: for what a test can only
/// see from outside (a container appearing, a daemon coming back).
pub(crate) fn wait_until(limit: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    condition()
}
