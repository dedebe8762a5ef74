//! The accept loop of helios's HTTP servers (the viewer, the model gateway): HTTP/1
//! connections served by hyper with a deadline on reading a request's headers, so idle and
//! half-open connections are dropped.
//!
//! `axum::serve` sets no timer, so hyper's header-read timeout never fires there and a
//! client that connects and sends nothing holds a connection (and a task) forever.

use std::pin::pin;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a connection may take to send a request's headers, and how long an idle
/// keep-alive connection is kept.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait before accepting again after `accept` failed (out of file
/// descriptors, usually), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves each connection on `listener` with a service from `service` until `stop` fires,
/// then lets open connections finish (event streams end on `stop` too).
pub(crate) async fn serve<S, B>(
    listener: TcpListener,
    service: impl Fn() -> S,
    stop: CancellationToken,
) -> std::io::Result<()>
where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let service = service();
        let stop = stop.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}
