//! The `tip` command line: the argument types and the dispatch. Each command lives in a file
//! of its own beside this one; each parses, calls the application core (`tip::app`), renders.

mod check;
mod erase;
mod estimate;
mod export;
mod extract;
mod generate;
mod ingest;
mod key;
mod load;
mod maintain;
mod progress;
mod pseudonymise;
mod query;
mod schedule;
mod serve;
mod tables;
mod token;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tip::app::{App, Ingestion};
use tip::config::TipConfig;

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
        /// Each file is everything the partner holds for this period (all, YYYY-MM or
        /// YYYY-MM..YYYY-MM): the partner's records of the period missing from it are removed.
        #[arg(long, conflicts_with = "withdraw")]
        snapshot: Option<String>,
        /// Each file lists records to withdraw by their keys (case number and the key fields of
        /// the record type): they are removed.
        #[arg(long)]
        withdraw: bool,
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
        /// Output directory or s3:// prefix (default: extract.out/NAME/MONTH). Needs --name
        /// when several extracts are defined.
        #[arg(long)]
        out: Option<String>,
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
        /// Also serve Arrow Flight SQL here (default: serve.flight_listen; unset, off).
        #[arg(long, value_name = "ADDR")]
        flight: Option<String>,
        /// Also serve the Postgres wire protocol here (default: serve.postgres_listen; unset, off).
        #[arg(long, value_name = "ADDR")]
        postgres: Option<String>,
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
    /// Check every configuration file, partner mapping, preset and extract definition.
    Check,
    /// Retention, compaction, checkpoints and vacuum of every table.
    Maintain,
    /// Estimate how many people there are, seen and unseen, from how often the same people are
    /// on several lists (multiple systems estimation): from the lake's linked cases, or from a
    /// capture-history file.
    Estimate(estimate::Args),
    /// Erase a person's rows (by person_id) or one partner's case (by its case number) from
    /// every table, and purge the lake's history that held them (GDPR Art. 17).
    Erase {
        #[arg(long = "person-id", conflicts_with_all = ["partner", "case_number"])]
        person_id: Option<String>,
        #[arg(long, requires = "case_number")]
        partner: Option<String>,
        #[arg(long = "case-number", requires = "partner")]
        case_number: Option<String>,
        /// Without it, tip only says what an erasure does.
        #[arg(long)]
        confirm: bool,
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
    /// Start a new key epoch with the key given (--key-file or TIP_KEY): children reported
    /// before and after it no longer link. Recorded in the lake and the audit log.
    Epoch {
        /// Why the key changes (one line, kept in the lake's key_epochs table).
        #[arg(long)]
        reason: String,
        /// Without it, tip only says what a new epoch would do.
        #[arg(long)]
        confirm: bool,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIP_LOG").unwrap_or_else(|_| {
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
    // Queries are planned and run on the runtime's workers (see query::Session::run): a
    // deep plan gets a large stack there rather than overflowing the main thread's.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(64 * 1024 * 1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tip: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The command itself runs on a thread with the workers' large stack too, not on the main
    // thread's 8 MiB: whatever it plans or commits, a deep expression is an error, never an
    // abort of the process.
    let command = std::thread::Builder::new()
        .name("tip".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(move || rt.block_on(run(cli)));
    match command.map(|c| c.join()) {
        Ok(Ok(Ok(code))) => code,
        Ok(Ok(Err(e))) => {
            // One line, no chain of causes that could carry input.
            eprintln!("tip: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
        Ok(Err(_)) => {
            eprintln!("tip: internal error; the lake keeps its last complete commit");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tip: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration file: the embedded default stands in when the default path is missing.
fn config(cli: &Cli) -> anyhow::Result<TipConfig> {
    let is_default = cli.config.as_path() == Path::new(DEFAULT_CONFIG);
    Ok(TipConfig::load(&cli.config, is_default)?)
}

/// The application core, without the key.
fn app(cli: &Cli) -> anyhow::Result<App> {
    Ok(App::open(config(cli)?, cli.lake.as_deref())?)
}

/// Warns, loudly, on every run with a development key.
fn warn_dev_key(app: &App, ing: &Ingestion) {
    warn_if_dev_key(app, ing.dev_key)
}

fn warn_if_dev_key(app: &App, dev_key: bool) {
    if dev_key {
        eprintln!(
            "tip: WARNING: using a DEVELOPMENT pseudonymisation key ({}). Not for production: create one with `tip key new PATH`, keep it apart from the lake, and set key.create_dev_key = false.",
            app.config.key.file.display()
        );
    }
}

/// The ingestion side: the key, checked against the lake's key epoch.
async fn ingestion(app: &App, cli: &Cli) -> anyhow::Result<Ingestion> {
    let ing = app.ingestion(cli.key_file.as_deref()).await?;
    warn_dev_key(app, &ing);
    Ok(ing)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Key { command } => key::run(&cli, command).await,
        Command::Generate { out, rows, seed } => generate::run(out, *rows, *seed),
        Command::Ingest { pipelines } => ingest::run(&cli, pipelines).await,
        Command::Load {
            partner,
            record_type,
            format,
            snapshot,
            withdraw,
            files,
        } => {
            let req = load::Request {
                partner,
                record_type,
                format: format.as_deref(),
                snapshot: snapshot.as_deref(),
                withdraw: *withdraw,
            };
            load::run(&cli, &req, files).await
        }
        Command::Pseudonymise {
            partner,
            record_type,
            format,
            input,
            output,
        } => pseudonymise::run(&cli, partner, record_type, format.as_deref(), input, output),
        Command::Query {
            format,
            file,
            as_of,
            sql,
        } => {
            query::run(
                &cli,
                format,
                file.as_deref(),
                as_of.as_deref(),
                sql.as_deref(),
            )
            .await
        }
        Command::Tables => tables::run(&cli).await,
        Command::Export { out, as_of } => export::run(&cli, out, as_of.as_deref()).await,
        Command::Extract {
            month,
            name,
            out,
            reproduce,
        } => {
            let req = extract::Request {
                month,
                name: name.as_deref(),
                out: out.as_deref(),
                reproduce: reproduce.as_deref(),
            };
            extract::run(&cli, &req).await
        }
        Command::Schedule { once, now } => schedule::run(&cli, *once, now.as_deref()).await,
        Command::Serve {
            listen,
            flight,
            postgres,
        } => serve::run(&cli, listen, flight, postgres).await,
        Command::Token { command } => token::run(&cli, command),
        Command::Check => check::run(&cli).await,
        Command::Maintain => maintain::run(&cli).await,
        Command::Estimate(args) => estimate::run(&cli, args).await,
        Command::Erase {
            person_id,
            partner,
            case_number,
            confirm,
        } => {
            let target = match (person_id, partner, case_number) {
                (Some(p), _, _) => tip::app::erasure::ErasureTarget::Person(p),
                (None, Some(partner), Some(case_number)) => {
                    tip::app::erasure::ErasureTarget::Case {
                        partner,
                        case_number,
                    }
                }
                _ => anyhow::bail!("give --person-id, or --partner and --case-number"),
            };
            erase::run(&cli, target, *confirm).await
        }
    }
}
