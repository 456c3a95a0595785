//! The HTTP capability: a skill's `wasi:http` requests, sent by the host after its checks.
//!
//! - The URL must match one of the skill's granted rules (scheme, host, port, path prefix);
//!   everything else is refused (`HTTP-request-denied`).
//! - The host resolves names itself and refuses loopback, private, link-local, metadata and
//!   other internal addresses, unless the operator named the address: as the literal host of a
//!   granted rule (`http://127.0.0.1:8080`) or as the target of an endpoint mapping.
//!   The check runs inside the connector's resolver, so a name cannot change between check and
//!   connect. Redirects are followed only to granted URLs, and never to another host once a
//!   secret was added.
//! - Secrets named in the manifest are added as headers for their host only; the guest's own
//!   header of that name is replaced. Responses (headers and body) are scanned and any secret
//!   value in them is redacted, so a server that reflects headers cannot hand it back.
//! - Per-request timeout, response size cap, and rate limits per user and per skill.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiHttpHooks};

use crate::secrets::SecretStore;
use crate::skills::manifest::SecretRule;

/// Largest request body a skill may send.
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest response body handed to a skill unless the grant says otherwise.
pub const DEFAULT_RESPONSE_BYTES: usize = 1 << 20;
/// Requests per minute per skill unless the grant says otherwise.
pub const DEFAULT_REQUESTS_PER_MINUTE: u32 = 60;
/// The default ceiling for all users of a skill, in multiples of one user's limit.
pub const TOTAL_PER_USER_RATIO: u32 = 10;
/// Per-request timeout when the skill sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 5;

/// One allowed destination: scheme, host, port and a path prefix (whole segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl HttpRule {
    /// Parses `https://api.example.com`, `http://127.0.0.1:8080/v1` and the like.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text).map_err(|e| {
            format!("`{text}` is not a URL ({e}); write e.g. https://api.example.com")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}`: only http and https are allowed"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "`{text}`: credentials do not belong in a URL; use a secret"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{text}`: a rule is an origin and a path prefix, without ? or #"
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("`{text}` has no host"))?
            .to_ascii_lowercase();
        Ok(Self {
            scheme: url.scheme().to_owned(),
            port: url.port_or_known_default().unwrap_or(443),
            path: url.path().trim_end_matches('/').to_owned(),
            host,
        })
    }

    /// The host, lower case (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether `url` falls under this rule.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        let path = url.path();
        url.scheme() == self.scheme
            && url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && url.port_or_known_default() == Some(self.port)
            && (self.path.is_empty()
                || (!hides_separators(path)
                    && (path == self.path
                        || path
                            .strip_prefix(&self.path)
                            .is_some_and(|rest| rest.starts_with('/')))))
    }

    fn same_origin(&self, url: &reqwest::Url) -> bool {
        HttpRule {
            path: String::new(),
            ..self.clone()
        }
        .allows(url)
    }
}

impl std::fmt::Display for HttpRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        write!(f, "{}://{}", self.scheme, self.host)?;
        if self.port != default {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

/// Whether connecting to `ip` could reach the host itself or an internal network: loopback,
/// private, link-local (the cloud metadata service at 169.254.169.254), shared, multicast,
/// reserved and unspecified ranges, and their IPv6 counterparts and embeddings.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (fd00::/8 included)
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                // NAT64 and IPv4-compatible addresses embed an IPv4 address: judge that.
                || (s[0] == 0x64 && s[1] == 0xff9b && is_internal_v4(embedded_v4(&v6)))
                || (s[..6] == [0; 6] && is_internal_v4(embedded_v4(&v6)))
        }
    }
}

fn embedded_v4(v6: &Ipv6Addr) -> Ipv4Addr {
    let o = v6.octets();
    Ipv4Addr::new(o[12], o[13], o[14], o[15])
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240 // reserved
}

/// What the operator grants one skill, combined with what its manifest asks.
pub struct HttpPolicy {
    skill: String,
    rules: Vec<HttpRule>,
    /// Guest-facing origin -> where requests for it really go.
    endpoints: Vec<(HttpRule, reqwest::Url)>,
    secrets: Vec<SecretRule>,
    store: Arc<dyn SecretStore>,
    client: reqwest::Client,
    max_response: usize,
    rate: RateLimit,
}

struct ResolvedSecret {
    host: String,
    header: http::HeaderName,
    value: http::HeaderValue,
    raw: String,
}

/// What the operator grants one skill (`[skills.<name>]`): HTTP access and settings. The
/// default grants no HTTP rule, with the default limits.
#[derive(Debug, Clone)]
pub struct SkillGrant {
    /// Values the skill reads through the `settings` import.
    pub settings: BTreeMap<String, String>,
    /// Rules granted; only those the manifest also asks for take effect.
    pub http: Vec<HttpRule>,
    /// Guest-facing origin -> real endpoint (a proxy, a regional endpoint, a test server).
    /// The endpoint's address counts as explicitly granted, loopback and private included.
    pub endpoints: BTreeMap<String, String>,
    /// Requests per minute for each user.
    pub requests_per_minute: u32,
    /// Requests per minute for all users together.
    pub requests_per_minute_total: u32,
    /// Largest response body.
    pub max_response_bytes: usize,
    /// The secrets the operator binds to this skill: of the `capabilities.secrets` its manifest
    /// names, only these are added to its requests. A manifest alone never gets a secret, so a
    /// skill cannot claim another skill's key for a host it was granted.
    pub secrets: BTreeSet<String>,
    /// Whether the skill runs, and the limits and capabilities it is held to.
    pub policy: super::policy::Policy,
}

impl Default for SkillGrant {
    fn default() -> Self {
        Self {
            settings: BTreeMap::new(),
            http: Vec::new(),
            endpoints: BTreeMap::new(),
            requests_per_minute: DEFAULT_REQUESTS_PER_MINUTE,
            requests_per_minute_total: DEFAULT_REQUESTS_PER_MINUTE * TOTAL_PER_USER_RATIO,
            max_response_bytes: DEFAULT_RESPONSE_BYTES,
            secrets: BTreeSet::new(),
            policy: super::policy::Policy::default(),
        }
    }
}

/// A grant that cannot be applied.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct GrantError(pub String);

impl HttpPolicy {
    /// The effective policy of `skill`: the manifest's `asked` rules that `grant` also lists,
    /// adding the manifest's `secrets`, looked up in `store` for every request (so tokens that
    /// expire are fetched again). `None` when nothing is granted.
    pub fn new(
        skill: &str,
        asked: &[HttpRule],
        grant: &SkillGrant,
        secrets: &[SecretRule],
        store: Arc<dyn SecretStore>,
    ) -> Result<Option<Self>, GrantError> {
        let rules: Vec<HttpRule> = asked
            .iter()
            .filter(|rule| grant.http.contains(rule))
            .cloned()
            .collect();
        if rules.is_empty() {
            return Ok(None);
        }
        let mut endpoints = Vec::new();
        for (origin, target) in &grant.endpoints {
            let bad = |m: String| GrantError(format!("skills.{skill}.endpoints.\"{origin}\": {m}"));
            let origin = HttpRule::parse(origin).map_err(bad)?;
            let target =
                reqwest::Url::parse(target).map_err(|e| bad(format!("`{target}`: {e}")))?;
            endpoints.push((origin, target));
        }
        let explicit: Vec<String> = endpoints
            .iter()
            .filter_map(|(_, t)| t.host_str().map(str::to_ascii_lowercase))
            .collect();
        for rule in secrets {
            http::HeaderName::from_bytes(rule.header.as_bytes())
                .map_err(|e| GrantError(format!("secret `{}`: {e}", rule.name)))?;
        }
        let client = crate::net::client_builder()
            .dns_resolver(Arc::new(CheckedResolver { explicit }))
            // Redirects are followed by `send`, which checks every hop.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GrantError(format!("cannot build the HTTP client: {e}")))?;
        Ok(Some(Self {
            skill: skill.to_owned(),
            rules,
            endpoints,
            secrets: secrets.to_vec(),
            store,
            client,
            max_response: grant.max_response_bytes,
            rate: RateLimit::new(grant.requests_per_minute, grant.requests_per_minute_total),
        }))
    }

    /// The rules in effect, for `molten skill list`.
    pub fn rules(&self) -> &[HttpRule] {
        &self.rules
    }

    /// The current values of the skill's secrets; a secret the store does not have is left out
    /// (its requests go without it).
    async fn resolve_secrets(&self) -> Vec<ResolvedSecret> {
        let mut out = Vec::new();
        for rule in &self.secrets {
            let Some(value) = self.store.get(&rule.name).await else {
                tracing::warn!(skill = %self.skill, secret = %rule.name, "secret not available; sending without it");
                continue;
            };
            let text = rule.format.replacen("{}", value.expose(), 1);
            let (Ok(header), Ok(mut header_value)) = (
                http::HeaderName::from_bytes(rule.header.as_bytes()),
                http::HeaderValue::from_str(&text),
            ) else {
                tracing::warn!(skill = %self.skill, secret = %rule.name, "secret cannot be sent in a header");
                continue;
            };
            header_value.set_sensitive(true);
            out.push(ResolvedSecret {
                host: rule.host.to_ascii_lowercase(),
                header,
                value: header_value,
                raw: value.expose().to_owned(),
            });
        }
        out
    }

    /// Checks and sends one request of the skill, following granted redirects.
    async fn send(
        &self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<RequestOptions>,
        user: &str,
    ) -> Result<http::Response<wasmtime_wasi_http::WasiBody>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;
        self.check(&url)?;
        if !self.rate.take(user) {
            // The turn's span names the user.
            tracing::warn!(skill = %self.skill, "HTTP rate limit reached");
            return Err(HttpError::ConnectionLimitReached);
        }
        let body = collect_body(body, MAX_REQUEST_BYTES).await?;
        let secrets = self.resolve_secrets().await;
        let timeout = options
            .and_then(|o| o.first_byte_timeout.or(o.connect_timeout))
            .unwrap_or(DEFAULT_TIMEOUT);
        let first_host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let mut method = parts.method;
        let mut body = Some(body);
        let mut secret_sent = false;
        for hop in 0..=MAX_REDIRECTS {
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            let mut headers = parts.headers.clone();
            headers.remove(http::header::HOST);
            for secret in secrets.iter().filter(|s| s.host == host) {
                headers.insert(secret.header.clone(), secret.value.clone());
                secret_sent = true;
            }
            let target = self.endpoint_for(&url);
            let started = Instant::now();
            let mut request = self
                .client
                .request(method.clone(), target.clone())
                .headers(headers)
                .timeout(timeout);
            if let Some(bytes) = body.clone() {
                request = request.body(bytes);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.transport_error(&e, &secrets))?;
            tracing::info!(
                skill = %self.skill, method = %method, url = %url, status = response.status().as_u16(),
                ms = started.elapsed().as_millis() as u64, "skill HTTP request"
            );
            if response.status().is_redirection() && hop < MAX_REDIRECTS {
                if let Some(next) = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| target.join(l).ok())
                {
                    let next = self.guest_facing(next);
                    self.check(&next)?;
                    if secret_sent
                        && !next
                            .host_str()
                            .is_some_and(|h| h.eq_ignore_ascii_case(&first_host))
                    {
                        tracing::warn!(skill = %self.skill, to = %next, "redirect to another host after a secret was added: refused");
                        return Err(HttpError::HttpRequestDenied);
                    }
                    if response.status() == http::StatusCode::SEE_OTHER
                        || (method == http::Method::POST
                            && matches!(response.status().as_u16(), 301 | 302))
                    {
                        method = http::Method::GET;
                        body = None;
                    }
                    url = next;
                    continue;
                }
            }
            return self.to_wasi_response(response, &secrets).await;
        }
        Err(HttpError::LoopDetected)
    }

    fn check(&self, url: &reqwest::Url) -> Result<(), HttpError> {
        if !self.rules.iter().any(|rule| rule.allows(url)) {
            tracing::warn!(skill = %self.skill, %url, "HTTP request outside the skill's grant: refused");
            return Err(HttpError::HttpRequestDenied);
        }
        // A literal address never reaches the resolver: check it here. A rule naming the
        // address itself is the operator granting it explicitly.
        if self.endpoint_index(url).is_none() {
            if let Some(ip) = literal_ip(url) {
                let named = self
                    .rules
                    .iter()
                    .any(|r| r.allows(url) && literal_ip_of(&r.host) == Some(ip));
                if is_internal(ip) && !named {
                    tracing::warn!(skill = %self.skill, %url, "HTTP request to an internal address: refused");
                    return Err(HttpError::DestinationIpProhibited);
                }
            }
        }
        Ok(())
    }

    fn endpoint_index(&self, url: &reqwest::Url) -> Option<usize> {
        self.endpoints
            .iter()
            .position(|(origin, _)| origin.same_origin(url))
    }

    /// Where a guest-facing URL is really sent.
    fn endpoint_for(&self, url: &reqwest::Url) -> reqwest::Url {
        let Some(i) = self.endpoint_index(url) else {
            return url.clone();
        };
        let target = &self.endpoints[i].1;
        let mut real = target.clone();
        let prefix = target.path().trim_end_matches('/');
        real.set_path(&format!("{prefix}{}", url.path()));
        real.set_query(url.query());
        real
    }

    /// The inverse of [`Self::endpoint_for`], for redirect locations.
    fn guest_facing(&self, real: reqwest::Url) -> reqwest::Url {
        for (origin, target) in &self.endpoints {
            let prefix = target.path().trim_end_matches('/');
            if real.scheme() == target.scheme()
                && real.host_str() == target.host_str()
                && real.port_or_known_default() == target.port_or_known_default()
            {
                if let Some(rest) = real.path().strip_prefix(prefix) {
                    let port = if Some(origin.port) == default_port(&origin.scheme) {
                        String::new()
                    } else {
                        format!(":{}", origin.port)
                    };
                    if let Ok(mut url) = reqwest::Url::parse(&format!(
                        "{}://{}{port}{rest}",
                        origin.scheme, origin.host
                    )) {
                        url.set_query(real.query());
                        return url;
                    }
                }
            }
        }
        real
    }

    fn transport_error(&self, e: &reqwest::Error, secrets: &[ResolvedSecret]) -> HttpError {
        tracing::warn!(skill = %self.skill, error = %e, "skill HTTP request failed");
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut internal = false;
        while let Some(err) = source {
            internal |= err.downcast_ref::<InternalAddress>().is_some();
            source = err.source();
        }
        if internal {
            HttpError::DestinationIpProhibited
        } else if e.is_timeout() {
            HttpError::ConnectionTimeout
        } else if e.is_connect() {
            HttpError::ConnectionRefused
        } else {
            HttpError::InternalError(Some(redact(&e.to_string(), secrets)))
        }
    }

    async fn to_wasi_response(
        &self,
        response: reqwest::Response,
        secrets: &[ResolvedSecret],
    ) -> Result<http::Response<wasmtime_wasi_http::WasiBody>, HttpError> {
        let status = response.status();
        let mut headers = http::HeaderMap::new();
        for (name, value) in response.headers() {
            // The body is handed over whole and decoded: framing headers no longer apply.
            if matches!(
                name.as_str(),
                "transfer-encoding" | "content-length" | "connection"
            ) {
                continue;
            }
            // A server that reflects a secret as a header *name* must not hand it over either;
            // names are lower-cased on the wire, so compare without case.
            let reflected = secrets.iter().any(|secret| {
                !secret.raw.is_empty()
                    && name
                        .as_str()
                        .contains(secret.raw.to_ascii_lowercase().as_str())
            });
            if reflected {
                tracing::warn!(skill = %self.skill, "a response header named after a secret was dropped");
                continue;
            }
            let text = String::from_utf8_lossy(value.as_bytes());
            let clean = redact(&text, secrets);
            if let Ok(value) = http::HeaderValue::from_str(&clean) {
                headers.append(name.clone(), value);
            }
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e, secrets))?
        {
            if body.len() + chunk.len() > self.max_response {
                tracing::warn!(skill = %self.skill, cap = self.max_response, "HTTP response larger than the cap: refused");
                return Err(HttpError::HttpResponseBodySize(Some(
                    self.max_response as u64,
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let body = redact_bytes(body, secrets);
        let mut out = http::Response::new(
            Full::new(Bytes::from(body))
                .map_err(|never: std::convert::Infallible| match never {})
                .boxed_unsync(),
        );
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// `text` with every secret value replaced.
fn redact(text: &str, secrets: &[ResolvedSecret]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if !secret.raw.is_empty() {
            out = out.replace(&secret.raw, crate::redact::REDACTED);
        }
    }
    out
}

/// A body with every secret value replaced, text or binary.
fn redact_bytes(body: Vec<u8>, secrets: &[ResolvedSecret]) -> Vec<u8> {
    if secrets.is_empty() {
        return body;
    }
    match String::from_utf8(body) {
        Ok(text) => redact(&text, secrets).into_bytes(),
        Err(e) => {
            let mut bytes = e.into_bytes();
            for secret in secrets {
                let needle = secret.raw.as_bytes();
                if needle.is_empty() {
                    continue;
                }
                let mut i = 0;
                while i + needle.len() <= bytes.len() {
                    if &bytes[i..i + needle.len()] == needle {
                        bytes.splice(i..i + needle.len(), crate::redact::REDACTED.bytes());
                        i += crate::redact::REDACTED.len();
                    } else {
                        i += 1;
                    }
                }
            }
            bytes
        }
    }
}

/// Whether `path` hides a separator or a dot segment behind percent-encoding (`%2f`, `%5c`,
/// `%2e`): the URL parser resolves `/a/../b` but not `/a/..%2fb`, which a server may decode and
/// route outside the granted prefix. Such a path never matches a path grant.
fn hides_separators(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["%2f", "%5c", "%2e"]
        .iter()
        .any(|code| lower.contains(code))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

fn literal_ip_of(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Collects a request body up to a cap.
async fn collect_body(body: wasmtime_wasi_http::WasiBody, cap: usize) -> Result<Bytes, HttpError> {
    match http_body_util::Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(HttpError::HttpRequestBodySize(Some(cap as u64))),
    }
}

/// The resolver of a skill's client: system DNS, then internal addresses removed unless the
/// name is an operator-configured endpoint.
struct CheckedResolver {
    explicit: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to internal addresses, which skills may not reach")]
struct InternalAddress(String);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let explicit = self.explicit.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| explicit || !is_internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    Box::new(InternalAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A fixed one-minute window.
struct RateLimit {
    per_user: u32,
    total: u32,
    windows: Mutex<RateWindows>,
}

/// Requests counted in the current minute, per user and in all.
struct RateWindows {
    started: Instant,
    total: u32,
    users: HashMap<String, u32>,
}

impl RateLimit {
    fn new(per_user: u32, total: u32) -> Self {
        Self {
            per_user,
            total,
            windows: Mutex::new(RateWindows {
                started: Instant::now(),
                total: 0,
                users: HashMap::new(),
            }),
        }
    }

    /// Counts one request of `user`, or refuses it when the user's or the skill's minute is
    /// used up; one user cannot use up a skill for everyone.
    fn take(&self, user: &str) -> bool {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.started.elapsed() >= Duration::from_secs(60) {
            w.started = Instant::now();
            w.total = 0;
            w.users.clear();
        }
        let used = w.users.get(user).copied().unwrap_or(0);
        if used >= self.per_user || w.total >= self.total {
            return false;
        }
        w.users.insert(user.to_owned(), used + 1);
        w.total += 1;
        true
    }
}

/// The `wasi:http` hooks of one call: requests go through the skill's policy, or are refused
/// when it has none.
#[derive(Default)]
pub(crate) struct HttpHooks {
    pub(crate) policy: Option<Arc<HttpPolicy>>,
    /// Whose call it is, for the per-user rate limit (`-` for none).
    pub(crate) user: String,
}

type ResponseFuture = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<
            dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send,
        >,
    ) -> ResponseFuture {
        let (policy, user) = (self.policy.clone(), self.user.clone());
        Box::new(async move {
            let Some(policy) = policy else {
                tracing::warn!(uri = %request.uri(), "HTTP request from a skill without an HTTP grant: refused");
                return Err(HttpError::HttpRequestDenied);
            };
            let response = policy.send(request, options, &user).await?;
            let done: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_scheme_host_port_and_whole_path_segments() {
        let rule = HttpRule::parse("https://API.example.com/v1").unwrap();
        let ok = |u: &str| rule.allows(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://api.example.com/v1"));
        assert!(ok("https://api.example.com:443/v1/search?q=1"));
        assert!(!ok("https://api.example.com/v10"));
        assert!(!ok("http://api.example.com/v1"));
        assert!(!ok("https://api.example.com:8443/v1"));
        assert!(!ok("https://api.example.com.evil.net/v1"));
        assert!(!ok("https://evil.net/v1"));
        assert_eq!(rule.to_string(), "https://api.example.com/v1");
        assert!(HttpRule::parse("ftp://x").is_err());
        assert!(HttpRule::parse("https://user:pw@x").is_err());
        assert!(HttpRule::parse("https://x/?q").is_err());
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
