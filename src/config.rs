//! Deployment configuration (`pipelines/tip.toml`), the organisation registry and partner
//! pipelines. Everything is reviewed TOML read with `deny_unknown_fields`: a typo in a partner
//! file is an error naming the file and the key, never a silently ignored setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The configuration tip runs with when `pipelines/tip.toml` is absent.
pub const EMBEDDED_DEFAULT: &str = include_str!("../pipelines/tip.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TipConfig {
    pub lake: LakeConfig,
    pub key: KeyConfig,
    #[serde(default)]
    pub paths: PathsConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub query: QueryConfig,
    #[serde(default)]
    pub extract: ExtractConfig,
    #[serde(default)]
    pub serve: ServeConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub maintain: MaintainConfig,
    #[serde(default)]
    pub estimate: EstimateConfig,
    #[serde(default)]
    pub storage: ObjectStorage,
    /// Directory that relative paths are resolved against (where tip was started).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    pub location: String,
    /// How far back time travel (`--as-of`, `extract --reproduce`) reaches, in days: `tip
    /// maintain` purges the files and log entries only older versions use.
    #[serde(default = "default_history_days")]
    pub history_days: u32,
    /// Every this many commits to a table, the writer that made the last one compacts the
    /// table's small files (0: only `tip maintain` does). Each submission adds small files to
    /// every partition it touches; without compaction, every check and query opens more of them
    /// as the lake grows.
    #[serde(default = "default_compact_every")]
    pub compact_every: u32,
}

fn default_history_days() -> u32 {
    400
}

fn default_compact_every() -> u32 {
    50
}

/// `tip maintain`: upkeep of the lake, and retention of records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintainConfig {
    /// When `tip schedule` runs `tip maintain` (cron, UTC).
    pub schedule: Option<String>,
    /// Record type → years a record is kept after the month of its date (registration,
    /// service, referral, event, assessment). A type not named is kept.
    #[serde(default)]
    pub retention_years: BTreeMap<String, u32>,
}

impl Default for MaintainConfig {
    fn default() -> Self {
        MaintainConfig {
            schedule: Some("0 3 * * 0".into()),
            retention_years: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub file: PathBuf,
    #[serde(default)]
    pub create_dev_key: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    pub schemas: PathBuf,
    pub organisations: PathBuf,
    pub partners: PathBuf,
    pub presets: PathBuf,
    #[serde(default = "default_extracts")]
    pub extracts: PathBuf,
}

fn default_extracts() -> PathBuf {
    "pipelines/extracts".into()
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            schemas: "schemas".into(),
            organisations: "pipelines/organisations.toml".into(),
            partners: "pipelines/partners".into(),
            presets: "pipelines/presets".into(),
            extracts: default_extracts(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub batch_rows: usize,
    /// Keyed rows of one file held in memory (24 bytes each) before they are sorted to disk:
    /// what keeps a load's memory the same for a file of any size.
    #[serde(default = "default_keys_in_memory")]
    pub keys_in_memory: usize,
}

fn default_keys_in_memory() -> usize {
    1 << 21
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_rows: 8192,
            keys_in_memory: default_keys_in_memory(),
        }
    }
}

/// Object storage: how `s3://` locations (the lake, sources, the inbox, extracts) are reached.
/// Credentials are never here: they come from the standard AWS chain (environment variables,
/// `AWS_PROFILE` and the shared credentials and config files, SSO, web identity, ECS and EC2
/// instance roles). Every key may also be given as an `AWS_*` environment variable
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`); the file's value wins.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectStorage {
    /// An S3-compatible service (Ceph, Garage, MinIO, SeaweedFS, a cloud's S3 API):
    /// `https://host:port`. Unset: Amazon S3.
    pub endpoint: Option<String>,
    /// The bucket's region (Amazon S3); many S3-compatible services accept any.
    pub region: Option<String>,
    /// Allow plain `http://` to the endpoint: for a server on loopback only.
    pub allow_http: bool,
    /// Address buckets as `https://bucket.host/` instead of `https://host/bucket/`.
    pub virtual_hosted_style: bool,
}

impl ObjectStorage {
    /// The options object_store and the Delta library take (their key names).
    pub fn options(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(e) = &self.endpoint {
            out.insert("aws_endpoint".into(), e.trim_end_matches('/').to_string());
        }
        if let Some(r) = &self.region {
            out.insert("aws_region".into(), r.clone());
        }
        if self.allow_http {
            out.insert("allow_http".into(), "true".into());
        }
        if self.virtual_hosted_style {
            out.insert("aws_virtual_hosted_style_request".into(), "true".into());
        }
        out
    }
}

/// Where something is kept: a local directory, or a prefix in object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    /// An `s3://bucket/prefix/` URL (ending in `/`).
    Url(url::Url),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Url(u) => write!(f, "{u}"),
        }
    }
}

impl Location {
    /// A path (relative to `base`), a `file://` URL or an object storage URL.
    pub fn parse(s: &str, base: &Path) -> Result<Location, String> {
        if !s.contains("://") {
            let p = Path::new(s);
            return Ok(Location::Local(if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }));
        }
        let mut u = url::Url::parse(s).map_err(|e| format!("{s}: {e}"))?;
        match u.scheme() {
            "file" => u
                .to_file_path()
                .map(Location::Local)
                .map_err(|_| format!("{s}: not a local path")),
            "s3" | "s3a" => {
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(format!("{s}: no bucket (expected s3://bucket/prefix)"));
                }
                if !u.path().ends_with('/') {
                    let p = format!("{}/", u.path());
                    u.set_path(&p);
                }
                Ok(Location::Url(u))
            }
            other => Err(format!(
                "{s}: {other}:// is not supported (a local path, file:// or s3://)"
            )),
        }
    }

    /// `NAME` inside this location.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(name)),
            Location::Url(u) => {
                Location::Url(u.join(&format!("{name}/")).unwrap_or_else(|_| u.clone()))
            }
        }
    }
}

/// `tip estimate`: named groupings of partners into lists.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EstimateConfig {
    /// NAME → list → the organisation types or org ids on that list (`--lists NAME`).
    pub lists: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl EstimateConfig {
    /// The list an organisation is on in grouping `name`: by its org id first, then its type.
    pub fn list_of<'a>(&'a self, name: &str, org: &Organisation) -> Option<&'a str> {
        let g = self.lists.get(name)?;
        let by = |key: &str| {
            g.iter()
                .find(|(_, members)| members.iter().any(|m| m == key))
                .map(|(l, _)| l.as_str())
        };
        by(&org.org_id).or_else(|| by(&org.org_type))
    }
}

/// Where extracts are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// Extracts land in OUT/NAME/MONTH/: a directory or an `s3://` prefix.
    pub out: String,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        ExtractConfig {
            out: ".tip/extracts".into(),
        }
    }
}

/// `tip serve`: the partner upload API and page, and the analyst SQL API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: String,
    /// Token hashes (never the tokens).
    pub tokens: PathBuf,
    /// Where uploads' receipts are kept (a directory or an `s3://` prefix); an upload itself
    /// is held in a private local staging directory while it is ingested, then deleted.
    pub inbox: String,
    /// Largest upload accepted, in MiB (413 beyond).
    pub max_upload_mib: u64,
    /// Largest size a gzip upload may decompress to, in MiB (413 beyond).
    pub max_decompressed_mib: u64,
    /// Time one request may take, in seconds.
    pub request_timeout_seconds: u64,
    /// Uploads ingested at the same time; more wait their turn. Each takes about one core.
    pub max_concurrent_ingestions: usize,
    /// Analyst queries answered at the same time; more wait their turn. Each may use up to
    /// `query.memory_limit_mib`, so this times that bounds the memory queries take.
    pub max_concurrent_queries: usize,
    /// Hours a page sign-in lasts.
    pub session_hours: u64,
    /// Take partner uploads: the server then loads the pseudonymisation key. Set to false on
    /// an analysts' server, which never holds the key.
    pub uploads: bool,
    /// Arrow Flight SQL for analysts' tools (JDBC, ODBC, ADBC): the address; unset, it is off.
    pub flight_listen: Option<String>,
    /// The Postgres wire protocol for psql, Metabase, Grafana and psycopg: the address; unset,
    /// it is off.
    pub postgres_listen: Option<String>,
    /// TLS certificate chain and private key (PEM files) for Flight SQL and Postgres. Required
    /// when either listens on an address other than loopback: tip refuses to start rather
    /// than answer in plain text.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Flight SQL (and, apart, Postgres) connections held open at once; more are closed at
    /// once.
    pub max_connections: usize,
    /// Seconds a connection to any door may take to log in (Postgres's SCRAM exchange, Flight
    /// SQL's first call, an HTTP request's headers) before it is closed and its place freed.
    pub login_timeout_seconds: u64,
    /// HTTP connections held open at once (uploads, the page, the SQL API); more are closed
    /// at once.
    pub max_http_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            tokens: ".tip/tokens.json".into(),
            inbox: ".tip/uploads".into(),
            max_upload_mib: 100,
            max_decompressed_mib: 1024,
            request_timeout_seconds: 300,
            max_concurrent_ingestions: 2,
            max_concurrent_queries: 4,
            session_hours: 8,
            uploads: true,
            flight_listen: None,
            postgres_listen: None,
            tls_cert: None,
            tls_key: None,
            max_connections: 64,
            login_timeout_seconds: 10,
            max_http_connections: 256,
        }
    }
}

/// The append-only audit log (JSON lines).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub log: PathBuf,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            log: ".tip/audit.log".into(),
        }
    }
}

/// Bounds on every analyst query. Each may be set alone: the others keep their defaults (a
/// `[query]` section with `timeout_seconds` only used to fail to parse).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Memory one query may use, in MiB; sorts and aggregations spill to disk before that.
    pub memory_limit_mib: usize,
    /// Wall-clock time one query may take, in seconds.
    pub timeout_seconds: u64,
    /// The largest answer one query may return, in rows and in MiB.
    #[serde(default = "default_result_rows")]
    pub max_result_rows: usize,
    #[serde(default = "default_result_mib")]
    pub max_result_mib: usize,
    /// The largest single value a function may make (repeat, lpad, range...), in MiB.
    #[serde(default = "default_value_mib")]
    pub max_value_mib: usize,
    /// The longest statement, in SQL tokens, and the deepest nesting of parentheses.
    #[serde(default = "default_sql_tokens")]
    pub max_sql_tokens: usize,
    #[serde(default = "default_sql_depth")]
    pub max_sql_depth: usize,
}

fn default_result_rows() -> usize {
    5_000_000
}
fn default_result_mib() -> usize {
    512
}
fn default_value_mib() -> usize {
    16
}
fn default_sql_tokens() -> usize {
    10_000
}
fn default_sql_depth() -> usize {
    64
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            memory_limit_mib: 2048,
            timeout_seconds: 60,
            max_result_rows: default_result_rows(),
            max_result_mib: default_result_mib(),
            max_value_mib: default_value_mib(),
            max_sql_tokens: default_sql_tokens(),
            max_sql_depth: default_sql_depth(),
        }
    }
}

impl TipConfig {
    /// Reads the configuration file; when `path` is the default and does not exist, the
    /// embedded default is used.
    pub fn load(path: &Path, is_default_path: bool) -> Result<TipConfig, ConfigError> {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if is_default_path && e.kind() == std::io::ErrorKind::NotFound => {
                EMBEDDED_DEFAULT.to_string()
            }
            Err(source) => return Err(ConfigError::Read { file, source }),
        };
        let mut cfg: TipConfig = parse_toml(&file, &text)?;
        cfg.base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        for (name, v) in [
            ("batch_rows", cfg.ingest.batch_rows),
            ("keys_in_memory", cfg.ingest.keys_in_memory),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    file,
                    message: format!("ingest.{name} must be at least 1"),
                });
            }
        }
        Ok(cfg)
    }

    /// A configured location (path or URL), relative paths against where tip runs.
    pub fn location(&self, s: &str) -> Result<Location, ConfigError> {
        Location::parse(s, &self.base_dir).map_err(|message| ConfigError::Invalid {
            file: "tip.toml".into(),
            message,
        })
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.to_string(),
        // toml's message names the key and the line; it quotes config text only, never data.
        message: e.to_string().trim().replace('\n', " "),
    })
}

pub(crate) fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    parse_toml(&file, &text)
}

// ---------------------------------------------------------------------------------------------
// Organisation registry

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    pub org_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub org_type: String,
    pub country: String,
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    organisation: Vec<Organisation>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    pub organisations: Vec<Organisation>,
    by_id: BTreeMap<String, usize>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Registry, ConfigError> {
        let f: RegistryFile = read_toml(path)?;
        Registry::from_list(f.organisation, &path.display().to_string())
    }

    pub fn from_list(
        organisations: Vec<Organisation>,
        file: &str,
    ) -> Result<Registry, ConfigError> {
        let mut by_id = BTreeMap::new();
        for (i, o) in organisations.iter().enumerate() {
            if by_id.insert(o.org_id.clone(), i).is_some() {
                return Err(ConfigError::Invalid {
                    file: file.into(),
                    message: format!("organisation {} is listed twice", o.org_id),
                });
            }
        }
        Ok(Registry {
            organisations,
            by_id,
        })
    }

    pub fn get(&self, org_id: &str) -> Option<&Organisation> {
        self.by_id.get(org_id).map(|&i| &self.organisations[i])
    }
}

// ---------------------------------------------------------------------------------------------
// Partner pipelines

/// How a partner's files are laid out. Every field is optional so a feed can override the
/// pipeline's format and a preset can supply one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatOptions {
    pub kind: Option<String>,
    pub delimiter: Option<String>,
    pub encoding: Option<String>,
    pub date_formats: Option<Vec<String>>,
    pub decimal_separator: Option<String>,
    pub list_separator: Option<String>,
    pub sheet: Option<String>,
    pub sheet_index: Option<usize>,
    pub header_row: Option<usize>,
    pub first_data_row: Option<usize>,
    /// CSV: quoted values may hold line breaks (off by default: a line break inside a value
    /// then means an unclosed quote, and the file is refused).
    pub multiline: Option<bool>,
}

impl FormatOptions {
    /// `self` with unset options taken from `base`.
    pub fn or(&self, base: &FormatOptions) -> FormatOptions {
        FormatOptions {
            kind: self.kind.clone().or_else(|| base.kind.clone()),
            delimiter: self.delimiter.clone().or_else(|| base.delimiter.clone()),
            encoding: self.encoding.clone().or_else(|| base.encoding.clone()),
            date_formats: self
                .date_formats
                .clone()
                .or_else(|| base.date_formats.clone()),
            decimal_separator: self
                .decimal_separator
                .clone()
                .or_else(|| base.decimal_separator.clone()),
            list_separator: self
                .list_separator
                .clone()
                .or_else(|| base.list_separator.clone()),
            sheet: self.sheet.clone().or_else(|| base.sheet.clone()),
            sheet_index: self.sheet_index.or(base.sheet_index),
            header_row: self.header_row.or(base.header_row),
            first_data_row: self.first_data_row.or(base.first_data_row),
            multiline: self.multiline.or(base.multiline),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Where the ingestion job pulls new files from: a directory, or an object storage prefix
    /// (`s3://bucket/drop/partner/`).
    pub path: String,
    /// What happens to a file once its submission is committed (or found unchanged): `keep`
    /// it (the ledger's content hash skips it next time), `move` it under `processed/`, or
    /// `delete` it. A rejected file is always kept, for the partner to see and replace.
    #[serde(default)]
    pub after: AfterIngest,
}

/// What the pipeline does with a source file once it is in the lake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterIngest {
    #[default]
    Keep,
    Move,
    Delete,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    #[serde(rename = "type")]
    pub record_type: String,
    /// File name pattern (`*` and `?` wildcards) inside the source directory.
    pub files: String,
    pub preset: Option<String>,
    pub sheet: Option<String>,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub impute: BTreeMap<String, Impute>,
    /// Each file is the complete set of the partner's records of this period (`all`,
    /// `YYYY-MM` or `YYYY-MM..YYYY-MM`): records of the period absent from it are removed.
    /// Without it, files add and replace records and remove none.
    #[serde(default)]
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub name: String,
    pub partner: String,
    #[serde(default)]
    pub description: String,
    pub schedule: Option<String>,
    pub source: SourceConfig,
    #[serde(default)]
    pub format: FormatOptions,
    #[serde(rename = "feed")]
    pub feeds: Vec<FeedConfig>,
    #[serde(skip)]
    pub file: PathBuf,
}

/// What fills a field that a partner's layout does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impute {
    /// The date the submission arrived (recorded in the row's `imputed_fields`).
    SubmissionDate,
}

/// A named mapping that ships with tip (for example `htcds-v2`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetConfig {
    #[serde(default)]
    pub format: FormatOptions,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub impute: BTreeMap<String, Impute>,
}

pub fn load_pipelines(dir: &Path) -> Result<Vec<PipelineConfig>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
        file: dir.display().to_string(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out: Vec<PipelineConfig> = Vec::new();
    for f in files {
        let mut p: PipelineConfig = read_toml(&f)?;
        p.file = f.clone();
        if out.iter().any(|o| o.name == p.name) {
            return Err(ConfigError::Invalid {
                file: f.display().to_string(),
                message: format!("pipeline name {} is used twice", p.name),
            });
        }
        out.push(p);
    }
    Ok(out)
}

pub fn load_preset(presets_dir: &Path, name: &str) -> Result<PresetConfig, ConfigError> {
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::Invalid {
            file: presets_dir.display().to_string(),
            message: format!("preset name {name:?} is not valid"),
        });
    }
    read_toml(&presets_dir.join(format!("{name}.toml")))
}

/// Matches a file name against a pattern with `*` and `?` wildcards.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[query]` section may set one bound alone; the others keep their defaults.
    #[test]
    fn a_query_section_may_set_one_bound_alone() {
        let q: QueryConfig = parse_toml("tip.toml", "timeout_seconds = 30").unwrap();
        assert_eq!(q.timeout_seconds, 30);
        assert_eq!(q.memory_limit_mib, QueryConfig::default().memory_limit_mib);
        assert!(parse_toml::<QueryConfig>("tip.toml", "timeout = 30").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("bylos_*.csv", "bylos_2025.csv"));
        assert!(!wildcard_match("bylos_*.csv", "paslaugos_2025.csv"));
        assert!(wildcard_match("*.xlsx", "a.xlsx"));
        assert!(!wildcard_match("*.xlsx", "a.xlsx.bak"));
        assert!(wildcard_match("a?c", "abc"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = parse_toml::<TipConfig>(
            "tip.toml",
            "[lake]\nlocation='x'\nlocaton='y'\n[key]\nfile='k'\n",
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("tip.toml") && s.contains("locaton"), "{s}");
    }

    #[test]
    fn locations_are_paths_file_urls_or_s3_prefixes() {
        let base = Path::new("/srv/tip");
        let parse = |s: &str| Location::parse(s, base);
        assert_eq!(
            parse("drop/lt").unwrap(),
            Location::Local("/srv/tip/drop/lt".into())
        );
        assert_eq!(
            parse("file:///data/lake").unwrap(),
            Location::Local("/data/lake".into())
        );
        let Location::Url(u) = parse("s3://hub/drop/lt").unwrap() else {
            panic!("not a URL");
        };
        assert_eq!(u.as_str(), "s3://hub/drop/lt/");
        assert_eq!(
            parse("s3://hub/x/").unwrap().join("2025-06").to_string(),
            "s3://hub/x/2025-06/"
        );
        assert!(parse("s3:///lake").unwrap_err().contains("no bucket"));
        assert!(parse("gs://b/lake").unwrap_err().contains("not supported"));
        let storage = ObjectStorage {
            endpoint: Some("http://127.0.0.1:9000/".into()),
            allow_http: true,
            ..Default::default()
        };
        let o = storage.options();
        assert_eq!(o["aws_endpoint"], "http://127.0.0.1:9000");
        assert_eq!(o["allow_http"], "true");
        assert!(!o.contains_key("aws_region"));
    }
}
