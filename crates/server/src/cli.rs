//! The command line: `sheetgpt [serve]`, `migrate`, `user …`, `purge`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::auth::email::Email;
use crate::auth::password::Password;
use crate::auth::service;
use crate::config::Config;
use crate::db::entity::user::Role;
use crate::db::{self, users};
use crate::{Application, app, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "sheetgpt",
    version,
    about = "SheetGPT: conversations with language models that become typed, versioned tables",
    long_about = "SheetGPT serves a web page and a REST API where conversations with a language \
model become typed, versioned tables, exported as Excel, CSV, JSON or Google Sheets.\n\n\
Configuration: built-in defaults < sheetgpt.toml (or --config) < SHEETGPT_* environment \
variables (nested keys with a double underscore, e.g. SHEETGPT_HTTP__BODY_LIMIT_BYTES).\n\
With no arguments, `sheetgpt` serves."
)]
pub struct Cli {
    /// Configuration file (default: ./sheetgpt.toml when present; also SHEETGPT_CONFIG)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web page and the API (the default)
    Serve,
    /// Apply pending database migrations and exit (serve also applies them)
    Migrate,
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Permanently remove soft-deleted rows and ended sessions older than N days
    Purge {
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        older_than_days: u32,
    },
    /// Convert a table file: CSV, TSV, JSON, Markdown or XLSX in; XLSX, CSV or JSON out
    /// (by file extension). Types are inferred as on upload; no server or database needed.
    Convert {
        input: PathBuf,
        output: PathBuf,
        /// The sheet to read from a workbook (the first one otherwise)
        #[arg(long)]
        sheet: Option<String>,
        /// A template (JSON, as in `POST /api/v1/templates`' `template` field) to apply:
        /// column mapping, formats, validation rules and layout
        #[arg(long, value_name = "FILE")]
        template: Option<PathBuf>,
        /// Deflate level of an .xlsx output, 1 (fastest) to 9 (smallest); default
        /// `exports.xlsx_compression` (3)
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=9))]
        level: Option<u8>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (use --admin for the first administrator)
    Create(CreateUser),
    /// List users
    List,
    /// Change a user's role (user or admin)
    SetRole { email: String, role: Role },
    /// Disable a user: they can no longer sign in; their sessions and API keys are revoked
    Disable { email: String },
    /// Enable a disabled user again
    Enable { email: String },
    /// A user's quotas (defaults, overrides, what applies, what is used) and model usage
    Usage {
        email: String,
        /// Days of usage to show
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Override a user's quotas; `default` goes back to the configured value, 0 is no limit
    Quota {
        email: String,
        #[arg(long, value_name = "N|default")]
        tokens_per_day: Option<String>,
        #[arg(long, value_name = "N|default")]
        exports_per_day: Option<String>,
        #[arg(long, value_name = "N|default")]
        max_stored_rows: Option<String>,
    },
    /// The audit log, newest first
    Audit {
        /// Only events by this user
        #[arg(long)]
        email: Option<String>,
        /// An action (`auth.login`) or a prefix ending in a dot (`auth.`)
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

/// `N` or `default` (None) for a quota option; absent keeps the current override.
fn quota_arg(current: Option<u64>, arg: Option<&str>) -> anyhow::Result<Option<u64>> {
    match arg {
        None => Ok(current),
        Some("default") => Ok(None),
        Some(n) => n
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("`{n}` is not a number or `default`")),
    }
}

#[derive(Debug, Args)]
pub struct CreateUser {
    #[arg(long)]
    pub email: String,
    /// Give the user the admin role
    #[arg(long)]
    pub admin: bool,
    /// Read the password from standard input instead of generating one
    #[arg(long)]
    pub password_stdin: bool,
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init_logging(&config);
            let app = Application::build(config).await?;
            tracing::info!(address = %app.local_addr()?, "SheetGPT is listening");
            app.run_until(app::shutdown_signal()).await
        }
        Command::Migrate => {
            telemetry::init_logging(&config);
            let db = db::connect(&config).await?;
            db::migrate(&db).await.context("migration failed")?;
            say("database is up to date");
            Ok(())
        }
        Command::Purge { older_than_days } => {
            let db = db::connect(&config).await?;
            db::migrate(&db).await?;
            let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(older_than_days));
            let removed = db::purge(&db, cutoff).await?;
            say(&format!("removed {removed} rows"));
            Ok(())
        }
        Command::User(cmd) => user(cmd, config).await,
        Command::Convert {
            input,
            output,
            sheet,
            template,
            level,
        } => {
            let limits = config.tables.import_limits();
            let level = level.unwrap_or(config.exports.xlsx_compression);
            tokio::task::spawn_blocking(move || {
                convert(
                    &input,
                    &output,
                    sheet.as_deref(),
                    template.as_deref(),
                    &limits,
                    level,
                )
            })
            .await?
        }
    }
}

fn extension(path: &std::path::Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Rows handed from the reading thread to the writing one at a time, and batches in flight:
/// memory stays flat in the number of rows.
const CONVERT_BATCH_ROWS: usize = 1024;
const CONVERT_BATCHES_IN_FLIGHT: usize = 4;

/// What `convert` reads: a text input read whole (bounded by its size), or a file that passed
/// the import's first pass and is read row by row in the second.
enum ConvertInput {
    Table(sheetgpt_core::Table),
    Import(sheetgpt_core::import::Import<std::io::BufReader<std::fs::File>>),
}

fn convert(
    input: &std::path::Path,
    output: &std::path::Path,
    sheet: Option<&str>,
    template: Option<&std::path::Path>,
    limits: &sheetgpt_core::import::Limits,
    level: u8,
) -> anyhow::Result<()> {
    use sheetgpt_core::extract;
    use sheetgpt_core::import::{self, Import, Source};
    use sheetgpt_core::template::{Resolved, Template};
    let started = std::time::Instant::now();
    let template: Option<Template> = match template {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the template {}", path.display()))?;
            let template: Template = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a template", path.display()))?;
            if let Err(problems) = template.check() {
                bail!(
                    "the template {} is not valid:\n  {}",
                    path.display(),
                    problems.join("\n  ")
                );
            }
            Some(template)
        }
    };
    let input_kind = match extension(input).as_str() {
        ext @ ("json" | "md" | "markdown" | "txt") => {
            let text = std::fs::read_to_string(input)
                .with_context(|| format!("cannot read {} as UTF-8 text", input.display()))?;
            ConvertInput::Table(if ext == "json" {
                extract::parse_json_table(&text)?
            } else {
                extract::extract_tables(&text)
                    .into_iter()
                    .next()
                    .map(|e| e.table)
                    .with_context(|| format!("no table found in {}", input.display()))?
            })
        }
        // Files are read by the import reader the server uses for uploads, with its limits.
        ext => {
            let file = std::fs::File::open(input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let mut file = std::io::BufReader::new(file);
            let head = {
                use std::io::BufRead;
                file.fill_buf()
                    .with_context(|| format!("cannot read {}", input.display()))?
                    .to_vec()
            };
            let source = match ext {
                "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => Source::Spreadsheet {
                    sheet: sheet.map(str::to_owned),
                },
                _ if import::looks_like_spreadsheet(&head) => Source::Spreadsheet {
                    sheet: sheet.map(str::to_owned),
                },
                "tsv" | "tab" => Source::Delimited {
                    delimiter: Some(b'\t'),
                },
                _ => Source::Delimited { delimiter: None },
            };
            ConvertInput::Import(
                Import::open(file, &source, limits)
                    .map_err(|e| anyhow::anyhow!("cannot import {}: {e}", input.display()))?,
            )
        }
    };
    let columns = match &input_kind {
        ConvertInput::Table(table) => &table.columns,
        ConvertInput::Import(import) => &import.scan().columns,
    };
    let resolved = match &template {
        None => Resolved::identity(columns),
        Some(t) => t.resolve(columns)?,
    };
    let format = match extension(output).as_str() {
        "xlsx" => OutputFormat::Xlsx,
        "csv" => OutputFormat::Csv(b','),
        "tsv" => OutputFormat::Csv(b'\t'),
        "json" => OutputFormat::Json,
        other => bail!("cannot write .{other} files (use .xlsx, .csv, .tsv or .json)"),
    };
    let file = std::fs::File::create(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let out = std::io::BufWriter::new(file);
    let meta = sheetgpt_core::export::XlsxMeta {
        title: input
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        source: input.display().to_string(),
        version: None,
        exported_at: chrono::Utc::now(),
    };
    let written = match input_kind {
        ConvertInput::Table(table) => {
            let rows = table.rows.into_iter().map(|r| resolved.map_row_owned(r));
            write_output(out, format, &resolved, rows, &meta, level)
        }
        // One thread reads and types the rows while this one writes them (XML and deflate).
        ConvertInput::Import(import) => std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(CONVERT_BATCHES_IN_FLIGHT);
            let reader = scope.spawn(move || {
                let mut batch = Vec::with_capacity(CONVERT_BATCH_ROWS);
                let read = import.rows(|row| {
                    batch.push(row);
                    if batch.len() == CONVERT_BATCH_ROWS {
                        let full =
                            std::mem::replace(&mut batch, Vec::with_capacity(CONVERT_BATCH_ROWS));
                        if tx.send(full).is_err() {
                            // The writer stopped; its own error says why.
                            return std::ops::ControlFlow::Break(());
                        }
                    }
                    std::ops::ControlFlow::Continue(())
                });
                if read.is_ok() && !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                read
            });
            let rows = rx.into_iter().flatten().map(|r| resolved.map_row_owned(r));
            let written = write_output(out, format, &resolved, rows, &meta, level);
            let read = reader
                .join()
                .map_err(|_| anyhow::anyhow!("the reader of {} stopped", input.display()))?;
            // A read that failed part-way ended the rows early: its error comes first, else a
            // short file would look complete.
            read.map_err(|e| anyhow::anyhow!("cannot import {}: {e}", input.display()))?;
            written
        }),
    };
    let written = match written {
        Ok(written) => written,
        Err(err) => {
            // Nothing half-written is left under the name asked for.
            let _ = std::fs::remove_file(output);
            return Err(err);
        }
    };
    say(&format!(
        "{} rows × {} columns → {} in {:.2} s",
        written,
        resolved.columns.len(),
        output.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

#[derive(Clone, Copy)]
enum OutputFormat {
    Xlsx,
    Csv(u8),
    Json,
}

fn write_output(
    out: impl std::io::Write + Send,
    format: OutputFormat,
    resolved: &sheetgpt_core::template::Resolved,
    rows: impl Iterator<Item = Vec<sheetgpt_core::Value>>,
    meta: &sheetgpt_core::export::XlsxMeta,
    level: u8,
) -> anyhow::Result<u64> {
    use sheetgpt_core::export;
    let columns = &resolved.columns;
    Ok(match format {
        OutputFormat::Xlsx => export::write_xlsx(
            out,
            columns,
            rows,
            meta,
            &export::XlsxOptions {
                compression_level: level,
                ..export::XlsxOptions::for_template(resolved)
            },
        )?,
        OutputFormat::Csv(delimiter) => export::write_csv(
            out,
            columns,
            rows,
            &export::CsvOptions {
                delimiter,
                ..Default::default()
            },
        )?,
        OutputFormat::Json => {
            export::write_json(out, columns, rows, &export::JsonOptions::default())?
        }
    })
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

async fn user(cmd: UserCommand, config: Config) -> anyhow::Result<()> {
    let state = app::build_state(config).await?;
    match cmd {
        UserCommand::Create(args) => {
            let email = Email::parse(&args.email).map_err(|e| anyhow::anyhow!("email {e}"))?;
            let (raw, generated) = if args.password_stdin {
                let mut buf = String::new();
                std::io::stdin().read_to_string(&mut buf)?;
                (buf.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (crate::auth::tokens::random_token(18), true)
            };
            let password = Password::parse(&raw, Some(email.as_str()))
                .map_err(|e| anyhow::anyhow!("password {e}"))?;
            let role = if args.admin { Role::Admin } else { Role::User };
            let user = match service::register(&state, &email, &password, role).await {
                Ok(user) => user,
                Err(crate::error::Error::Conflict { .. }) => {
                    bail!("a user with email {email} already exists")
                }
                Err(err) => bail!("cannot create the user: {err}"),
            };
            say(&format!(
                "created {} {} ({})",
                user.role.as_str(),
                user.email,
                user.id
            ));
            if generated {
                say(&format!("password: {raw}"));
                say("(shown once; the user can change it with POST /api/v1/auth/password)");
            }
        }
        UserCommand::List => {
            let mut after = None;
            say(&format!(
                "{:<36}  {:<6}  {:<8}  {:<25}  email",
                "id", "role", "status", "created"
            ));
            loop {
                let page = users::list(&state.db, after, 500).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for u in &page {
                    say(&format!(
                        "{:<36}  {:<6}  {:<8}  {:<25}  {}",
                        u.id,
                        u.role.as_str(),
                        if u.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        },
                        u.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        u.email
                    ));
                }
            }
        }
        UserCommand::SetRole { email, role } => {
            let user = find(&state, &email).await?;
            users::set_role(&state.db, user.id, role).await?;
            crate::audit::record(
                &state.db,
                None,
                crate::audit::Event::new("admin.role_changed", None)
                    .target("user", user.id)
                    .details(serde_json::json!({"from": user.role.as_str(), "to": role.as_str(), "via": "cli"})),
            )
            .await;
            say(&format!("{} is now {}", user.email, role.as_str()));
        }
        UserCommand::Disable { email } => {
            let user = find(&state, &email).await?;
            let ended = crate::auth::service::disable_user(&state, user.id)
                .await
                .map_err(|e| anyhow::anyhow!("cannot disable {}: {e}", user.email))?;
            crate::audit::record(
                &state.db,
                None,
                crate::audit::Event::new("admin.user_disabled", None)
                    .target("user", user.id)
                    .details(serde_json::json!({
                        "via": "cli",
                        "sessions_revoked": ended.sessions_revoked,
                        "api_keys_revoked": ended.api_keys_revoked,
                    })),
            )
            .await;
            say(&format!(
                "{} is disabled; {} session(s) signed out and {} API key(s) revoked",
                user.email, ended.sessions_revoked, ended.api_keys_revoked
            ));
        }
        UserCommand::Enable { email } => {
            let user = find(&state, &email).await?;
            users::set_disabled(&state.db, user.id, None).await?;
            crate::audit::record(
                &state.db,
                None,
                crate::audit::Event::new("admin.user_enabled", None)
                    .target("user", user.id)
                    .details(serde_json::json!({"via": "cli"})),
            )
            .await;
            say(&format!("{} is enabled", user.email));
        }
        UserCommand::Usage { email, days } => {
            let user = find(&state, &email).await?;
            let limits = crate::quotas::limits(state.quotas(), user.id).await?;
            let overrides = crate::quotas::overrides(&state.db, user.id).await?;
            let rows = crate::quotas::stored_rows(&state.db, user.id).await?;
            let show = |n: u64| {
                if n == 0 {
                    "no limit".to_owned()
                } else {
                    n.to_string()
                }
            };
            say(&format!("{} ({})", user.email, user.role.as_str()));
            say(&format!(
                "  tokens per day   {:>12}{}",
                show(limits.tokens_per_day),
                if overrides.tokens_per_day.is_some() {
                    "  (override)"
                } else {
                    ""
                }
            ));
            say(&format!(
                "  exports per day  {:>12}{}",
                show(limits.exports_per_day),
                if overrides.exports_per_day.is_some() {
                    "  (override)"
                } else {
                    ""
                }
            ));
            say(&format!(
                "  stored rows      {:>12}{}  ({rows} used)",
                show(limits.max_stored_rows),
                if overrides.max_stored_rows.is_some() {
                    "  (override)"
                } else {
                    ""
                }
            ));
            let usage = crate::chat::usage::usage_report(state.quotas(), user.id, Some(days))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say(&format!(
                "{:<10}  {:<16}  {:>7}  {:>12}  {:>10}",
                "day", "model", "replies", "tokens", "cost $"
            ));
            for r in &usage.items {
                say(&format!(
                    "{:<10}  {:<16}  {:>7}  {:>12}  {:>10.4}",
                    r.day,
                    r.model,
                    r.replies,
                    r.prompt_tokens + r.completion_tokens,
                    r.cost_micros as f64 / 1e6
                ));
            }
        }
        UserCommand::Quota {
            email,
            tokens_per_day,
            exports_per_day,
            max_stored_rows,
        } => {
            let user = find(&state, &email).await?;
            let current = crate::quotas::overrides(&state.db, user.id).await?;
            let next = crate::quotas::Overrides {
                tokens_per_day: quota_arg(current.tokens_per_day, tokens_per_day.as_deref())?,
                exports_per_day: quota_arg(current.exports_per_day, exports_per_day.as_deref())?,
                max_stored_rows: quota_arg(current.max_stored_rows, max_stored_rows.as_deref())?,
            };
            crate::quotas::set_overrides(&state.db, user.id, next).await?;
            crate::audit::record(
                &state.db,
                None,
                crate::audit::Event::new("admin.quotas_changed", None)
                    .target("user", user.id)
                    .details(serde_json::to_value(next).unwrap_or_default()),
            )
            .await;
            say(&format!("quotas of {} updated", user.email));
        }
        UserCommand::Audit {
            email,
            action,
            limit,
        } => {
            let actor = match email {
                Some(e) => Some(find(&state, &e).await?.id),
                None => None,
            };
            let filter = crate::audit::Filter {
                actor,
                action,
                ..Default::default()
            };
            let events =
                crate::audit::list(&state.db, &filter, None, limit.clamp(1, 10_000)).await?;
            for e in events {
                say(&format!(
                    "{}  {:<28}  actor={}  target={}:{}  ip={}  {}",
                    e.created_at.format("%Y-%m-%d %H:%M:%S"),
                    e.action,
                    e.actor_id.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                    e.target_type.as_deref().unwrap_or("-"),
                    e.target_id.as_deref().unwrap_or("-"),
                    e.ip.as_deref().unwrap_or("-"),
                    e.details.as_deref().unwrap_or("")
                ));
            }
        }
    }
    Ok(())
}

async fn find(state: &crate::state::AppState, email: &str) -> anyhow::Result<users::User> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("email {e}"))?;
    users::find_by_email(&state.db, email.as_str())
        .await?
        .with_context(|| format!("no user with email {email}"))
}
