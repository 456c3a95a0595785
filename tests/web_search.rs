//! `web_search` end to end: the real component, the real host HTTP capability, a loopback
//! server speaking Tavily's request and response shapes (errors included), through
//! `molten skill run` and through the LLM loop of `molten serve`.

use std::time::Duration;

use serde_json::json;

use crate::fakes::*;
use crate::support::skill_run;

const KEY: &str = "tvly-test-key-0123456789abcdef";

/// The grant and endpoint mapping that send api.tavily.com to the fake.
/// The operator's grant sending the skill's Tavily requests to `fake`.
pub fn grant(fake: &Fake) -> String {
    format!(
        "\n[skills.web_search]\nhttp = [\"https://api.tavily.com\"]\n\
         endpoints = {{ \"https://api.tavily.com\" = \"{}\" }}\n",
        fake.url()
    )
}

fn run(config: &str, args: &str) -> (bool, String, String) {
    skill_run(
        config,
        "web_search",
        args,
        &[("MOLTEN_SECRET_TAVILY_API_KEY", KEY)],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn search_through_the_cli() {
    let fake = Fake::start().await;
    let config = grant(&fake);
    let args = r#"{"query": "molten rock", "max_results": 2, "topic": "news", "days": 3}"#;
    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || run(&config, args)
    })
    .await
    .unwrap();
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("Results for \"molten rock\":"),
        "{stdout}"
    );
    assert!(stdout.contains("1. molten rock - Wikipedia\n   https://en.wikipedia.org/wiki/Molten\n   Molten material is liquid. It flows."), "{stdout}");
    assert!(stdout.contains("published 2026-11-01"), "{stdout}");

    let sent = fake.requests("/search");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(sent[0].body["query"], "molten rock");
    assert_eq!(sent[0].body["max_results"], 2);
    assert_eq!(sent[0].body["topic"], "news");
    assert_eq!(sent[0].body["days"], 3);
    assert!(
        sent[0].body.get("api_key").is_none(),
        "the key travels in the header only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_errors_are_readable_and_bad_input_sends_nothing() {
    let fake = Fake::start().await;
    let config = grant(&fake);
    fake.script_api([
        tavily_error(401, "Unauthorized: missing or invalid API key."),
        tavily_error(429, "Too many requests"),
        tavily_error(400, "Query is invalid."),
    ]);
    let run_async = |args: &'static str| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || run(&config, args))
    };
    let (ok, _, err) = run_async(r#"{"query": "a"}"#).await.unwrap();
    assert!(
        !ok && err.contains("refused the API key") && err.contains("HTTP 401"),
        "{err}"
    );
    let (_, _, err) = run_async(r#"{"query": "b"}"#).await.unwrap();
    assert!(
        err.contains("rate limiting") && err.contains("429"),
        "{err}"
    );
    let (_, _, err) = run_async(r#"{"query": "c"}"#).await.unwrap();
    assert!(err.contains("Query is invalid."), "{err}");
    for bad in [
        r#"{"query": "  "}"#,
        r#"{"query": "x", "max_results": 50}"#,
        r#"{"q": "x"}"#,
    ] {
        let (ok, _, err) = run_async(bad).await.unwrap();
        assert!(!ok && err.contains("invalid input"), "{bad}: {err}");
    }
    assert_eq!(fake.requests("/search").len(), 3);

    // Without the operator's grant, the skill says so and nothing leaves.
    let (ok, _, err) = tokio::task::spawn_blocking(|| run("", r#"{"query": "d"}"#))
        .await
        .unwrap();
    assert!(!ok && err.contains("not granted"), "{err}");
    assert_eq!(fake.requests("/search").len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_searches_and_cites() {
    let fake = Fake::start().await;
    let mut config = config(&fake, &grant(&fake));
    config.push_str(&format!("\n[secrets]\n\"tavily-api-key\" = \"{KEY}\"\n"));
    let molten = Molten::start(&config, &[]).await;
    fake.script_llm([
        llm_tool("s1", "web_search", json!({"query": "what is molten rock"})),
        llm_text("Molten rock is liquid (https://en.wikipedia.org/wiki/Molten)."),
    ]);
    molten.telegram(1, 5, "what is molten rock?").await;
    let sent = fake
        .wait_for("/sendMessage", 1, Duration::from_secs(30))
        .await;
    assert_eq!(
        sent[0].body["text"],
        "Molten rock is liquid (https://en.wikipedia.org/wiki/Molten)."
    );
    let tools = fake.llm_requests()[0].body["tools"].clone();
    assert!(tools
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["function"]["name"] == "web_search"));
    let result = fake.llm_requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("https://en.wikipedia.org/wiki/Molten"),
        "{result}"
    );
    assert_eq!(
        fake.requests("/search")[0].headers["authorization"],
        format!("Bearer {KEY}")
    );
}
