//! The one wasmtime engine every skill runs on, its linker, the epoch ticker that enforces
//! deadlines, and the on-disk cache of compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use super::bindings::{Skill as SkillWorld, SkillPre};
use super::call::CallState;
use super::error::{EngineError, LoadError};
use super::host_log::HasImports;
use super::manifest::MAX_MEMORY_MB;
use super::sandbox::Sandboxes;
use crate::metrics::SkillName;

/// Period of the epoch ticker: the granularity of wall-clock deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Skill calls running at once; further calls wait for a slot. Sizes the pooling allocator.
pub const MAX_CONCURRENT_CALLS: u32 = 32;
/// Fuel a skill burns between yields to the async executor (a few milliseconds of compute).
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;
/// The `wasi:filesystem/types` version wasmtime-wasi 48 links: the functions the host shadows
/// must name it.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
/// Replaces wasmtime-wasi's own versions of the `wasi:filesystem` functions through which a
/// skill consumes a share of the host: bytes and entries (`quota`), descriptors
/// (`descriptors`), nesting (`nesting`). Each delegates to wasmtime-wasi after its checks.
fn shadow_filesystem(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    super::quota::shadow(&mut types)?;
    super::descriptors::shadow(&mut types)?;
    super::nesting::shadow(&mut types)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Wasm stack a call may use before a stack-overflow trap.
const MAX_WASM_STACK: usize = 1 << 20;

/// Where the runtime keeps its state.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Directory of the per-user sandboxes.
    pub sandbox_root: PathBuf,
    /// Directory of compiled components, or `None` to compile on every load.
    pub cache_dir: Option<PathBuf>,
    /// Most bytes one user's sandbox may hold.
    pub sandbox_quota: u64,
    /// Most entries (files, directories, symlinks) one user's sandbox may hold.
    pub sandbox_max_files: u64,
    /// Most bytes of linear memory all running skills may hold together.
    pub max_total_memory: u64,
}

impl RuntimeConfig {
    /// Sandboxes in `<data_dir>/sandboxes`, the compile cache in `<data_dir>/cache/components`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            sandbox_root: data_dir.join("sandboxes"),
            cache_dir: Some(data_dir.join("cache").join("components")),
            sandbox_quota: super::quota::DEFAULT_QUOTA_BYTES,
            sandbox_max_files: super::quota::DEFAULT_MAX_FILES,
            max_total_memory: default_total_memory(),
        }
    }
}

/// Half the machine's memory (from `/proc/meminfo`; 4 GiB where that cannot be read): the
/// default budget of all running skills' memory.
pub fn default_total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(4 << 30, |kib| (kib << 10) / 2)
}

/// The linear memory all running skills hold, against a budget: each call reserves what it
/// grows and gives it back when it ends, so the host never holds more than the budget however
/// many memory-hungry calls run at once.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    peak: AtomicU64,
}

impl MemoryBudget {
    fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// Reserves `bytes`, or refuses when the budget would be exceeded.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        match self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            }) {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::AcqRel);
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back `bytes` a call reserved.
    pub(crate) fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The most ever reserved at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }
}

/// The engine and what every call shares. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    linker: Linker<CallState>,
    sandboxes: Sandboxes,
    sandbox_quota: u64,
    sandbox_max_files: u64,
    accounts: super::quota::Accounts,
    memory: Arc<MemoryBudget>,
    cache_dir: Option<PathBuf>,
    permits: Semaphore,
    fuel_used: Family<SkillName, Counter>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine: component model, fuel, epoch deadlines and a pooling
    /// allocator sized for `MAX_CONCURRENT_CALLS` skills of up to `MAX_MEMORY_MB` MiB each.
    pub fn new(config: RuntimeConfig) -> Result<Self, EngineError> {
        let engine_error = |e: wasmtime::Error| EngineError(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(MAX_CONCURRENT_CALLS)
            .total_core_instances(MAX_CONCURRENT_CALLS * 8)
            .total_memories(MAX_CONCURRENT_CALLS * 2)
            .total_tables(MAX_CONCURRENT_CALLS * 8)
            .total_stacks(MAX_CONCURRENT_CALLS)
            .max_memory_size((MAX_MEMORY_MB << 20) as usize)
            // Resetting a slot by memset instead of madvise avoids page faults and TLB
            // shootdowns on the next call. 256 KiB covers a skill's shadow stack (64 KiB, see
            // skills/.cargo/config.toml), its data and its first heap pages: measured best.
            .linear_memory_keep_resident(256 << 10)
            .table_keep_resident(16 << 10);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(engine_error)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(engine_error)?;
        shadow_filesystem(&mut linker).map_err(engine_error)?;
        SkillWorld::add_to_linker::<CallState, HasImports>(&mut linker, |state| &mut state.imports)
            .map_err(engine_error)?;

        Ok(Self {
            _ticker: EpochTicker::start(engine.clone())
                .map_err(|e| EngineError(format!("cannot start the epoch thread: {e}")))?,
            engine,
            linker,
            sandboxes: Sandboxes::new(config.sandbox_root),
            sandbox_quota: config.sandbox_quota,
            sandbox_max_files: config.sandbox_max_files,
            accounts: super::quota::Accounts::default(),
            memory: Arc::new(MemoryBudget::new(config.max_total_memory)),
            cache_dir: config.cache_dir,
            permits: Semaphore::new(MAX_CONCURRENT_CALLS as usize),
            fuel_used: Family::default(),
        })
    }

    /// Fuel the calls of each skill have used, for `/metrics`.
    pub fn fuel_used(&self) -> &Family<SkillName, Counter> {
        &self.fuel_used
    }

    /// The per-user sandbox directories.
    pub fn sandboxes(&self) -> &Sandboxes {
        &self.sandboxes
    }

    /// Most bytes one user's sandbox may hold.
    pub fn sandbox_quota(&self) -> u64 {
        self.sandbox_quota
    }

    /// Most entries one user's sandbox may hold.
    pub fn sandbox_max_files(&self) -> u64 {
        self.sandbox_max_files
    }

    /// The memory budget of all running skills.
    pub fn memory(&self) -> &Arc<MemoryBudget> {
        &self.memory
    }

    /// The quota accounts of the sandboxes with calls running.
    pub(crate) fn accounts(&self) -> &super::quota::Accounts {
        &self.accounts
    }

    /// Compiles the component `bytes` read from `path` (or loads it from the cache) and links
    /// it against the host, checking that it implements the `molten:skill` world.
    pub(crate) fn prepare(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<SkillPre<CallState>, LoadError> {
        let component = self.compile(path, bytes)?;
        let world_error = |e: wasmtime::Error| LoadError::World {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(world_error)?;
        SkillPre::new(instance_pre).map_err(world_error)
    }

    fn compile(&self, path: &Path, bytes: &[u8]) -> Result<Component, LoadError> {
        let cached = self
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.cwasm", self.cache_key(bytes))));
        if let Some(file) = cached.as_ref().filter(|f| f.is_file()) {
            // SAFETY: the file was written by `Component::serialize` of an engine with this
            // exact configuration (the key includes the engine's compatibility hash) into the
            // operator's own data directory; wasmtime re-checks its header and version.
            match unsafe { Component::deserialize_file(&self.engine, file) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(
                    file = %file.display(), error = %format!("{e:#}"),
                    "discarding an unusable compiled-skill cache entry"
                ),
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        })?;
        if let Some(file) = cached {
            if let Err(e) = write_cache_entry(&file, &component) {
                tracing::warn!(
                    file = %file.display(), error = %e,
                    "cannot cache a compiled skill; it will be recompiled on the next start"
                );
            }
        }
        Ok(component)
    }

    /// Content hash of the component plus the engine's compatibility hash: a new wasmtime or a
    /// different engine configuration never reads an old artifact.
    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let content: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{content}-{:016x}", engine_hash.finish())
    }

    /// A store for one call, with its fuel and deadline set.
    pub(crate) fn new_store(
        &self,
        state: CallState,
        fuel: u64,
        timeout: Duration,
    ) -> Store<CallState> {
        let mut store = Store::new(&self.engine, state);
        // Fuel is only refused when fuel consumption is off, and this engine turns it on.
        store
            .set_fuel(fuel)
            .expect("the engine is configured with consume_fuel");
        // A skill computing without host calls would otherwise hold its executor thread
        // until it finishes; yielding every slice lets other calls and timers run.
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .expect("the engine is configured with consume_fuel");
        let ticks = timeout.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64;
        store.set_epoch_deadline(ticks.max(1));
        store
    }

    /// Waits for one of the [`MAX_CONCURRENT_CALLS`] call slots.
    pub(crate) async fn call_permit(&self) -> Option<SemaphorePermit<'_>> {
        // The semaphore is never closed, so acquiring only ever waits.
        self.permits.acquire().await.ok()
    }
}

fn write_cache_entry(file: &Path, component: &Component) -> std::io::Result<()> {
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), bytes)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("molten-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
