//! The ingestion job: drives a partner file through source → mapping → validate → pseudonym →
//! lake. Each file goes through two passes. The first reads, maps and validates everything
//! without touching the lake: a file that is wrong as a whole is rejected here, and the period
//! the submission covers is learned. The second streams the pseudonymised rows into one Delta
//! commit that replaces the partner's earlier rows for that period. A file already in the
//! ledger (same partner, record type and SHA-256) is skipped.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use sha2::Digest;

use crate::config::{self, PipelineConfig, Registry, TipConfig};
use crate::lake::{self, Lake, LakeError};
use crate::mapping::{Mapping, MappingError};
use crate::pseudonym::{Key, KeyError, Provenance, Stage};
use crate::schema::{Catalog, RecordSchema};
use crate::source::{self, RowIssue, SourceError, SourceSpec};
use crate::validate::Validator;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Usage(String),
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// Everything a job needs: configuration, schemas, registry, key and lake.
pub struct Context {
    pub config: TipConfig,
    pub catalog: Catalog,
    pub registry: Registry,
    pub key: Key,
    pub lake: Lake,
    pub dev_key: bool,
}

impl Context {
    /// Loads everything. `lake` and `key_file` override the configuration.
    pub async fn open(
        config: TipConfig,
        lake: Option<&str>,
        key_file: Option<&Path>,
    ) -> Result<Context, IngestError> {
        let catalog = Catalog::load(&config.resolve(&config.paths.schemas))?;
        let registry = Registry::load(&config.resolve(&config.paths.organisations))?;
        check_registry(
            &catalog,
            &registry,
            &config.resolve(&config.paths.organisations),
        )?;
        let (key, dev_key) = load_key(&config, key_file)?;
        let location = lake.map(str::to_string).unwrap_or_else(|| {
            let l = &config.lake.location;
            if l.contains("://") {
                l.clone()
            } else {
                config.resolve(Path::new(l)).display().to_string()
            }
        });
        let lake = Lake::open(&location)?;
        lake.ensure_tables(&catalog).await?;
        Ok(Context {
            config,
            catalog,
            registry,
            key,
            lake,
            dev_key,
        })
    }

    pub fn record(&self, record_type: &str) -> Result<&RecordSchema, IngestError> {
        self.catalog.record(record_type).ok_or_else(|| {
            IngestError::Usage(format!(
                "unknown record type {record_type:?} (known: {})",
                self.catalog
                    .records
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Table names of the record types, the ledger and the quarantine.
    pub fn table_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .catalog
            .records
            .values()
            .map(|r| r.table.clone())
            .collect();
        v.push(lake::LEDGER.into());
        v.push(lake::QUARANTINE.into());
        v
    }
}

fn check_registry(catalog: &Catalog, registry: &Registry, file: &Path) -> Result<(), IngestError> {
    for o in &registry.organisations {
        let bad = |m: String| config::ConfigError::Invalid {
            file: file.display().to_string(),
            message: format!("organisation {}: {m}", o.org_id),
        };
        if catalog.country(&o.country) != Some(o.country.as_str()) {
            return Err(bad(format!(
                "country {:?} is not an ISO 3166-1 alpha-2 code",
                o.country
            ))
            .into());
        }
        if !catalog.lists["org_type"].codes.contains(&o.org_type) {
            return Err(bad(format!(
                "type {:?} is not in the org_type code list",
                o.org_type
            ))
            .into());
        }
        if let Some(r) = &o.region
            && catalog.lists["region"].lookup(r) != Some(r.as_str())
        {
            return Err(bad(format!("region {r:?} is not a known region code")).into());
        }
    }
    Ok(())
}

/// The key from `--key-file`, `TIP_KEY`, or the configured file (created as a development key
/// when the configuration allows it). The flag tells whether a development key is in use.
pub fn load_key(config: &TipConfig, key_file: Option<&Path>) -> Result<(Key, bool), IngestError> {
    if let Some(p) = key_file {
        return Ok((Key::from_file(p)?, false));
    }
    if let Some(k) = Key::from_env()? {
        return Ok((k, false));
    }
    let path = config.resolve(&config.key.file);
    if path.exists() {
        return Ok((Key::from_file(&path)?, config.key.create_dev_key));
    }
    if config.key.create_dev_key {
        let k = Key::write_new(&path)?;
        return Ok((k, true));
    }
    Err(KeyError::Missing {
        file: config.key.file.display().to_string(),
    }
    .into())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Committed as a new submission (possibly replacing an earlier one).
    Committed,
    /// Already in the ledger: nothing changed.
    Unchanged,
    /// Rejected as a whole: nothing committed.
    Rejected(String),
}

#[derive(Debug, Clone)]
pub struct FileReport {
    pub file: String,
    pub record_type: String,
    pub status: FileStatus,
    pub submission_id: Option<String>,
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub issues: Vec<RowIssue>,
    pub period: Option<(String, String)>,
    pub imputed: BTreeSet<String>,
    pub table_version: Option<i64>,
}

impl FileReport {
    fn new(file: &str, record_type: &str) -> FileReport {
        FileReport {
            file: file.to_string(),
            record_type: record_type.to_string(),
            status: FileStatus::Committed,
            submission_id: None,
            rows_read: 0,
            rows_accepted: 0,
            issues: vec![],
            period: None,
            imputed: BTreeSet::new(),
            table_version: None,
        }
    }

    pub fn rows_quarantined(&self) -> u64 {
        self.issues
            .iter()
            .map(|i| i.row)
            .collect::<BTreeSet<_>>()
            .len() as u64
    }
}

/// How a file reached tip (recorded in the ledger).
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub partner: &'a str,
    pub mapping: &'a Mapping,
    pub channel: &'a str,
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

struct PassOne {
    rows_read: u64,
    accepted: u64,
    issues: Vec<RowIssue>,
    period: Option<(String, String)>,
    imputed: BTreeSet<String>,
}

/// Ingests one file for one partner. Row-level problems are reported in the result; a file
/// that is wrong as a whole returns `Rejected` and commits nothing.
pub async fn ingest_file(
    ctx: &Context,
    sub: &Submission<'_>,
    path: &Path,
) -> Result<FileReport, IngestError> {
    let file = source::display_name(path);
    let record = ctx.record(&sub.mapping.record_type)?.clone();
    let org = ctx.registry.get(sub.partner).ok_or_else(|| {
        IngestError::Usage(format!(
            "partner {:?} is not in the organisation registry",
            sub.partner
        ))
    })?;
    let reporting_country = org.country.clone();
    let mut report = FileReport::new(&file, &record.record_type);
    let sha = sha256_file(path).map_err(|e| SourceError::Read {
        file: file.clone(),
        detail: e.kind().to_string(),
    })?;
    if already_ingested(ctx, sub.partner, &record.record_type, &sha).await? {
        report.status = FileStatus::Unchanged;
        return Ok(report);
    }
    let submission_date = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();

    // Pass one: read, map, validate. No lake access.
    let one = {
        let (path, record, sub_date) =
            (path.to_path_buf(), record.clone(), submission_date.clone());
        let mapping = sub.mapping.clone();
        let partner = sub.partner.to_string();
        let catalog = ctx.catalog.clone();
        let registry = ctx.registry.clone();
        let batch_rows = ctx.config.ingest.batch_rows;
        let key_version = ctx.key.version();
        tokio::task::spawn_blocking(move || {
            pass_one(
                &path,
                &record,
                &mapping,
                &catalog,
                &registry,
                &partner,
                &sub_date,
                batch_rows,
                &key_version,
            )
        })
        .await
        // A task failure carries no input: its message is not passed on.
        .map_err(|_| {
            IngestError::Usage(format!(
                "{file}: internal error while reading; nothing was committed"
            ))
        })?
    };
    let one = match one {
        Ok(o) => o,
        Err(IngestError::Source(e)) => {
            report.status = FileStatus::Rejected(e.to_string());
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    report.rows_read = one.rows_read;
    report.rows_accepted = one.accepted;
    report.issues = one.issues;
    report.period = one.period.clone();
    report.imputed = one.imputed;

    let submission_id = uuid::Uuid::new_v4().to_string();
    report.submission_id = Some(submission_id.clone());
    let now = chrono::Utc::now();
    let prov = Provenance {
        partner: sub.partner.to_string(),
        reporting_country: reporting_country.clone(),
        submission_id: submission_id.clone(),
        source_sha256: sha.clone(),
        ingested_at_micros: now.timestamp_micros(),
    };

    // Pass two: stream pseudonymised rows into one commit replacing the same period.
    if let Some((from, to)) = &one.period {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(4);
        let stage = Stage::new(&record, &ctx.catalog, &ctx.key);
        let producer = {
            let (path, record, sub_date) =
                (path.to_path_buf(), record.clone(), submission_date.clone());
            let mapping = sub.mapping.clone();
            let catalog = ctx.catalog.clone();
            let registry = ctx.registry.clone();
            let partner = sub.partner.to_string();
            let batch_rows = ctx.config.ingest.batch_rows;
            let prov = prov.clone();
            let expected = (one.accepted, sha.clone());
            tokio::task::spawn_blocking(move || {
                let res = pass_two(
                    &path, &record, &mapping, &catalog, &registry, &partner, &sub_date, batch_rows,
                    &stage, &prov, &tx, expected,
                );
                if let Err(e) = res {
                    let _ = tx.blocking_send(Err(DataFusionError::Execution(e)));
                }
            })
        };
        let schema = record.stored_schema();
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema.clone(),
            stream.boxed(),
        ));
        let metadata = vec![
            (
                "tip.submission_id".to_string(),
                serde_json::json!(submission_id),
            ),
            ("tip.partner".to_string(), serde_json::json!(sub.partner)),
            (
                "tip.record_type".to_string(),
                serde_json::json!(record.record_type),
            ),
            ("tip.source_sha256".to_string(), serde_json::json!(sha)),
        ];
        let scope = lake::submission_scope(sub.partner, &reporting_country, from, to);
        let res = ctx
            .lake
            .replace_with_stream(&record.table, schema, stream, scope, metadata)
            .await;
        let _ = producer.await;
        report.table_version = Some(res?);
    }

    // Quarantine report and ledger entry (the ledger last: it marks the submission complete).
    let ts = now.timestamp_micros();
    if !report.issues.is_empty() {
        let n = report.issues.len();
        let rep = |s: &str| Arc::new(StringArray::from(vec![s; n])) as _;
        let q = RecordBatch::try_new(
            lake::quarantine_schema(),
            vec![
                rep(&submission_id),
                rep(sub.partner),
                rep(&record.record_type),
                rep(&sha),
                Arc::new(Int64Array::from_iter_values(
                    report.issues.iter().map(|i| i.row as i64),
                )),
                Arc::new(StringArray::from_iter_values(
                    report.issues.iter().map(|i| i.field.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    report.issues.iter().map(|i| i.reason),
                )),
                Arc::new(TimestampMicrosecondArray::from(vec![ts; n]).with_timezone("UTC")),
            ],
        )
        .map_err(|e| IngestError::Usage(e.to_string()))?;
        ctx.lake.append(lake::QUARANTINE, vec![q]).await?;
    }
    let lake_versions = ctx.lake.versions(&ctx.table_names()).await?;
    let lake_versions = serde_json::to_string(
        &lake_versions
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .map_err(|e| IngestError::Usage(e.to_string()))?;
    let (pf, pt) = match &report.period {
        Some((a, b)) => (Some(a.as_str()), Some(b.as_str())),
        None => (None, None),
    };
    let ledger = RecordBatch::try_new(
        lake::ledger_schema(),
        vec![
            Arc::new(StringArray::from(vec![submission_id.as_str()])),
            Arc::new(StringArray::from(vec![sub.partner])),
            Arc::new(StringArray::from(vec![record.record_type.as_str()])),
            Arc::new(StringArray::from(vec![sha.as_str()])),
            Arc::new(StringArray::from(vec![sub.mapping.format.as_str()])),
            Arc::new(StringArray::from(vec![sub.channel])),
            Arc::new(StringArray::from(vec![pf])),
            Arc::new(StringArray::from(vec![pt])),
            Arc::new(Int64Array::from(vec![report.rows_read as i64])),
            Arc::new(Int64Array::from(vec![report.rows_accepted as i64])),
            Arc::new(Int64Array::from(vec![report.rows_quarantined() as i64])),
            Arc::new(Int64Array::from(vec![report.table_version])),
            Arc::new(StringArray::from(vec![lake_versions.as_str()])),
            Arc::new(StringArray::from(vec![ctx.key.version()])),
            Arc::new(Int32Array::from(vec![record.version])),
            Arc::new(TimestampMicrosecondArray::from(vec![ts]).with_timezone("UTC")),
        ],
    )
    .map_err(|e| IngestError::Usage(e.to_string()))?;
    ctx.lake.append(lake::LEDGER, vec![ledger]).await?;
    Ok(report)
}

async fn already_ingested(
    ctx: &Context,
    partner: &str,
    record_type: &str,
    sha: &str,
) -> Result<bool, IngestError> {
    let t = ctx.lake.table(lake::LEDGER, None).await?;
    let provider = t
        .table_provider()
        .await
        .map_err(|e| IngestError::Usage(e.to_string()))?;
    let sctx = datafusion::prelude::SessionContext::new();
    t.update_datafusion_session(&sctx.state())
        .map_err(|e| IngestError::Usage(e.to_string()))?;
    sctx.register_table("ledger", provider)
        .map_err(|e| IngestError::Usage(e.to_string()))?;
    use datafusion::prelude::{col, lit};
    let df = sctx
        .table("ledger")
        .await
        .and_then(|d| {
            d.filter(
                col("partner")
                    .eq(lit(partner))
                    .and(col("record_type").eq(lit(record_type)))
                    .and(col("source_sha256").eq(lit(sha))),
            )
        })
        .map_err(|e| IngestError::Usage(e.to_string()))?;
    let n = df
        .count()
        .await
        .map_err(|e| IngestError::Usage(e.to_string()))?;
    Ok(n > 0)
}

/// The mapping and validation stages for one raw batch: typed rows and row-level problems.
fn map_and_validate(
    file: &str,
    mapping: &Mapping,
    v: &Validator<'_>,
    raw: &RecordBatch,
    submission_date: &str,
) -> Result<(RecordBatch, Vec<RowIssue>), SourceError> {
    let canonical = mapping
        .apply(raw, submission_date)
        .map_err(|e| SourceError::Sink(format!("{file}: {e}")))?;
    v.apply(&canonical)
        .map_err(|e| SourceError::Sink(format!("{file}: {e}")))
}

fn spec_for(
    path: &Path,
    mapping: &Mapping,
    record: &RecordSchema,
    batch_rows: usize,
) -> Result<SourceSpec, SourceError> {
    let file = source::display_name(path);
    let mut spec = SourceSpec::from_options(
        &file,
        mapping.format,
        &mapping.options,
        mapping.wanted(),
        batch_rows,
    )?;
    spec.required = mapping.required_groups(record);
    Ok(spec)
}

fn validator<'a>(
    record: &'a RecordSchema,
    mapping: &Mapping,
    catalog: &'a Catalog,
    registry: &'a Registry,
    partner: &str,
    key_version: &str,
) -> Validator<'a> {
    let mut v = Validator::new(
        record,
        catalog,
        registry,
        partner,
        mapping.options.date_formats.clone().unwrap_or_default(),
        mapping.options.decimal_separator.as_deref() == Some(","),
        mapping.format.is_spreadsheet(),
    );
    if mapping.pseudonymised {
        v.expect_key_version = Some(key_version.to_string());
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn pass_one(
    path: &Path,
    record: &RecordSchema,
    mapping: &Mapping,
    catalog: &Catalog,
    registry: &Registry,
    partner: &str,
    submission_date: &str,
    batch_rows: usize,
    key_version: &str,
) -> Result<PassOne, IngestError> {
    let file = source::display_name(path);
    let spec = spec_for(path, mapping, record, batch_rows)?;
    let v = validator(record, mapping, catalog, registry, partner, key_version);
    let period_idx = record
        .period_field
        .as_ref()
        .and_then(|p| record.validated_schema().index_of(p).ok());
    let mut out = PassOne {
        rows_read: 0,
        accepted: 0,
        issues: vec![],
        period: None,
        imputed: BTreeSet::new(),
    };
    let mut months: (Option<i32>, Option<i32>) = (None, None);
    let mut sink = |raw: source::RawBatch| -> Result<(), SourceError> {
        out.issues.extend(raw.issues);
        let (typed, issues) = map_and_validate(&file, mapping, &v, &raw.batch, submission_date)?;
        out.issues.extend(issues);
        out.accepted += typed.num_rows() as u64;
        if let Some(i) = period_idx {
            use datafusion::arrow::array::Array;
            let days = typed
                .column(i)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Date32Array>()
                .cloned();
            if let Some(d) = days {
                for k in 0..d.len() {
                    if d.is_valid(k) {
                        let x = d.value(k);
                        months.0 = Some(months.0.map_or(x, |m| m.min(x)));
                        months.1 = Some(months.1.map_or(x, |m| m.max(x)));
                    }
                }
            }
        }
        if let Some(imp) = typed
            .column_by_name("imputed_fields")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        {
            for s in imp.iter().flatten() {
                out.imputed.extend(s.split(',').map(str::to_string));
            }
        }
        Ok(())
    };
    out.rows_read = source::read(path, &spec, &mut sink)?;
    // Pseudonyms made with another key would never link: the file is refused as a whole.
    if let Some(i) = out.issues.iter().find(|i| i.reason == "wrong_key_version") {
        return Err(SourceError::Structure {
            file,
            detail: format!(
                "row {}: {} was made with a different key than this lake's (key version {key_version}); pseudonymise with the network key",
                i.row, i.field
            ),
        }
        .into());
    }
    out.issues
        .sort_by(|a, b| (a.row, &a.field).cmp(&(b.row, &b.field)));
    let month = |d: i32| {
        crate::validate::date_from_days(d)
            .map(|d| d.format("%Y-%m").to_string())
            .unwrap_or_default()
    };
    if let (Some(a), Some(b)) = months {
        out.period = Some((month(a), month(b)));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn pass_two(
    path: &Path,
    record: &RecordSchema,
    mapping: &Mapping,
    catalog: &Catalog,
    registry: &Registry,
    partner: &str,
    submission_date: &str,
    batch_rows: usize,
    stage: &Stage,
    prov: &Provenance,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    expected: (u64, String),
) -> Result<(), String> {
    let file = source::display_name(path);
    let spec = spec_for(path, mapping, record, batch_rows).map_err(|e| e.to_string())?;
    let v = validator(
        record,
        mapping,
        catalog,
        registry,
        partner,
        stage.key_version(),
    );
    let mut accepted = 0u64;
    let mut sink = |raw: source::RawBatch| -> Result<(), SourceError> {
        let (typed, _) = map_and_validate(&file, mapping, &v, &raw.batch, submission_date)?;
        if typed.num_rows() == 0 {
            return Ok(());
        }
        accepted += typed.num_rows() as u64;
        let stored = stage
            .apply(&typed, prov)
            .map_err(|e| SourceError::Sink(format!("{file}: {e}")))?;
        tx.blocking_send(Ok(stored))
            .map_err(|_| SourceError::Sink(format!("{file}: the lake writer stopped")))
    };
    source::read(path, &spec, &mut sink).map_err(|e| e.to_string())?;
    let sha = sha256_file(path).map_err(|e| format!("{file}: cannot read: {}", e.kind()))?;
    if accepted != expected.0 || sha != expected.1 {
        return Err(format!(
            "{file}: the file changed while it was being ingested; nothing was committed"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Pipelines

#[derive(Debug, Clone)]
pub struct PipelineReport {
    pub name: String,
    pub partner: String,
    pub files: Vec<FileReport>,
}

/// Runs the named pipelines (all when `names` is empty): lists each feed's files in the
/// source directory and ingests the new ones.
pub async fn run_pipelines(
    ctx: &Context,
    names: &[String],
) -> Result<Vec<PipelineReport>, IngestError> {
    let pipelines = config::load_pipelines(&ctx.config.resolve(&ctx.config.paths.partners))?;
    for n in names {
        if !pipelines.iter().any(|p| &p.name == n) {
            return Err(IngestError::Usage(format!(
                "no pipeline named {n:?} (known: {})",
                pipelines
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut out = Vec::new();
    for p in pipelines
        .iter()
        .filter(|p| names.is_empty() || names.contains(&p.name))
    {
        out.push(run_pipeline(ctx, p).await?);
    }
    Ok(out)
}

/// Checks a pipeline file against the registry and schemas and builds its feeds' mappings.
pub fn pipeline_mappings(
    ctx: &Context,
    p: &PipelineConfig,
) -> Result<Vec<(Mapping, String)>, IngestError> {
    let file = p.file.display().to_string();
    if ctx.registry.get(&p.partner).is_none() {
        return Err(config::ConfigError::Invalid {
            file,
            message: format!(
                "partner {:?} is not in the organisation registry",
                p.partner
            ),
        }
        .into());
    }
    let mut out = Vec::new();
    for feed in &p.feeds {
        let record =
            ctx.catalog
                .record(&feed.record_type)
                .ok_or_else(|| config::ConfigError::Invalid {
                    file: file.clone(),
                    message: format!("feed type {:?} is not a record type", feed.record_type),
                })?;
        let preset = match &feed.preset {
            Some(name) => Some(config::load_preset(
                &ctx.config.resolve(&ctx.config.paths.presets),
                name,
            )?),
            None => None,
        };
        out.push((
            Mapping::for_feed(&file, record, feed, &p.format, preset.as_ref())?,
            feed.files.clone(),
        ));
    }
    Ok(out)
}

async fn run_pipeline(ctx: &Context, p: &PipelineConfig) -> Result<PipelineReport, IngestError> {
    let mappings = pipeline_mappings(ctx, p)?;
    let dir = ctx.config.resolve(&p.source.path);
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => {
            return Err(IngestError::File {
                file: p.source.path.display().to_string(),
                message: format!("cannot list the source directory: {}", e.kind()),
            });
        }
    };
    entries.sort();
    let mut files = Vec::new();
    let channel = format!("pipeline:{}", p.name);
    for (mapping, pattern) in &mappings {
        for path in &entries {
            let name = source::display_name(path);
            if !config::wildcard_match(pattern, &name) {
                continue;
            }
            let sub = Submission {
                partner: &p.partner,
                mapping,
                channel: &channel,
            };
            files.push(ingest_file(ctx, &sub, path).await?);
        }
    }
    Ok(PipelineReport {
        name: p.name.clone(),
        partner: p.partner.clone(),
        files,
    })
}

// ---------------------------------------------------------------------------------------------
// Partner-side pseudonymisation

/// True when a CSV file's header has this record type's pseudonym columns and none of its
/// identifier fields: a file made by `tip pseudonymise`.
/// The mapping of a file in the canonical layout (or the pseudonymised layout, or an HTCDS
/// template with `htcds-v2`): what `tip load` and the upload API use.
pub fn mapping_for_load(
    ctx: &Context,
    record: &RecordSchema,
    format: &str,
    path: &Path,
) -> Result<Mapping, IngestError> {
    if format == "htcds-v2" {
        let preset =
            config::load_preset(&ctx.config.resolve(&ctx.config.paths.presets), "htcds-v2")?;
        let feed = config::FeedConfig {
            record_type: record.record_type.clone(),
            files: "*".into(),
            preset: Some("htcds-v2".into()),
            sheet: None,
            columns: Default::default(),
            values: Default::default(),
            impute: Default::default(),
        };
        return Ok(Mapping::for_feed(
            "htcds-v2 preset",
            record,
            &feed,
            &config::FormatOptions::default(),
            Some(&preset),
        )?);
    }
    let f = source::Format::parse(format).ok_or_else(|| {
        IngestError::Usage(format!(
            "unknown format {format:?} (csv, json, ndjson, xlsx, htcds-v2)"
        ))
    })?;
    Ok(
        if f == source::Format::Csv && is_pseudonymised_csv(path, record) {
            Mapping::pseudonymised(record, f, config::FormatOptions::default())
        } else {
            Mapping::canonical(record, f, config::FormatOptions::default())
        },
    )
}

pub fn is_pseudonymised_csv(path: &Path, record: &RecordSchema) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let mut first = String::new();
    use std::io::BufRead;
    if std::io::BufReader::new(f).read_line(&mut first).is_err() {
        return false;
    }
    let cols: Vec<String> = first
        .trim_start_matches('\u{FEFF}')
        .trim()
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let has_pseudonym = record.pseudonyms().iter().any(|p| cols.contains(p));
    let has_identifier = record
        .fields
        .iter()
        .any(|f| f.class == crate::schema::FieldClass::Identifier && cols.contains(&f.name));
    has_pseudonym && !has_identifier
}

/// `tip pseudonymise`: reads a partner file in the canonical layout and writes a CSV with
/// pseudonyms instead of identifiers, the stored input fields and the original row numbers, so
/// raw identifiers never leave the partner. Rows with problems are reported and left out.
pub fn pseudonymise_file(
    ctx: &Context,
    partner: &str,
    mapping: &Mapping,
    input: &Path,
    output: &Path,
) -> Result<FileReport, IngestError> {
    let file = source::display_name(input);
    let record = ctx.record(&mapping.record_type)?.clone();
    let org = ctx.registry.get(partner).ok_or_else(|| {
        IngestError::Usage(format!(
            "partner {partner:?} is not in the organisation registry"
        ))
    })?;
    let spec = spec_for(input, mapping, &record, ctx.config.ingest.batch_rows)?;
    let v = validator(&record, mapping, &ctx.catalog, &ctx.registry, partner, "");
    let stage = Stage::new(&record, &ctx.catalog, &ctx.key);
    let prov = Provenance {
        partner: partner.to_string(),
        reporting_country: org.country.clone(),
        submission_id: String::new(),
        source_sha256: String::new(),
        ingested_at_micros: 0,
    };
    let submission_date = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let mut columns: Vec<String> = vec!["source_row".into()];
    columns.extend(record.pseudonyms());
    columns.extend(
        record
            .input_fields()
            .filter(|f| f.class != crate::schema::FieldClass::Identifier)
            .map(|f| f.name.clone()),
    );
    // Written to a temporary file beside the output and renamed at the end: a failed run
    // leaves no half-written file.
    let tmp = output.with_extension("partial");
    let out_err = |e: &dyn std::fmt::Display| IngestError::File {
        file: source::display_name(output),
        message: format!("cannot write: {e}"),
    };
    let mut w = ::csv::Writer::from_path(&tmp).map_err(|e| out_err(&e))?;
    w.write_record(&columns).map_err(|e| out_err(&e))?;
    let mut report = FileReport::new(&file, &record.record_type);
    let mut write_err: Option<String> = None;
    let mut sink = |raw: source::RawBatch| -> Result<(), SourceError> {
        report.issues.extend(raw.issues);
        let (typed, issues) = map_and_validate(&file, mapping, &v, &raw.batch, &submission_date)?;
        report.issues.extend(issues);
        report.rows_accepted += typed.num_rows() as u64;
        let stored = stage
            .apply(&typed, &prov)
            .map_err(|e| SourceError::Sink(format!("{file}: {e}")))?;
        let cols: Vec<Vec<Option<String>>> = columns
            .iter()
            .map(|c| {
                stored
                    .column_by_name(c)
                    .map(canonical_text)
                    .unwrap_or_else(|| vec![None; stored.num_rows()])
            })
            .collect();
        for r in 0..stored.num_rows() {
            let row: Vec<&str> = cols.iter().map(|c| c[r].as_deref().unwrap_or("")).collect();
            if let Err(e) = w.write_record(&row) {
                write_err = Some(e.to_string());
                return Err(SourceError::Sink(format!(
                    "{}: cannot write",
                    source::display_name(output)
                )));
            }
        }
        Ok(())
    };
    let res = source::read(input, &spec, &mut sink);
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        if let Some(m) = write_err {
            return Err(out_err(&m));
        }
        report.status = FileStatus::Rejected(e.to_string());
        return Ok(report);
    }
    report.rows_read = report.rows_accepted + report.rows_quarantined();
    w.flush().map_err(|e| out_err(&e))?;
    drop(w);
    std::fs::rename(&tmp, output).map_err(|e| out_err(&e))?;
    report
        .issues
        .sort_by(|a, b| (a.row, &a.field).cmp(&(b.row, &b.field)));
    Ok(report)
}

/// Values in the canonical layout: ISO dates, `true`/`false`, lists joined with `;`.
fn canonical_text(a: &datafusion::arrow::array::ArrayRef) -> Vec<Option<String>> {
    use datafusion::arrow::array::Array;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let a = crate::schema::lists_as_text(a, ";");
    match ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()) {
        Ok(f) => (0..a.len())
            .map(|i| a.is_valid(i).then(|| f.value(i).to_string()))
            .collect(),
        Err(_) => vec![None; a.len()],
    }
}
