//! How deep a sandbox may nest. Without a limit a skill could nest directories deeper than any
//! path may be long, and its owner could never remove them: `rm -r` holds a descriptor per
//! level, past the call's share (see [`super::descriptors`]). So no directory may lie more than
//! [`MAX_DEPTH`] levels below `/tmp`, however it gets there: `create-directory-at` and
//! `rename-at` are shadowed in the linker, and after either succeeds the result is measured
//! where it really is (symlinks may make the path say otherwise) and undone if it is too deep.
//! The guest sees `name-too-long`.

use std::os::fd::AsRawFd;
use std::path::Path;

use wasmtime::component::{LinkerInstance, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::WasiView;

use super::call::CallState;
use super::quota::{new_entry, walk};

/// Most levels of directories below a sandbox's top (`/tmp/a` is level 1).
pub const MAX_DEPTH: usize = 64;

/// How far the directory at `fd`/`path` and the directories inside it reach below the sandbox's
/// top, or `None` when that cannot be told (which counts as too deep). Opens it through
/// wasmtime-wasi, so the sandbox's own path rules apply.
async fn reach(state: &mut CallState, fd: &Resource<Descriptor>, path: &str) -> Option<usize> {
    let root = state.imports.quota.as_ref()?.root().to_owned();
    let opened = state
        .filesystem()
        .open_at(
            Resource::new_borrow(fd.rep()),
            PathFlags::SYMLINK_FOLLOW,
            path.to_owned(),
            OpenFlags::DIRECTORY,
            DescriptorFlags::READ,
        )
        .await
        .ok()?;
    let table = state.ctx().table;
    let measured = match table.get(&opened) {
        Ok(Descriptor::Dir(dir)) => depth_below(&root, &dir.dir).and_then(|depth| {
            let copy = dir.dir.try_clone().ok()?;
            Some(depth + walk(copy.into()).ok()?.height)
        }),
        _ => None,
    };
    let _ = table.delete(opened);
    measured
}

/// Levels from `root` down to the open directory `dir`.
fn depth_below(root: &Path, dir: &std::fs::File) -> Option<usize> {
    let path = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()?;
    Some(path.strip_prefix(root).ok()?.components().count())
}

fn too_deep(reach: Option<usize>) -> bool {
    reach.is_none_or(|levels| levels > MAX_DEPTH)
}

/// Shadows `create-directory-at` and `rename-at` with versions that undo what nests too deep.
pub(crate) fn shadow(types: &mut LinkerInstance<'_, CallState>) -> wasmtime::Result<()> {
    types.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, CallState>, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let state = store.data_mut();
                let dir = Resource::new_borrow(fd.rep());
                let created = new_entry(state, async |fs| {
                    fs.create_directory_at(fd, path.clone()).await
                })
                .await?;
                if let Err(e) = created {
                    return Ok((Err(e),));
                }
                if let Some(quota) = state.imports.quota.clone() {
                    if too_deep(reach(state, &dir, &path).await) {
                        if state
                            .filesystem()
                            .remove_directory_at(dir, path)
                            .await
                            .is_ok()
                        {
                            quota.remove_entry();
                        }
                        return Ok((Err(ErrorCode::NameTooLong),));
                    }
                }
                Ok((Ok(()),))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.rename-at",
        |mut store: StoreContextMut<'_, CallState>,
         (fd, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            String,
            Resource<Descriptor>,
            String,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                let (old_dir, new_dir) = (
                    Resource::new_borrow(fd.rep()),
                    Resource::new_borrow(new_fd.rep()),
                );
                if let Err(e) = state
                    .filesystem()
                    .rename_at(fd, old_path.clone(), new_fd, new_path.clone())
                    .await
                {
                    return Ok((Err(e.downcast()?),));
                }
                // Only a directory can carry depth along; a file moved anywhere is fine.
                let moved_dir = state
                    .filesystem()
                    .stat_at(
                        Resource::new_borrow(new_dir.rep()),
                        PathFlags::empty(),
                        new_path.clone(),
                    )
                    .await
                    .is_ok_and(|stat| {
                        stat.type_
                            == wasmtime_wasi::p2::bindings::filesystem::types::DescriptorType::Directory
                    });
                if state.imports.quota.is_some()
                    && moved_dir
                    && too_deep(reach(state, &new_dir, &new_path).await)
                {
                    let _ = state
                        .filesystem()
                        .rename_at(new_dir, new_path, old_dir, old_path)
                        .await;
                    return Ok((Err(ErrorCode::NameTooLong),));
                }
                Ok((Ok(()),))
            })
        },
    )?;
    Ok(())
}
