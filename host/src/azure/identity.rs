//! Entra ID credentials for replicas running in Azure: workload identity (AKS), Managed
//! Identity (Container Apps, App Service, VMs), then the Azure CLI (a developer's machine). The
//! first that yields a token is kept for later requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    AzureCliCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

/// Tries credentials in order; remembers the first that worked.
pub struct CredentialChain {
    sources: Vec<(&'static str, Arc<dyn TokenCredential>)>,
    working: AtomicUsize,
}

impl std::fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.sources.iter().map(|(name, _)| *name).collect();
        f.debug_struct("CredentialChain")
            .field("sources", &names)
            .finish()
    }
}

impl CredentialChain {
    /// A chain over `sources`, tried in order.
    pub fn new(sources: Vec<(&'static str, Arc<dyn TokenCredential>)>) -> Self {
        Self {
            sources,
            working: AtomicUsize::new(0),
        }
    }
}

/// The default chain: workload identity when `AZURE_FEDERATED_TOKEN_FILE` is set, Managed
/// Identity (user-assigned when `client_id` is given), then the Azure CLI. Token requests go
/// through `http`.
pub fn credential_chain(
    client_id: Option<&str>,
    http: &reqwest::Client,
) -> Result<CredentialChain, super::AccountError> {
    let options = || ClientOptions {
        transport: Some(Transport::new(Arc::new(http.clone()))),
        ..ClientOptions::default()
    };
    let failed = |e: azure_core::Error| super::AccountError::Credential(e.to_string());
    let mut sources: Vec<(&'static str, Arc<dyn TokenCredential>)> = Vec::new();
    if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        let mut workload = WorkloadIdentityCredentialOptions::default();
        workload.credential_options.client_options = options();
        workload.client_id = client_id.map(str::to_owned);
        sources.push((
            "workload identity",
            WorkloadIdentityCredential::new(Some(workload)).map_err(failed)?,
        ));
    }
    sources.push((
        "managed identity",
        ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(|id| UserAssignedId::ClientId(id.to_owned())),
            client_options: options(),
        }))
        .map_err(failed)?,
    ));
    sources.push(("Azure CLI", AzureCliCredential::new(None).map_err(failed)?));
    Ok(CredentialChain::new(sources))
}

#[async_trait::async_trait]
impl TokenCredential for CredentialChain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let start = self.working.load(Ordering::Relaxed);
        let mut errors = Vec::new();
        for index in (start..self.sources.len()).chain(0..start) {
            let (name, source) = &self.sources[index];
            match source.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    self.working.store(index, Ordering::Relaxed);
                    return Ok(token);
                }
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            format!(
                "no Entra ID credential worked ({}); give the replica a managed identity, set AZURE_FEDERATED_TOKEN_FILE for workload identity, or run `az login`",
                errors.join("; ")
            ),
        ))
    }
}
