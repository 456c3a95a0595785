//! The size quota of a user's sandbox. wasmtime-wasi has no hook on filesystem writes, so the
//! four `wasi:filesystem` functions that add bytes (`write`, `write-via-stream`,
//! `append-via-stream`, `set-size`) are shadowed in the linker by versions that first charge
//! the call's [`Quota`]; past it a write fails with `insufficient-space` (ENOSPC), which the
//! guest sees as "No space left on device". Everything else stays wasmtime-wasi's own.
//!
//! All calls of one user running at the same time in this process charge one account
//! ([`Accounts`]), measured on disk when the first of them starts; so concurrent calls cannot
//! each spend the whole quota. The account is conservative: every byte written is charged, even
//! one that overwrites existing data or follows a truncation, and so is the hole a write past
//! the end of a file leaves (a sparse file is charged its apparent size). Deleting a file
//! (`unlink-file-at`) gives back its apparent size, which is therefore never more than was
//! charged for it. Separate processes (replicas) keep separate accounts: each measures the
//! disk when a user's first call starts, and refuses every write once it is over the quota.
//!
//! The account also counts entries (files, directories, symlinks, hard links), which cost the
//! disk inodes and blocks whatever their apparent size: creating one past `max_files` fails
//! with `quota` (EDQUOT), deleting one gives it back. The creating functions are shadowed here
//! (`symlink-at`, `link-at`) and beside the other limits they carry ([`new_entry`] is called by
//! `open-at` in `descriptors` and `create-directory-at` in `nesting`).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use wasmtime::component::{LinkerInstance, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{ErrorCode, HostDescriptor, PathFlags};
use wasmtime_wasi::p2::{
    DynOutputStream, FsError, OutputStream, Pollable, StreamError, StreamResult,
};
use wasmtime_wasi::WasiView;

use super::bindings::molten::skill::sandbox::{self, Sizes};
use super::call::CallState;
use super::host_log::Imports;

/// Default quota of a sandbox: 100 MiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 100 << 20;
/// Default most entries (files, directories, symlinks) of a sandbox. Each costs the disk an
/// inode, and a directory a block, whatever its apparent size: 20,000 bound that to about
/// 80 MiB beside the byte quota.
pub const DEFAULT_MAX_FILES: u64 = 20_000;
/// Linux's ENOSPC, which wasmtime-wasi maps to `insufficient-space`.
const ENOSPC: i32 = 28;

/// The accounts of the sandboxes with calls running in this process, by directory.
#[derive(Default)]
pub(crate) struct Accounts {
    open: Mutex<HashMap<PathBuf, Weak<Quota>>>,
}

impl Accounts {
    /// The account of the sandbox `dir`: the one its running calls charge, else a new one
    /// measured now against `limit`. It lives as long as a call holds it.
    pub(crate) fn open(&self, dir: &Path, limit: u64, max_files: u64) -> io::Result<Arc<Quota>> {
        if let Some(live) = self.live(dir) {
            return Ok(live);
        }
        // Measured outside the lock, so a large sandbox does not hold up other users' calls.
        let measured = Quota::measure(dir, limit, max_files)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(live) = open.get(dir).and_then(Weak::upgrade) {
            return Ok(live);
        }
        open.retain(|_, account| account.strong_count() > 0);
        open.insert(dir.to_owned(), Arc::downgrade(&measured));
        Ok(measured)
    }

    fn live(&self, dir: &Path) -> Option<Arc<Quota>> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(dir).and_then(Weak::upgrade)
    }
}

/// The bytes the calls of one user may still add to their sandbox.
#[derive(Debug)]
pub(crate) struct Quota {
    root: PathBuf,
    max_files: u64,
    files: AtomicU64,
    limit: u64,
    used: AtomicU64,
}

impl Quota {
    /// Measures `dir` (apparent sizes of every file under it) against `limit`.
    pub(crate) fn measure(dir: &Path, limit: u64, max_files: u64) -> io::Result<Arc<Self>> {
        let found = walk(rustix::fs::openat(
            rustix::fs::CWD,
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)?;
        Ok(Arc::new(Self {
            root: std::fs::canonicalize(dir)?,
            max_files,
            files: AtomicU64::new(found.entries),
            limit,
            used: AtomicU64::new(found.bytes),
        }))
    }

    /// Counts one more entry (file, directory, symlink, hard link), or refuses past the limit.
    pub(crate) fn add_entry(&self) -> bool {
        self.files
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |files| {
                (files < self.max_files).then_some(files + 1)
            })
            .is_ok()
    }

    /// Counts one entry less.
    pub(crate) fn remove_entry(&self) {
        let _ = self
            .files
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |files| {
                Some(files.saturating_sub(1))
            });
    }

    /// The sandbox's directory on the host, as the kernel names it (symlinks resolved).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Charges `bytes`, or refuses when they would not fit.
    fn charge(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` a deletion freed.
    fn credit(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            quota: self.limit,
            used: self.used.load(Ordering::Relaxed),
        }
    }
}

/// What [`walk`] found under a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TreeSize {
    /// Apparent size of every file and symlink.
    pub(crate) bytes: u64,
    /// Entries below the top: files, directories, symlinks.
    pub(crate) entries: u64,
    /// Levels of directories below the top one (0 when it has no subdirectory).
    pub(crate) height: usize,
}

/// Measures the tree under the directory `top`, going from descriptor to descriptor (`openat`
/// of each subdirectory without following symlinks, `..` back up), holding two at a time and
/// never building a path: a skill can nest directories deeper than any path may be long, and
/// its owner's next call must still be able to measure (and so clean) the sandbox. The to-do
/// list lives on the heap, so no depth can overflow the host's stack.
pub(crate) fn walk(top: OwnedFd) -> io::Result<TreeSize> {
    let open_dir = |at: &OwnedFd, name: &CStr| {
        rustix::fs::openat(
            at,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let mut current = top;
    let mut found = TreeSize {
        bytes: 0,
        entries: 0,
        height: 0,
    };
    // Per level of the walk, the subdirectories still to visit.
    let mut pending: Vec<Vec<CString>> = Vec::new();
    loop {
        let mut subdirs = Vec::new();
        for entry in rustix::fs::Dir::read_from(&current)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            // Gone since it was listed (another call of the user deleted it): not counted.
            let stat = match rustix::fs::statat(&current, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            found.entries += 1;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                subdirs.push(name.to_owned());
            } else {
                found.bytes += u64::try_from(stat.st_size).unwrap_or(0);
            }
        }
        pending.push(subdirs);
        found.height = found.height.max(pending.len() - 1);
        // Down into the next unvisited subdirectory, or up until there is one.
        loop {
            let Some(level) = pending.last_mut() else {
                return Ok(found);
            };
            if let Some(name) = level.pop() {
                current = open_dir(&current, &name)?;
                break;
            }
            pending.pop();
            if pending.is_empty() {
                return Ok(found);
            }
            current = open_dir(&current, c"..")?;
        }
    }
}

fn disk_full() -> io::Error {
    io::Error::from_raw_os_error(ENOSPC)
}

impl sandbox::Host for Imports {
    fn usage(&mut self) -> Sizes {
        self.quota
            .as_ref()
            .map_or(Sizes { quota: 0, used: 0 }, |q| q.sizes())
    }
}

/// An output stream to a sandbox file that charges the quota before each write.
struct QuotaStream {
    inner: DynOutputStream,
    quota: Arc<Quota>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for QuotaStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for QuotaStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.quota.charge(bytes.len() as u64) {
            return Err(StreamError::LastOperationFailed(disk_full().into()));
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

fn error_code(e: FsError) -> wasmtime::Result<ErrorCode> {
    e.downcast()
}

/// The apparent size of the file `fd`; the error as the guest gets it (or a trap).
async fn current_size(
    state: &mut CallState,
    fd: &Resource<Descriptor>,
) -> Result<u64, wasmtime::Result<ErrorCode>> {
    state
        .filesystem()
        .stat(Resource::new_borrow(fd.rep()))
        .await
        .map(|stat| stat.size)
        .map_err(error_code)
}

/// Charges the call's quota, if it has one, for writing `len` bytes at `offset` of the file
/// `fd`: the bytes, and the hole a write past the end leaves (a sparse file is charged its
/// size). The error as the guest gets it (or a trap).
async fn charge_write(
    state: &mut CallState,
    fd: &Resource<Descriptor>,
    offset: u64,
    len: u64,
) -> Result<(), wasmtime::Result<ErrorCode>> {
    let Some(quota) = state.imports.quota.clone() else {
        return Ok(());
    };
    let size = current_size(state, fd).await?;
    if quota.charge(len + offset.saturating_sub(size)) {
        Ok(())
    } else {
        Err(Ok(ErrorCode::InsufficientSpace))
    }
}

/// Puts the stream wasmtime-wasi opened behind a [`QuotaStream`] when the call has a quota.
fn wrap_stream(
    state: &mut CallState,
    opened: Result<Resource<DynOutputStream>, FsError>,
) -> wasmtime::Result<(Result<Resource<DynOutputStream>, ErrorCode>,)> {
    let stream = match opened {
        Ok(stream) => stream,
        Err(e) => return Ok((Err(error_code(e)?),)),
    };
    let Some(quota) = state.imports.quota.clone() else {
        return Ok((Ok(stream),));
    };
    let table = state.ctx().table;
    let inner = table.delete(stream)?;
    let wrapped: DynOutputStream = Box::new(QuotaStream { inner, quota });
    Ok((Ok(table.push(wrapped)?),))
}

/// Shadows the functions that add bytes (quota-charging versions), that delete a file (giving
/// its bytes and entry back), and that create or remove other entries (counting them).
pub(crate) fn shadow(types: &mut LinkerInstance<'_, CallState>) -> wasmtime::Result<()> {
    types.func_wrap_async(
        "[method]descriptor.write-via-stream",
        |mut store: StoreContextMut<'_, CallState>, (fd, offset): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                if let Err(e) = charge_write(state, &fd, offset, 0).await {
                    return Ok((Err(e?),));
                }
                let opened = state.filesystem().write_via_stream(fd, offset);
                wrap_stream(state, opened)
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store: StoreContextMut<'_, CallState>, (fd,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            let opened = state.filesystem().append_via_stream(fd);
            wrap_stream(state, opened)
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, CallState>,
         (fd, buffer, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                if let Err(e) = charge_write(state, &fd, offset, buffer.len() as u64).await {
                    return Ok((Err(e?),));
                }
                match state.filesystem().write(fd, buffer, offset).await {
                    Ok(n) => Ok((Ok(n),)),
                    Err(e) => Ok((Err(error_code(e)?),)),
                }
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, CallState>, (fd, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state = store.data_mut();
                if let Some(quota) = state.imports.quota.clone() {
                    let current = match current_size(state, &fd).await {
                        Ok(size) => size,
                        Err(e) => return Ok((Err(e?),)),
                    };
                    if size > current && !quota.charge(size - current) {
                        return Ok((Err(ErrorCode::InsufficientSpace),));
                    }
                }
                match state.filesystem().set_size(fd, size).await {
                    Ok(()) => Ok((Ok(()),)),
                    Err(e) => Ok((Err(error_code(e)?),)),
                }
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.unlink-file-at",
        |mut store: StoreContextMut<'_, CallState>, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let dir = Resource::new_borrow(fd.rep());
                let freed = match state
                    .filesystem()
                    .stat_at(dir, PathFlags::empty(), path.clone())
                    .await
                {
                    // A file with other hard links keeps its blocks.
                    Ok(stat) if stat.link_count <= 1 => stat.size,
                    _ => 0,
                };
                match state.filesystem().unlink_file_at(fd, path).await {
                    Ok(()) => {
                        if let Some(quota) = &state.imports.quota {
                            quota.credit(freed);
                            quota.remove_entry();
                        }
                        Ok((Ok(()),))
                    }
                    Err(e) => Ok((Err(error_code(e)?),)),
                }
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, CallState>,
         (fd, old_path, new_path): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let created = new_entry(state, async |fs| {
                    fs.symlink_at(fd, old_path, new_path).await
                })
                .await;
                Ok((created?,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, CallState>,
         (fd, flags, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                let created = new_entry(state, async |fs| {
                    fs.link_at(fd, flags, old_path, new_fd, new_path).await
                })
                .await;
                Ok((created?,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.remove-directory-at",
        |mut store: StoreContextMut<'_, CallState>, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let state = store.data_mut();
                match state.filesystem().remove_directory_at(fd, path).await {
                    Ok(()) => {
                        if let Some(quota) = &state.imports.quota {
                            quota.remove_entry();
                        }
                        Ok((Ok(()),))
                    }
                    Err(e) => Ok((Err(error_code(e)?),)),
                }
            })
        },
    )?;
    Ok(())
}

/// Runs `create`, which makes one entry in the sandbox, if the sandbox's entry count allows;
/// the count is given back when `create` fails. Past the count the guest sees `quota`
/// (EDQUOT, "Disk quota exceeded").
pub(crate) async fn new_entry<T>(
    state: &mut CallState,
    create: impl AsyncFnOnce(
        &mut wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
    ) -> Result<T, FsError>,
) -> wasmtime::Result<Result<T, ErrorCode>> {
    let quota = state.imports.quota.clone();
    if quota.as_ref().is_some_and(|q| !q.add_entry()) {
        return Ok(Err(ErrorCode::Quota));
    }
    match create(&mut state.filesystem()).await {
        Ok(done) => Ok(Ok(done)),
        Err(e) => {
            if let Some(quota) = quota {
                quota.remove_entry();
            }
            Ok(Err(error_code(e)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_until_the_limit_and_no_further() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![0; 600]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0; 300]).unwrap();
        let quota = Quota::measure(dir.path(), 1000, 4).unwrap();
        assert_eq!(quota.sizes().used, 900);
        assert!(quota.charge(100));
        assert!(!quota.charge(1), "past the limit");
        assert_eq!(quota.sizes().used, 1000);
        // a, sub and sub/b of at most 4 entries: room for one more.
        assert!(quota.add_entry());
        assert!(!quota.add_entry(), "past the entry limit");
        quota.remove_entry();
        assert!(quota.add_entry());
    }
}
