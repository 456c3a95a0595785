//! Signed plugins: Ed25519 keys made by `molten skill keygen`, a `<name>.sig` over the SHA-256 of
//! the component *and* of the manifest (a manifest that widens the grant is as dangerous as new
//! code), and the check the store applies before a plugin is compiled: trusted key, pinned
//! digest, `require_signatures`.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// How a public key is written: in the config's `trusted_keys`, in `KEY.pub`, in a signature.
const PUBLIC_PREFIX: &str = "ed25519:";
/// How a private key file starts.
const SECRET_PREFIX: &str = "ed25519-secret:";
/// What is signed, before the two digests: a signature for anything else never verifies here.
const CONTEXT: &[u8] = b"molten-skill-signature-v1\n";

/// A key or signature that cannot be used, with what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignatureError(String);

/// `ed25519:<hex>` of a public key, as keygen prints it and `plugins.trusted_keys` lists it.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", hex::encode(key.to_bytes()))
}

/// Parses `ed25519:<64 hex digits>`.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let hex_text = text.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(|| {
        format!("`{text}` is not a public key; copy the `ed25519:...` line keygen printed")
    })?;
    let bytes: [u8; 32] = hex::decode(hex_text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("`{text}` is not 32 bytes of hex after `ed25519:`"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| format!("`{text}` is not an Ed25519 key"))
}

/// A short id of a key for logs: the first 16 hex digits of it.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&key.to_bytes()[..8])
}

/// `sha256:<hex>` of `bytes`: how plugin digests are logged and pinned.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn signed_message(component: &[u8], manifest: &[u8]) -> Vec<u8> {
    let mut message = CONTEXT.to_vec();
    message.extend_from_slice(&Sha256::digest(component));
    message.extend_from_slice(&Sha256::digest(manifest));
    message
}

/// Writes a new private key to `path` (mode 0600, never over an existing file) and its public
/// key to `path.pub`; returns the public key.
pub fn keygen(path: &Path) -> Result<VerifyingKey, SignatureError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| SignatureError(format!("the system has no randomness to offer: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    let public_path = public_path(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            SignatureError(format!(
                "cannot create {}: {e}; choose a path where no file is",
                path.display()
            ))
        })?;
    file.write_all(format!("{SECRET_PREFIX}{}\n", hex::encode(seed)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| SignatureError(format!("cannot write {}: {e}", path.display())))?;
    std::fs::write(&public_path, format!("{}\n", public_key_text(&public)))
        .map_err(|e| SignatureError(format!("cannot write {}: {e}", public_path.display())))?;
    Ok(public)
}

/// `KEY.pub` beside private key `KEY`.
pub fn public_path(private: &Path) -> std::path::PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

/// Reads a private key written by [`keygen`].
pub fn read_signing_key(path: &Path) -> Result<SigningKey, SignatureError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SignatureError(format!("cannot read the key {}: {e}", path.display())))?;
    let seed: [u8; 32] = text
        .trim()
        .strip_prefix(SECRET_PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            SignatureError(format!(
                "{} is not a private key made by `molten skill keygen`",
                path.display()
            ))
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a public key file (`KEY.pub`).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, SignatureError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SignatureError(format!("cannot read {}: {e}", path.display())))?;
    parse_public_key(&text).map_err(|e| SignatureError(format!("{}: {e}", path.display())))
}

/// The text of `<name>.sig` for `component` and `manifest`, signed with `key`.
pub fn sign(key: &SigningKey, component: &[u8], manifest: &[u8]) -> String {
    let signature = key.sign(&signed_message(component, manifest));
    format!(
        "# molten skill signature: over the SHA-256 of the .wasm and of the .toml\n\
         key = \"{}\"\nsignature = \"{}\"\n",
        public_key_text(&key.verifying_key()),
        hex::encode(signature.to_bytes())
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    key: String,
    signature: String,
}

/// Checks `sig` (the text of a `.sig`) against `component` and `manifest`; returns the key
/// that signed them.
pub fn verify(sig: &str, component: &[u8], manifest: &[u8]) -> Result<VerifyingKey, String> {
    let file: SignatureFile = toml::from_str(sig).map_err(|e| {
        format!(
            "is not a molten signature ({}); make it with `molten skill sign`",
            e.message()
        )
    })?;
    let key = parse_public_key(&file.key)?;
    let signature = hex::decode(&file.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or("has a signature that is not 64 bytes of hex")?;
    key.verify(&signed_message(component, manifest), &signature)
        .map_err(|_| {
            "does not match the component and manifest beside it: one of them changed after \
             signing (or the signature did); sign them again"
                .to_owned()
        })?;
    Ok(key)
}

/// What the operator trusts (`[plugins]`): which keys, whether a signature is required, and
/// digests pinned per plugin.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Keys whose signatures are accepted.
    pub keys: Vec<VerifyingKey>,
    /// Refuse unsigned plugins and plugins signed by other keys.
    pub require_signatures: bool,
    /// Plugin name → the only `sha256:<hex>` its component may have.
    pub pins: BTreeMap<String, String>,
}

/// A plugin that passed [`Trust::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// Id of the key that signed it, if it is signed.
    pub key: Option<String>,
}

impl Trust {
    /// Checks plugin `name`'s files; the error says what is wrong with which file and what to
    /// do. A signature that is present must verify, whether or not signatures are required.
    pub fn check(
        &self,
        name: &str,
        component: &[u8],
        manifest: &[u8],
        sig: Option<&str>,
    ) -> Result<Verified, String> {
        let digest = digest(component);
        if let Some(pinned) = self.pins.get(name) {
            if *pinned != digest {
                return Err(format!(
                    "{name}.wasm is {digest}, but plugins.pin.{name} pins it to {pinned}; \
                     update the pin if this version is the one to run"
                ));
            }
        }
        let Some(sig) = sig else {
            if self.require_signatures {
                return Err(format!(
                    "{name}.wasm is not signed and plugins.require_signatures is on; sign it \
                     with `molten skill sign {name}.wasm --key KEY` and install {name}.sig too"
                ));
            }
            return Ok(Verified { digest, key: None });
        };
        let key = verify(sig, component, manifest).map_err(|e| format!("{name}.sig {e}"))?;
        let id = key_id(&key);
        if !self.keys.contains(&key) {
            if self.require_signatures {
                return Err(format!(
                    "{name}.sig is signed by key {id} ({}), which is not in \
                     plugins.trusted_keys; add the key there if you trust its holder",
                    public_key_text(&key)
                ));
            }
            tracing::warn!(plugin = %name, key = %id, "plugin signed by a key not in plugins.trusted_keys");
        }
        Ok(Verified {
            digest,
            key: Some(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(key: &SigningKey) -> Trust {
        Trust {
            keys: vec![key.verifying_key()],
            require_signatures: true,
            pins: BTreeMap::new(),
        }
    }

    #[test]
    fn keys_round_trip_and_private_keys_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.key");
        let public = keygen(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_signing_key(&path).unwrap().verifying_key(), public);
        assert_eq!(read_public_key(&public_path(&path)).unwrap(), public);
        assert!(
            keygen(&path).is_err(),
            "an existing key is never overwritten"
        );
    }

    #[test]
    fn a_signature_covers_component_and_manifest() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let sig = sign(&key, b"wasm", b"toml");
        let verified = trust(&key)
            .check("s", b"wasm", b"toml", Some(&sig))
            .unwrap();
        assert_eq!(
            verified.key.as_deref(),
            Some(&*key_id(&key.verifying_key()))
        );
        for (component, manifest) in [(&b"wasM"[..], &b"toml"[..]), (b"wasm", b"tomL")] {
            let err = trust(&key)
                .check("s", component, manifest, Some(&sig))
                .unwrap_err();
            assert!(err.contains("changed after signing"), "{err}");
        }
    }

    #[test]
    fn unsigned_unknown_and_unpinned_plugins_are_refused_when_required() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let stranger = SigningKey::from_bytes(&[2; 32]);
        let err = trust(&key).check("s", b"w", b"t", None).unwrap_err();
        assert!(err.contains("not signed"), "{err}");
        let err = trust(&key)
            .check("s", b"w", b"t", Some(&sign(&stranger, b"w", b"t")))
            .unwrap_err();
        assert!(err.contains("not in plugins.trusted_keys"), "{err}");
        let mut pinned = trust(&key);
        pinned.pins.insert("s".into(), digest(b"other"));
        let err = pinned
            .check("s", b"w", b"t", Some(&sign(&key, b"w", b"t")))
            .unwrap_err();
        assert!(err.contains("plugins.pin.s"), "{err}");
        let relaxed = Trust::default();
        assert_eq!(relaxed.check("s", b"w", b"t", None).unwrap().key, None);
        let err = relaxed.check("s", b"w", b"t", Some("key = 1")).unwrap_err();
        assert!(err.contains("not a molten signature"), "{err}");
    }
}
