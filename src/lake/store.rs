//! Object storage outside the lake's tables: the partners' drop prefixes, the upload inbox's
//! receipts and the extracts. Every store is made by the same factories as the lake's tables
//! (the Delta library's, with the standard AWS credential chain), so one `[storage]` section
//! and one set of `AWS_*` variables reach all of them.
//!
//! A store is a prefix: names are relative to it, `a.csv` or `processed/a.csv`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::logstore::object_store::{
    self, GetOptions, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload,
    WriteMultipart, path::Path as ObjectPath,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt as _;
use url::Url;

use super::LakeError;

/// One object under a store's prefix, as listed.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Relative to the prefix.
    pub name: String,
    pub size: u64,
    /// The version listed: a download reads exactly this one or fails.
    pub e_tag: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    url: Url,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

/// The factories for `s3://` are registered when the process starts (the Delta library's
/// `s3` feature); this names the library's registration so that it is linked.
pub fn register() {
    deltalake::aws::register_handlers(None);
}

impl Store {
    /// The store at `url` (its path is the prefix). Reads and writes nothing.
    pub fn open(url: &Url, options: &BTreeMap<String, String>) -> Result<Store, LakeError> {
        register();
        let opts: HashMap<String, String> = options.clone().into_iter().collect();
        let inner = deltalake::logstore::store_for(url, opts).map_err(|e| LakeError::Location {
            location: url.to_string(),
            message: e.to_string(),
        })?;
        Ok(Store {
            inner,
            url: url.clone(),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    fn err(&self, e: impl std::fmt::Display) -> LakeError {
        LakeError::Location {
            location: self.url.to_string(),
            message: e.to_string(),
        }
    }

    fn path(&self, name: &str) -> Result<ObjectPath, LakeError> {
        ObjectPath::parse(name).map_err(|e| self.err(e))
    }

    /// The objects directly under the prefix (not those under a deeper prefix such as
    /// `processed/`), sorted by name. An upload still in progress is not listed: S3 shows an
    /// object only once its PUT or multipart upload completes.
    pub async fn list(&self) -> Result<Vec<StoredObject>, LakeError> {
        let listed = self
            .inner
            .list_with_delimiter(None)
            .await
            .map_err(|e| self.err(e))?;
        let mut out: Vec<StoredObject> = listed
            .objects
            .into_iter()
            .map(|m| StoredObject {
                name: m.location.to_string(),
                size: m.size,
                e_tag: m.e_tag,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Streams the object to a local file: exactly the version listed (an object replaced
    /// since is an error, not a mix of two versions).
    pub async fn download(
        &self,
        obj: &StoredObject,
        dest: &std::path::Path,
    ) -> Result<(), LakeError> {
        let opts = GetOptions {
            if_match: obj.e_tag.clone(),
            ..Default::default()
        };
        let got = self
            .inner
            .get_opts(&self.path(&obj.name)?, opts)
            .await
            .map_err(|e| match e {
                object_store::Error::Precondition { .. } => {
                    self.err(format!("{} was replaced while it was read", obj.name))
                }
                e => self.err(e),
            })?;
        let mut stream = got.into_stream();
        let mut f = tokio::fs::File::create(dest)
            .await
            .map_err(|e| self.err(format!("local staging file: {}", e.kind())))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(e))?;
            f.write_all(&chunk)
                .await
                .map_err(|e| self.err(format!("local staging file: {}", e.kind())))?;
        }
        f.flush()
            .await
            .map_err(|e| self.err(format!("local staging file: {}", e.kind())))
    }

    /// Uploads a local file as `name` (in parts, never whole in memory); the object appears
    /// only once complete.
    pub async fn upload(&self, src: &std::path::Path, name: &str) -> Result<(), LakeError> {
        use tokio::io::AsyncReadExt as _;
        let mut f = tokio::fs::File::open(src)
            .await
            .map_err(|e| self.err(format!("{}: {}", src.display(), e.kind())))?;
        let upload = self
            .inner
            .put_multipart(&self.path(name)?)
            .await
            .map_err(|e| self.err(e))?;
        let mut w = WriteMultipart::new(upload);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(self.err(format!("{}: {}", src.display(), e.kind())));
                }
            };
            if n == 0 {
                break;
            }
            w.write(&buf[..n]);
        }
        w.finish().await.map_err(|e| self.err(e))?;
        Ok(())
    }

    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.inner
            .put(&self.path(name)?, PutPayload::from(bytes))
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The object's bytes, or None when there is no such object.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, LakeError> {
        match self.inner.get(&self.path(name)?).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.err(e))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Moves an object (on S3 a copy then a delete: a crash between the two leaves a copy in
    /// both places, which the ledger's content hash makes harmless).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), LakeError> {
        self.inner
            .rename(&self.path(from)?, &self.path(to)?)
            .await
            .map_err(|e| self.err(e))
    }

    pub async fn delete(&self, name: &str) -> Result<(), LakeError> {
        match self.inner.delete(&self.path(name)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Whether the store refuses to create an object that exists (a conditional PUT with
    /// `If-None-Match: *`), which is all that keeps two writers' Delta commits from
    /// overwriting each other: a probe object is created twice, and the second create must
    /// be refused. The probe is deleted afterwards.
    pub async fn check_conditional_create(&self) -> Result<(), LakeError> {
        let probe = self.path(&format!("_tip_probe/{}", uuid::Uuid::new_v4().as_simple()))?;
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let payload = || PutPayload::from_static(b"tip: conditional write probe");
        if let Err(e) = self.inner.put_opts(&probe, payload(), create()).await {
            return Err(self.err(format!("cannot write a probe object: {e}")));
        }
        let second = self.inner.put_opts(&probe, payload(), create()).await;
        let _ = self.inner.delete(&probe).await;
        let refuse = |why: String| LakeError::UnsafeStore {
            location: self.url.to_string(),
            why,
        };
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Ok(_) => Err(refuse(
                "a second create of the same object was accepted and overwrote the first".into(),
            )),
            Err(e) => Err(refuse(format!(
                "a second create of the same object failed with another error than \"already exists\" ({e})"
            ))),
        }
    }
}
