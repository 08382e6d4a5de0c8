use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use socratic_core::blob::{
    BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, BlobWriter, ListOptions,
};

use crate::blob::page_keys;

/// Where in-progress writes live, inside the root so renames stay on one filesystem.
const TEMP_DIR: &str = ".socratic-tmp";

/// A [`BlobStore`] in a directory: the blob `a/b.json` is the file `<root>/a/b.json`.
///
/// Writes go to a temporary file first and are moved into place by a rename (overwrite) or a
/// hard link that fails if the target exists (create-only), so a reader never sees a partial
/// blob and two concurrent creates cannot both win. Keys are validated by [`BlobKey`] and
/// cannot name anything outside the root.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store rooted at `root`, created if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        std::fs::create_dir_all(root.join(TEMP_DIR))
            .map_err(|e| io_error(&root.display().to_string(), &e))?;
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &BlobKey) -> Result<PathBuf, BlobError> {
        if key.as_str() == TEMP_DIR || key.as_str().starts_with(&format!("{TEMP_DIR}/")) {
            return Err(BlobError::InvalidKey {
                key: key.to_string(),
                reason: format!("{TEMP_DIR}/ is reserved for in-progress writes"),
            });
        }
        Ok(self.root.join(key.as_str()))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(PathBuf) -> Result<T, BlobError> + Send + 'static,
    ) -> Result<T, BlobError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || work(root))
            .await
            .map_err(|e| BlobError::Unavailable {
                message: format!("blob task failed: {e}"),
            })?
    }
}

fn io_error(key: &str, error: &std::io::Error) -> BlobError {
    match error.kind() {
        ErrorKind::NotFound => BlobError::NotFound {
            key: key.to_owned(),
        },
        ErrorKind::AlreadyExists => BlobError::AlreadyExists {
            key: key.to_owned(),
        },
        _ => BlobError::Unavailable {
            message: format!("{key}: {error}"),
        },
    }
}

fn write_temp(root: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let temp = temp_path(root);
    let mut file = std::fs::File::create_new(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(temp)
}

fn temp_path(root: &Path) -> PathBuf {
    root.join(TEMP_DIR).join(ulid::Ulid::new().to_string())
}

/// Moves a written temporary file to `path`: a rename (overwrite) or a hard link that fails if
/// the target exists (create-only).
fn place(temp: &Path, path: &Path, mode: BlobPutMode, name: &str) -> Result<(), BlobError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(name, &e))?;
    }
    let placed = match mode {
        BlobPutMode::Overwrite => std::fs::rename(temp, path),
        BlobPutMode::Create => std::fs::hard_link(temp, path),
    };
    // The temp file is left over after a link, or after a failed rename.
    let _ = std::fs::remove_file(temp);
    placed.map_err(|e| io_error(name, &e))
}

/// How much a [`FsWriter`] gathers before writing it to its file.
const WRITE_AT: usize = 1 << 20;

/// A blob written to a temporary file as it comes, placed like a put on `finish`.
struct FsWriter {
    store: FsBlobStore,
    key: BlobKey,
    path: PathBuf,
    mode: BlobPutMode,
    temp: PathBuf,
    /// The open temporary file; `None` only while a write is under way.
    file: Option<std::fs::File>,
    pending: Vec<u8>,
    size: u64,
    finished: bool,
}

impl FsWriter {
    /// Writes what is pending to the file, off the async threads.
    async fn flush(&mut self) -> Result<(), BlobError> {
        let mut file = self.file.take().ok_or_else(|| BlobError::Unavailable {
            message: format!("{}: an earlier write failed", self.key),
        })?;
        let pending = std::mem::take(&mut self.pending);
        let name = self.key.to_string();
        let (file, mut pending) = self
            .store
            .blocking(move |_| {
                file.write_all(&pending).map_err(|e| io_error(&name, &e))?;
                Ok((file, pending))
            })
            .await?;
        pending.clear();
        self.pending = pending;
        self.file = Some(file);
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BlobError> {
        self.pending.extend_from_slice(bytes);
        self.size += bytes.len() as u64;
        if self.pending.len() >= WRITE_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<BlobMeta, BlobError> {
        self.flush().await?;
        let file = self.file.take();
        let (temp, path, mode, name) = (
            self.temp.clone(),
            self.path.clone(),
            self.mode,
            self.key.to_string(),
        );
        self.store
            .blocking(move |_| {
                if let Some(file) = file {
                    file.sync_all().map_err(|e| io_error(&name, &e))?;
                }
                place(&temp, &path, mode, &name)
            })
            .await?;
        self.finished = true;
        Ok(BlobMeta {
            key: self.key.clone(),
            size: self.size,
        })
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Unfinished: nothing is stored.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, u64)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if key != TEMP_DIR {
                walk(&entry.path(), &key, out)?;
            }
        } else if kind.is_file() {
            out.push((key, entry.metadata()?.len()));
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        let path = self.path(key)?;
        let name = key.to_string();
        let size = bytes.len() as u64;
        self.blocking(move |root| {
            let temp = write_temp(&root, &bytes).map_err(|e| io_error(&name, &e))?;
            place(&temp, &path, mode, &name)
        })
        .await?;
        Ok(BlobMeta {
            key: key.clone(),
            size,
        })
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let path = self.path(key)?;
        let name = key.to_string();
        self.blocking(move |_| std::fs::read(&path).map_err(|e| io_error(&name, &e)))
            .await
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError> {
        let path = self.path(key)?;
        let name = key.to_string();
        let size = self
            .blocking(move |_| match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => Ok(meta.len()),
                Ok(_) => Err(BlobError::NotFound { key: name }),
                Err(e) => Err(io_error(&name, &e)),
            })
            .await?;
        Ok(BlobMeta {
            key: key.clone(),
            size,
        })
    }

    async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError> {
        let options = options.clone();
        self.blocking(move |root| {
            let mut keys = Vec::new();
            walk(&root, "", &mut keys).map_err(|e| io_error(&options.prefix, &e))?;
            keys.sort();
            page_keys(keys.iter().map(|(k, s)| (k.as_str(), *s)), &options)
        })
        .await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let path = self.path(key)?;
        let name = key.to_string();
        self.blocking(move |_| match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&name, &e)),
        })
        .await
    }

    async fn writer<'a>(
        &'a self,
        key: &BlobKey,
        mode: BlobPutMode,
    ) -> Result<Box<dyn BlobWriter + 'a>, BlobError> {
        let path = self.path(key)?;
        let name = key.to_string();
        let (temp, file) = self
            .blocking(move |root| {
                let temp = temp_path(&root);
                let file = std::fs::File::create_new(&temp).map_err(|e| io_error(&name, &e))?;
                Ok((temp, file))
            })
            .await?;
        Ok(Box::new(FsWriter {
            store: self.clone(),
            key: key.clone(),
            path,
            mode,
            temp,
            file: Some(file),
            pending: Vec::new(),
            size: 0,
            finished: false,
        }))
    }
}
