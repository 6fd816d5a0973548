//! The job workers, one generic machinery for every kind of job: each worker claims one job
//! at a time from the database, holds it with a lease it renews every third of the lease
//! time (and records progress every second while it moves), and records the outcome only
//! while it still holds it. A job whose worker died is claimed again once the lease has run
//! out; a job that fails for a reason that may pass (database, disk) is retried with
//! exponential back-off. What a kind does is its [`Job`] implementation, next to its feature.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::Kind;
use crate::db::jobs::{self as store, JobRecord};
use crate::exports::render::Control;
use crate::state::AppState;

/// One attempt of a job of some kind, as the worker calls it.
type Runner =
    for<'a> fn(
        &'a AppState,
        Uuid,
        &'a JobRecord,
        &'a watch::Receiver<bool>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>>;

/// The kinds of job the workers run, each with its [`Job`] implementation; the composition
/// root (`app`) lists them, so this module knows none of the features.
#[derive(Default)]
pub struct Kinds(Vec<(Kind, Runner)>);

impl Kinds {
    pub fn with<J: Job + 'static>(mut self) -> Self {
        self.0.push((J::KIND, runner::<J>));
        self
    }

    fn runner(&self, kind: &str) -> Option<Runner> {
        let kind = Kind::parse(kind)?;
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, r)| *r)
    }
}

fn runner<'a, J: Job + 'static>(
    state: &'a AppState,
    worker: Uuid,
    job: &'a JobRecord,
    stop: &'a watch::Receiver<bool>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'a>> {
    Box::pin(attempt::<J>(state, worker, job, stop))
}

/// Starts the configured number of workers; they stop claiming when `stop` turns true and
/// give back the job they hold.
pub fn start(state: &AppState, kinds: Kinds, stop: watch::Receiver<bool>) -> JoinSet<()> {
    let kinds = Arc::new(kinds);
    let mut set = JoinSet::new();
    for _ in 0..state.config.exports.workers {
        let state = state.clone();
        let stop = stop.clone();
        let kinds = Arc::clone(&kinds);
        set.spawn(async move { worker(state, kinds, stop).await });
    }
    set
}

async fn worker(state: AppState, kinds: Arc<Kinds>, mut stop: watch::Receiver<bool>) {
    let id = Uuid::now_v7();
    let poll = Duration::from_millis(state.config.exports.poll_ms);
    tracing::debug!(worker = %id, "job worker started");
    while !*stop.borrow() {
        let lease_until = Utc::now() + lease(&state);
        match store::claim(&state.db, id, lease_until).await {
            Ok(Some(job)) => run(&state, &kinds, id, job, &stop).await,
            Ok(None) => {
                tokio::select! {
                    () = state.jobs_queued.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not claim a job");
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    tracing::debug!(worker = %id, "job worker stopped");
}

fn lease(state: &AppState) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(state.config.exports.lease_secs).unwrap_or(60))
}

/// Back-off before attempt `attempts + 1`: base × 2^(attempts − 1), capped.
pub fn backoff(base_secs: u64, max_secs: u64, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let secs = base_secs.saturating_mul(1u64 << exp).min(max_secs);
    Duration::from_secs(secs)
}

/// How an attempt ended.
pub enum Outcome {
    /// Succeeded with this result (JSON); `artifact` is the file to keep, if any.
    Succeeded(Finished),
    /// Failed; retry when the error may pass.
    Failed { message: String, retryable: bool },
    /// The worker no longer holds the job (cancelled, or the lease ran out and another worker
    /// took it): nothing more to record.
    Lost,
    /// This process is stopping: give the job back.
    Released,
    /// Succeeded, and already recorded in the work's own transaction (an import).
    Recorded,
}

/// A successful attempt's result.
pub struct Finished {
    pub rows: u64,
    /// The file to keep (and to delete after retention), under the data dir.
    pub artifact: Option<String>,
    pub json: String,
}

impl Finished {
    /// A result of `rows` rows, kept as its JSON.
    pub fn of(rows: u64, artifact: Option<String>, result: &impl serde::Serialize) -> Self {
        Self {
            rows,
            artifact,
            json: serde_json::to_string(result).unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.json)
    }
}

/// A kind of job: what one attempt of it does. The generic worker ([`attempt`]) reads the
/// payload, holds the job (lease, heartbeat, live progress through `Attempt::control`) while
/// `run` works, and records what it returns. Work that keeps something outside the database
/// (a file, a spreadsheet tab, a link) asks [`Attempt::held`] first: a job cancelled or taken
/// over meanwhile must leave nothing behind.
pub trait Job {
    const KIND: Kind;
    type Payload: serde::de::DeserializeOwned + Send;
    /// What the job's error says when its payload does not parse.
    const UNREADABLE: &'static str;

    /// The total for progress at the start (`control.total`, when set, replaces it).
    fn total(job: &JobRecord) -> Option<i64> {
        job.progress_total
    }

    fn run(
        attempt: &Attempt<'_>,
        payload: Self::Payload,
    ) -> impl std::future::Future<Output = Outcome> + Send;
}

/// One attempt of a job, held by this worker.
pub struct Attempt<'a> {
    pub state: &'a AppState,
    pub job: &'a JobRecord,
    pub worker: Uuid,
    /// Progress and cancellation between the work and the heartbeat.
    pub control: Arc<Control>,
    heartbeat: tokio::sync::Mutex<HeartbeatState>,
}

enum HeartbeatState {
    Beating(tokio::task::JoinHandle<Result<Held, sea_orm::DbErr>>),
    Ended(Held),
}

impl Attempt<'_> {
    /// Stops the heartbeat and says whether the job is still this worker's: work that must
    /// not do its last step (a link, an audit event) for a job it lost asks before it.
    pub async fn held(&self) -> Held {
        let mut state = self.heartbeat.lock().await;
        let held = match &mut *state {
            HeartbeatState::Ended(held) => return *held,
            HeartbeatState::Beating(handle) => {
                handle.abort();
                match handle.await {
                    Ok(Ok(held)) => held,
                    // Aborted while beating, or the database failed: still held as far as
                    // this worker knows (recording the outcome checks again).
                    _ => Held::Yes,
                }
            }
        };
        *state = HeartbeatState::Ended(held);
        held
    }
}

/// One attempt of a job of kind `J`, with the lease and heartbeat every kind shares.
async fn attempt<J: Job>(
    state: &AppState,
    worker: Uuid,
    job: &JobRecord,
    stop: &watch::Receiver<bool>,
) -> Outcome {
    let Ok(payload) = serde_json::from_str::<J::Payload>(&job.payload) else {
        tracing::error!(job.id = %job.id, kind = %job.kind, "job payload does not parse");
        return Outcome::Failed {
            message: J::UNREADABLE.to_owned(),
            retryable: false,
        };
    };
    let control = Arc::new(Control::default());
    let beating = tokio::spawn(heartbeat(
        state.clone(),
        worker,
        job.id,
        J::total(job),
        Arc::clone(&control),
        stop.clone(),
    ));
    let attempt = Attempt {
        state,
        job,
        worker,
        control,
        heartbeat: tokio::sync::Mutex::new(HeartbeatState::Beating(beating)),
    };
    let outcome = J::run(&attempt, payload).await;
    let held = attempt.held().await;
    match (outcome, held) {
        // Recorded in the work's own transaction: done, whoever holds the job now.
        (Outcome::Recorded, _) => Outcome::Recorded,
        (_, Held::Lost) => Outcome::Lost,
        (_, Held::Stopping) => Outcome::Released,
        (outcome, Held::Yes) => outcome,
    }
}

async fn run(
    state: &AppState,
    kinds: &Kinds,
    worker: Uuid,
    job: JobRecord,
    stop: &watch::Receiver<bool>,
) {
    let started = std::time::Instant::now();
    metrics::counter!("sheetgpt_jobs_started_total", "kind" => job.kind.clone()).increment(1);
    tracing::info!(job.id = %job.id, kind = %job.kind, attempt = job.attempts, "job started");
    let outcome = if job.attempts > job.max_attempts {
        // Claimed again after its workers kept dying (a lease ran out every time).
        Outcome::Failed {
            message: format!(
                "The job was interrupted {} times and was given up.",
                job.max_attempts
            ),
            retryable: false,
        }
    } else {
        match kinds.runner(&job.kind) {
            Some(attempt) => attempt(state, worker, &job, stop).await,
            None => Outcome::Failed {
                message: format!("Unknown job kind `{}`.", job.kind),
                retryable: false,
            },
        }
    };
    let config = &state.config.exports;
    let db = &state.db;
    let (label, recorded) = match outcome {
        Outcome::Succeeded(result) => {
            let text = result.to_string();
            let expires = Utc::now()
                + chrono::Duration::hours(i64::try_from(config.retention_hours).unwrap_or(168));
            let rows = i64::try_from(result.rows).unwrap_or(i64::MAX);
            let expires = result.artifact.is_some().then_some(expires);
            let recorded = store::succeed(db, job.id, worker, &text, rows, expires).await;
            if matches!(recorded, Ok(false)) {
                discard_if_cancelled(state, &job, result.artifact.as_deref()).await;
            }
            ("succeeded", recorded)
        }
        Outcome::Failed { message, retryable } => {
            let retry_at = (retryable && job.attempts < job.max_attempts).then(|| {
                let wait = backoff(config.retry_base_secs, config.retry_max_secs, job.attempts);
                Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
            });
            let label = if retry_at.is_some() {
                "retry"
            } else {
                "failed"
            };
            (
                label,
                store::fail(db, job.id, worker, &message, retry_at).await,
            )
        }
        Outcome::Lost => ("lost", Ok(true)),
        Outcome::Released => ("released", store::release(db, job.id, worker).await),
        Outcome::Recorded => ("succeeded", Ok(true)),
    };
    if let Err(err) = recorded {
        // The lease runs out and another attempt follows.
        tracing::warn!(job.id = %job.id, error = %err, "could not record the job's outcome");
    }
    // An import's upload goes once its job has ended, whichever way (cancelled, deleted with
    // its account, failed for good, succeeded); it stays for a retry.
    if job.kind == Kind::Import.as_str() {
        let ended = match store::find_any(db, job.id).await {
            Ok(current) => {
                current.is_none_or(|j| j.status != store::QUEUED && j.status != store::RUNNING)
            }
            Err(_) => false, // the sweeper removes it later
        };
        if ended {
            crate::jobs::remove_files(state, &job);
        }
    }
    metrics::counter!("sheetgpt_jobs_finished_total", "kind" => job.kind.clone(), "outcome" => label)
        .increment(1);
    tracing::info!(job.id = %job.id, outcome = label, elapsed_ms = started.elapsed().as_millis() as u64, "job ended");
}

/// A run that finished after the job was cancelled, or after its account was deleted, leaves
/// no file behind.
async fn discard_if_cancelled(state: &AppState, job: &JobRecord, artifact: Option<&str>) {
    let abandoned = match store::find_any(&state.db, job.id).await {
        Ok(Some(j)) => j.status == store::CANCELLED,
        Ok(None) => true,
        Err(_) => false,
    };
    if abandoned && let Some(artifact) = artifact {
        let _ = std::fs::remove_file(state.config.data_dir.join(artifact));
    }
}

/// The problem code of work that found its job no longer held (cancelled, or the lease lost
/// when it came to commit): nothing was stored.
pub const JOB_STOPPED: &str = "job-stopped";

/// The outcome of work that failed with a service error: the problem's detail for the user,
/// another attempt when the server was at fault (database, disk).
pub fn failed(job: &JobRecord, err: &crate::error::Error) -> Outcome {
    let problem = err.problem();
    if problem.code == JOB_STOPPED {
        // Cancelled, or the lease was lost when it came to commit: nothing was stored.
        return Outcome::Lost;
    }
    let retryable = err.status().is_server_error();
    if retryable {
        tracing::warn!(job.id = %job.id, error = %err, "job attempt failed");
    }
    // A job has no response body for the fields: the first ones go into its error.
    let mut message = problem.detail;
    if !problem.errors.is_empty() {
        const LISTED: usize = 10;
        let listed: Vec<String> = problem
            .errors
            .iter()
            .take(LISTED)
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        message = format!(
            "{} {}{}",
            message,
            listed.join("; "),
            if problem.errors.len() > LISTED {
                "; …"
            } else {
                "."
            }
        );
    }
    Outcome::Failed { message, retryable }
}

/// How often a running job's progress is written while it moves.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Yes,
    Lost,
    Stopping,
}

/// Renews the lease and records progress until aborted; stops the render (through
/// `control`) when the job is lost or the process is stopping, and says which. Progress is
/// recorded every [`PROGRESS_EVERY`] while it moves (so `/jobs/{id}/events` shows it live);
/// the lease is renewed every third of its length even when nothing moved.
async fn heartbeat(
    state: AppState,
    worker: Uuid,
    job_id: Uuid,
    total: Option<i64>,
    control: Arc<Control>,
    mut stop: watch::Receiver<bool>,
) -> Result<Held, sea_orm::DbErr> {
    let _running = crate::jobs::live::running(&state.live, job_id, Arc::clone(&control));
    let renew_every = Duration::from_millis(state.config.exports.lease_secs * 1000 / 3);
    let every = renew_every.min(PROGRESS_EVERY);
    let mut renewed = tokio::time::Instant::now();
    let mut recorded = (-1, None);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            control.cancelled.store(true, Ordering::Relaxed);
            return Ok(Held::Stopping);
        }
        let done = i64::try_from(control.rows.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let total = match control.total.load(Ordering::Relaxed) {
            0 => total,
            n => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        };
        if (done, total) == recorded && renewed.elapsed() < renew_every {
            continue;
        }
        let lease_until = Utc::now() + lease(&state);
        match store::heartbeat(&state.db, job_id, worker, lease_until, done, total).await {
            Ok(true) => {
                renewed = tokio::time::Instant::now();
                recorded = (done, total);
            }
            Ok(false) => {
                control.cancelled.store(true, Ordering::Relaxed);
                return Ok(Held::Lost);
            }
            // A database hiccup: try again at the next beat; the lease has room for two misses.
            Err(err) if renewed.elapsed() >= renew_every => {
                tracing::warn!(job.id = %job_id, error = %err, "heartbeat failed");
            }
            // Only progress was to be written (a SQLite write of the job itself may hold the
            // lock): this process still shows it live, the next beat writes it.
            Err(err) => tracing::debug!(job.id = %job_id, error = %err, "progress not written"),
        }
    }
}
