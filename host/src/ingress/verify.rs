//! Webhook authenticity: Telegram's secret-token header, Slack's v0 HMAC signature with a
//! timestamp window, Discord's Ed25519 signature. Every comparison is constant-time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a Slack request's timestamp may be from now, either way (Slack's own advice).
pub const SLACK_MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Why a webhook request is not accepted as coming from the platform. Answered with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the platform always sends is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but not in the platform's format.
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    /// The signature does not match.
    #[error("signature does not match")]
    Mismatch,
    /// The shared secret token (Telegram's) does not match.
    #[error("secret token does not match")]
    TokenMismatch,
    /// The Slack timestamp is outside the allowed window (a replay, or a badly wrong clock).
    #[error("timestamp is {skew_secs} s away from now, more than the {max_secs} s allowed")]
    Stale {
        /// Distance between the request's timestamp and now.
        skew_secs: u64,
        /// The window.
        max_secs: u64,
    },
}

/// A verifier that cannot be built from the operator's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// Checks `X-Telegram-Bot-Api-Secret-Token` against the secret set with `setWebhook`.
pub fn telegram(secret: &str, header: Option<&str>) -> Result<(), VerifyError> {
    let got = header.ok_or(VerifyError::MissingHeader(
        "X-Telegram-Bot-Api-Secret-Token",
    ))?;
    // `ct_eq` on slices of different lengths is false without looking at the bytes.
    if bool::from(got.as_bytes().ct_eq(secret.as_bytes())) {
        Ok(())
    } else {
        Err(VerifyError::TokenMismatch)
    }
}

/// Verifies Slack's `X-Slack-Signature` (`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`
/// keyed with the app's signing secret) and `X-Slack-Request-Timestamp`.
pub struct SlackVerifier {
    mac: Hmac<Sha256>,
}

impl SlackVerifier {
    /// A verifier for the app's signing secret.
    pub fn new(signing_secret: &str) -> Result<Self, KeyError> {
        if signing_secret.is_empty() {
            return Err(KeyError(
                "the Slack signing secret is empty; copy it from the app's Basic Information page"
                    .into(),
            ));
        }
        let mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
            .map_err(|e| KeyError(format!("unusable Slack signing secret: {e}")))?;
        Ok(Self { mac })
    }

    /// Checks one request as of `now`.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        const TS: &str = "X-Slack-Request-Timestamp";
        const SIG: &str = "X-Slack-Signature";
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader(TS))?;
        let signature = signature.ok_or(VerifyError::MissingHeader(SIG))?;
        let sent: u64 = timestamp
            .parse()
            .map_err(|_| VerifyError::MalformedHeader(TS))?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let skew = now.abs_diff(sent);
        if skew > SLACK_MAX_SKEW.as_secs() {
            return Err(VerifyError::Stale {
                skew_secs: skew,
                max_secs: SLACK_MAX_SKEW.as_secs(),
            });
        }
        let tag = signature
            .strip_prefix("v0=")
            .and_then(decode_hex)
            .ok_or(VerifyError::MalformedHeader(SIG))?;
        let mut mac = self.mac.clone();
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac.verify_slice(&tag).map_err(|_| VerifyError::Mismatch)
    }
}

/// Verifies Discord's `X-Signature-Ed25519` over `X-Signature-Timestamp` + body with the
/// application's public key.
pub struct DiscordVerifier {
    key: VerifyingKey,
}

impl DiscordVerifier {
    /// A verifier for the application's public key (checked with the config, `[discord]`).
    pub fn new(key: VerifyingKey) -> Self {
        Self { key }
    }

    /// Checks one request.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        const SIG: &str = "X-Signature-Ed25519";
        const TS: &str = "X-Signature-Timestamp";
        let signature = signature.ok_or(VerifyError::MissingHeader(SIG))?;
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader(TS))?;
        let bytes: [u8; 64] = decode_hex(signature)
            .and_then(|b| b.try_into().ok())
            .ok_or(VerifyError::MalformedHeader(SIG))?;
        let message = [timestamp.as_bytes(), body].concat();
        self.key
            .verify_strict(&message, &Signature::from_bytes(&bytes))
            .map_err(|_| VerifyError::Mismatch)
    }
}

/// Lower- or upper-case hex to bytes; `None` for odd lengths or other characters.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn telegram_secret_token() {
        assert_eq!(telegram("s3cret", Some("s3cret")), Ok(()));
        assert_eq!(
            telegram("s3cret", Some("s3creT")),
            Err(VerifyError::TokenMismatch)
        );
        assert_eq!(
            telegram("s3cret", Some("s3cret-longer")),
            Err(VerifyError::TokenMismatch)
        );
        assert_eq!(
            telegram("s3cret", Some("")),
            Err(VerifyError::TokenMismatch)
        );
        assert_eq!(
            telegram("s3cret", None),
            Err(VerifyError::MissingHeader(
                "X-Telegram-Bot-Api-Secret-Token"
            ))
        );
    }

    /// Signs like Slack does, straight from its documented recipe.
    fn slack_sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex(&mac.finalize().into_bytes()))
    }

    #[test]
    fn slack_signature_and_timestamp_window() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let verifier = SlackVerifier::new(secret).unwrap();
        let sent = 1_531_420_618u64;
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let body = br#"{"type":"event_callback","event":{"type":"message","text":"hi"}}"#;
        let ts = sent.to_string();
        let sig = slack_sign(secret, &ts, body);

        assert_eq!(
            verifier.verify(Some(&ts), Some(&sig), body, at(sent + 10)),
            Ok(())
        );
        // Upper-case hex is the same signature.
        let upper = format!("v0={}", sig[3..].to_uppercase());
        assert_eq!(
            verifier.verify(Some(&ts), Some(&upper), body, at(sent)),
            Ok(())
        );

        let tampered = br#"{"type":"event_callback","event":{"type":"message","text":"hI"}}"#;
        assert_eq!(
            verifier.verify(Some(&ts), Some(&sig), tampered, at(sent)),
            Err(VerifyError::Mismatch)
        );
        let other = slack_sign("another-secret", &ts, body);
        assert_eq!(
            verifier.verify(Some(&ts), Some(&other), body, at(sent)),
            Err(VerifyError::Mismatch)
        );
        // The timestamp is part of what is signed: replaying with a fresh one fails.
        let fresh = (sent + 100).to_string();
        assert_eq!(
            verifier.verify(Some(&fresh), Some(&sig), body, at(sent + 100)),
            Err(VerifyError::Mismatch)
        );

        for now in [sent + 301, sent - 301] {
            assert!(matches!(
                verifier.verify(Some(&ts), Some(&sig), body, at(now)),
                Err(VerifyError::Stale {
                    skew_secs: 301,
                    max_secs: 300
                })
            ));
        }
        assert_eq!(
            verifier.verify(Some(&ts), Some(&sig), body, at(sent + 300)),
            Ok(())
        );

        for bad in ["v1=00", "deadbeef", "v0=xyz", "v0=abc"] {
            assert_eq!(
                verifier.verify(Some(&ts), Some(bad), body, at(sent)),
                Err(VerifyError::MalformedHeader("X-Slack-Signature")),
                "{bad}"
            );
        }
        assert_eq!(
            verifier.verify(Some("yesterday"), Some(&sig), body, at(sent)),
            Err(VerifyError::MalformedHeader("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verifier.verify(None, Some(&sig), body, at(sent)),
            Err(VerifyError::MissingHeader("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verifier.verify(Some(&ts), None, body, at(sent)),
            Err(VerifyError::MissingHeader("X-Slack-Signature"))
        );
        assert!(SlackVerifier::new("").is_err());
    }

    #[test]
    fn discord_ed25519_signature() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let verifier = DiscordVerifier::new(signing.verifying_key());
        let ts = "1700000000";
        let body = br#"{"type":1}"#;
        let sig = hex(&signing.sign(&[ts.as_bytes(), body].concat()).to_bytes());

        assert_eq!(verifier.verify(Some(&sig), Some(ts), body), Ok(()));
        assert_eq!(
            verifier.verify(Some(&sig), Some(ts), br#"{"type":2}"#),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verifier.verify(Some(&sig), Some("1700000001"), body),
            Err(VerifyError::Mismatch)
        );
        let stranger = SigningKey::from_bytes(&[9u8; 32]);
        let forged = hex(&stranger.sign(&[ts.as_bytes(), body].concat()).to_bytes());
        assert_eq!(
            verifier.verify(Some(&forged), Some(ts), body),
            Err(VerifyError::Mismatch)
        );
        for bad in ["", "zz", &sig[..126]] {
            assert_eq!(
                verifier.verify(Some(bad), Some(ts), body),
                Err(VerifyError::MalformedHeader("X-Signature-Ed25519"))
            );
        }
        assert_eq!(
            verifier.verify(None, Some(ts), body),
            Err(VerifyError::MissingHeader("X-Signature-Ed25519"))
        );
        assert_eq!(
            verifier.verify(Some(&sig), None, body),
            Err(VerifyError::MissingHeader("X-Signature-Timestamp"))
        );
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("00ff10Ab"), Some(vec![0, 255, 16, 171]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("é0"), None);
    }
}
