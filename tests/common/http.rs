//! A local HTTP server for tests: answers requests from a queue of replies, records what
//! it was sent, and can misbehave (drop the connection, answer slowly).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server does with the next request.
pub(crate) enum Reply {
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Waits this long before answering 200 with the body.
    Slow { delay: Duration, body: String },
    /// Closes the connection without a word.
    Drop,
    /// Announces the whole body, sends half of it, and closes the connection.
    Truncated { body: String },
}

pub(crate) fn ok(body: Value) -> Reply {
    Reply::Json {
        status: 200,
        headers: vec![],
        body: body.to_string(),
    }
}

pub(crate) fn status(status: u16, body: Value) -> Reply {
    Reply::Json {
        status,
        headers: vec![],
        body: body.to_string(),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub path: String,
    pub headers: String,
    pub body: Value,
}

pub(crate) struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    pub most_at_once: Arc<AtomicUsize>,
}

impl Server {
    pub(crate) async fn start(replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let active = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let (r, q, a, m) = (
            replies.clone(),
            requests.clone(),
            active.clone(),
            most_at_once.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (replies, requests, active, most) =
                    (r.clone(), q.clone(), a.clone(), m.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    requests.lock().unwrap().push(request);
                    let reply = replies.lock().unwrap().pop_front().unwrap_or(Reply::Drop);
                    let mut cut = None;
                    let (code, headers, body) = match reply {
                        Reply::Drop => {
                            active.fetch_sub(1, Ordering::SeqCst);
                            return;
                        }
                        Reply::Truncated { body } => {
                            cut = Some(body.len() / 2);
                            (200, vec![], body)
                        }
                        Reply::Slow { delay, body } => {
                            tokio::time::sleep(delay).await;
                            (200, vec![], body)
                        }
                        Reply::Json {
                            status,
                            headers,
                            body,
                        } => (status, headers, body),
                    };
                    let mut head = format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        body.len()
                    );
                    for (name, value) in headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = socket.write_all(head.as_bytes()).await;
                    let sent = &body.as_bytes()[..cut.unwrap_or(body.len())];
                    let _ = socket.write_all(sent).await;
                    let _ = socket.shutdown().await;
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            addr,
            requests,
            most_at_once,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buffer[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buffer).await.ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buffer[..n]);
    }
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let body = serde_json::from_slice(&data[head_end..]).unwrap_or(Value::Null);
    Some(Recorded {
        path,
        headers: head,
        body,
    })
}
