//! Where a stream's archive lives: the data directory's `archive/` folder,
//! a `file://` directory, or an object store (`s3://`, with the `s3`
//! feature).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use brikk_storage::StreamDef;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use crate::error::{Error, Result};

/// One archive root.
#[derive(Debug)]
pub struct Location {
    /// The store files are read (and, for remote roots, written) through.
    pub store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// For local roots: the directory. Local files are written with
    /// `std::fs` so they can be synced before the rename.
    pub local: Option<PathBuf>,
    /// How users name the root (a directory or a URL).
    pub url: String,
}

impl Location {
    fn local(dir: PathBuf) -> Result<Location> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Io { path: dir.display().to_string(), detail: e.to_string() })?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| Error::Io { path: dir.display().to_string(), detail: e.to_string() })?;
        Ok(Location {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
            url: dir.display().to_string(),
            local: Some(dir),
        })
    }

    fn remote(url: &str) -> Result<Location> {
        let parsed = url::Url::parse(url).map_err(|e| Error::InvalidInput(format!("archive URL {url}: {e}")))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|_| Error::InvalidInput(format!("archive URL {url} is not an absolute local path")))?;
                let mut loc = Location::local(dir)?;
                loc.url = url.to_string();
                Ok(loc)
            }
            #[cfg(feature = "s3")]
            "s3" => {
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()
                    .map_err(|e| Error::InvalidInput(format!("archive URL {url}: {e}")))?;
                let prefix = ObjectPath::from(parsed.path().trim_matches('/'));
                Ok(Location { store: Arc::new(store), prefix, local: None, url: url.to_string() })
            }
            other => Err(Error::InvalidInput(format!(
                "archive URL {url}: scheme {other} is not supported by this build (file://{})",
                if cfg!(feature = "s3") { ", s3://" } else { "; s3:// needs the s3 feature" }
            ))),
        }
    }

    /// The object path of a file `rel` (see `brikk_storage::archive::file_path`).
    pub fn object_path(&self, rel: &str) -> ObjectPath {
        rel.split('/').fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// The local path of `rel`, for local roots.
    pub fn local_path(&self, rel: &str) -> Option<PathBuf> {
        self.local.as_ref().map(|d| d.join(rel))
    }

    /// `rel` as users would find it: a full path or URL, for messages.
    pub fn display(&self, rel: &str) -> String {
        match &self.local {
            Some(d) => d.join(rel).display().to_string(),
            None => format!("{}/{rel}", self.url.trim_end_matches('/')),
        }
    }
}

/// The archive roots of a database, opened once each.
#[derive(Debug)]
pub struct Locations {
    data_dir: PathBuf,
    open: Mutex<HashMap<Option<String>, Arc<Location>>>,
}

impl Locations {
    /// Roots relative to the data directory `data_dir`.
    pub fn new(data_dir: &Path) -> Result<Locations> {
        Ok(Locations { data_dir: data_dir.to_path_buf(), open: Mutex::new(HashMap::new()) })
    }

    /// The root of `def`'s archive: its URL, or `<data dir>/archive`.
    pub fn of(&self, def: &StreamDef) -> Result<Arc<Location>> {
        let url = def.archive.as_ref().and_then(|a| a.location.clone());
        let mut open = self.open.lock().expect("locations lock");
        if let Some(l) = open.get(&url) {
            return Ok(l.clone());
        }
        let loc = Arc::new(match &url {
            None => Location::local(self.data_dir.join("archive"))?,
            Some(u) => Location::remote(u)?,
        });
        open.insert(url, loc.clone());
        Ok(loc)
    }
}
