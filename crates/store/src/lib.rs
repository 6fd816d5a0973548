//! Storage of SheetGPT: SeaORM entities, migrations and every query the service makes.
//!
//! It depends on the domain (`sheetgpt-core`) and SeaORM, never on the server: repositories
//! take plain values, not configuration or HTTP types, and return `DbErr`.
//!
//! One SeaORM connection pool over SQLite (the default, a file in the data dir) or
//! PostgreSQL, chosen by URL at run time; the same entities, migrations and queries serve both.

pub mod api_keys;
pub mod audit;
pub mod conversations;
pub mod entity;
pub mod google;
pub mod jobs;
pub mod migration;
pub mod owned;
pub mod quotas;
pub mod schemas;
pub mod sessions;
pub mod sheet_links;
pub mod tables;
pub mod templates;
pub mod user_model_keys;
pub mod users;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    Statement, TransactionTrait, Value,
};
use sea_orm_migration::MigratorTrait;

use migration::Migrator;

/// SQL with `?` placeholders, numbered `$1…` for PostgreSQL.
pub fn stmt(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DatabaseBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// How to reach the database: its URL and the pool's bounds.
#[derive(Clone, Debug)]
pub struct Options {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
}

/// Opens the pool (creating a missing SQLite file; its directory must exist).
pub async fn open(opts: &Options) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(opts.url.clone());
    options
        .max_connections(opts.max_connections)
        .min_connections(opts.min_connections)
        .connect_timeout(opts.connect_timeout)
        .acquire_timeout(opts.acquire_timeout)
        .sqlx_logging(false)
        // A connection is checked only after it sat idle (a restarted PostgreSQL drops them):
        // checking each one on every acquire was a round trip more per request.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .map_sqlx_sqlite_opts(|opts| {
            // WAL lets readers run beside the one writer; foreign keys are off by default in
            // SQLite; the busy timeout turns writer contention into a short wait, not an error.
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .create_if_missing(true)
                // Rows come from the connection's thread through a channel: room for a whole
                // page lets that thread hand them over without waiting for the reader after
                // each 50 (context switches were a third of a page's cost).
                .row_buffer_size(1024)
        });
    // Two processes opening a new SQLite file at once can find it locked while the other
    // switches it to WAL (that step does not wait on the busy timeout): try again briefly.
    let mut attempt = 0;
    loop {
        match Database::connect(options.clone()).await {
            Ok(db) => return Ok(db),
            Err(err) if attempt < 10 && err.to_string().contains("database is locked") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            // The URL may carry a password: never put it in an error message.
            Err(err) => {
                return Err(anyhow::anyhow!(
                    "cannot connect to the database: {}",
                    redact_db_error(&err)
                ));
            }
        }
    }
}

/// The file of a `sqlite:` URL, or None for an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory");
    (!memory).then(|| std::path::PathBuf::from(path))
}

/// Applies every pending migration. Safe to run again: applied ones are skipped.
///
/// Several processes may start at once (instances on one PostgreSQL; `sheetgpt migrate` next
/// to a running server on SQLite): the migrations run in one transaction that first takes a
/// lock, so one process migrates and the others then find nothing to do.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    if backend != DatabaseBackend::Postgres {
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS sheetgpt_migration_lock (id INTEGER PRIMARY KEY)",
        )
        .await?;
    }
    let txn = db.begin().await?;
    if backend == DatabaseBackend::Postgres {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(5348415447)")
            .await?;
    } else {
        // A write as the transaction's first statement takes SQLite's write lock before
        // anything is read (waiting out the busy timeout if another process holds it).
        txn.execute_unprepared("DELETE FROM sheetgpt_migration_lock")
            .await?;
    }
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// Number of migrations this binary knows that the database has not applied.
pub async fn pending_migrations(db: &DatabaseConnection) -> Result<usize, DbErr> {
    Ok(Migrator::get_pending_migrations_read_only(db).await?.len())
}

/// Pool size and idle connections, for the metrics endpoint.
pub fn pool_stats(db: &DatabaseConnection) -> (u32, usize) {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    }
}

fn redact_db_error(err: &DbErr) -> String {
    // sqlx errors may echo the connection string; keep only the kind of failure.
    let text = err.to_string();
    match text.find("://") {
        Some(_) => "connection failed (check the database URL and that the server runs)".to_owned(),
        None => text,
    }
}

/// True when the error is a violation of a unique index (duplicate email, key hash…).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Permanently removes rows soft-deleted before `cutoff`, and sessions that ended (revoked or
/// expired) before it together with their refresh tokens. Returns the number of rows removed.
pub async fn purge(
    db: &DatabaseConnection,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    use entity::{api_key, refresh_token, session, user, user_model_key};
    use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, TransactionTrait};

    let txn = db.begin().await?;
    let mut removed = 0;
    removed += refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::DeletedAt.lt(cutoff))
        .exec(&txn)
        .await?
        .rows_affected;
    // Refresh tokens go with their session (ON DELETE CASCADE).
    removed += session::Entity::delete_many()
        .filter(
            Condition::any()
                .add(session::Column::DeletedAt.lt(cutoff))
                .add(session::Column::RevokedAt.lt(cutoff))
                .add(session::Column::ExpiresAt.lt(cutoff)),
        )
        .exec(&txn)
        .await?
        .rows_affected;
    removed += api_key::Entity::delete_many()
        .filter(api_key::Column::DeletedAt.lt(cutoff))
        .exec(&txn)
        .await?
        .rows_affected;
    removed += user_model_key::Entity::delete_many()
        .filter(user_model_key::Column::DeletedAt.lt(cutoff))
        .exec(&txn)
        .await?
        .rows_affected;
    // User content in the trash: its versions, rows and messages go with it (cascade).
    macro_rules! purge_deleted {
        ($($entity:ident),*) => {$(
            removed += entity::$entity::Entity::delete_many()
                .filter(entity::$entity::Column::DeletedAt.lt(cutoff))
                .exec(&txn)
                .await?
                .rows_affected;
        )*};
    }
    purge_deleted!(
        conversation,
        table,
        schema_preset,
        template,
        job,
        sheet_link,
        user_quota
    );
    removed += entity::google_authorization::Entity::delete_many()
        .filter(entity::google_authorization::Column::ExpiresAt.lt(chrono::Utc::now()))
        .exec(&txn)
        .await?
        .rows_affected;
    removed += sessions::sweep_ws_tickets(&txn).await?;
    removed += conversations::clear_cancels(&txn, None).await?;
    removed += user::Entity::delete_many()
        .filter(user::Column::DeletedAt.lt(cutoff))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(removed)
}

/// Write transactions of this process, one at a time on SQLite.
///
/// SQLite lets one connection write at a time; the others wait in its busy handler, which
/// sleeps in steps of up to 100 ms, so under many concurrent writes a request could sleep
/// most of a second with the database idle. Queued here instead (first come, first served),
/// the next transaction starts as soon as the last one ends. Waiting longer than the busy
/// timeout is the same refusal as SQLite's (503 `database-busy`). On PostgreSQL, which
/// writes concurrently, nothing waits.
pub struct WriteGate {
    gate: Option<tokio::sync::Mutex<()>>,
    wait: Duration,
}

/// Held for the life of one write transaction (declared before it, so dropped after it).
pub type WriteTurn<'a> = Option<tokio::sync::MutexGuard<'a, ()>>;

impl WriteGate {
    pub fn new(backend: DatabaseBackend) -> Self {
        Self {
            gate: (backend == DatabaseBackend::Sqlite).then(|| tokio::sync::Mutex::new(())),
            wait: SQLITE_BUSY_TIMEOUT,
        }
    }

    /// This transaction's turn: at once on PostgreSQL, after the writes queued before it on
    /// SQLite. Never hold it across another call to `turn` (it is not re-entrant).
    pub async fn turn(&self) -> Result<WriteTurn<'_>, DbErr> {
        let Some(gate) = &self.gate else {
            return Ok(None);
        };
        match tokio::time::timeout(self.wait, gate.lock()).await {
            Ok(guard) => Ok(Some(guard)),
            // Spelled as SQLite's own, so it is refused as every busy database is.
            Err(_) => Err(DbErr::Custom(
                "database is locked (waited for this process's other writes)".to_owned(),
            )),
        }
    }
}

/// How long a write waits for another before it is refused (SQLite's busy timeout).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a database error is another writer holding the database past the busy timeout
/// (SQLite `database is locked`, SQLITE_BUSY), or on PostgreSQL a deadlock or a lock not
/// available: work that fails so may succeed when tried again.
pub fn is_busy(err: &sea_orm::DbErr) -> bool {
    let text = err.to_string();
    text.contains("database is locked")
        || text.contains("database table is locked")
        || text.contains("deadlock detected")
        || text.contains("could not obtain lock")
}
