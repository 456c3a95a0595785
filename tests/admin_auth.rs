//! Entra ID tokens on the admin routes, against a loopback issuer (OpenID configuration and
//! JWKS over HTTP) whose keys are made here: the valid token is let in, every forgery and
//! every token for someone else is refused with 401 and a reason in the log only, and a new
//! signing key is picked up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::fakes::{config, Fake, Molten};

const AUDIENCE: &str = "api://molten";
const ROLE: &str = "Molten.Admin";

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A P-256 signing key: its JWK (with `kid`) and the key that signs with it.
struct SigningKey {
    jwk: Value,
    encoding: EncodingKey,
    public: Vec<u8>,
}

fn signing_key(kid: &str) -> SigningKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public = pair.public_key_raw().to_vec();
    assert_eq!(public.len(), 65, "an uncompressed P-256 point");
    SigningKey {
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": base64url(&public[1..33]), "y": base64url(&public[33..]),
        }),
        encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        public,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// A loopback issuer serving `keys` as its JWKS; returns its issuer URL.
async fn issuer(keys: Arc<Mutex<Value>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/tenant/v2.0");
    let configuration = json!({ "issuer": issuer, "jwks_uri": format!("{base}/keys") });
    let app = Router::new()
        .route(
            "/tenant/v2.0/.well-known/openid-configuration",
            get(move || {
                let configuration = configuration.clone();
                async move { Json(configuration) }
            }),
        )
        .route(
            "/keys",
            get(move || {
                let keys = keys.lock().unwrap().clone();
                async move { Json(keys) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

/// A loopback issuer publishing `keys`, and a molten whose `[admin]` trusts it: the issuer
/// URL, the fakes and molten.
async fn molten_trusting(keys: Arc<Mutex<Value>>) -> (String, Fake, Molten) {
    let iss = issuer(keys).await;
    let fake = Fake::start().await;
    let settings = config(
        &fake,
        &format!("[admin]\nissuer = \"{iss}\"\naudience = \"{AUDIENCE}\"\nrole = \"{ROLE}\"\n"),
    );
    let molten = Molten::start(&settings, &[]).await;
    (iss, fake, molten)
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_tokens_open_the_admin_routes_and_nothing_else_does() {
    let first = signing_key("k1");
    let keys = Arc::new(Mutex::new(json!({ "keys": [first.jwk] })));
    let (iss, _fake, molten) = molten_trusting(keys.clone()).await;
    let claims = |change: &dyn Fn(&mut Value)| {
        let mut claims = json!({
            "iss": iss, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() - 10,
            "roles": [ROLE], "sub": "operator",
        });
        change(&mut claims);
        claims
    };
    let status = |token: String| {
        let molten = &molten;
        async move { molten.get("/admin/status", Some(&token)).await.status() }
    };

    assert_eq!(status(token(&first, "k1", &claims(&|_| {}))).await, 200);
    assert_eq!(
        molten
            .get("/metrics", Some(&token(&first, "k1", &claims(&|_| {}))))
            .await
            .status(),
        200
    );

    let stranger = signing_key("k1");
    let valid = token(&first, "k1", &claims(&|_| {}));
    let (head, rest) = valid.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut tampered = signature.to_owned().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let none_header = base64url(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("k1".into());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims(&|_| {}),
        &EncodingKey::from_secret(&first.public),
    )
    .unwrap();
    let refused = [
        ("alg none", format!("{none_header}.{payload}.")),
        ("HS256 keyed with the public key", hs256),
        (
            "tampered signature",
            format!("{head}.{payload}.{}", String::from_utf8(tampered).unwrap()),
        ),
        (
            "signed by another key",
            token(&stranger, "k1", &claims(&|_| {})),
        ),
        (
            "another tenant",
            token(
                &first,
                "k1",
                &claims(&|c| c["iss"] = json!("https://login.microsoftonline.com/other/v2.0")),
            ),
        ),
        (
            "another audience",
            token(&first, "k1", &claims(&|c| c["aud"] = json!("api://other"))),
        ),
        (
            "expired",
            token(&first, "k1", &claims(&|c| c["exp"] = json!(now() - 3600))),
        ),
        (
            "not yet valid",
            token(&first, "k1", &claims(&|c| c["nbf"] = json!(now() + 3600))),
        ),
        (
            "without the role",
            token(&first, "k1", &claims(&|c| c["roles"] = json!(["Reader"]))),
        ),
        ("an unknown key id", token(&first, "k9", &claims(&|_| {}))),
        ("not a JWT", "molten".to_owned()),
    ];
    for (what, token) in refused {
        let response = molten.get("/admin/status", Some(&token)).await;
        assert_eq!(response.status(), 401, "{what}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("send Authorization: Bearer") && !body.contains("token refused"),
            "{what}: the reason stays in the log: {body}"
        );
    }
    let log = molten.log();
    for reason in [
        "InvalidSignature",
        "ExpiredSignature",
        "ImmatureSignature",
        "InvalidIssuer",
        "InvalidAudience",
        "lacks the app role",
        "is not accepted",
    ] {
        assert!(log.contains(reason), "{reason} in the log:\n{log}");
    }

    // The issuer rotates to a new key: a token signed with it is let in once the keys are
    // fetched again (at most every 2 s, so a flood of made-up key ids cannot flood the issuer).
    let second = signing_key("k2");
    *keys.lock().unwrap() = json!({ "keys": [second.jwk] });
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(status(token(&second, "k2", &claims(&|_| {}))).await, 200);
    // The static token of one-machine setups still works beside it.
    assert_eq!(status(crate::fakes::ADMIN_TOKEN.to_owned()).await, 200);
}

/// An RSA signing key made with the openssl command: its JWK (with `kid`) and the key that
/// signs with it.
fn rsa_key(kid: &str) -> (Value, EncodingKey) {
    let dir = crate::support::temp_dir();
    let pem = dir.path().join("key.pem");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl (scripts/toolchain installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    openssl(&["genrsa", "-out", pem.to_str().unwrap(), "2048"]);
    let modulus = openssl(&["rsa", "-in", pem.to_str().unwrap(), "-noout", "-modulus"]);
    let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
    let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                     "n": base64url(&n), "e": "AQAB"});
    let encoding = EncodingKey::from_rsa_pem(&std::fs::read(&pem).unwrap()).unwrap();
    (jwk, encoding)
}

#[tokio::test(flavor = "multi_thread")]
async fn rs256_tokens_are_let_in_and_a_rotated_rsa_key_is_picked_up() {
    let (first, first_key) = rsa_key("r1");
    let keys = Arc::new(Mutex::new(json!({ "keys": [first] })));
    let (iss, _fake, molten) = molten_trusting(keys.clone()).await;
    let claims = json!({"iss": iss, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() - 10,
                        "roles": [ROLE], "sub": "operator"});
    let rs256 = |kid: &str, key: &EncodingKey| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    };
    let status = |token: String| {
        let molten = &molten;
        async move { molten.get("/admin/status", Some(&token)).await.status() }
    };
    assert_eq!(status(rs256("r1", &first_key)).await, 200);
    // Another RSA key under the same kid: refused.
    let (_, stranger) = rsa_key("r1");
    assert_eq!(status(rs256("r1", &stranger)).await, 401);
    // Rotation: the issuer publishes r2; a token signed with it gets in once keys are re-read.
    let (second, second_key) = rsa_key("r2");
    *keys.lock().unwrap() = json!({ "keys": [second] });
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(status(rs256("r2", &second_key)).await, 200);
}

/// A stand-in for the Azure CLI in a directory of its own (no machine that runs the tests has
/// `az`): `account get-access-token` for AUDIENCE prints `prints` as `--query accessToken
/// --output tsv` does; anything else fails as az does.
fn fake_az(prints: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("az");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$*\" = \"account get-access-token --resource {AUDIENCE} --query accessToken --output tsv\" ] \
             || {{ echo \"ERROR: unexpected arguments: $*\" >&2; exit 2; }}\n{prints}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn molten_admin_signs_in_with_the_azure_cli() {
    let key = signing_key("k1");
    let keys = Arc::new(Mutex::new(json!({ "keys": [key.jwk] })));
    let (iss, _fake, molten) = molten_trusting(keys).await;
    let valid = token(
        &key,
        "k1",
        &json!({"iss": iss, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() - 10,
                "roles": [ROLE], "sub": "operator"}),
    );
    let admin = |az: &tempfile::TempDir, args: &[&str]| {
        let output = molten
            .cli(&[&["admin", "status", "--url", &molten.url][..], args].concat())
            .env("PATH", az.path())
            .env_remove("MOLTEN_ADMIN_BEARER")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), said)
    };

    // The audience from the config's [admin], or given; only the CLI's token is sent (the
    // server's static token is never used with --az).
    let signed_in = fake_az(&format!("echo {valid}"));
    for args in [&["--az"][..], &["--az", AUDIENCE]] {
        let (ok, said) = admin(&signed_in, args);
        assert!(ok && said.contains("queue depth"), "{args:?}: {said}");
    }
    let (ok, said) = admin(&fake_az("echo not-a-token"), &["--az"]);
    assert!(!ok && said.contains("401"), "{said}");

    let signed_out = fake_az("echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1");
    let (ok, said) = admin(&signed_out, &["--az"]);
    assert!(
        !ok && said.contains("Please run 'az login'") && said.contains("admin role"),
        "{said}"
    );
    let nowhere = tempfile::tempdir().unwrap();
    let (ok, said) = admin(&nowhere, &["--az"]);
    assert!(!ok && said.contains("not installed"), "{said}");
    let (ok, said) = admin(&signed_in, &["--az", "--token", "x"]);
    assert!(!ok && said.contains("cannot be used with"), "{said}");
}
