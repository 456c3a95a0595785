//! A call's share of descriptors. Every file, directory, stream and pollable a skill holds is an
//! entry in its call's resource table, backed on the host by an open descriptor or memory; one
//! call once opened the same file 20,000 times and held the whole process's descriptor limit,
//! stalling every other user's webhook. So the table holds at most [`MAX_RESOURCES`] entries,
//! and `open-at` (shadowed in the linker, like the quota's writes) fails once the call holds
//! [`MAX_OPEN`], leaving room for the streams of what is open. WASI has no "too many open files"
//! code: the guest sees `insufficient-memory` (ENOMEM).

use wasmtime::component::{LinkerInstance, Resource, ResourceTable};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::WasiView;

use super::call::CallState;
use super::quota::new_entry;

/// Resources one call may hold at once; past it, creating one traps the call.
pub const MAX_RESOURCES: usize = 1024;
/// Resources past which a call's `open-at` fails: about 96 open files, as the call's own
/// standard streams and preopen hold a few. (A guest on wasi-libc cannot hold more than about
/// 124 anyway; the cap is for guests that call WASI directly.)
pub const MAX_OPEN: usize = 100;

/// A call's resource table, capped.
pub(crate) fn table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    table
}

/// Whether `table` holds fewer than [`MAX_OPEN`] entries. The table cannot count its entries,
/// so this tries to add one under a lowered cap.
fn room_to_open(table: &mut ResourceTable) -> bool {
    let cap = table.max_capacity();
    table.set_max_capacity(MAX_OPEN);
    let probe = table.push(());
    table.set_max_capacity(cap);
    match probe {
        Ok(placeholder) => table.delete(placeholder).is_ok(),
        Err(_) => false,
    }
}

/// Shadows `open-at` with a version that refuses past [`MAX_OPEN`].
pub(crate) fn shadow(types: &mut LinkerInstance<'_, CallState>) -> wasmtime::Result<()> {
    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, CallState>,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                if !room_to_open(state.ctx().table) {
                    tracing::warn!("a skill holds {MAX_OPEN} open resources; its open was refused");
                    return Ok((Err(ErrorCode::InsufficientMemory),));
                }
                // An open that creates a file makes an entry, which the sandbox counts.
                let creates = open_flags.contains(OpenFlags::CREATE)
                    && state.imports.quota.is_some()
                    && state
                        .filesystem()
                        .stat_at(Resource::new_borrow(fd.rep()), path_flags, path.clone())
                        .await
                        .is_err();
                if creates {
                    let opened = new_entry(state, async |fs| {
                        fs.open_at(fd, path_flags, path, open_flags, flags).await
                    })
                    .await?;
                    return Ok((opened,));
                }
                match state
                    .filesystem()
                    .open_at(fd, path_flags, path, open_flags, flags)
                    .await
                {
                    Ok(opened) => Ok((Ok(opened),)),
                    Err(e) => Ok((Err(e.downcast()?),)),
                }
            })
        },
    )?;
    Ok(())
}
