//! Outbound HTTP clients: TLS from rustls with the ring provider and the system's roots, one
//! user agent, a connect timeout. Every client molten builds starts here.

use std::time::Duration;

/// A client builder with molten's defaults.
pub fn client_builder() -> reqwest::ClientBuilder {
    // reqwest is built without a default crypto provider; ring is the one linked in. Installing
    // it a second time fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("molten/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
}
