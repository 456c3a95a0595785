//! Entra ID (any OpenID Connect issuer's) bearer tokens for the admin routes: RS256 or ES256
//! signatures checked against the issuer's JWKS (found through its OpenID configuration,
//! cached, fetched again when a token names an unknown key), then `iss`, `aud`, `exp` and `nbf`
//! (60 s leeway) and the configured app role or group. Why a token was refused goes to the log,
//! never to the caller.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::AdminConfig;

/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;
/// Keys are fetched again at most this often for unknown key ids (a flood of made-up `kid`s
/// must not become a flood of requests to the issuer).
const REFETCH_AFTER: Duration = Duration::from_secs(2);
/// Keys are fetched again after this long whatever happens (issuers rotate keys).
const KEYS_TTL: Duration = Duration::from_secs(24 * 3600);

/// The claims checked beyond what `Validation` checks.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
struct OpenIdConfiguration {
    jwks_uri: String,
}

/// Checks admin bearer tokens against one issuer.
pub struct EntraVerifier {
    config: AdminConfig,
    http: reqwest::Client,
    keys: Mutex<Option<(JwkSet, Instant)>>,
}

impl EntraVerifier {
    /// A verifier for `config`'s issuer, fetching keys with `http`.
    pub fn new(config: AdminConfig, http: reqwest::Client) -> Self {
        Self {
            config,
            http,
            keys: Mutex::new(None),
        }
    }

    async fn fetch_keys(&self) -> Result<JwkSet, String> {
        let discovery = &self.config.openid_configuration;
        let configuration: OpenIdConfiguration = self
            .http
            .get(discovery.clone())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("cannot read the OpenID configuration at {discovery}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the OpenID configuration at {discovery} is unreadable: {e}"))?;
        self.http
            .get(&configuration.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("cannot read the keys at {}: {e}", configuration.jwks_uri))?
            .json()
            .await
            .map_err(|e| format!("the keys at {} are unreadable: {e}", configuration.jwks_uri))
    }

    /// The key `kid`, from the cache or, when unknown or stale, from the issuer.
    async fn key(&self, kid: &str) -> Result<jsonwebtoken::jwk::Jwk, String> {
        let mut keys = self.keys.lock().await;
        let cached = keys.as_ref().filter(|(_, at)| at.elapsed() < KEYS_TTL);
        if let Some(key) = cached.and_then(|(set, _)| set.find(kid)) {
            return Ok(key.clone());
        }
        if keys
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < REFETCH_AFTER)
        {
            return Err(format!("no key `{kid}` at the issuer"));
        }
        let set = self.fetch_keys().await?;
        let key = set.find(kid).cloned();
        *keys = Some((set, Instant::now()));
        key.ok_or_else(|| format!("no key `{kid}` at the issuer"))
    }

    /// Whether `token` is a valid admin token; the error says why not (for the log).
    pub async fn verify(&self, token: &str) -> Result<(), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let kid = header.kid.ok_or("the token names no key (kid)")?;
        let jwk = self.key(&kid).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("key `{kid}`: {e}"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| format!("token refused: {e}"))?
            .claims;
        if let Some(role) = &self.config.role {
            if !claims.roles.contains(role) {
                return Err(format!("the token lacks the app role `{role}`"));
            }
        }
        if let Some(group) = &self.config.group {
            if !claims.groups.contains(group) {
                return Err(format!("the token lacks the group `{group}`"));
            }
        }
        Ok(())
    }
}
