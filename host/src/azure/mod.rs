//! Azure Storage and Entra ID plumbing shared by the Azure queue, the Azure store and Key Vault:
//! which account to talk to, how requests are authorised, and the HTTP transport the official
//! SDK clients use (molten's own reqwest client, rustls on ring).

mod identity;
mod key_vault;
mod sas;
mod table;

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Transport, Url};

pub use identity::{credential_chain, CredentialChain};
pub use key_vault::{KeyVaultSecrets, CONFIG_SECRETS};
pub use table::{dated_row, int64, TableClient, TableError};

use crate::secrets::Secret;

/// The scope of Entra tokens for Azure Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// Azurite's well-known development account. Its key is published in Microsoft's documentation
/// and only opens the local emulator; it is not a secret.
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How requests to the storage account are authorised.
#[derive(Clone)]
pub enum StorageAuth {
    /// The account key: every request carries an account SAS signed with it.
    Key(Arc<sas::AccountSas>),
    /// An Entra token (Managed Identity, workload identity or the Azure CLI).
    Token(Arc<dyn TokenCredential>),
}

/// One storage account: its three service endpoints and how to authorise against them.
#[derive(Clone)]
pub struct StorageAccount {
    /// `https://<account>.blob.core.windows.net/` or Azurite's `http://127.0.0.1:10000/devstoreaccount1/`.
    pub blob: Url,
    /// The queue service endpoint.
    pub queue: Url,
    /// The table service endpoint.
    pub table: Url,
    /// Key or token.
    pub auth: StorageAuth,
    http: reqwest::Client,
}

/// A storage account setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The connection string lacks something or has a bad value.
    #[error("azure.storage connection string: {0}; use `UseDevelopmentStorage=true` for Azurite or the string from the portal's Access keys page")]
    ConnectionString(String),
    /// No Entra credential could be created.
    #[error("cannot create an Entra ID credential: {0}")]
    Credential(String),
}

impl StorageAccount {
    /// An account from a connection string (`UseDevelopmentStorage=true`, or the portal's
    /// `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…`, with
    /// optional `BlobEndpoint=`, `QueueEndpoint=`, `TableEndpoint=`). Without `AccountKey`
    /// the endpoints are reached with `credential` (an identity-based connection).
    pub fn from_connection_string(
        value: &Secret,
        credential: Option<Arc<dyn TokenCredential>>,
        http: reqwest::Client,
    ) -> Result<Self, AccountError> {
        let bad = |m: &str| AccountError::ConnectionString(m.to_owned());
        let mut parts = BTreeMap::new();
        for part in value.expose().split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad("each part must be Key=Value"))?;
            parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        if parts.get("usedevelopmentstorage").map(String::as_str) == Some("true") {
            let host = "http://127.0.0.1";
            for (key, port) in [
                ("blobendpoint", 10000),
                ("queueendpoint", 10001),
                ("tableendpoint", 10002),
            ] {
                parts
                    .entry(key.to_owned())
                    .or_insert_with(|| format!("{host}:{port}/{DEV_ACCOUNT}"));
            }
            parts
                .entry("accountname".into())
                .or_insert_with(|| DEV_ACCOUNT.into());
            parts
                .entry("accountkey".into())
                .or_insert_with(|| DEV_KEY.into());
        }
        let account = parts.get("accountname").cloned().unwrap_or_default();
        let auth = match (parts.get("accountkey"), credential) {
            (Some(key), _) => {
                if account.is_empty() {
                    return Err(bad("AccountName is missing"));
                }
                let key =
                    azure_core::base64::decode(key).map_err(|_| bad("AccountKey is not base64"))?;
                StorageAuth::Key(Arc::new(sas::AccountSas::new(account.clone(), key)))
            }
            (None, Some(credential)) => StorageAuth::Token(credential),
            (None, None) => return Err(bad("AccountKey is missing")),
        };
        if account.is_empty() && parts.keys().filter(|k| k.ends_with("endpoint")).count() < 3 {
            return Err(bad(
                "give AccountName, or BlobEndpoint, QueueEndpoint and TableEndpoint",
            ));
        }
        let protocol = parts
            .get("defaultendpointsprotocol")
            .map_or("https", String::as_str)
            .to_owned();
        let suffix = parts
            .get("endpointsuffix")
            .map_or("core.windows.net", String::as_str)
            .to_owned();
        let endpoint = |service: &str| -> Result<Url, AccountError> {
            let text = parts
                .get(&format!("{service}endpoint"))
                .cloned()
                .unwrap_or_else(|| format!("{protocol}://{account}.{service}.{suffix}"));
            base_url(&text).map_err(|e| bad(&format!("{service} endpoint {text}: {e}")))
        };
        Ok(Self {
            blob: endpoint("blob")?,
            queue: endpoint("queue")?,
            table: endpoint("table")?,
            auth,
            http,
        })
    }

    /// Whether a connection string names no account key, so that the replica's Entra identity
    /// must authorise (an identity-based connection).
    pub fn is_identity_based(value: &Secret) -> bool {
        let text = value.expose().to_ascii_lowercase();
        !text.contains("accountkey=") && !text.contains("usedevelopmentstorage=true")
    }

    /// The SDK's client options: molten's transport, and the SAS on every try when keyed.
    pub fn client_options(&self) -> ClientOptions {
        let mut options = ClientOptions {
            transport: Some(Transport::new(Arc::new(self.http.clone()))),
            ..ClientOptions::default()
        };
        if let StorageAuth::Key(sas) = &self.auth {
            options.per_try_policies.push(sas.clone());
        }
        options
    }

    /// The credential the SDK clients take: `None` when the SAS does the authorising.
    pub fn credential(&self) -> Option<Arc<dyn TokenCredential>> {
        match &self.auth {
            StorageAuth::Key(_) => None,
            StorageAuth::Token(credential) => Some(credential.clone()),
        }
    }

    /// A client for the table service.
    pub fn tables(&self) -> TableClient {
        TableClient::new(self.table.clone(), self.auth.clone(), self.http.clone())
    }

    /// A client for blob container `name`, which is created if it is missing (a replica whose
    /// identity may only read it uses it as it is, when it exists). The error says which step
    /// failed.
    pub async fn container(
        &self,
        name: &str,
    ) -> Result<azure_storage_blob::BlobContainerClient, String> {
        let client = azure_storage_blob::BlobContainerClient::new(
            Self::resource_url(&self.blob, name),
            self.credential(),
            Some(azure_storage_blob::BlobContainerClientOptions {
                client_options: self.client_options(),
                ..Default::default()
            }),
        )
        .map_err(|e| format!("container {name}: {}", describe(&e)))?;
        match client.create(None).await {
            Ok(_) => {}
            Err(e) if e.http_status() == Some(azure_core::http::StatusCode::Conflict) => {}
            Err(e) if e.http_status() == Some(azure_core::http::StatusCode::Forbidden) => {
                client.get_properties(None).await.map_err(|_| {
                    format!(
                        "creating container {name}: {}; create it beforehand or give the replica's identity Storage Blob Data Contributor on it",
                        describe(&e)
                    )
                })?;
            }
            Err(e) => return Err(format!("creating container {name}: {}", describe(&e))),
        }
        Ok(client)
    }

    /// `service`'s endpoint joined with `name` (a queue or container).
    pub fn resource_url(base: &Url, name: &str) -> Url {
        let mut url = base.clone();
        url.path_segments_mut()
            .expect("endpoints are base URLs")
            .pop_if_empty()
            .push(name);
        url
    }
}

/// Blob `name`'s content and ETag, or `None` if there is none; the error says what failed.
pub async fn download(
    container: &azure_storage_blob::BlobContainerClient,
    name: &str,
) -> Result<Option<(Vec<u8>, azure_core::http::Etag)>, String> {
    let options = azure_storage_blob::models::BlobClientDownloadOptions {
        parallel: std::num::NonZero::new(1),
        ..Default::default()
    };
    let failed = |e: &azure_core::Error| format!("reading {name}: {}", describe(e));
    let result = match container.blob_client(name).download(Some(options)).await {
        Ok(result) => result,
        Err(e) if e.http_status() == Some(azure_core::http::StatusCode::NotFound) => {
            return Ok(None)
        }
        Err(e) => return Err(failed(&e)),
    };
    let etag = result
        .properties
        .etag
        .ok_or_else(|| format!("{name} came without an ETag"))?;
    let body = result.body.collect().await.map_err(|e| failed(&e))?;
    Ok(Some((body.to_vec(), etag)))
}

/// A name for `key` usable as a table row key or blob name (which may not hold `/ \ # ?` and
/// are bounded in length): its SHA-256 in hex.
pub fn hashed_key(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| e.to_string())?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err("not an http(s) base URL".into());
    }
    Ok(url)
}

/// An Azure SDK error as text without the request's URL query (where a SAS would be).
pub fn describe(error: &azure_core::Error) -> String {
    match error.http_status() {
        Some(status) => format!("{} ({status})", error_code(error).unwrap_or("HTTP error")),
        None => {
            // The SDK's message is generic; the cause is in the source chain.
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            redact_sas(&text)
        }
    }
}

/// `text` with any SAS signature (`sig=…`) blanked: transport errors quote the request URL.
pub fn redact_sas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("REDACTED");
        rest = &rest[at + 4..];
        let end = rest
            .find(|c: char| c == '&' || c == ')' || c == '"' || c.is_whitespace())
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The storage error code of an HTTP error (`MessageNotFound`, `ConditionNotMet`, ...).
pub fn error_code(error: &azure_core::Error) -> Option<&str> {
    match error.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}
