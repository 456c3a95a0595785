//! What the operator allows one skill (`[skills.<name>]`) beyond HTTP: whether it runs at all,
//! lower limits than its manifest asks for, and no filesystem or network. The effective grant is
//! the intersection of manifest and policy: a skill can never raise its own.

use std::time::Duration;

use super::manifest::{Filesystem, Manifest};

/// The operator's policy for one skill. The default allows whatever the manifest asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `false` keeps the skill from loading: it is never offered to the model.
    pub enabled: bool,
    /// Most fuel per call.
    pub fuel: Option<u64>,
    /// Shortest deadline per call.
    pub timeout: Option<Duration>,
    /// Most linear memory per call, in bytes.
    pub memory_bytes: Option<usize>,
    /// Most output per call, in bytes.
    pub output_bytes: Option<usize>,
    /// `false` denies the user's sandbox directory.
    pub filesystem: bool,
    /// `false` denies every HTTP request.
    pub network: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            enabled: true,
            fuel: None,
            timeout: None,
            memory_bytes: None,
            output_bytes: None,
            filesystem: true,
            network: true,
        }
    }
}

impl Policy {
    /// Lowers `manifest`'s limits to the policy's. A manifest that asks for a capability the
    /// policy denies is refused (the skill would fail on every call) with the reason naming the
    /// config key; a disabled skill is refused too, and [`Policy::enabled`] tells them apart.
    pub fn apply(&self, manifest: &mut Manifest) -> Result<(), String> {
        let name = &manifest.name;
        if !self.enabled {
            return Err(format!(
                "disabled by [skills.{name}] enabled = false; remove that line to offer it"
            ));
        }
        let asked = &manifest.capabilities;
        if !self.filesystem && asked.filesystem != Filesystem::None {
            return Err(format!(
                "its manifest asks for filesystem = \"sandbox\" but [skills.{name}] \
                 filesystem = false denies it; remove one of the two"
            ));
        }
        if !self.network && !asked.http.is_empty() {
            return Err(format!(
                "its manifest asks for HTTP ({}) but [skills.{name}] network = false denies it; \
                 remove one of the two",
                asked
                    .http
                    .iter()
                    .map(|rule| rule.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let limits = &mut manifest.limits;
        if let Some(fuel) = self.fuel {
            limits.fuel = limits.fuel.min(fuel);
        }
        if let Some(timeout) = self.timeout {
            limits.timeout = limits.timeout.min(timeout);
        }
        if let Some(memory) = self.memory_bytes {
            limits.memory_bytes = limits.memory_bytes.min(memory);
        }
        if let Some(output) = self.output_bytes {
            limits.output_bytes = limits.output_bytes.min(output);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::parse(&format!("name = \"s\"\ndescription = \"d\"\n{extra}"), "s").unwrap()
    }

    #[test]
    fn limits_are_the_lower_of_manifest_and_policy() {
        let mut m = manifest("[limits]\nfuel = 1000\nmemory_mb = 8\n");
        Policy {
            fuel: Some(10_000),
            memory_bytes: Some(4 << 20),
            timeout: Some(Duration::from_millis(5)),
            ..Policy::default()
        }
        .apply(&mut m)
        .unwrap();
        assert_eq!(m.limits.fuel, 1000, "a policy never raises a limit");
        assert_eq!(m.limits.memory_bytes, 4 << 20);
        assert_eq!(m.limits.timeout, Duration::from_millis(5));
    }

    #[test]
    fn denied_capabilities_and_disabled_skills_are_refused() {
        let fs = manifest("[capabilities]\nfilesystem = \"sandbox\"\n");
        let net = manifest("[capabilities]\nhttp = [\"https://example.com\"]\n");
        for (m, policy, expected) in [
            (
                &fs,
                Policy {
                    filesystem: false,
                    ..Policy::default()
                },
                "filesystem = false",
            ),
            (
                &net,
                Policy {
                    network: false,
                    ..Policy::default()
                },
                "network = false",
            ),
            (
                &fs,
                Policy {
                    enabled: false,
                    ..Policy::default()
                },
                "enabled = false",
            ),
        ] {
            let err = policy.apply(&mut m.clone()).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        Policy {
            network: false,
            ..Policy::default()
        }
        .apply(&mut fs.clone())
        .expect("a skill without HTTP is unaffected by network = false");
    }
}
