//! Account shared access signatures: how molten authorises with an account key. The official
//! SDK clients take only Entra credentials, so a keyed account (Azurite, or a connection string)
//! signs a short-lived account SAS with the key and appends it to every request.

use std::sync::Mutex;

use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use azure_core::time::{Duration, OffsetDateTime};
use hmac::{KeyInit, Mac};

/// How long one signature is valid; a new one is signed when less than [`RENEW_BEFORE`] is left.
const LIFETIME: Duration = Duration::hours(1);
const RENEW_BEFORE: Duration = Duration::minutes(10);
/// The SAS format version (independent of each service's API version).
const SAS_VERSION: &str = "2021-08-06";

/// The query parameters of an account SAS; no storage operation uses these names.
const SAS_PARAMETERS: &[&str] = &["sv", "ss", "srt", "sp", "st", "se", "sip", "spr", "sig"];

/// Signs account SAS tokens for blob, queue and table, cached until near expiry.
pub struct AccountSas {
    account: String,
    key: Vec<u8>,
    cached: Mutex<Option<(String, OffsetDateTime)>>,
}

impl std::fmt::Debug for AccountSas {
    // The key must never be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSas")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl AccountSas {
    /// A signer for `account` with its decoded key.
    pub fn new(account: String, key: Vec<u8>) -> Self {
        Self {
            account,
            key,
            cached: Mutex::new(None),
        }
    }

    /// The query string (without `?`) of a currently valid signature.
    pub fn query(&self) -> String {
        let now = OffsetDateTime::now_utc();
        let mut cached = self.cached.lock().expect("SAS cache lock");
        if let Some((query, expiry)) = cached.as_ref() {
            if now + RENEW_BEFORE < *expiry {
                return query.clone();
            }
        }
        let expiry = now + LIFETIME;
        // Second precision, as the service expects `YYYY-MM-DDThh:mm:ssZ`.
        let expiry = expiry
            .replace_nanosecond(0)
            .expect("zero nanoseconds is valid");
        let query = self.sign(&now.replace_nanosecond(0).expect("valid"), &expiry);
        *cached = Some((query.clone(), expiry));
        query
    }

    fn sign(&self, start: &OffsetDateTime, expiry: &OffsetDateTime) -> String {
        let (permissions, services, types) = ("rwdlacup", "bqt", "sco");
        let start = azure_core::time::to_rfc3339(&(*start - Duration::minutes(5)));
        let expiry = azure_core::time::to_rfc3339(expiry);
        let to_sign = format!(
            "{}\n{permissions}\n{services}\n{types}\n{start}\n{expiry}\n\n\n{SAS_VERSION}\n\n",
            self.account
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(to_sign.as_bytes());
        let signature = azure_core::base64::encode(mac.finalize().into_bytes());
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sv", SAS_VERSION)
            .append_pair("ss", services)
            .append_pair("srt", types)
            .append_pair("sp", permissions)
            .append_pair("st", &start)
            .append_pair("se", &expiry)
            .append_pair("sig", &signature)
            .finish()
    }

    /// Sets the signature in `url`'s query, replacing one a previous try of the same request
    /// added (the SDK's retries resend the request they were given).
    pub fn apply(&self, url: &mut url::Url) {
        let mut query = if url.query_pairs().any(|(k, _)| k == "sig") {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !SAS_PARAMETERS.contains(&k.as_ref()))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(kept)
                .finish()
        } else {
            url.query().unwrap_or_default().to_owned()
        };
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&self.query());
        url.set_query(Some(&query));
    }
}

#[async_trait::async_trait]
impl Policy for AccountSas {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[std::sync::Arc<dyn Policy>],
    ) -> PolicyResult {
        self.apply(request.url_mut());
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_account_and_validity_and_are_reused() {
        let sas = AccountSas::new("devstoreaccount1".into(), b"key".to_vec());
        let query = sas.query();
        assert_eq!(query, sas.query(), "cached until near expiry");
        for part in [
            "sv=2021-08-06",
            "ss=bqt",
            "srt=sco",
            "sp=rwdlacup",
            "se=",
            "sig=",
        ] {
            assert!(query.contains(part), "{query} lacks {part}");
        }
        let mut url = url::Url::parse("http://127.0.0.1/a/messages?numofmessages=1").unwrap();
        sas.apply(&mut url);
        assert!(url.query().unwrap().starts_with("numofmessages=1&sv="));
        let once = url.clone();
        sas.apply(&mut url);
        assert_eq!(url, once, "a retried request carries one signature");
        let other = AccountSas::new("devstoreaccount1".into(), b"other key".to_vec());
        assert_ne!(
            query.split("sig=").nth(1),
            other.query().split("sig=").nth(1),
            "the key signs"
        );
    }
}
