use std::path::{Path, PathBuf};
use std::process::Output;

use tip::app::App;
use tip::config::TipConfig;
use tip::ingest::Ingestor;
use tip::pseudonym::Key;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary lake and key.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub lake: PathBuf,
    pub key: PathBuf,
    /// Environment variables every tip process of this test gets (object storage settings).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path().join("lake");
        let key = dir.path().join("test.key");
        Key::write_new(&key).expect("key");
        Env {
            dir,
            lake,
            key,
            vars: Vec::new(),
        }
    }

    /// The application core on this lake (no key).
    pub fn app(&self) -> App {
        let cfg = TipConfig::load(&repo().join("pipelines/tip.toml"), false).expect("config");
        App::open(cfg, Some(self.lake.to_str().unwrap())).expect("app")
    }

    /// The ingestion side on this lake, with this key.
    pub async fn ctx(&self) -> Ingestor {
        self.app()
            .ingestion(Some(&self.key))
            .await
            .expect("ingestion")
            .ingestor
    }

    /// Runs the tip binary from the repository root against this lake and key.
    pub fn tip(&self, args: &[&str]) -> Output {
        self.tip_on(&self.lake, args)
    }

    /// Runs the tip binary against another lake with this key.
    pub fn tip_on(&self, lake: &Path, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_tip"))
            .current_dir(repo())
            .env_remove("TIP_KEY")
            .envs(self.vars.iter().cloned())
            .arg("--lake")
            .arg(lake)
            .arg("--key-file")
            .arg(&self.key)
            .args(args)
            .output()
            .expect("run tip")
    }

    /// `tip load --partner PARTNER --type TYPE FILE` against `lake` with this key.
    pub fn load_on(&self, lake: &Path, partner: &str, record_type: &str, file: &Path) -> Output {
        let file = file.to_str().expect("utf-8 path");
        self.tip_on(
            lake,
            &["load", "--partner", partner, "--type", record_type, file],
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `SELECT ...` returning one integer.
pub async fn scalar(ctx: &Ingestor, sql: &str) -> i64 {
    let s = tip::query::Session::open(&ctx.lake, &ctx.catalog, &ctx.registry, None)
        .await
        .expect("session");
    let b = s.run(sql).await.expect("query");
    let col = b[0].column(0);
    let v = datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Int64)
        .unwrap();
    v.as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// How many files the latest version of a lake table reads (its live files).
pub fn live_files(lake: &Path, table: &str) -> usize {
    let lake = tip::lake::Lake::open(lake.to_str().unwrap()).expect("lake");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(lake.table(table, None))
        .expect("table")
        .get_file_uris()
        .expect("files")
        .count()
}

/// Every table of the lake.
pub fn table_names(ctx: &Ingestor) -> Vec<String> {
    tip::lake::Lake::specs(&ctx.catalog)
        .into_iter()
        .map(|s| s.name)
        .collect()
}
