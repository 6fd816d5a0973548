//! Local fakes of outside APIs, speaking their documented wire formats. Each fake is an axum
//! server on 127.0.0.1:0 started by the test that uses it; it answers from a queue of
//! scripted behaviours, records every request it receives, and notices when a client goes
//! away in the middle of a streamed answer.

#![allow(
    dead_code,
    reason = "shared by several test modules; not every test uses every helper"
)]

pub mod anthropic;
pub mod google;
pub mod openai;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// One request a fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The client's address: a new port means a new connection.
    pub peer: SocketAddr,
    pub path: String,
    /// Lower-case names; values that are not text are left out.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, or `Null` if it was not JSON.
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// What every fake keeps: its script, its log of requests, and the count of clients that left
/// in the middle of an answer.
pub struct Shared<B> {
    queue: Mutex<VecDeque<B>>,
    fallback: Mutex<B>,
    requests: Mutex<Vec<Recorded>>,
    disconnects: watch::Sender<usize>,
}

impl<B: Clone> Shared<B> {
    pub(crate) fn new(fallback: B) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(fallback),
            requests: Mutex::new(Vec::new()),
            disconnects: watch::Sender::new(0),
        })
    }

    pub(crate) fn push(&self, behaviour: B) {
        self.queue.lock().unwrap().push_back(behaviour);
    }

    pub(crate) fn set_fallback(&self, behaviour: B) {
        *self.fallback.lock().unwrap() = behaviour;
    }

    /// The next scripted behaviour, or the fallback once the queue is empty.
    pub(crate) fn next(&self) -> B {
        let next = self.queue.lock().unwrap().pop_front();
        next.unwrap_or_else(|| self.fallback.lock().unwrap().clone())
    }

    pub(crate) fn record(&self, peer: SocketAddr, path: &str, headers: &HeaderMap, body: &Bytes) {
        let headers = headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.requests.lock().unwrap().push(Recorded {
            peer,
            path: path.to_owned(),
            headers,
            body,
        });
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn disconnects(&self) -> usize {
        *self.disconnects.borrow()
    }

    /// Waits until a client has left in the middle of an answer; false if none did in time.
    pub(crate) async fn client_disconnected(&self, within: Duration) -> bool {
        let mut seen = self.disconnects.subscribe();
        tokio::time::timeout(within, seen.wait_for(|n| *n > 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Time between the last frame of a streamed answer and the end of its body.
pub const LINGER: Duration = Duration::from_millis(50);

/// What to do once the scripted frames of a streamed answer are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// End the body.
    Close,
    /// Send nothing more and keep the connection open until the client leaves.
    Stall,
}

/// A `text/event-stream` answer sending each frame after its delay. The frames are fed
/// through a channel by a task of their own, so that a client that leaves is noticed: the
/// server drops the body, and the next send fails. A closed body ends [`LINGER`] after its
/// last frame, as it may behind a proxy: a client cannot count on the end coming with the
/// last event.
pub fn sse_response<B: Send + Sync + 'static>(
    frames: Vec<(Duration, String)>,
    tail: Tail,
    shared: Arc<Shared<B>>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        for (delay, frame) in frames {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Bytes::from(frame)).await.is_err() {
                shared.disconnects.send_modify(|n| *n += 1);
                return;
            }
        }
        match tail {
            Tail::Close => tokio::time::sleep(LINGER).await,
            Tail::Stall => {
                tx.closed().await;
                shared.disconnects.send_modify(|n| *n += 1);
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// A JSON error answer, with `Retry-After` when given.
pub fn json_error(status: u16, body: Value, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
    }
    response
}

/// A server on 127.0.0.1:0, stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn serve(router: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a fake");
        let addr = listener.local_addr().expect("fake address");
        let task = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service).await.expect("fake serves");
        });
        Self { addr, task }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}
