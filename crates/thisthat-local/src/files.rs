//! The blob-store port on a directory.

use std::{
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use bytes::Bytes;
use thisthat_core::{
    BlobKey, Clock, Entity, Error, Result, SystemClock,
    ports::{Blob, BlobMeta, BlobStore, GetOptions, ListPage, PutMode, PutOptions, SignedUrl, SignedUrlRequest},
    signing::UrlSigner,
};

/// Each blob is one file: a one-line header with its content type, then its bytes. One file
/// means a blob and its metadata are replaced together, atomically.
const MAGIC: &[u8] = b"thisthat-blob-v1 ";

/// Page size of [`BlobStore::list`].
const LIST_PAGE: usize = 1000;

/// Blobs as files under a root directory.
///
/// - Writes go to a temporary file in the same directory, are flushed, then moved into place
///   with `rename` (overwrite) or `link` (create-only, which fails atomically if the name
///   exists), so a reader never sees half a blob and of two racing creates exactly one wins.
/// - Keys are [`BlobKey`]s, whose segments can never be `..` or empty, so a key can never
///   name a path outside the root.
/// - Signed URLs are HMAC-signed with [`UrlSigner`] for the base URL of the HTTP server that
///   serves this directory, which verifies them before serving.
#[derive(Debug, Clone)]
pub struct FileBlobStore {
    root: Arc<PathBuf>,
    signer: UrlSigner,
    clock: Arc<dyn Clock>,
}

fn io_error(e: std::io::Error) -> Error {
    Error::backend("files", e)
}

impl FileBlobStore {
    /// A store rooted at `root` (created if missing) whose signed URLs start with `base_url`
    /// and are signed with `secret` (at least 32 bytes).
    pub fn open(root: impl Into<PathBuf>, base_url: &str, secret: Vec<u8>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| Error::Config {
            reason: format!("cannot create the blob directory {}", root.display()),
            source: Some(Box::new(e)),
        })?;
        Ok(FileBlobStore {
            root: Arc::new(root),
            signer: UrlSigner::new(secret, base_url)?,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for signed-URL expiry.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The signer, for the HTTP server that verifies this store's URLs.
    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        // Safe by construction: BlobKey segments are never empty, "." or "..", and hold no
        // path separators other than '/'.
        key.as_str()
            .split('/')
            .fold(self.root.to_path_buf(), |p, segment| p.join(segment))
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Path) -> Result<T> + Send + 'static) -> Result<T> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || f(&root))
            .await
            .map_err(|e| Error::backend("files", e))?
    }
}

fn write_blob(path: &Path, body: &[u8], content_type: Option<&str>, mode: PutMode) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid("key", "has no parent directory"))?;
    let content_type = content_type.unwrap_or("");
    if content_type.contains(['\n', '\r']) {
        return Err(Error::invalid("content_type", "may not contain line breaks"));
    }
    let temp = dir.join(format!(".tmp-{}", thisthat_core::CompetitionId::new()));
    let result = (|| {
        let mut file = create_in(dir, &temp)?;
        file.write_all(MAGIC).map_err(io_error)?;
        file.write_all(content_type.as_bytes()).map_err(io_error)?;
        file.write_all(b"\n").map_err(io_error)?;
        file.write_all(body).map_err(io_error)?;
        file.sync_data().map_err(io_error)?;
        match mode {
            // The message names no path: it may reach a client, and the data directory is ours.
            PutMode::Create => std::fs::hard_link(&temp, path).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::conflict("a blob is already stored under this key"),
                _ => io_error(e),
            })?,
            _ => std::fs::rename(&temp, path).map_err(io_error)?,
        }
        // The new name is durable only once its directory is (a power loss could otherwise
        // lose a blob the database already refers to).
        #[cfg(unix)]
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)?;
        Ok(())
    })();
    // After a link the temporary name is still there; after a rename it is gone.
    let _ = std::fs::remove_file(&temp);
    result
}

/// Creates `temp` in `dir`, creating `dir` first. A concurrent delete may prune the empty
/// directory between the two steps; then create it again.
fn create_in(dir: &Path, temp: &Path) -> Result<std::fs::File> {
    let mut attempts = 0;
    loop {
        std::fs::create_dir_all(dir).map_err(io_error)?;
        match std::fs::File::create_new(temp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 5 => attempts += 1,
            other => return other.map_err(io_error),
        }
    }
}

struct Header {
    content_type: Option<String>,
    body_offset: u64,
    size: u64,
}

fn read_header(file: &mut std::fs::File, key: &BlobKey) -> Result<Header> {
    let len = file.metadata().map_err(io_error)?.len();
    let mut head = vec![0u8; (MAGIC.len() + 1024).min(len as usize)];
    file.read_exact(&mut head).map_err(io_error)?;
    let corrupt = || Error::Backend {
        provider: "files",
        message: format!("{key} is not a thisthat blob file"),
        source: None,
    };
    let rest = head.strip_prefix(MAGIC).ok_or_else(corrupt)?;
    let newline = rest.iter().position(|b| *b == b'\n').ok_or_else(corrupt)?;
    let content_type = String::from_utf8(rest[..newline].to_vec()).map_err(|_| corrupt())?;
    let body_offset = (MAGIC.len() + newline + 1) as u64;
    Ok(Header {
        content_type: (!content_type.is_empty()).then_some(content_type),
        body_offset,
        size: len - body_offset,
    })
}

fn open_blob(path: &Path, key: &BlobKey) -> Result<(std::fs::File, Header)> {
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        // A key whose parent is a blob file ("a/b" stored, "a/b/c" asked) is missing too.
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => Error::not_found(Entity::Blob, key),
        _ => io_error(e),
    })?;
    if file.metadata().map_err(io_error)?.is_dir() {
        return Err(Error::not_found(Entity::Blob, key));
    }
    let header = read_header(&mut file, key)?;
    Ok((file, header))
}

fn meta(key: &BlobKey, header: &Header) -> BlobMeta {
    BlobMeta {
        key: key.clone(),
        size: header.size,
        content_type: header.content_type.clone(),
        etag: None,
    }
}

/// Every blob key under `dir`, depth first, skipping temporary files.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_error)?;
        let path = entry.path();
        if entry.file_type().map_err(io_error)?.is_dir() {
            walk(root, &path, out)?;
        } else if !entry.file_name().to_string_lossy().starts_with(".tmp-")
            && let Ok(relative) = path.strip_prefix(root)
        {
            let key: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(key.join("/"));
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FileBlobStore {
    /// Exposes the adapter itself (`native::<FileBlobStore>()`), for what the port does not offer.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }

    async fn put(&self, key: &BlobKey, body: Bytes, options: &PutOptions) -> Result<BlobMeta> {
        let path = self.path(key);
        let (content_type, mode) = (options.content_type.clone(), options.mode);
        let meta = BlobMeta {
            key: key.clone(),
            size: body.len() as u64,
            content_type: content_type.clone(),
            etag: None,
        };
        self.blocking(move |_| write_blob(&path, &body, content_type.as_deref(), mode))
            .await?;
        Ok(meta)
    }

    async fn get(&self, key: &BlobKey, options: &GetOptions) -> Result<Blob> {
        let (path, key, range) = (self.path(key), key.clone(), options.range.clone());
        self.blocking(move |_| {
            let (mut file, header) = open_blob(&path, &key)?;
            let (start, end) = match range {
                None => (0, header.size),
                Some(r) if r.start > r.end => return Err(Error::invalid("range", "start is after end")),
                Some(r) => (r.start.min(header.size), r.end.min(header.size)),
            };
            file.seek(SeekFrom::Start(header.body_offset + start))
                .map_err(io_error)?;
            let mut body = vec![0u8; (end - start) as usize];
            file.read_exact(&mut body).map_err(io_error)?;
            Ok(Blob {
                meta: meta(&key, &header),
                body: body.into(),
            })
        })
        .await
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta> {
        let (path, key) = (self.path(key), key.clone());
        self.blocking(move |_| open_blob(&path, &key).map(|(_, header)| meta(&key, &header)))
            .await
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        let path = self.path(key);
        self.blocking(move |root| {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(io_error(e)),
            }
            // Leave no empty directories behind (a rejected competition leaves nothing at all).
            // remove_dir refuses a directory that is not empty, which ends the walk up.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != root && d.starts_with(root)) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        let prefix = prefix.to_string();
        let store = self.clone();
        self.blocking(move |root| {
            let mut keys = Vec::new();
            walk(root, root, &mut keys)?;
            keys.retain(|k| k.starts_with(&prefix) && continuation.as_deref().is_none_or(|after| k.as_str() > after));
            keys.sort();
            let more = keys.len() > LIST_PAGE;
            keys.truncate(LIST_PAGE);
            let mut blobs = Vec::with_capacity(keys.len());
            for key in &keys {
                let Ok(key) = BlobKey::new(key.as_str()) else { continue };
                match open_blob(&store.path(&key), &key) {
                    Ok((_, header)) => blobs.push(meta(&key, &header)),
                    // Deleted since the walk.
                    Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            let next = if more { keys.last().cloned() } else { None };
            Ok(ListPage { blobs, next })
        })
        .await
    }

    async fn signed_url(&self, key: &BlobKey, request: &SignedUrlRequest) -> Result<SignedUrl> {
        self.signer.sign(key, request, self.clock.now())
    }
}
