//! The `tip` command line. Only argument parsing and printing live here.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};

use tip::config::{FormatOptions, TipConfig};
use tip::ingest::{self, Context, FileReport, FileStatus, Submission};
use tip::lake::AsOf;
use tip::mapping::Mapping;
use tip::query::{OutputFormat, Session};
use tip::source::Format;

const DEFAULT_CONFIG: &str = "pipelines/tip.toml";

#[derive(Parser)]
#[command(
    name = "tip",
    version,
    about = "Anonymised trafficking-in-persons intelligence pipeline"
)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG, env = "TIP_CONFIG")]
    config: PathBuf,
    /// Lake directory or URL (overrides the configuration).
    #[arg(long, global = true, env = "TIP_LAKE")]
    lake: Option<String>,
    /// Pseudonymisation key file (overrides the configuration and TIP_KEY).
    #[arg(long = "key-file", global = true)]
    key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run partner pipelines: pull new files, map, validate, pseudonymise, commit.
    Ingest {
        /// Only these pipelines (default: all).
        #[arg(long = "pipeline")]
        pipelines: Vec<String>,
    },
    /// Ingest files in the canonical layout (or an HTCDS template) for one partner.
    Load {
        #[arg(long)]
        partner: String,
        #[arg(long = "type")]
        record_type: String,
        /// csv, json, ndjson, xlsx or htcds-v2 (default: from the file extension).
        #[arg(long)]
        format: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Partner side: pseudonymise a file locally so raw identifiers never leave the partner.
    Pseudonymise {
        #[arg(long)]
        partner: String,
        #[arg(long = "type")]
        record_type: String,
        /// csv, json, ndjson or xlsx (default: from the file extension).
        #[arg(long)]
        format: Option<String>,
        input: PathBuf,
        output: PathBuf,
    },
    /// Read-only SQL over the lake.
    Query {
        #[arg(long, default_value = "table")]
        format: String,
        /// Read the SQL from a file.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Delta version number or timestamp to read the lake as of.
        #[arg(long = "as-of")]
        as_of: Option<String>,
        sql: Option<String>,
    },
    /// The tables and their columns.
    Tables,
    /// A plain hive-partitioned Parquet snapshot of every table, for DuckDB, pandas, R, Power BI.
    Export {
        #[arg(long)]
        out: PathBuf,
        /// Lake version or timestamp to export as of.
        #[arg(long = "as-of")]
        as_of: Option<String>,
    },
    /// Synthetic partner reports for demos, tests and benchmarks.
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// Approximate number of persons (children and adults) to generate.
        #[arg(long, default_value_t = 600)]
        rows: usize,
        #[arg(long, default_value_t = 2025)]
        seed: u64,
    },
    /// Monthly statistical extract with disclosure control: CSV, XLSX, Parquet, HTML, manifest.
    Extract {
        /// YYYY-MM, or `last` for the previous month.
        #[arg(long)]
        month: String,
        /// Only this extract (default: every extract defined).
        #[arg(long)]
        name: Option<String>,
        /// Output directory (default: extract.out/NAME/MONTH). Needs --name when several
        /// extracts are defined.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Rebuild from the lake versions a manifest records and check every file is identical.
        #[arg(long)]
        reproduce: Option<PathBuf>,
    },
    /// Run pipelines and extracts on their cron schedules (UTC).
    Schedule {
        /// Run what is due now and exit.
        #[arg(long)]
        once: bool,
        /// Pretend it is this time (RFC 3339), for testing schedules.
        #[arg(long, hide = true)]
        now: Option<String>,
    },
    /// Partner upload API and page, analyst SQL API (HTTP).
    Serve {
        /// Address to listen on (default: serve.listen; port 0 picks a free port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Access tokens for `tip serve`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Key management.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it, alone, on stdout (once: only its hash is kept).
    New {
        /// partner, analyst or admin.
        #[arg(long)]
        role: String,
        /// The organisation a partner token acts for (registry id).
        #[arg(long)]
        org: Option<String>,
    },
    /// The tokens: id, role, organisation, created, revoked.
    List,
    /// Revoke a token by id; takes effect at the next request.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Write a fresh 256-bit key file (mode 0600).
    New { path: PathBuf },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIP_LOG")
        .unwrap_or_else(|_| {
            // Dependencies report their errors to tip, which prints one line; their own logs
            // would repeat them with internals.
            tracing_subscriber::EnvFilter::new(
                "warn,deltalake=off,deltalake_core=off,delta_kernel=off,buoyant_kernel=off,datafusion=off",
            )
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tip: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line, no chain of causes that could carry input.
            eprintln!("tip: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn context(cli: &Cli) -> anyhow::Result<Context> {
    let is_default = cli.config.as_path() == std::path::Path::new(DEFAULT_CONFIG);
    let cfg = TipConfig::load(&cli.config, is_default)?;
    let ctx = Context::open(cfg, cli.lake.as_deref(), cli.key_file.as_deref()).await?;
    if ctx.dev_key {
        eprintln!(
            "tip: WARNING: using a DEVELOPMENT pseudonymisation key ({}). Not for production: create one with `tip key new PATH`, keep it apart from the lake, and set key.create_dev_key = false.",
            ctx.config.key.file.display()
        );
    }
    Ok(ctx)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Key {
            command: KeyCommand::New { path },
        } => {
            let k = tip::pseudonym::Key::write_new(path)?;
            eprintln!(
                "tip: wrote a new key to {} (key version {})",
                path.display(),
                k.version()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate { out, rows, seed } => {
            let truth = tip::generate::generate(out, *rows, *seed)?;
            println!(
                "generated {} persons, {} rows in {} files ({} planted bad rows) under {}",
                truth.persons,
                truth.files.iter().map(|f| f.rows).sum::<u64>(),
                truth.files.len(),
                truth.files.iter().map(|f| f.bad_rows.len()).sum::<usize>(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { pipelines } => {
            let ctx = context(&cli).await?;
            let reports = ingest::run_pipelines(&ctx, pipelines).await?;
            let mut rejected = false;
            for p in &reports {
                println!("pipeline {} (partner {})", p.name, p.partner);
                if p.files.is_empty() {
                    println!("  no files");
                }
                for f in &p.files {
                    rejected |= matches!(f.status, FileStatus::Rejected(_));
                    print_file(f);
                }
            }
            print_trend(&ctx).await?;
            Ok(if rejected {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Load {
            partner,
            record_type,
            format,
            files,
        } => {
            let ctx = context(&cli).await?;
            let record = ctx.record(record_type)?.clone();
            let mut rejected = false;
            for path in files {
                let fmt = match format.as_deref() {
                    Some(f) => f.to_string(),
                    None => path
                        .extension()
                        .map(|e| e.to_string_lossy().to_lowercase())
                        .ok_or_else(|| {
                            anyhow!("{}: cannot tell the format; give --format", path.display())
                        })?,
                };
                let mapping = ingest::mapping_for_load(&ctx, &record, &fmt, path)?;
                let sub = Submission {
                    partner,
                    mapping: &mapping,
                    channel: "load",
                };
                let report = ingest::ingest_file(&ctx, &sub, path).await?;
                rejected |= matches!(report.status, FileStatus::Rejected(_));
                print_file(&report);
            }
            if rejected {
                let first = "one or more files were rejected; nothing of them was committed";
                eprintln!("tip: {first}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pseudonymise {
            partner,
            record_type,
            format,
            input,
            output,
        } => {
            let ctx = context(&cli).await?;
            let record = ctx.record(record_type)?.clone();
            let fmt = match format.as_deref() {
                Some(f) => f.to_string(),
                None => input
                    .extension()
                    .map(|e| e.to_string_lossy().to_lowercase())
                    .unwrap_or_default(),
            };
            let f = Format::parse(&fmt)
                .ok_or_else(|| anyhow!("unknown format {fmt:?} (csv, json, ndjson, xlsx)"))?;
            let mapping = Mapping::canonical(&record, f, FormatOptions::default());
            let report = ingest::pseudonymise_file(&ctx, partner, &mapping, input, output)?;
            if let FileStatus::Rejected(reason) = &report.status {
                bail!("{reason}");
            }
            println!(
                "{} [{}]: {} rows pseudonymised into {}, {} left out (key version {})",
                report.file,
                report.record_type,
                report.rows_accepted,
                output.display(),
                report.rows_quarantined(),
                ctx.key.version()
            );
            for i in &report.issues {
                println!(
                    "  {} row {}, field {}: {}",
                    report.file, i.row, i.field, i.reason
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            format,
            file,
            as_of,
            sql,
        } => {
            let fmt = OutputFormat::parse(format)
                .ok_or_else(|| anyhow!("unknown --format {format:?} (table, csv, json, ndjson)"))?;
            let ctx = context(&cli).await?;
            let as_of = as_of.as_deref().map(AsOf::parse).transpose()?;
            let session = Session::open_with_limits(
                &ctx.lake,
                &ctx.catalog,
                &ctx.registry,
                as_of.as_ref(),
                tip::query::Limits::from(&ctx.config.query),
            )
            .await?;
            let text = match (file, sql) {
                (Some(f), None) => {
                    std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?
                }
                (None, Some(s)) => s.clone(),
                (Some(_), Some(_)) => bail!("give SQL or -f FILE, not both"),
                (None, None) => {
                    if std::io::stdin().is_terminal() {
                        return shell(&session, fmt).await;
                    }
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
            };
            let batches = session.run(text.trim().trim_end_matches(';')).await?;
            std::io::stdout().write_all(&tip::query::render(&batches, fmt)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { out, as_of } => {
            let ctx = context(&cli).await?;
            let as_of = as_of.as_deref().map(AsOf::parse).transpose()?;
            let session =
                Session::open(&ctx.lake, &ctx.catalog, &ctx.registry, as_of.as_ref()).await?;
            let partitioned: Vec<String> = ctx
                .catalog
                .records
                .values()
                .map(|r| r.table.clone())
                .collect();
            let counts = session.export(out, &partitioned).await?;
            for (t, n) in counts {
                println!("{t}: {n} rows");
            }
            println!("exported to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract {
            month,
            name,
            out,
            reproduce,
        } => {
            let ctx = context(&cli).await?;
            let month = if month == "last" {
                let now = chrono::Utc::now().format("%Y-%m").to_string();
                tip::extract::shift_month(&now, -1).unwrap_or(now)
            } else {
                tip::extract::shift_month(month, 0)
                    .ok_or_else(|| anyhow!("--month {month:?}: expected YYYY-MM or last"))?
            };
            let defs =
                tip::extract::load_extracts(&ctx.config.resolve(&ctx.config.paths.extracts))?;
            let chosen: Vec<_> = defs
                .iter()
                .filter(|d| name.as_ref().is_none_or(|n| &d.name == n))
                .collect();
            if chosen.is_empty() {
                bail!(
                    "no extract {} (defined: {})",
                    name.as_deref().unwrap_or(""),
                    defs.iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if (out.is_some() || reproduce.is_some()) && chosen.len() > 1 {
                bail!("several extracts are defined: choose one with --name");
            }
            let manifest = match reproduce {
                Some(p) => Some(
                    serde_json::from_slice::<tip::extract::Manifest>(
                        &std::fs::read(p).with_context(|| p.display().to_string())?,
                    )
                    .with_context(|| format!("{}: not an extract manifest", p.display()))?,
                ),
                None => None,
            };
            for def in chosen {
                let dir = out.clone().unwrap_or_else(|| {
                    ctx.config
                        .resolve(&ctx.config.extract.out)
                        .join(&def.name)
                        .join(&month)
                });
                let m = tip::extract::run(
                    &ctx.lake,
                    &ctx.catalog,
                    &ctx.registry,
                    def,
                    &month,
                    &dir,
                    manifest.as_ref(),
                )
                .await?;
                m.record(
                    &tip::audit::AuditLog::new(&ctx.config.resolve(&ctx.config.audit.log)),
                    "cli",
                    manifest.is_some(),
                )?;
                println!(
                    "extract {} for {month} (lake version {}): {} files in {}{}",
                    def.name,
                    m.lake_version,
                    m.files.len() + 1,
                    dir.display(),
                    if manifest.is_some() {
                        ", byte-identical to the manifest"
                    } else {
                        ""
                    }
                );
                for t in &m.tables {
                    println!(
                        "  {:<40} {:>4} rows, {:>3} <{} , {:>3} withheld",
                        t.name, t.rows, t.suppressed_small, m.rules.threshold, t.withheld
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule { once, now } => {
            let ctx = context(&cli).await?;
            let fixed = now
                .as_deref()
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|_| anyhow!("--now {s:?}: expected an RFC 3339 time"))
                })
                .transpose()?;
            let defs =
                tip::extract::load_extracts(&ctx.config.resolve(&ctx.config.paths.extracts))?;
            let pipelines =
                tip::config::load_pipelines(&ctx.config.resolve(&ctx.config.paths.partners))?;
            let jobs = tip::schedule::jobs(&pipelines, &defs).map_err(|e| anyhow!(e))?;
            let runner = tip::schedule::ContextRunner {
                ctx: &ctx,
                extracts: defs.iter().map(|d| (d.name.clone(), d.clone())).collect(),
                out: ctx.config.resolve(&ctx.config.extract.out),
            };
            for j in &jobs {
                eprintln!("tip schedule: {} at \"{}\" (UTC)", j.name, j.cron);
            }
            let mut failed = false;
            loop {
                let at = fixed.unwrap_or_else(chrono::Utc::now);
                let events = match tip::schedule::tick(&ctx.lake, &jobs, at, &runner).await {
                    Ok(e) => e,
                    // A long-running scheduler reports a lake it cannot reach and tries again
                    // at the next minute; a single round fails.
                    Err(e) if !*once && fixed.is_none() => {
                        eprintln!(
                            "tip schedule: {}; retrying next minute",
                            e.to_string().replace('\n', " ")
                        );
                        Vec::new()
                    }
                    Err(e) => return Err(e.into()),
                };
                for e in events {
                    failed |= e.event == "failed";
                    println!(
                        "{} {} slot {} {}{}",
                        e.at,
                        e.job,
                        e.slot,
                        e.event,
                        e.message.map(|m| format!(": {m}")).unwrap_or_default()
                    );
                }
                if *once || fixed.is_some() {
                    break;
                }
                // Wake at the start of the next minute.
                let secs = 60 - chrono::Utc::now().timestamp().rem_euclid(60) as u64;
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Serve { listen } => {
            let ctx = context(&cli).await?;
            let addr = listen
                .clone()
                .unwrap_or_else(|| ctx.config.serve.listen.clone());
            tip::serve::serve(ctx, &addr).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => {
            let is_default = cli.config.as_path() == std::path::Path::new(DEFAULT_CONFIG);
            let cfg = TipConfig::load(&cli.config, is_default)?;
            let store = tip::serve::tokens::TokenStore::new(&cfg.resolve(&cfg.serve.tokens));
            let audit = tip::audit::AuditLog::new(&cfg.resolve(&cfg.audit.log));
            match command {
                TokenCommand::New { role, org } => {
                    let r = tip::serve::tokens::Role::parse(role)
                        .ok_or_else(|| anyhow!("--role {role:?}: partner, analyst or admin"))?;
                    if let Some(o) = org {
                        let registry =
                            tip::config::Registry::load(&cfg.resolve(&cfg.paths.organisations))?;
                        if registry.get(o).is_none() {
                            bail!("--org {o:?} is not in the organisation registry");
                        }
                    }
                    let (token, rec) = store.create(r, org.as_deref())?;
                    audit.record(
                        "token_created",
                        serde_json::json!({"by": "cli", "token_id": rec.id, "role": role, "org": rec.org}),
                    )?;
                    println!("{token}");
                    eprintln!(
                        "tip: token {} ({role}{}) made; it is shown this once and only its hash is kept",
                        rec.id,
                        rec.org
                            .as_deref()
                            .map(|o| format!(" for {o}"))
                            .unwrap_or_default()
                    );
                }
                TokenCommand::List => {
                    for t in store.load()? {
                        println!(
                            "{}  {:<8} {:<12} created {}{}",
                            t.id,
                            t.role.as_str(),
                            t.org.as_deref().unwrap_or("-"),
                            t.created_at,
                            t.revoked_at
                                .map(|r| format!("  REVOKED {r}"))
                                .unwrap_or_default()
                        );
                    }
                }
                TokenCommand::Revoke { id } => {
                    if !store.revoke(id)? {
                        bail!("no live token {id}");
                    }
                    audit.record(
                        "token_revoked",
                        serde_json::json!({"by": "cli", "token_id": id}),
                    )?;
                    eprintln!("tip: token {id} revoked");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tables => {
            let ctx = context(&cli).await?;
            print_tables(&ctx);
            let session = Session::open(&ctx.lake, &ctx.catalog, &ctx.registry, None).await?;
            println!("\nviews");
            for v in &ctx.catalog.views {
                println!("\n{} — {}", v.name, v.description);
                let df = session.ctx.table(v.name.as_str()).await?;
                for f in df.schema().fields() {
                    println!("  {:<22} {}", f.name(), f.data_type());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The interactive shell on a terminal, with its history in `~/.tip_query_history`.
async fn shell(session: &Session, fmt: OutputFormat) -> anyhow::Result<ExitCode> {
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".tip_query_history"));
    let stdin = std::io::stdin();
    tip::query::shell(
        session,
        fmt,
        &mut stdin.lock(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        history.as_deref(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn print_file(f: &FileReport) {
    match &f.status {
        FileStatus::Unchanged => println!(
            "  {} [{}]: unchanged (already ingested)",
            f.file, f.record_type
        ),
        FileStatus::Rejected(reason) => {
            println!("  {} [{}]: REJECTED: {reason}", f.file, f.record_type);
            eprintln!("tip: {reason}");
        }
        FileStatus::Committed => {
            let period = f
                .period
                .as_ref()
                .map(|(a, b)| {
                    if a == b {
                        a.clone()
                    } else {
                        format!("{a}..{b}")
                    }
                })
                .unwrap_or_else(|| "-".into());
            println!(
                "  {} [{}]: {} rows read, {} accepted, {} quarantined; period {period}; table version {}",
                f.file,
                f.record_type,
                f.rows_read,
                f.rows_accepted,
                f.rows_quarantined(),
                f.table_version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            if !f.imputed.is_empty() {
                println!(
                    "    note: {} filled in from the submission date (the layout has no such column)",
                    f.imputed.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            const SHOWN: usize = 20;
            for i in f.issues.iter().take(SHOWN) {
                println!(
                    "    {} row {}, field {}: {}",
                    f.file, i.row, i.field, i.reason
                );
            }
            if f.issues.len() > SHOWN {
                println!(
                    "    ... and {} more (table quarantine)",
                    f.issues.len() - SHOWN
                );
            }
        }
    }
}

async fn print_trend(ctx: &Context) -> anyhow::Result<()> {
    let session = Session::open(&ctx.lake, &ctx.catalog, &ctx.registry, None).await?;
    let sql = "SELECT period AS month, count(*) AS case_reports, count(DISTINCT person_id) AS persons, \
               count(DISTINCT CASE WHEN is_minor THEN person_id END) AS children, \
               count(DISTINCT reporting_country) AS countries \
               FROM cases WHERE coalesce(imputed_fields, '') NOT LIKE '%registered_on%' \
               GROUP BY period ORDER BY period";
    let batches = session.run(sql).await?;
    println!("\ncases by month of registration (all partners; a person counts once per month)");
    std::io::stdout().write_all(&tip::query::render(&batches, OutputFormat::Table)?)?;
    let undated = session
        .run("SELECT count(*) FROM cases WHERE imputed_fields LIKE '%registered_on%'")
        .await?;
    let n = datafusion::arrow::compute::cast(
        undated[0].column(0),
        &datafusion::arrow::datatypes::DataType::Int64,
    )?;
    let n = n
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .map(|a| a.value(0))
        .unwrap_or(0);
    if n > 0 {
        println!(
            "({n} case reports without a registration date, such as HTCDS templates, are left out: they carry the submission date)"
        );
    }
    Ok(())
}

fn print_tables(ctx: &Context) {
    for r in ctx.catalog.records.values() {
        println!("{} — {}", r.table, r.description);
        let stored = r.stored_schema();
        for f in stored.fields() {
            let (class, desc) = match r.field(f.name()) {
                Some(d) => (d.class.as_str(), d.description.clone()),
                None => match tip::schema::PROVENANCE.iter().find(|(p, _)| p == f.name()) {
                    Some((_, d)) => ("provenance", d.to_string()),
                    None => (
                        "pseudonym",
                        "Keyed pseudonym (HMAC-SHA-256); see README, Privacy model.".into(),
                    ),
                },
            };
            println!(
                "  {:<22} {:<28} {:<11} {}",
                f.name(),
                format!("{}", f.data_type()),
                class,
                desc
            );
        }
        println!();
    }
    println!(
        "submissions — the ledger: one row per file committed (partner, record type, SHA-256, rows, period, table version)"
    );
    println!(
        "quarantine — rejected rows: submission, row number, field and reason code (never the value)"
    );
    println!("organisations — the organisation registry: org_id, name, type, country, region");
    println!(
        "population — population on 1 January by country and year, with its source (Eurostat)"
    );
}
