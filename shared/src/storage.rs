//! One storage interface over local directories and S3-compatible object stores.
//!
//! Invariant: an object becomes visible under its final name only when it is complete. Local
//! files are written under a temporary name in the same directory, fsynced and renamed; S3 objects
//! are multipart uploads that are completed only in `finish` (or one `PutObject` for small ones).
//! A writer dropped without `finish` leaves nothing under the final name.
//!
//! Durability. `put` and `create` make an object durable before it becomes visible (local:
//! written, fsynced, renamed). Many small files each fsynced and renamed cost a journal commit
//! and a directory update apiece, so objects that a later *commit point* vouches for (a dump's
//! schema files, which its plan follows, and chunk files, which their completion marker
//! follows) may be written with `put_deferred`, `put_many_deferred` and `create_deferred`:
//! durable only after the next `sync` (local: one `syncfs` of the filesystem for all of them),
//! and — locally — written in place under their final name, so one may be seen while it is
//! being written or, after a crash, short. The commit point is written after that `sync`; a
//! deferred object without its commit point is unfinished, and its writer must write it again
//! (the dump deletes and rereads such chunks). S3 objects still appear only when complete and
//! are durable once they do, so there `sync` has nothing to do.
//!
//! Memory is bounded whatever the object sizes. S3 part buffers are exactly `part_size` bytes
//! (8 MiB by default; a buffer never grows past it), and one `S3Storage` lets at most
//! `max_buffered_parts` of them exist at once, filling or uploading: a writer takes a slot when
//! its first byte of a part arrives and the slot is freed when that part's upload ends. A writer
//! waiting for a slot holds none that is only partly filled (it has just shipped its full part),
//! and an upload needs no slot to end, so the waits always end. Within a writer, one part
//! uploads while the next fills. Ranged reads stream (`stream_range`): bytes come as the
//! server sends them, never a whole range at once.

use crate::failure::{retry_with_backoff, RetryPolicy};
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Suffix of local files that are still being written.
pub const TEMP_SUFFIX: &str = ".ferry-partial";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{location}: {action} failed: {source}{}", fix_suffix(crate::failure::Failure::io("", source).fix))]
    Io {
        location: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {action} failed: {message}")]
    S3 {
        location: String,
        action: &'static str,
        message: String,
        transient: bool,
    },
    #[error("{location}: not found")]
    NotFound { location: String },
    #[error("invalid storage URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
}

fn fix_suffix(fix: Option<String>) -> String {
    fix.map(|f| format!(" ({f})")).unwrap_or_default()
}

impl crate::failure::Classify for StorageError {
    /// Network trouble, throttling and 5xx are transient; see [`crate::failure`].
    fn class(&self) -> crate::failure::Class {
        use crate::failure::{Class, Failure};
        match self {
            StorageError::S3 {
                transient: true, ..
            } => Class::Transient,
            StorageError::Io { source, .. } => Failure::io("", source).class,
            _ => Class::Definite,
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// A listed object: its name relative to the storage root, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// Options for S3 destinations.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Custom endpoint for S3-compatible stores (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style addressing; defaults to on when an endpoint is given.
    pub force_path_style: Option<bool>,
    /// Multipart part size in bytes (minimum 5 MiB).
    pub part_size: Option<usize>,
    /// Part buffers (filling or uploading) that may exist at once over all writers; default 8.
    /// Writers wait for a free one, so writer memory stays under this many parts.
    pub max_buffered_parts: Option<usize>,
    /// How long a part upload or a ranged read keeps retrying transient failures; dump and
    /// load set it from their own policy (`--retry-for-secs`).
    pub retry: RetryPolicy,
}

#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Human-readable location of `name` for messages (`/dir/name`, `s3://bucket/prefix/name`).
    fn describe(&self, name: &str) -> String;
    /// The object's path when it is a local file (readers then stream it directly).
    fn local_path(&self, _name: &str) -> Option<PathBuf> {
        None
    }
    /// How long callers that resume a read (ranged reads) keep retrying transient failures.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    /// Objects whose name starts with `prefix`, sorted by name.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    async fn exists(&self, name: &str) -> Result<bool>;
    async fn read(&self, name: &str) -> Result<Bytes>;
    async fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Bytes>;
    /// Streams bytes `start..start + len` of `name` piece by piece as they arrive, so a large
    /// range never sits in memory whole (S3: one ranged GET whose body is read as it comes).
    async fn stream_range(&self, name: &str, start: u64, len: u64) -> Result<Box<dyn RangeReader>> {
        let data = self.read_range(name, start, len).await?;
        Ok(Box::new(WholeRange(Some(data))))
    }
    /// Writes a small object in one go (atomic).
    async fn put(&self, name: &str, data: Bytes) -> Result<()> {
        let mut w = self.create(name).await?;
        w.write(data).await?;
        w.finish().await?;
        Ok(())
    }
    /// Like `put`, but durable only after the next [`Storage::sync`] (see the module doc).
    async fn put_deferred(&self, name: &str, data: Bytes) -> Result<()> {
        self.put(name, data).await
    }
    /// Like `create`, but durable only after the next [`Storage::sync`] (see the module doc).
    async fn create_deferred(&self, name: &str) -> Result<Box<dyn ObjectWriter>> {
        self.create(name).await
    }
    /// Makes every object finished so far durable.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }
    /// Writes many small objects as `put_deferred`, possibly together.
    async fn put_many_deferred(&self, objects: Vec<(String, Bytes)>) -> Result<()> {
        let puts = objects
            .iter()
            .map(|(name, data)| self.put_deferred(name, data.clone()));
        futures::future::try_join_all(puts).await.map(|_| ())
    }
    async fn create(&self, name: &str) -> Result<Box<dyn ObjectWriter>>;
    async fn delete(&self, name: &str) -> Result<()>;
    /// Removes leftovers of writers that never finished (temp files, open multipart uploads).
    async fn clean_incomplete(&self) -> Result<usize>;
    /// Checks that the destination can be written to (creates and removes a probe object).
    async fn check_writable(&self) -> Result<()> {
        let probe = ".ferry-write-probe";
        self.put(probe, Bytes::from_static(b"ok")).await?;
        self.delete(probe).await
    }
}

#[async_trait]
pub trait ObjectWriter: Send {
    async fn write(&mut self, data: Bytes) -> Result<()>;
    /// Makes the object visible under its final name; returns its size.
    async fn finish(self: Box<Self>) -> Result<u64>;
}

/// The bytes of a ranged read, in the order of the object.
#[async_trait]
pub trait RangeReader: Send {
    /// The next piece of the range; `None` after the last one.
    async fn next_piece(&mut self) -> Result<Option<Bytes>>;
}

/// A range read in one piece (stores without streaming reads).
struct WholeRange(Option<Bytes>);

#[async_trait]
impl RangeReader for WholeRange {
    async fn next_piece(&mut self) -> Result<Option<Bytes>> {
        Ok(self.0.take().filter(|b| !b.is_empty()))
    }
}

/// Opens `--to`/`--from` style locations: `s3://bucket/prefix` or a local directory.
pub async fn open(url: &str, s3: &S3Options) -> Result<Arc<dyn Storage>> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StorageError::BadUrl {
                url: url.to_string(),
                reason: "missing bucket name (s3://BUCKET/PREFIX)".into(),
            });
        }
        Ok(Arc::new(S3Storage::new(bucket, prefix, s3).await))
    } else if url.contains("://") {
        Err(StorageError::BadUrl {
            url: url.to_string(),
            reason: "only local paths and s3:// URLs are supported".into(),
        })
    } else {
        Ok(Arc::new(LocalStorage::new(url)))
    }
}

// ---------------------------------------------------------------------------------------------
// Local directories

#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// One blocking step: temp file, bytes, (fsync), rename — a small object costs one hand-off
    /// to the blocking pool, not five.
    async fn put_file(&self, name: &str, data: Bytes, durable: Durable) -> Result<()> {
        let (temp, final_path) = self.temp_and_final(name, durable);
        let result = tokio::task::spawn_blocking(move || {
            let mut file = create_file(&temp, &final_path).map_err(|e| ("create", e))?;
            std::io::Write::write_all(&mut file, &data).map_err(|e| ("write", e))?;
            finish_file(file, &temp, &final_path, durable)
        })
        .await
        .map_err(|e| self.io_err(name, "put", std::io::Error::other(e)))?;
        result.map_err(|(action, e)| self.io_err(name, action, e))
    }

    fn writer(&self, name: &str, durable: Durable) -> LocalWriter {
        let (temp, final_path) = self.temp_and_final(name, durable);
        LocalWriter {
            location: self.describe(name),
            file: None,
            temp,
            final_path,
            written: 0,
            finished: false,
            durable,
        }
    }

    /// The path an object is written under (a temporary one, unless its durability is
    /// deferred: then in place), and its final path.
    fn temp_and_final(&self, name: &str, durable: Durable) -> (PathBuf, PathBuf) {
        let final_path = self.path(name);
        if durable == Durable::AtSync {
            return (final_path.clone(), final_path);
        }
        let mut temp = final_path.clone().into_os_string();
        temp.push(TEMP_SUFFIX);
        (PathBuf::from(temp), final_path)
    }

    fn io_err(&self, name: &str, action: &'static str, source: std::io::Error) -> StorageError {
        if source.kind() == std::io::ErrorKind::NotFound && action == "read" {
            return StorageError::NotFound {
                location: self.describe(name),
            };
        }
        StorageError::Io {
            location: self.describe(name),
            action,
            source,
        }
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn local_path(&self, name: &str) -> Option<PathBuf> {
        Some(self.root.join(name))
    }

    fn describe(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        // Walk only directories that can hold names starting with `prefix`.
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, rel_dir)) = stack.pop() {
            let mut rd = match tokio::fs::read_dir(&dir).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io_err(&rel_dir, "list", e)),
            };
            while let Some(entry) = rd
                .next_entry()
                .await
                .map_err(|e| self.io_err(&rel_dir, "list", e))?
            {
                let fname = entry.file_name().to_string_lossy().into_owned();
                let name = format!("{rel_dir}{fname}");
                // Entries renamed or removed by concurrent writers while listing are skipped.
                let Ok(meta) = entry.metadata().await else {
                    continue;
                };
                if meta.is_dir() {
                    let sub = format!("{name}/");
                    if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                        stack.push((entry.path(), sub));
                    }
                } else if name.starts_with(prefix) && !name.ends_with(TEMP_SUFFIX) {
                    out.push(ObjectInfo {
                        name,
                        size: meta.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        tokio::fs::try_exists(self.path(name))
            .await
            .map_err(|e| self.io_err(name, "stat", e))
    }

    async fn read(&self, name: &str) -> Result<Bytes> {
        tokio::fs::read(self.path(name))
            .await
            .map(Bytes::from)
            .map_err(|e| self.io_err(name, "read", e))
    }

    async fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Bytes> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut f = tokio::fs::File::open(self.path(name))
            .await
            .map_err(|e| self.io_err(name, "read", e))?;
        f.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| self.io_err(name, "read", e))?;
        let mut buf = Vec::with_capacity(len.min(64 << 20) as usize);
        f.take(len)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| self.io_err(name, "read", e))?;
        Ok(Bytes::from(buf))
    }

    async fn put(&self, name: &str, data: Bytes) -> Result<()> {
        self.put_file(name, data, Durable::Now).await
    }

    async fn put_deferred(&self, name: &str, data: Bytes) -> Result<()> {
        self.put_file(name, data, Durable::AtSync).await
    }

    async fn sync(&self) -> Result<()> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&root).and_then(|d| syncfs(&d)))
            .await
            .map_err(|e| self.io_err("", "sync", std::io::Error::other(e)))?
            .map_err(|e| self.io_err("", "sync", e))
    }

    /// One blocking step for the whole batch, on one thread: many creators in one directory at
    /// once would mostly wait on its lock.
    async fn put_many_deferred(&self, objects: Vec<(String, Bytes)>) -> Result<()> {
        let files: Vec<BatchFile> = objects
            .into_iter()
            .map(|(name, data)| {
                let path = self.path(&name);
                (name, path, data)
            })
            .collect();
        let result = tokio::task::spawn_blocking(move || put_batch(&files))
            .await
            .map_err(|e| self.io_err("", "put", std::io::Error::other(e)))?;
        result.map_err(|(name, action, e)| self.io_err(&name, action, e))
    }

    async fn create(&self, name: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(self.writer(name, Durable::Now)))
    }

    async fn create_deferred(&self, name: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(self.writer(name, Durable::AtSync)))
    }

    async fn delete(&self, name: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(name)).await {
            Ok(()) => {
                // Directories exist only to hold objects: drop the ones left empty.
                let mut dir = self.path(name);
                while dir.pop() && dir.starts_with(&self.root) && dir != self.root {
                    if tokio::fs::remove_dir(&dir).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err(name, "delete", e)),
        }
    }

    async fn clean_incomplete(&self) -> Result<usize> {
        let mut removed = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(mut rd) = tokio::fs::read_dir(&dir).await else {
                continue;
            };
            while let Ok(Some(entry)) = rd.next_entry().await {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.to_string_lossy().ends_with(TEMP_SUFFIX) {
                    let _ = tokio::fs::remove_file(&path).await;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Creates the temp file of an object, and its directory if that is missing (directories are
/// created on demand and dropped when emptied, so one may vanish between two objects).
fn create_file(temp: &Path, final_path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::File::create(temp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = final_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::File::create(temp)
        }
        r => r,
    }
}

/// When a local file is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durable {
    /// fsync before the rename: a visible file is a complete file, even after a power loss.
    Now,
    /// By the next `sync` (see the module doc).
    AtSync,
}

/// Flushes every dirty file of the filesystem holding `any` and commits its journal once.
fn syncfs(any: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::syncfs(any).map_err(std::io::Error::from)
}

/// Makes the file visible under its final name, durable first (a deferred file is in place
/// already). On failure the temp file is removed.
fn finish_file(
    file: std::fs::File,
    temp: &Path,
    final_path: &Path,
    durable: Durable,
) -> std::result::Result<(), (&'static str, std::io::Error)> {
    if durable == Durable::AtSync {
        // Written in place: nothing to rename.
        return Ok(());
    }
    let result = file.sync_all().map_err(|e| ("fsync", e)).and_then(|()| {
        drop(file);
        std::fs::rename(temp, final_path).map_err(|e| ("rename", e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    result
}

/// A file of a batch: its name, path and bytes.
type BatchFile = (String, PathBuf, Bytes);
type BatchError = (String, &'static str, std::io::Error);

/// Writes a batch of small deferred files in place (see `LocalStorage::put_many_deferred`); the
/// error names the file.
fn put_batch(files: &[BatchFile]) -> std::result::Result<(), BatchError> {
    for (name, path, data) in files {
        let mut file = create_file(path, path).map_err(|e| (name.clone(), "create", e))?;
        std::io::Write::write_all(&mut file, data).map_err(|e| (name.clone(), "write", e))?;
    }
    Ok(())
}

struct LocalWriter {
    location: String,
    /// Opened by the first write (or by `finish` for an empty object), inside the same blocking
    /// step. Writes run on the blocking pool with the buffer moved in: no copy, no extra
    /// buffering (callers hand over large buffers).
    file: Option<std::fs::File>,
    temp: PathBuf,
    final_path: PathBuf,
    written: u64,
    finished: bool,
    durable: Durable,
}

impl LocalWriter {
    fn err(&self, action: &'static str, source: std::io::Error) -> StorageError {
        StorageError::Io {
            location: self.location.clone(),
            action,
            source,
        }
    }

    fn open_if_needed(
        file: Option<std::fs::File>,
        temp: &Path,
        final_path: &Path,
    ) -> std::result::Result<std::fs::File, (&'static str, std::io::Error)> {
        match file {
            Some(f) => Ok(f),
            None => create_file(temp, final_path).map_err(|e| ("create", e)),
        }
    }
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        use std::io::Write;
        if self.finished {
            return Err(self.err("write", std::io::Error::other("writer already finished")));
        }
        let len = data.len() as u64;
        let (file, temp, final_path) =
            (self.file.take(), self.temp.clone(), self.final_path.clone());
        let (file, result) =
            tokio::task::spawn_blocking(move || {
                match LocalWriter::open_if_needed(file, &temp, &final_path) {
                    Ok(mut f) => {
                        let r = f.write_all(&data).map_err(|e| ("write", e));
                        (Some(f), r)
                    }
                    Err(e) => (None, Err(e)),
                }
            })
            .await
            .map_err(|e| self.err("write", std::io::Error::other(e)))?;
        self.file = file;
        result.map_err(|(action, e)| self.err(action, e))?;
        self.written += len;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        if self.finished {
            return Err(self.err("finish", std::io::Error::other("writer already finished")));
        }
        self.finished = true;
        let (file, temp, final_path) =
            (self.file.take(), self.temp.clone(), self.final_path.clone());
        let durable = self.durable;
        let result = tokio::task::spawn_blocking(move || {
            let file = LocalWriter::open_if_needed(file, &temp, &final_path)?;
            finish_file(file, &temp, &final_path, durable)
        })
        .await
        .map_err(|e| self.err("finish", std::io::Error::other(e)))?;
        result.map_err(|(action, e)| self.err(action, e))?;
        Ok(self.written)
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if !self.finished && self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// S3

#[derive(Clone)]
pub struct S3Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    part_size: usize,
    /// One permit per part buffer that may exist (see the module doc).
    part_slots: Arc<tokio::sync::Semaphore>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Storage(s3://{}/{})", self.bucket, self.prefix)
    }
}

const MIN_PART: usize = 5 << 20;

impl S3Storage {
    pub async fn new(bucket: &str, prefix: &str, opts: &S3Options) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &opts.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            conf = conf.region(aws_config::Region::new("us-east-1"));
        }
        if let Some(ep) = &opts.endpoint {
            conf = conf.endpoint_url(ep.clone());
        }
        conf = conf.force_path_style(opts.force_path_style.unwrap_or(opts.endpoint.is_some()));
        let client = aws_sdk_s3::Client::from_conf(conf.build());
        let prefix = prefix.trim_matches('/');
        Self {
            client,
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            part_size: opts.part_size.unwrap_or(8 << 20).max(MIN_PART),
            part_slots: Arc::new(tokio::sync::Semaphore::new(
                opts.max_buffered_parts.unwrap_or(8).max(1),
            )),
            retry: opts.retry,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Waits for a free part buffer slot.
    async fn part_slot(&self, name: &str) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.part_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StorageError::S3 {
                location: self.describe(name),
                action: "write",
                message: e.to_string(),
                transient: false,
            })
    }

    /// Aborts a multipart upload (best effort: an upload left open stays invisible and is
    /// removed by `clean_incomplete`).
    async fn abort_upload(&self, key: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
    }

    fn err<E>(
        &self,
        name: &str,
        action: &'static str,
        e: aws_sdk_s3::error::SdkError<E>,
    ) -> StorageError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        use aws_sdk_s3::error::SdkError;
        // No answer (timeout, dispatch failure, unreadable response) has no status.
        let status = match &e {
            SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
            SdkError::ConstructionFailure(_) => Some(0),
            _ => None,
        };
        let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e).map(str::to_string);
        let (class, fix) = crate::failure::s3_class(status, code.as_deref());
        let transient = class == crate::failure::Class::Transient;
        let mut message = match (&code, aws_sdk_s3::error::ProvideErrorMetadata::message(&e)) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            _ => aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        };
        if let Some(fix) = fix {
            message.push_str(&format!(" ({fix}; bucket `{}`)", self.bucket));
        }
        StorageError::S3 {
            location: self.describe(name),
            action,
            message,
            transient,
        }
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn describe(&self, name: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(name))
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err(prefix, "list", e))?;
            for obj in page.contents() {
                let Some(key) = obj.key() else { continue };
                let Some(name) = key.strip_prefix(&self.prefix) else {
                    continue;
                };
                out.push(ObjectInfo {
                    name: name.to_string(),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn exists(&self, name: &str) -> Result<bool> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_not_found()) {
                    Ok(false)
                } else {
                    Err(self.err(name, "head", e))
                }
            }
        }
    }

    async fn read(&self, name: &str) -> Result<Bytes> {
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    StorageError::NotFound {
                        location: self.describe(name),
                    }
                } else {
                    self.err(name, "read", e)
                }
            })?;
        let data = resp.body.collect().await.map_err(|e| StorageError::S3 {
            location: self.describe(name),
            action: "read",
            message: e.to_string(),
            transient: true,
        })?;
        Ok(data.into_bytes())
    }

    async fn read_range(&self, name: &str, start: u64, len: u64) -> Result<Bytes> {
        let mut pieces = self.stream_range(name, start, len).await?;
        let mut out = BytesMut::with_capacity(len.min(64 << 20) as usize);
        while let Some(piece) = pieces.next_piece().await? {
            out.extend_from_slice(&piece);
        }
        Ok(out.freeze())
    }

    async fn stream_range(&self, name: &str, start: u64, len: u64) -> Result<Box<dyn RangeReader>> {
        if len == 0 {
            return Ok(Box::new(WholeRange(None)));
        }
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .range(format!("bytes={}-{}", start, start + len - 1))
            .send()
            .await
            .map_err(|e| self.err(name, "read", e))?;
        Ok(Box::new(S3RangeReader {
            location: self.describe(name),
            body: resp.body,
        }))
    }

    async fn create(&self, name: &str) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(S3Writer {
            storage: self.clone(),
            name: name.to_string(),
            buf: Vec::new(),
            slot: None,
            upload_id: None,
            parts: Vec::new(),
            in_flight: None,
            written: 0,
        }))
    }

    async fn delete(&self, name: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
            .map_err(|e| self.err(name, "delete", e))?;
        Ok(())
    }

    async fn clean_incomplete(&self) -> Result<usize> {
        let resp = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .send()
            .await
            .map_err(|e| self.err("", "list multipart uploads", e))?;
        let mut n = 0;
        for up in resp.uploads() {
            if let (Some(key), Some(id)) = (up.key(), up.upload_id()) {
                self.abort_upload(key, id).await;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The body of a ranged GET, read as the server sends it (hyper's buffers, tens of KiB).
struct S3RangeReader {
    location: String,
    body: ByteStream,
}

#[async_trait]
impl RangeReader for S3RangeReader {
    async fn next_piece(&mut self) -> Result<Option<Bytes>> {
        // A body cut off mid-way (connection reset, timeout) is worth a new ranged GET.
        self.body.try_next().await.map_err(|e| StorageError::S3 {
            location: self.location.clone(),
            action: "read",
            message: e.to_string(),
            transient: true,
        })
    }
}

type PartResult = std::result::Result<CompletedPart, StorageError>;

struct S3Writer {
    storage: S3Storage,
    name: String,
    /// The part being filled: at most `part_size` bytes, and never more capacity than that.
    buf: Vec<u8>,
    /// The part slot `buf` holds once it has bytes; it moves with the part to its upload.
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    in_flight: Option<JoinHandle<PartResult>>,
    written: u64,
}

impl S3Writer {
    async fn wait_in_flight(&mut self) -> Result<()> {
        if let Some(handle) = self.in_flight.take() {
            let part = handle.await.map_err(|e| StorageError::S3 {
                location: self.storage.describe(&self.name),
                action: "upload part",
                message: e.to_string(),
                transient: false,
            })??;
            self.parts.push(part);
        }
        Ok(())
    }

    async fn ship_part(&mut self) -> Result<()> {
        let s = &self.storage;
        if self.upload_id.is_none() {
            let resp = s
                .client
                .create_multipart_upload()
                .bucket(&s.bucket)
                .key(s.key(&self.name))
                .send()
                .await
                .map_err(|e| s.err(&self.name, "start multipart upload", e))?;
            self.upload_id = resp.upload_id().map(str::to_string);
        }
        // Bound memory: one part uploading while the next fills.
        self.wait_in_flight().await?;
        let body = Bytes::from(std::mem::take(&mut self.buf));
        let slot = self.slot.take();
        let part_number = self.parts.len() as i32 + 1;
        let storage = self.storage.clone();
        let name = self.name.clone();
        let upload_id = self.upload_id.clone().unwrap_or_default();
        self.in_flight = Some(tokio::spawn(async move {
            // The part's buffer slot is held until its upload ends.
            let _slot = slot;
            let what = format!(
                "uploading part {part_number} of {}",
                storage.describe(&name)
            );
            retry_with_backoff(
                &storage.retry,
                &what,
                || 0,
                |_| async {
                    let resp = storage
                        .client
                        .upload_part()
                        .bucket(&storage.bucket)
                        .key(storage.key(&name))
                        .upload_id(&upload_id)
                        .part_number(part_number)
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .map_err(|e| storage.err(&name, "upload part", e))?;
                    Ok(CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(resp.e_tag().map(str::to_string))
                        .build())
                },
            )
            .await
        }));
        Ok(())
    }

    async fn abort(&mut self) {
        if let Some(h) = self.in_flight.take() {
            h.abort();
        }
        if let Some(id) = self.upload_id.take() {
            let s = &self.storage;
            s.abort_upload(&s.key(&self.name), &id).await;
        }
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.written += data.len() as u64;
        let part_size = self.storage.part_size;
        let mut rest = &data[..];
        while !rest.is_empty() {
            if self.slot.is_none() {
                self.slot = Some(self.storage.part_slot(&self.name).await?);
            }
            let take = rest.len().min(part_size - self.buf.len());
            append_capped(&mut self.buf, &rest[..take], part_size);
            rest = &rest[take..];
            if self.buf.len() == part_size {
                if let Err(e) = self.ship_part().await {
                    self.abort().await;
                    return Err(e);
                }
                // A multipart object: the next part will most likely fill up too.
                self.buf.reserve_exact(part_size);
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        let s = self.storage.clone();
        if self.upload_id.is_none() {
            let body = Bytes::from(std::mem::take(&mut self.buf));
            s.client
                .put_object()
                .bucket(&s.bucket)
                .key(s.key(&self.name))
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s.err(&self.name, "put", e))?;
            return Ok(self.written);
        }
        let result: Result<()> = async {
            if !self.buf.is_empty() {
                self.ship_part().await?;
            }
            self.wait_in_flight().await?;
            s.client
                .complete_multipart_upload()
                .bucket(&s.bucket)
                .key(s.key(&self.name))
                .upload_id(self.upload_id.clone().unwrap_or_default())
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(std::mem::take(&mut self.parts)))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| s.err(&self.name, "complete multipart upload", e))?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                self.upload_id = None;
                Ok(self.written)
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }
}

/// Appends `data` to `buf`, growing its capacity by doubling but never past `limit` (plain
/// `Vec` growth would reach twice the part size).
fn append_capped(buf: &mut Vec<u8>, data: &[u8], limit: usize) {
    let need = buf.len() + data.len();
    if need > buf.capacity() {
        let grown = (buf.capacity() * 2).max(need).min(limit.max(need));
        buf.reserve_exact(grown - buf.len());
    }
    buf.extend_from_slice(data);
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // An unfinished upload is aborted in the background; if the process dies first,
        // `clean_incomplete` removes it on the next run. Nothing is visible either way.
        if let Some(h) = self.in_flight.take() {
            h.abort();
        }
        if let Some(id) = self.upload_id.take() {
            let s = self.storage.clone();
            let key = s.key(&self.name);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { s.abort_upload(&key, &id).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_files_appear_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let st = LocalStorage::new(dir.path());
        let mut w = st.create("a/b.sql").await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        assert!(!st.exists("a/b.sql").await.unwrap());
        assert!(st.list("").await.unwrap().is_empty());
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(w.finish().await.unwrap(), 11);
        assert_eq!(
            st.read("a/b.sql").await.unwrap(),
            Bytes::from_static(b"hello world")
        );
        assert_eq!(
            st.read_range("a/b.sql", 6, 5).await.unwrap(),
            Bytes::from_static(b"world")
        );
        let listed = st.list("a/").await.unwrap();
        assert_eq!(
            listed,
            vec![ObjectInfo {
                name: "a/b.sql".into(),
                size: 11
            }]
        );

        let mut dropped = st.create("c.sql").await.unwrap();
        dropped.write(Bytes::from_static(b"x")).await.unwrap();
        drop(dropped);
        assert!(!st.exists("c.sql").await.unwrap());
        assert!(matches!(
            st.read("c.sql").await,
            Err(StorageError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn local_puts_create_directories_even_after_a_delete_emptied_them() {
        let dir = tempfile::tempdir().unwrap();
        let st = LocalStorage::new(dir.path());
        st.put("d/one", Bytes::from_static(b"1")).await.unwrap();
        // Deleting the only object drops its directory; the next put must recreate it.
        st.delete("d/one").await.unwrap();
        assert!(!dir.path().join("d").exists());
        st.put("d/two", Bytes::from_static(b"2")).await.unwrap();
        let empty = st.create("d/e/empty").await.unwrap();
        assert_eq!(empty.finish().await.unwrap(), 0);
        let names: Vec<String> = st
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, ["d/e/empty", "d/two"]);
    }

    #[tokio::test]
    async fn local_put_many_deferred_writes_all_and_names_a_failing_object() {
        let dir = tempfile::tempdir().unwrap();
        let st = LocalStorage::new(dir.path());
        let batch = (0..5)
            .map(|i| (format!("s/{i}.sql"), Bytes::from(format!("text {i}"))))
            .collect();
        st.put_many_deferred(batch).await.unwrap();
        st.sync().await.unwrap();
        for i in 0..5 {
            assert_eq!(
                st.read(&format!("s/{i}.sql")).await.unwrap(),
                format!("text {i}")
            );
        }
        // A name that cannot be created (its parent is a file) fails the batch and is named.
        let bad = vec![("s/0.sql/x".to_string(), Bytes::from_static(b"x"))];
        let err = st.put_many_deferred(bad).await.unwrap_err().to_string();
        assert!(err.contains("s/0.sql/x"), "{err}");
        // Deferred objects are written in place: no temp file to clean up.
        assert_eq!(st.clean_incomplete().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn local_deferred_objects_are_written_in_place_and_sync_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let st = LocalStorage::new(dir.path());
        st.put_deferred("c/small", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let mut w = st.create_deferred("c/big").await.unwrap();
        w.write(Bytes::from_static(b"part one, ")).await.unwrap();
        // In place: seen while being written (its commit point comes later).
        assert_eq!(st.read("c/big").await.unwrap(), "part one, ");
        w.write(Bytes::from_static(b"part two")).await.unwrap();
        assert_eq!(w.finish().await.unwrap(), 18);
        st.sync().await.unwrap();
        assert_eq!(st.read("c/small").await.unwrap(), "abc");
        assert_eq!(st.read("c/big").await.unwrap(), "part one, part two");
        // A deferred writer dropped unfinished removes what it wrote.
        let mut dropped = st.create_deferred("c/dropped").await.unwrap();
        dropped.write(Bytes::from_static(b"x")).await.unwrap();
        drop(dropped);
        assert!(!st.exists("c/dropped").await.unwrap());
        // A root that is gone cannot be synced, and the error says so.
        let gone = LocalStorage::new(dir.path().join("missing"));
        let err = gone.sync().await.unwrap_err().to_string();
        assert!(err.contains("missing") && err.contains("sync"), "{err}");
    }

    #[tokio::test]
    async fn bad_urls_are_rejected() {
        assert!(open("s3:///x", &S3Options::default()).await.is_err());
        assert!(open("gs://b/x", &S3Options::default()).await.is_err());
    }
}
