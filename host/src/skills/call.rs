//! One skill call: a fresh store holding only the granted capabilities, the limits, and the
//! mapping of whatever happened into an [`InvokeError`].

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::molten::skill::types::{self as wit, SkillError};
use super::bindings::{Skill as SkillWorld, SkillPre};
use super::error::InvokeError;
use super::host_log::{Imports, LogSink};
use super::http::{HttpHooks, HttpPolicy};
use super::manifest::{Filesystem, Manifest};
use super::quota::Quota;
use super::runtime::MemoryBudget;
use super::runtime::Runtime;

/// How much of the skill's stderr is kept to explain a crash (a panic message, say).
const STDERR_CAPTURE_BYTES: usize = 8 * 1024;
/// Most table elements a skill may have; tables hold function references, so this is generous.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Who a call is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// The user on whose behalf the skill runs; selects the sandbox directory.
    pub user_id: String,
    /// The conversation the call belongs to.
    pub session_id: String,
}

impl CallContext {
    /// A context for `user_id` in `session_id`.
    pub fn new(user_id: impl Into<String>, session_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            session_id: session_id.into(),
        }
    }
}

/// What the operator granted a skill beyond its manifest's filesystem: HTTP and settings.
#[derive(Default, Clone)]
pub(crate) struct Granted {
    pub(crate) http: Option<Arc<HttpPolicy>>,
    pub(crate) settings: Arc<BTreeMap<String, String>>,
}

/// The data of one call's store: everything the skill can reach lives here.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    http_hooks: HttpHooks,
    memory: MemoryCap,
    pub(crate) imports: Imports,
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps the total linear memory of a call, reserves it from the budget of all running calls,
/// and remembers which cap was hit, so that the trap that follows a failed allocation can be
/// reported as what it is.
struct MemoryCap {
    limit: usize,
    used: usize,
    budget: Arc<MemoryBudget>,
    hit: Option<MemoryHit>,
}

/// Which memory cap refused a growth.
#[derive(Debug, Clone, Copy)]
enum MemoryHit {
    /// The skill's own `limits.memory_mb`.
    Own,
    /// The budget of all running skills together.
    Total,
}

impl Drop for MemoryCap {
    fn drop(&mut self) {
        self.budget.release(self.used as u64);
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Summing growths covers every memory of the component, initial sizes included.
        let growth = desired.saturating_sub(current);
        let total = self.used.saturating_add(growth);
        if total > self.limit {
            self.hit = Some(MemoryHit::Own);
            return Ok(false);
        }
        if !self.budget.reserve(growth as u64) {
            self.hit = Some(MemoryHit::Total);
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Builds the WASI context from the manifest: deny by default, grant only what it asks for.
/// Also opens the sandbox's quota account, when there is one.
fn wasi_context(
    runtime: &Runtime,
    manifest: &Manifest,
    user: Option<&str>,
    stderr: MemoryOutputPipe,
) -> Result<(WasiCtx, Option<Arc<Quota>>), InvokeError> {
    // No env, no args, closed stdin, stdout discarded, no preopens, no sockets, no DNS.
    let mut builder = WasiCtxBuilder::new();
    builder.stderr(stderr).allow_tcp(false).allow_udp(false);
    let sandboxed_user = user.filter(|_| manifest.capabilities.filesystem == Filesystem::Sandbox);
    let mut quota = None;
    if let Some(user) = sandboxed_user {
        let sandbox_error = |e: &dyn std::fmt::Display| InvokeError::Sandbox {
            user: user.to_owned(),
            reason: e.to_string(),
        };
        let dir = runtime
            .sandboxes()
            .dir_for(user)
            .map_err(|e| sandbox_error(&e))?;
        quota = Some(
            runtime
                .accounts()
                .open(&dir, runtime.sandbox_quota(), runtime.sandbox_max_files())
                .map_err(|e| sandbox_error(&e))?,
        );
        builder
            .preopened_dir(&dir, "/tmp", FsPerms::ReadWrite)
            .map_err(|e| sandbox_error(&e))?;
    }
    Ok((builder.build(), quota))
}

/// Runs `f` on a fresh instance of the skill prepared in `pre`, under `manifest`'s limits.
/// `user` selects the sandbox; `None` runs the skill with no filesystem whatever it asks for.
/// `http` is the skill's HTTP policy; without one every request is refused.
async fn run<R>(
    runtime: &Runtime,
    pre: &SkillPre<CallState>,
    manifest: &Manifest,
    user: Option<&str>,
    granted: &Granted,
    f: impl AsyncFnOnce(&SkillWorld, &mut Store<CallState>) -> wasmtime::Result<R>,
) -> Result<R, InvokeError> {
    let limits = manifest.limits;
    let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
    let (wasi, quota) = wasi_context(runtime, manifest, user, stderr.clone())?;
    let _permit = runtime.call_permit().await;
    let mut store = runtime.new_store(
        CallState {
            wasi,
            table: super::descriptors::table(),
            http: WasiHttpCtx::new(),
            http_hooks: HttpHooks {
                policy: granted.http.clone(),
                user: user.unwrap_or("-").to_owned(),
            },
            memory: MemoryCap {
                limit: limits.memory_bytes,
                used: 0,
                budget: runtime.memory().clone(),
                hit: None,
            },
            imports: Imports {
                log: LogSink::new(&manifest.name),
                settings: granted.settings.clone(),
                quota,
            },
        },
        limits.fuel,
        limits.timeout,
    );
    store.limiter(|state| &mut state.memory);

    // The epoch deadline stops running wasm; this timeout also covers a skill blocked inside a
    // host call (a sleep, a slow file), which epochs cannot interrupt.
    let call = async {
        let skill = pre.instantiate_async(&mut store).await?;
        f(&skill, &mut store).await
    };
    let outcome = tokio::time::timeout(limits.timeout, call).await;
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    runtime
        .fuel_used()
        .get_or_create(&crate::metrics::SkillName {
            skill: manifest.name.clone(),
        })
        .inc_by(fuel_used);
    tracing::debug!(skill = %manifest.name, fuel_used, "skill call finished");
    let dropped = store.data().imports.log.dropped();
    if dropped > 0 {
        tracing::warn!(skill = %manifest.name, dropped, "skill exceeded its log message cap");
    }
    match outcome {
        Err(_elapsed) => Err(InvokeError::Timeout {
            skill: manifest.name.clone(),
            timeout: limits.timeout,
        }),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(trap)) => Err(classify_trap(&trap, &store, manifest, &stderr)),
    }
}

/// Calls the skill's `describe`, with no filesystem.
pub(crate) async fn describe(
    runtime: &Runtime,
    pre: &SkillPre<CallState>,
    manifest: &Manifest,
    granted: &Granted,
) -> Result<wit::Descriptor, InvokeError> {
    run(
        runtime,
        pre,
        manifest,
        None,
        granted,
        async |skill, store| skill.call_describe(store).await,
    )
    .await
}

/// Calls the skill's `invoke` for `context`, capping what it returns.
pub(crate) async fn invoke(
    runtime: &Runtime,
    pre: &SkillPre<CallState>,
    manifest: &Manifest,
    granted: &Granted,
    arguments: &str,
    context: &CallContext,
) -> Result<String, InvokeError> {
    let wit_context = wit::CallContext {
        user_id: context.user_id.clone(),
        session_id: context.session_id.clone(),
    };
    let result = run(
        runtime,
        pre,
        manifest,
        Some(&context.user_id),
        granted,
        async |skill, store| skill.call_invoke(store, arguments, &wit_context).await,
    )
    .await?;
    let cap = manifest.limits.output_bytes;
    match result {
        Ok(output) => Ok(cap_output(output, cap)),
        Err(SkillError::InvalidInput(m)) => Err(InvokeError::InvalidInput(cap_output(m, cap))),
        Err(SkillError::Denied(m)) => Err(InvokeError::Denied(cap_output(m, cap))),
        Err(SkillError::Failed(m)) => Err(InvokeError::Failed(cap_output(m, cap))),
    }
}

/// Names the reason a call trapped.
fn classify_trap(
    error: &wasmtime::Error,
    store: &Store<CallState>,
    manifest: &Manifest,
    stderr: &MemoryOutputPipe,
) -> InvokeError {
    let skill = manifest.name.clone();
    // A refused memory.grow surfaces as an allocation-failure abort; report the cause.
    match store.data().memory.hit {
        Some(MemoryHit::Own) => {
            return InvokeError::MemoryLimit {
                skill,
                limit_bytes: manifest.limits.memory_bytes,
            }
        }
        Some(MemoryHit::Total) => {
            return InvokeError::HostMemory {
                skill,
                limit_bytes: store.data().memory.budget.limit(),
            }
        }
        None => {}
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => InvokeError::OutOfFuel {
            skill,
            fuel: manifest.limits.fuel,
        },
        Some(Trap::Interrupt) => InvokeError::Timeout {
            skill,
            timeout: manifest.limits.timeout,
        },
        trap => {
            let mut detail = match trap {
                Some(Trap::StackOverflow) => "stack overflow (recursion too deep)".to_owned(),
                // Rust and C guests keep their stack in linear memory below the data; running
                // off its end reads out of bounds, so that is the usual cause.
                Some(Trap::MemoryOutOfBounds) => format!(
                    "{} (often the skill's stack overflowing from recursion too deep)",
                    Trap::MemoryOutOfBounds
                ),
                Some(trap) => trap.to_string(),
                None => format!("{error:#}"),
            };
            let written = stderr.contents();
            let written = String::from_utf8_lossy(&written);
            let written = written.trim();
            if !written.is_empty() {
                detail.push_str("; stderr: ");
                detail.push_str(written);
            }
            InvokeError::Crashed { skill, detail }
        }
    }
}

/// Cuts `text` to at most `cap` bytes (on a character boundary) and says how much was cut.
pub(crate) fn cap_output(mut text: String, cap: usize) -> String {
    if text.len() <= cap {
        return text;
    }
    let total = text.len();
    let cut = text.floor_char_boundary(cap);
    text.truncate(cut);
    text.push_str(&format!(
        "\n[output truncated: {cut} of {total} bytes shown]"
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_untouched() {
        assert_eq!(cap_output("hello".into(), 5), "hello");
    }

    #[test]
    fn long_output_is_cut_with_a_marker() {
        let out = cap_output("x".repeat(100), 10);
        assert_eq!(
            out,
            format!(
                "{}\n[output truncated: 10 of 100 bytes shown]",
                "x".repeat(10)
            )
        );
    }

    #[test]
    fn cut_respects_character_boundaries() {
        let out = cap_output("é".repeat(10), 5);
        assert!(
            out.starts_with("éé\n[output truncated: 4 of 20 bytes shown]"),
            "{out}"
        );
    }
}
