//! The plugin store in an Azure blob container (`[plugins] container`), shared by every
//! replica: each polls it by listing (one request for an unchanged store) and reads a changed
//! plugin's blobs checking that their ETags are still the listed ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use azure_core::http::{RequestContent, StatusCode};
use azure_storage_blob::models::BlockBlobClientUploadOptions;
use azure_storage_blob::BlobContainerClient;
use futures::TryStreamExt as _;
use tokio::sync::Notify;

use super::{PluginError, PluginFiles, PluginStore, EXTENSIONS};
use crate::azure::{describe, StorageAccount};

/// A blob container of `<name>.wasm`, `<name>.toml` and `<name>.sig` blobs.
pub struct BlobStore {
    container: BlobContainerClient,
    name: String,
}

fn azure(what: &str, e: &azure_core::Error) -> PluginError {
    PluginError::Azure(format!("{what}: {}", describe(e)))
}

impl BlobStore {
    /// Connects to container `name` of `account`, creating it if it is missing.
    pub async fn open(account: &StorageAccount, name: &str) -> Result<Self, PluginError> {
        let container = account.container(name).await.map_err(PluginError::Azure)?;
        Ok(Self {
            container,
            name: name.to_owned(),
        })
    }

    /// A blob's bytes and ETag, or `None` when it does not exist.
    async fn download(&self, blob: &str) -> Result<Option<(Vec<u8>, String)>, PluginError> {
        let found = crate::azure::download(&self.container, blob)
            .await
            .map_err(PluginError::Azure)?;
        Ok(found.map(|(bytes, etag)| (bytes, bare(etag.as_ref()))))
    }

    async fn remove(&self, blob: &str) -> Result<bool, PluginError> {
        match self.container.blob_client(blob).delete(None).await {
            Ok(_) => Ok(true),
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(false),
            Err(e) => Err(azure(&format!("deleting {blob}"), &e)),
        }
    }
}

/// An ETag without the quotes that listings and downloads do not agree on.
fn bare(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// The version of one plugin: the ETags of its blobs in [`EXTENSIONS`] order.
fn version(etags: &BTreeMap<&str, String>) -> String {
    EXTENSIONS
        .iter()
        .map(|ext| etags.get(ext).map_or("-", String::as_str))
        .collect::<Vec<_>>()
        .join("/")
}

#[async_trait::async_trait]
impl PluginStore for BlobStore {
    fn location(&self) -> String {
        format!("container {}", self.name)
    }

    fn path_of(&self, name: &str, ext: &str) -> PathBuf {
        PathBuf::from(format!("{}/{name}.{ext}", self.name))
    }

    async fn list(&self) -> Result<BTreeMap<String, String>, PluginError> {
        let mut pager = self
            .container
            .list_blobs(None)
            .map_err(|e| azure("listing plugins", &e))?;
        let mut etags: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| azure("listing plugins", &e))?
        {
            let (Some(blob), Some(etag)) = (item.name, item.properties.and_then(|p| p.etag)) else {
                continue;
            };
            let Some((name, ext)) = blob.rsplit_once('.') else {
                continue;
            };
            if let Some(ext) = EXTENSIONS.iter().find(|e| **e == ext) {
                etags
                    .entry(name.to_owned())
                    .or_default()
                    .insert(ext, bare(etag.as_ref()));
            }
        }
        Ok(etags
            .into_iter()
            .map(|(name, etags)| (name, version(&etags)))
            .collect())
    }

    async fn read(
        &self,
        name: &str,
        version_listed: &str,
    ) -> Result<Option<PluginFiles>, PluginError> {
        let mut read = [None, None, None];
        let mut etags = BTreeMap::new();
        for (slot, ext) in read.iter_mut().zip(EXTENSIONS) {
            if let Some((bytes, etag)) = self.download(&format!("{name}.{ext}")).await? {
                etags.insert(ext, etag);
                *slot = Some(bytes);
            }
        }
        let files = PluginFiles::from_extensions(read);
        // A blob replaced or added since the listing: the set may be half old, half new.
        Ok((version(&etags) == version_listed).then_some(files))
    }

    async fn put(&self, name: &str, files: &PluginFiles) -> Result<(), PluginError> {
        for (ext, bytes) in files.by_extension() {
            let blob = format!("{name}.{ext}");
            match bytes {
                Some(bytes) => {
                    let content: RequestContent<azure_core::Bytes, _> =
                        azure_core::Bytes::copy_from_slice(bytes).into();
                    self.container
                        .blob_client(&blob)
                        .upload(content, Some(BlockBlobClientUploadOptions::default()))
                        .await
                        .map_err(|e| azure(&format!("uploading {blob}"), &e))?;
                }
                None => {
                    self.remove(&blob).await?;
                }
            }
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<bool, PluginError> {
        let mut found = false;
        for ext in ["toml", "wasm", "sig"] {
            found |= self.remove(&format!("{name}.{ext}")).await?;
        }
        Ok(found)
    }

    fn changes(&self) -> Option<Arc<Notify>> {
        None
    }
}
