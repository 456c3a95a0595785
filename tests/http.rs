//! The HTTP capability through the real runtime: a hostile probe component tries what a
//! malicious skill would, against a loopback server that records what reaches it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use molten::secrets::LocalSecrets;
use molten::secrets::Secret;
use molten::skills::{Grants, HttpRule, InvokeError, SkillGrant};
use serde_json::{json, Value};

use crate::support::{built, install, temp_dir, Host};

const SECRET: &str = "s3cr3t-value-for-the-echo-test";

/// Request paths and headers a server received.
type Seen = Arc<Mutex<Vec<(String, HeaderMap)>>>;

/// A server that records request paths and headers and answers per path.
async fn server() -> (SocketAddr, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .fallback(
            |State(seen): State<Seen>, uri: Uri, headers: HeaderMap| async move {
                seen.lock()
                    .unwrap()
                    .push((uri.to_string(), headers.clone()));
                let reply: Response = match uri.path() {
                    "/echo" => {
                        let h: BTreeMap<String, String> = headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect();
                        (
                            [(
                                "x-echo-key",
                                headers
                                    .get("x-api-key")
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default(),
                            )],
                            axum::Json(json!({ "headers": h })),
                        )
                            .into_response()
                    }
                    // Reflects the key as a header name, and as the name of a JSON field.
                    "/reflect-name" => {
                        let key = headers
                            .get("x-api-key")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        let mut response = "ok".into_response();
                        response.headers_mut().insert(
                            axum::http::HeaderName::from_bytes(key.as_bytes()).unwrap(),
                            axum::http::HeaderValue::from_static("1"),
                        );
                        response
                    }
                    "/to-metadata" => {
                        Redirect::temporary("http://169.254.169.254/latest/meta-data/")
                            .into_response()
                    }
                    "/to-localhost" => {
                        let port = headers["host"]
                            .to_str()
                            .unwrap()
                            .rsplit(':')
                            .next()
                            .unwrap()
                            .to_owned();
                        Redirect::temporary(&format!("http://localhost:{port}/echo"))
                            .into_response()
                    }
                    "/to-echo" => Redirect::temporary("/echo").into_response(),
                    "/big" => "x".repeat(2 << 20).into_response(),
                    _ => "ok".into_response(),
                };
                reply
            },
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// The request paths `seen` so far.
fn paths(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect()
}

/// The probe, asking for `asked`, with a secret for 127.0.0.1, granted `granted`.
async fn probe(asked: &[String], granted: SkillGrant) -> Host {
    let dir = temp_dir();
    let skills = dir.path().join("skills");
    let list = asked
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    install(
        &skills,
        "probe",
        &std::fs::read(built("test-skills", "probe.wasm")).unwrap(),
        &format!(
            "name = \"probe\"\ndescription = \"test fixture\"\n[capabilities]\nhttp = [{list}]\n\
             [[capabilities.secrets]]\nname = \"echo-key\"\nhost = \"127.0.0.1\"\nheader = \"x-api-key\"\n"
        ),
    );
    let mut secrets = BTreeMap::new();
    secrets.insert("echo-key".to_owned(), Secret::new(SECRET));
    let mut http = BTreeMap::new();
    http.insert("probe".to_owned(), granted);
    let grants = Grants {
        http,
        secrets: Arc::new(LocalSecrets::new(secrets, Arc::new(|_| None))),
    };
    let host = Host::load_granted(dir, &[skills], &grants).await;
    assert!(
        host.registry.errors().is_empty(),
        "{:?}",
        host.registry.errors()
    );
    host
}

/// `rules`, with the probe's secret bound to it by the operator.
fn grant(rules: &[&str]) -> SkillGrant {
    SkillGrant {
        http: rules.iter().map(|r| HttpRule::parse(r).unwrap()).collect(),
        requests_per_minute: 60,
        max_response_bytes: 1 << 20,
        secrets: ["echo-key".to_owned()].into(),
        ..SkillGrant::default()
    }
}

async fn fetch(host: &Host, url: &str) -> Result<Value, String> {
    match host
        .call("probe", "u", json!({"mode": "fetch", "url": url}))
        .await
    {
        Ok(out) => Ok(serde_json::from_str(&out).unwrap()),
        Err(InvokeError::Denied(m)) => Err(m),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_grant_nothing_leaves() {
    let (addr, seen) = server().await;
    let asked = vec![format!("http://{addr}")];
    let host = probe(&asked, SkillGrant::default()).await;
    let refused = fetch(&host, &format!("http://{addr}/echo"))
        .await
        .unwrap_err();
    assert!(refused.contains("not granted"), "{refused}");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn granted_requests_get_the_secret_and_never_see_it() {
    let (addr, seen) = server().await;
    let origin = format!("http://{addr}");
    let host = probe(std::slice::from_ref(&origin), grant(&[&origin])).await;

    // The guest sets its own x-api-key; the host replaces it with the secret.
    let out = host
        .call(
            "probe",
            "u",
            json!({"mode": "fetch", "url": format!("{origin}/echo"), "headers": [["x-api-key", "guess"]]}),
        )
        .await
        .unwrap();
    let seen_key = seen.lock().unwrap()[0].1["x-api-key"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(seen_key, SECRET, "the server received the secret");
    assert!(
        !out.contains(SECRET),
        "the reflected secret is redacted: {out}"
    );
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(
        out["body"].as_str().unwrap().matches("[redacted]").count(),
        1,
        "{out}"
    );
    let echoed = out["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-echo-key")
        .unwrap();
    assert_eq!(echoed[1], "[redacted]");

    // Nor does the environment hold it.
    let env = host
        .call("probe", "u", json!({"mode": "env"}))
        .await
        .unwrap();
    assert!(!env.contains(SECRET) && env.contains("env=[]"), "{env}");

    // A same-origin redirect is followed.
    let followed = fetch(&host, &format!("{origin}/to-echo")).await.unwrap();
    assert_eq!(followed["status"], 200);
    assert!(followed["body"].as_str().unwrap().contains("[redacted]"));
}

/// A skill whose manifest names another skill's secret, for a host the operator granted it,
/// does not get it: only the operator binds secrets to skills.
#[tokio::test(flavor = "multi_thread")]
async fn confused_deputy_a_manifest_cannot_claim_an_unbound_secret() {
    let (addr, seen) = server().await;
    let origin = format!("http://{addr}");
    let mut unbound = grant(&[&origin]);
    unbound.secrets.clear();
    let host = probe(std::slice::from_ref(&origin), unbound).await;
    let out = fetch(&host, &format!("{origin}/echo")).await.unwrap();
    assert_eq!(out["status"], 200);
    assert!(
        seen.lock().unwrap()[0].1.get("x-api-key").is_none(),
        "the secret was not sent"
    );
    let skill = host.registry.get("probe").unwrap();
    assert_eq!(skill.unbound_secrets(), ["echo-key"]);
    assert!(skill.missing_secrets().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_reflected_as_a_header_name_is_dropped() {
    let (addr, seen) = server().await;
    let origin = format!("http://{addr}");
    let host = probe(std::slice::from_ref(&origin), grant(&[&origin])).await;
    let out = fetch(&host, &format!("{origin}/reflect-name"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap()[0].1["x-api-key"], SECRET);
    assert_eq!(out["status"], 200);
    assert!(!out.to_string().contains(SECRET), "{out}");
}

/// One user's rate limit was everyone's: the limit was per skill, so one user could use up
/// web_search for all. It is per user now, under a ceiling for the skill.
#[tokio::test(flavor = "multi_thread")]
async fn one_users_rate_limit_is_not_everyones() {
    let (addr, _seen) = server().await;
    let origin = format!("http://{addr}");
    let mut g = grant(&[&origin]);
    g.requests_per_minute = 2;
    g.requests_per_minute_total = 3;
    let host = probe(std::slice::from_ref(&origin), g).await;
    let fetch_as = |user: &'static str| {
        let (host, url) = (&host, format!("{origin}/small"));
        async move {
            match host
                .call("probe", user, json!({"mode": "fetch", "url": url}))
                .await
            {
                Ok(_) => Ok(()),
                Err(InvokeError::Denied(m)) => Err(m),
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
    };
    fetch_as("mallory").await.unwrap();
    fetch_as("mallory").await.unwrap();
    let limited = fetch_as("mallory").await.unwrap_err();
    assert!(limited.contains("rate limit"), "{limited}");
    fetch_as("alice")
        .await
        .expect("another user is not limited by mallory");
    let ceiling = fetch_as("bob").await.unwrap_err();
    assert!(
        ceiling.contains("rate limit"),
        "the skill's ceiling: {ceiling}"
    );
}

/// Encoded path segments: a path grant matched the raw path, so `/allowed/..%2fecho` went to a
/// server that may decode it and route to `/echo`.
#[tokio::test(flavor = "multi_thread")]
async fn encoded_path_segments_do_not_leave_a_path_grant() {
    let (addr, seen) = server().await;
    let allowed = format!("http://{addr}/allowed");
    let host = probe(std::slice::from_ref(&allowed), grant(&[&allowed])).await;
    for path in [
        "..%2fecho",
        "%2e%2e/echo",
        "%2E%2E%2Fecho",
        "..%5Cecho",
        "x/../../echo",
    ] {
        let refused = fetch(&host, &format!("{allowed}/{path}"))
            .await
            .unwrap_err();
        assert!(refused.contains("not granted"), "{path}: {refused}");
    }
    fetch(&host, &format!("{allowed}/x%20y")).await.unwrap();
    let paths = paths(&seen);
    assert_eq!(paths, ["/allowed/x%20y"], "nothing else reached the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_destinations_are_refused() {
    let (addr, seen) = server().await;
    let origin = format!("http://{addr}");
    let localhost = format!("http://localhost:{}", addr.port());
    let asked = vec![
        origin.clone(),
        localhost.clone(),
        "http://169.254.169.254".to_owned(),
    ];
    // The operator grants the loopback address by name, and localhost, but not the metadata IP.
    let host = probe(&asked, grant(&[&origin, &localhost])).await;

    for url in [
        "https://example.com/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://127.0.0.1:{}/echo", addr.port() + 1),
        format!("http://[::1]:{}/echo", addr.port()),
    ] {
        let refused = fetch(&host, &url).await.unwrap_err();
        assert!(refused.contains("not granted"), "{url}: {refused}");
    }
    // Granted, but the name resolves to loopback, which no rule names as an address.
    let refused = fetch(&host, &format!("{localhost}/echo"))
        .await
        .unwrap_err();
    assert!(refused.contains("internal"), "{refused}");
    // Redirects out of the grant or to an internal name are refused too.
    let refused = fetch(&host, &format!("{origin}/to-metadata"))
        .await
        .unwrap_err();
    assert!(refused.contains("not granted"), "{refused}");
    let refused = fetch(&host, &format!("{origin}/to-localhost"))
        .await
        .unwrap_err();
    assert!(refused.contains("refused"), "{refused}");
    let paths = paths(&seen);
    assert_eq!(
        paths,
        ["/to-metadata", "/to-localhost"],
        "nothing else reached a server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn response_size_and_rate_are_capped() {
    let (addr, _seen) = server().await;
    let origin = format!("http://{addr}");
    let mut g = grant(&[&origin]);
    g.max_response_bytes = 64 << 10;
    g.requests_per_minute = 2;
    let host = probe(std::slice::from_ref(&origin), g).await;
    let refused = fetch(&host, &format!("{origin}/big")).await.unwrap_err();
    assert!(refused.contains("larger"), "{refused}");
    fetch(&host, &format!("{origin}/small")).await.unwrap();
    let limited = fetch(&host, &format!("{origin}/small")).await.unwrap_err();
    assert!(limited.contains("rate limit"), "{limited}");
}
