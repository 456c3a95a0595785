//! The imports of the `molten:skill` world: `log` (a skill's structured log lines, into the
//! host's `tracing`) and `settings` (the operator's settings for the skill); `sandbox` is in
//! [`super::quota`].

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::HasData;

use super::bindings::molten::skill::log::{self, Level};
use super::bindings::molten::skill::{settings, types};

/// Longest message kept; the rest is cut so one call cannot flood the host's log.
const MAX_MESSAGE_BYTES: usize = 4096;
/// Messages kept per call; later ones are dropped and counted.
const MAX_MESSAGES_PER_CALL: u32 = 100;

/// Where one call's log lines go, tagged with the skill. Not with the user: a call runs inside
/// its turn's span, which names the user as `[privacy]` says.
pub(crate) struct LogSink {
    skill: String,
    written: u32,
}

impl LogSink {
    pub(crate) fn new(skill: &str) -> Self {
        Self {
            skill: skill.to_owned(),
            written: 0,
        }
    }

    /// Messages the skill sent past the per-call cap.
    pub(crate) fn dropped(&self) -> u32 {
        self.written.saturating_sub(MAX_MESSAGES_PER_CALL)
    }
}

impl log::Host for LogSink {
    fn log(&mut self, level: Level, mut message: String) {
        self.written = self.written.saturating_add(1);
        if self.written > MAX_MESSAGES_PER_CALL {
            return;
        }
        if message.len() > MAX_MESSAGE_BYTES {
            let cut = message.floor_char_boundary(MAX_MESSAGE_BYTES);
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
        let skill = self.skill.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "molten::skill", skill, "{message}"),
            Level::Debug => tracing::debug!(target: "molten::skill", skill, "{message}"),
            Level::Info => tracing::info!(target: "molten::skill", skill, "{message}"),
            Level::Warn => tracing::warn!(target: "molten::skill", skill, "{message}"),
            Level::Error => tracing::error!(target: "molten::skill", skill, "{message}"),
        }
    }
}

/// What one call's `molten:skill` imports reach.
pub(crate) struct Imports {
    pub(crate) log: LogSink,
    pub(crate) settings: Arc<BTreeMap<String, String>>,
    /// The sandbox's quota, when the call has a sandbox.
    pub(crate) quota: Option<Arc<super::quota::Quota>>,
}

impl log::Host for Imports {
    fn log(&mut self, level: Level, message: String) {
        self.log.log(level, message)
    }
}

impl settings::Host for Imports {
    fn get(&mut self, key: String) -> Option<String> {
        self.settings.get(&key).cloned()
    }
}

// The `types` interface has no functions; the generated linker still asks for its trait.
impl types::Host for Imports {}

/// Selects the [`Imports`] out of the store's data for the generated `add_to_linker`.
pub(crate) struct HasImports;

impl HasData for HasImports {
    type Data<'a> = &'a mut Imports;
}
