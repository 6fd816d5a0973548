//! A conversation's WebSocket: the events of the SSE reply stream, with requests going the
//! other way on the same socket.
//!
//! Browsers cannot set `Authorization` on a WebSocket, and a long-lived token in a URL ends up
//! in histories and proxy logs. So a client first asks for a ticket
//! (`POST /conversations/{id}/ws-ticket`, authenticated as usual) and opens
//! `GET /conversations/{id}/ws?ticket=…` within [`TICKET_TTL_SECS`]. A ticket is a JWT with
//! its own audience, bound to the user, the session or API key it was asked with and the
//! conversation; it is redeemed once. Clients that can set headers may send
//! `Authorization: Bearer` instead. Either way the session or key is checked again before the
//! upgrade and before each request on the socket, so revoking it ends the socket's use.
//!
//! Single use is enforced in the database (`ws_tickets_spent`), so a ticket opens one socket
//! whichever instance behind a balancer it reaches.
//!
//! Frames are JSON text. The client sends `{"type": "send", "content": "…", "model": "…"}`,
//! `{"type": "regenerate"}` or `{"type": "cancel"}`; the server sends every [`ChatEvent`]
//! exactly as the SSE stream does (`{"event": "delta", "text": "…"}`), and
//! `{"event": "problem", …}` with an RFC 9457 body for a request that failed before its reply
//! started or a frame it could not use; the socket stays open. One reply runs at a time per
//! socket. Each `send` and `regenerate` counts against the user's `chat` rate limit and token
//! quota exactly as the HTTP request for a reply does (one allowance for both transports);
//! past them it is a `problem` with status 429. A socket that closes mid-reply cancels it, like an SSE client that disconnects:
//! what was written is kept, marked `incomplete`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::request::Parts;
use axum::response::Response;
use garde::Validate;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::routes::SendMessage;
use super::service::{self, ChatEvent, Started};
use crate::auth::extract::{self as auth, AuthUser, AuthVia};
use crate::auth::jwt::{TICKET_TTL_SECS, TicketSource, TokenError};
use crate::db::conversations::{self as store, Conversation};
use crate::db::entity::api_key::Scope;
use crate::error::{Error, FieldError, OrNotFound};
use crate::http::extract::{Path, Query};
use crate::http::rate_limit::Class;
use crate::state::AppState;

/// How often the server pings; a client silent for three times this is taken for gone.
const PING_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicketResponse {
    /// Put it in `GET /conversations/{id}/ws?ticket=…`; it opens one socket, once.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    #[schema(example = 30)]
    pub expires_in: u64,
}

/// A ticket to open this conversation's WebSocket.
///
/// For browsers, which cannot send `Authorization` on a WebSocket: the ticket goes in the URL
/// instead. It is valid 30 seconds, opens one socket once, and only for this conversation.
#[utoipa::path(post, path = "/conversations/{id}/ws-ticket", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses((status = 200, description = "The ticket", body = WsTicketResponse)))]
pub async fn create_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<WsTicketResponse>, Error> {
    find(&state, auth.user.id, id).await?;
    let ticket = state.jwt.issue_ticket(auth.user.id, source_of(&auth), id)?;
    Ok(Json(WsTicketResponse {
        ticket,
        expires_in: TICKET_TTL_SECS,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectQuery {
    /// A ticket from `POST /conversations/{id}/ws-ticket` (instead of `Authorization`).
    pub ticket: Option<String>,
}

/// The conversation's WebSocket: replies as events, requests the other way.
///
/// Answers `101 Switching Protocols`. Authenticate with `?ticket=` from
/// `POST /conversations/{id}/ws-ticket` (browsers) or `Authorization: Bearer` (a read-only API
/// key is refused: the socket can send messages).
///
/// Client frames (JSON text): `{"type": "send", "content": "…", "model": "…"}` (model
/// optional), `{"type": "regenerate"}`, `{"type": "cancel"}` (stops the reply being written).
/// Server frames: the events of the SSE stream as JSON (`{"event": "start" | "delta" |
/// "table" | "usage" | "done" | "error", …}`) and `{"event": "problem", …}` with an RFC 9457
/// body when a request fails before its reply starts or a frame is malformed; the socket stays
/// open. One reply at a time: `send` while one runs is a `problem` with status 409. Each
/// `send`/`regenerate` counts against the `chat` rate limit and the token quota like
/// `POST …/messages` (429 `too-many-requests` or `quota-exceeded` as a `problem`). Closing the
/// socket mid-reply cancels it; what was written is kept, marked `incomplete`.
#[utoipa::path(get, path = "/conversations/{id}/ws", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id"), ConnectQuery),
    responses((status = 101, description = "Switching to the WebSocket protocol")))]
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Error> {
    let Caller(auth) = caller;
    let conversation = find(&state, auth.user.id, id).await?;
    // A message may be `max_message_chars` of up to 4 bytes each, plus the JSON around it.
    let limit = state
        .config
        .chat
        .max_message_chars
        .saturating_mul(4)
        .saturating_add(64 * 1024);
    Ok(upgrade
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(|err| tracing::debug!(error = %err, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            Connection {
                state,
                auth,
                conversation: conversation.id,
                reply: Reply::Idle,
            }
            .run(socket)
        }))
}

async fn find(state: &AppState, user: Uuid, id: Uuid) -> Result<Conversation, Error> {
    store::find(&state.db, user, id)
        .await?
        .or_not_found("conversation")
}

/// Who opens a socket: the holder of a ticket for this conversation, else a bearer credential
/// that may write. Checked before the upgrade, so a refusal is an ordinary problem answer.
pub struct Caller(AuthUser);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Query(query) = Query::<ConnectQuery>::from_request_parts(parts, state).await?;
        let Some(ticket) = query.ticket else {
            let auth = AuthUser::from_request_parts(parts, state).await?;
            return may_write(auth).map(Self);
        };
        let Path(conversation) = Path::<Uuid>::from_request_parts(parts, state).await?;
        let ticket = state.jwt.verify_ticket(&ticket).map_err(|err| match err {
            TokenError::Expired => Error::unauthorized(
                "ticket-expired",
                "The ticket has expired; ask for a new one.",
            ),
            TokenError::Invalid => {
                Error::unauthorized("invalid-ticket", "The ticket is not valid.")
            }
        })?;
        // Spent on first presentation, whatever happens next.
        if !crate::db::sessions::spend_ws_ticket(&state.db, ticket.jti, ticket.refused_after)
            .await?
        {
            return Err(Error::unauthorized(
                "ticket-used",
                "The ticket has been used already; ask for a new one.",
            ));
        }
        if ticket.conversation != conversation {
            return Err(Error::unauthorized(
                "invalid-ticket",
                "The ticket is for another conversation.",
            ));
        }
        let auth = still_allowed(state, ticket.user, ticket.source).await?;
        tracing::Span::current().record("user.id", tracing::field::display(auth.user.id));
        Ok(Self(auth))
    }
}

/// The session or API key is still live, its user not disabled, and it may write.
async fn still_allowed(
    state: &AppState,
    user: Uuid,
    source: TicketSource,
) -> Result<AuthUser, Error> {
    let auth = match source {
        TicketSource::Session(session) => auth::session_user(state, user, session).await?,
        TicketSource::ApiKey(key) => auth::api_key_user(state, user, key).await?,
    };
    may_write(auth)
}

fn may_write(auth: AuthUser) -> Result<AuthUser, Error> {
    if let AuthVia::ApiKey {
        scope: Scope::Read, ..
    } = auth.via
    {
        return Err(Error::forbidden(
            "insufficient-scope",
            "This API key is read-only; a conversation's socket can send messages.",
        ));
    }
    Ok(auth)
}

fn source_of(auth: &AuthUser) -> TicketSource {
    match auth.via {
        AuthVia::Session(session) => TicketSource::Session(session),
        AuthVia::ApiKey { id, .. } => TicketSource::ApiKey(id),
    }
}

/// A client frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Request {
    Send(SendMessage),
    Regenerate,
    Cancel,
}

type Starting = Pin<Box<dyn Future<Output = Result<Started, Error>> + Send>>;

/// The socket's reply, if any.
enum Reply {
    Idle,
    /// Waiting for the model to start answering; `cancel` arrived meanwhile if `cancelled`.
    Starting {
        start: Starting,
        cancelled: bool,
    },
    Running {
        events: mpsc::Receiver<ChatEvent>,
        message_id: Uuid,
    },
}

enum Progress {
    Started(Result<Started, Error>),
    Event(Option<ChatEvent>),
}

impl Reply {
    /// The next thing that happens to the reply; never, when there is none. Cancel-safe.
    async fn progress(&mut self) -> Progress {
        match self {
            Self::Idle => std::future::pending().await,
            Self::Starting { start, .. } => Progress::Started(start.await),
            Self::Running { events, .. } => Progress::Event(events.recv().await),
        }
    }

    fn is_idle(&self) -> bool {
        matches!(self, Self::Idle)
    }
}

/// Why the loop stops.
enum Stop {
    /// The client closed the socket, or it broke.
    Gone,
    /// The server closes it, saying why.
    Close(u16, &'static str),
}

struct Connection {
    state: AppState,
    auth: AuthUser,
    conversation: Uuid,
    reply: Reply,
}

impl Connection {
    #[tracing::instrument(name = "websocket", skip_all,
        fields(user.id = %self.auth.user.id, conversation.id = %self.conversation))]
    async fn run(mut self, mut socket: WebSocket) {
        metrics::gauge!("sheetgpt_ws_connections").increment(1.0);
        self.state
            .open_sockets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stop = self.serve(&mut socket).await;
        if let Reply::Running { message_id, .. } = self.reply {
            // Dropping the receiver would stop it at its next token; this stops it now.
            self.state.runs.cancel(message_id);
        }
        if let Stop::Close(code, reason) = stop {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        metrics::gauge!("sheetgpt_ws_connections").decrement(1.0);
        self.state
            .open_sockets
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    async fn serve(&mut self, socket: &mut WebSocket) -> Stop {
        let idle_after = match self.state.config.chat.ws_idle_secs {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let mut shutting_down = self.state.shutting_down.subscribe();
        let mut heard = Instant::now();
        let mut active = Instant::now();
        loop {
            let idle_at = idle_after.map(|d| active + d);
            tokio::select! {
                frame = socket.recv() => {
                    heard = Instant::now();
                    match frame {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Stop::Gone,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Text(text))) => {
                            active = Instant::now();
                            if let Err(stop) = self.request(socket, text.as_str()).await {
                                return stop;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            active = Instant::now();
                            let err = Error::UnsupportedMediaType {
                                detail: "Send JSON text frames.".to_owned(),
                            };
                            if send_problem(socket, &err).await.is_err() {
                                return Stop::Gone;
                            }
                        }
                    }
                }
                progress = self.reply.progress() => {
                    if self.advance(socket, progress).await.is_err() {
                        return Stop::Gone;
                    }
                    if self.reply.is_idle() {
                        active = Instant::now();
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > 3 * PING_EVERY {
                        return Stop::Close(close_code::AWAY, "no answer to pings");
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return Stop::Gone;
                    }
                }
                () = sleep_until(idle_at), if self.reply.is_idle() => {
                    return Stop::Close(close_code::NORMAL, "idle");
                }
                // A reply being written is finished first (within the shutdown grace).
                true = async { shutting_down.wait_for(|stopping| *stopping).await.is_ok() },
                    if self.reply.is_idle() => {
                    return Stop::Close(close_code::AWAY, "the server is restarting");
                }
            }
        }
    }

    /// Forwards what the reply did to the client; an error means the client is gone.
    async fn advance(&mut self, socket: &mut WebSocket, progress: Progress) -> Result<(), ()> {
        match progress {
            Progress::Started(Err(err)) => {
                self.reply = Reply::Idle;
                send_problem(socket, &err).await
            }
            Progress::Started(Ok(started)) => {
                if let Reply::Starting {
                    cancelled: true, ..
                } = self.reply
                {
                    self.state.runs.cancel(started.message_id);
                }
                self.reply = Reply::Running {
                    events: started.events,
                    message_id: started.message_id,
                };
                Ok(())
            }
            Progress::Event(None) => {
                self.reply = Reply::Idle;
                Ok(())
            }
            Progress::Event(Some(event)) => {
                if matches!(event, ChatEvent::Done { .. }) {
                    self.reply = Reply::Idle;
                }
                send_json(socket, &event).await
            }
        }
    }

    /// Acts on a client frame. Problems are answered on the socket; `Err` closes it.
    async fn request(&mut self, socket: &mut WebSocket, text: &str) -> Result<(), Stop> {
        let outcome = match parse(text) {
            Ok(Request::Cancel) => self.cancel(),
            Ok(Request::Send(body)) => self.start(Some(body.content), body.model).await,
            Ok(Request::Regenerate) => self.start(None, None).await,
            Err(err) => Err(err),
        };
        let Err(err) = outcome else {
            return Ok(());
        };
        if send_problem(socket, &err).await.is_err() {
            return Err(Stop::Gone);
        }
        if matches!(err, Error::Unauthorized { .. } | Error::Forbidden { .. }) {
            return Err(Stop::Close(
                close_code::POLICY,
                "credentials no longer valid",
            ));
        }
        Ok(())
    }

    fn cancel(&mut self) -> Result<(), Error> {
        match &mut self.reply {
            Reply::Idle => Err(Error::conflict(
                "not-running",
                "No reply is being written on this socket.",
            )),
            Reply::Starting { cancelled, .. } => {
                *cancelled = true;
                Ok(())
            }
            Reply::Running { message_id, .. } => {
                // False when it has just finished: its `done` is on its way.
                self.state.runs.cancel(*message_id);
                Ok(())
            }
        }
    }

    /// Starts a reply to `content`, or to the last message again when `None`.
    async fn start(&mut self, content: Option<String>, model: Option<String>) -> Result<(), Error> {
        if !self.reply.is_idle() {
            return Err(Error::conflict(
                "reply-in-progress",
                "A reply is being written on this socket; wait for its `done` or send `cancel`.",
            ));
        }
        let max = self.state.config.chat.max_message_chars;
        if content.as_ref().is_some_and(|c| c.chars().count() > max) {
            return Err(Error::field(
                "content",
                format!("must be at most {max} characters long"),
            ));
        }
        // Revoking the session or key, or disabling the user, ends what the socket may do.
        self.auth = still_allowed(&self.state, self.auth.user.id, source_of(&self.auth)).await?;
        // Each reply counts against the chat rate limit, as `POST …/messages` does.
        crate::http::rate_limit::count_for_user(&self.state, Class::Chat, self.auth.user.id)
            .await?;
        let conversation = find(&self.state, self.auth.user.id, self.conversation).await?;
        let state = self.state.clone();
        let user = self.auth.user.id;
        self.reply = Reply::Starting {
            start: Box::pin(async move {
                service::send(
                    &state,
                    user,
                    &conversation,
                    content.as_deref(),
                    model.as_deref(),
                )
                .await
            }),
            cancelled: false,
        };
        Ok(())
    }
}

/// A client frame as a request, checked like the HTTP bodies of the same requests.
fn parse(text: &str) -> Result<Request, Error> {
    crate::http::nul::check_json(text.as_bytes())?;
    let request: Request = serde_json::from_str(text).map_err(|err| {
        if err.is_data() {
            Error::Validation(vec![FieldError::new("frame", err.to_string())])
        } else {
            Error::bad_request(
                "malformed-json",
                format!("The frame is not valid JSON: {err}"),
            )
        }
    })?;
    if let Request::Send(body) = &request
        && let Err(report) = body.validate()
    {
        return Err(Error::Validation(
            report
                .iter()
                .map(|(path, error)| FieldError::new(path.to_string(), error.message()))
                .collect(),
        ));
    }
    Ok(request)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn send_json(socket: &mut WebSocket, value: &impl Serialize) -> Result<(), ()> {
    let text = serde_json::to_string(value).map_err(|err| {
        tracing::error!(error = %err, "could not serialize a websocket frame");
    })?;
    socket.send(Message::text(text)).await.map_err(|_| ())
}

/// `{"event": "problem", …the problem body}`.
async fn send_problem(socket: &mut WebSocket, err: &Error) -> Result<(), ()> {
    if let Error::Internal(cause) = err {
        tracing::error!(error = ?cause, "internal error");
    }
    #[derive(Serialize)]
    struct ProblemEvent {
        event: &'static str,
        #[serde(flatten)]
        problem: crate::http::error::Problem,
    }
    send_json(
        socket,
        &ProblemEvent {
            event: "problem",
            problem: err.problem(),
        },
    )
    .await
}
