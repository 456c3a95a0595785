//! What a new user meets first: the banner of `molten serve`, routes that answer while the
//! skills compile, one JSON shape for every refusal, log files without colour codes, and a
//! Telegram route that is closed without its secret token.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fakes::{config, Fake, Molten, TELEGRAM_SECRET};
use crate::support::{root, temp_dir};

#[tokio::test(flavor = "multi_thread")]
async fn the_banner_says_where_it_listens_and_what_is_on_and_missing() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, "[skills.bash]\nenabled = false\n"), &[]).await;
    let log = molten.log();
    let banner = &log[log.find("molten 0.").expect("a banner")..];
    for expected in [
        format!("listening on {} (role All)", molten.url),
        "channels: telegram on POST /webhook/telegram, slack on POST /webhook/slack, discord on POST /webhook/discord".to_owned(),
        "skills: 4 loaded (calendar_create, email_send, text_editor, web_search); plugins from".to_owned(),
        "skill bash disabled by [skills.bash] enabled = false".to_owned(),
        format!("model: fake-model at {}/v1", fake.url()),
        format!("state: SQLite in {}", molten.data.display()),
    ] {
        assert!(banner.contains(&expected), "{expected}\n{banner}");
    }
    assert!(
        !log.contains('\u{1b}'),
        "a log file has no colour codes:\n{log}"
    );

    // No model, and only Telegram (the sections after it cut off).
    let full = config(&fake, "").replace("base_url = ", "# base_url = ");
    let bare = &full[..full.find("[slack]").unwrap()];
    let molten = Molten::start(bare, &[]).await;
    let log = molten.log();
    assert!(
        log.contains("model: none configured: set MOLTEN_LLM_BASE_URL and MOLTEN_LLM_MODEL"),
        "{log}"
    );
    assert!(log.contains("slack off, discord off"), "{log}");
}

/// Spawns `molten serve` as a new user would (no RUST_LOG), logging to `log`.
fn spawn(
    data: &std::path::Path,
    config: &str,
    port: u16,
    log: &std::path::Path,
) -> std::process::Child {
    let path = data.join("molten.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_molten"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .arg("--skills-dir")
        .arg(root().join("target").join("skills"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_answers_at_once_while_a_first_start_compiles_the_skills() {
    let fake = Fake::start().await;
    // A fresh data directory and no shared compile cache: every skill is compiled.
    let data = temp_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = data.path().join("molten.log");
    let started = Instant::now();
    let mut child = spawn(data.path(), &config(&fake, ""), port, &log);
    let client = molten::service::http_client().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let healthy = loop {
        if let Ok(r) = client.get(format!("{url}/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let ready: Value = client
        .get(format!("{url}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    eprintln!("/healthz answered {healthy:?} after start; /ready then: {ready}");
    let skills = ready["checks"]["skills"].as_str().unwrap();
    assert!(
        skills.starts_with("compiling ") && skills.ends_with(" of 5"),
        "the routes answer before the skills are compiled: {ready}"
    );
    assert_eq!(ready["ready"], false);
    // A webhook is accepted while compiling; it is answered once the worker starts.
    let accepted = crate::fakes::post_telegram(&url, 1, 5, "hello")
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);

    let ready = loop {
        let r = client.get(format!("{url}/ready")).send().await.unwrap();
        if r.status() == 200 {
            break r.json::<Value>().await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(120), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["checks"]["skills"], "ok");
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap();
    // At the default level: one line per compiled skill, the banner, nothing else.
    assert_eq!(log.matches("loading skills ").count(), 5, "{log}");
    assert!(log.contains("loading skills 5/5: "), "{log}");
    assert!(log.contains(" listening on http://"), "{log}");
    assert!(
        !log.contains("INFO") && !log.contains("DEBUG"),
        "quiet:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "no colour codes in a file:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_is_json_and_counted() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, ""), &["--role", "ingress"]).await;
    let huge = vec![b'x'; 70_000];
    let too_large = molten
        .post(
            "/webhook/telegram",
            &[(
                "x-telegram-bot-api-secret-token",
                TELEGRAM_SECRET.to_owned(),
            )],
            huge,
        )
        .await;
    let client = molten::service::http_client().unwrap();
    let not_found = molten.get("/nope", None).await;
    let wrong_method = client
        .delete(format!("{}/webhook/telegram", molten.url))
        .send()
        .await
        .unwrap();
    let wrong_token = molten
        .post(
            "/webhook/telegram",
            &[("x-telegram-bot-api-secret-token", "guess".to_owned())],
            "{}",
        )
        .await;
    let mut refusals = Vec::new();
    for (response, status, expected) in [
        (
            too_large,
            413,
            "larger than the 65536 bytes allowed (server.max_body_bytes)",
        ),
        (not_found, 404, "no route /nope"),
        (
            wrong_method,
            405,
            "DELETE is not allowed on /webhook/telegram",
        ),
        (wrong_token, 401, "secret token does not match"),
    ] {
        assert_eq!(response.status(), status);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap().to_owned();
        assert!(error.contains(expected), "{status}: {error}");
        refusals.push(error);
    }
    let status = molten.admin("/admin/status").await;
    assert_eq!(status["counters"]["rejected"], 4, "{status} {refusals:?}");
}

#[test]
fn telegram_without_a_secret_token_does_not_start_unless_allowed() {
    let data = temp_dir();
    let open = "[telegram]\nbot_token = \"1:x\"\n";
    let path = data.path().join("molten.toml");
    std::fs::write(&path, open).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_molten"))
        .args(["--config", path.to_str().unwrap(), "--data-dir"])
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("telegram.secret_token") && stderr.contains("setWebhook"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_can_accept_unauthenticated_telegram_webhooks_explicitly() {
    let fake = Fake::start().await;
    let settings = config(&fake, "").replace(
        &format!("secret_token = \"{TELEGRAM_SECRET}\""),
        "allow_unauthenticated = true",
    );
    let molten = Molten::start(&settings, &["--role", "ingress"]).await;
    assert!(molten
        .log()
        .contains("telegram.allow_unauthenticated is on"));
    let update = crate::fakes::telegram_update(3, 9, "hi").to_string();
    let accepted = molten
        .post(
            "/webhook/telegram",
            &[("content-type", "application/json".to_owned())],
            update,
        )
        .await;
    assert_eq!(accepted.status(), 200);
}

/// The JSON log lines of molten (with `extra` config) answering one message with a skill call,
/// and the line of that call.
async fn json_log_of_a_turn(extra: &str) -> (Vec<Value>, Value) {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, extra), &["--log-format", "json"]).await;
    fake.script_llm([
        crate::fakes::llm_tool(
            "j1",
            "text_editor",
            serde_json::json!({"command": "view", "path": "/tmp"}),
        ),
        crate::fakes::llm_text("ok"),
    ]);
    molten.telegram(1, 2, "hello").await;
    fake.wait_for("/sendMessage", 1, Duration::from_secs(30))
        .await;
    let log = molten.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let call = lines
        .iter()
        .find(|l| l["fields"]["message"] == "skill call")
        .expect("the skill call is logged")
        .clone();
    (lines, call)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_log_format_json_every_line_is_a_json_object() {
    let (lines, call) = json_log_of_a_turn("").await;
    assert!(lines.iter().any(|l| l["fields"]["message"]
        .as_str()
        .is_some_and(|m| m.contains(" listening on http://"))));
    assert!(lines.iter().all(|l| l["level"].is_string()));
    // A line logged during the turn names the message, the channel and the user.
    assert_eq!(call["span"]["name"], "turn", "{call}");
    assert_eq!(call["span"]["message"], "1");
    assert_eq!(call["span"]["channel"], "telegram");
    assert_eq!(call["span"]["user"], "telegram:2");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_hash_user_ids_log_lines_name_a_keyed_hash_of_the_user() {
    let (lines, call) =
        json_log_of_a_turn("[privacy]\nhash_user_ids = true\nsalt = \"pepper\"\n").await;
    let user = call["span"]["user"].as_str().unwrap().to_owned();
    assert!(
        user.len() == 18
            && user.starts_with("u-")
            && user[2..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{call}"
    );
    // The same user is the same hash on every line; the id itself is on none.
    for line in &lines {
        let text = line.to_string();
        assert!(!text.contains("telegram:2\""), "{text}");
        if let Some(u) = line["span"]["user"].as_str() {
            assert_eq!(u, user);
        }
    }
    // Another key, another hash: the hash cannot be recomputed without the salt.
    let (_, other) = json_log_of_a_turn("[privacy]\nhash_user_ids = true\nsalt = \"salt\"\n").await;
    assert_ne!(other["span"]["user"].as_str().unwrap(), user);
}

#[tokio::test(flavor = "multi_thread")]
async fn molten_health_is_the_container_health_check() {
    let fake = Fake::start().await;
    let molten = Molten::start(&config(&fake, ""), &[]).await;
    let listen = molten.url.trim_start_matches("http://").to_owned();
    let port = listen.rsplit(':').next().unwrap().to_owned();
    for args in [vec!["health"], vec!["health", "--ready"]] {
        // As the image sets it: every interface, which the check reaches on this machine.
        let out = molten
            .cli(&args)
            .env("MOLTEN_LISTEN", format!("0.0.0.0:{port}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(molten);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_molten"))
        .args(["health", "--listen", &listen])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("no molten answers at http://{listen}/healthz")),
        "{said}"
    );
}
