//! `molten admin ...`: what a running molten's admin routes say, for a terminal (`--json` for
//! scripts), with the URL and token from the config.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use molten::config::Config;
use serde_json::Value;

/// What to ask a running molten.
#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Version, uptime, queue depth, counters, token and cost totals.
    Status(AdminArgs),
    /// Each live skill with its effective grant, and the disabled and refused ones.
    Skills(AdminArgs),
    /// Messages that never got an answer.
    Poison(AdminArgs),
}

/// Where the server is, and how to print.
#[derive(clap::Args)]
pub(crate) struct AdminArgs {
    /// The server [default: http:// + server.listen of the config]
    #[arg(long)]
    url: Option<String>,
    /// Print the server's JSON as it is.
    #[arg(long)]
    json: bool,
}

/// Runs an admin command against the server the config describes.
pub(crate) async fn run(config: &Config, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let (path, args) = match &command {
        AdminCommand::Status(args) => ("/admin/status", args),
        AdminCommand::Skills(args) => ("/admin/skills", args),
        AdminCommand::Poison(args) => ("/admin/poison", args),
    };
    let token = config.server.admin_token.as_ref().context(
        "server.admin_token is not set in the config (or MOLTEN_ADMIN_TOKEN): the admin routes need it",
    )?;
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.listen));
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let response = molten::service::http_client()?
        .get(&url)
        .bearer_auth(token.expose())
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is molten serve running there?"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        anyhow::bail!(
            "{url}: {status}: {}",
            body["error"].as_str().unwrap_or("refused")
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        match command {
            AdminCommand::Status(_) => status_text(&body),
            AdminCommand::Skills(_) => skills_text(&body),
            AdminCommand::Poison(_) => poison_text(&body),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `key: value` lines of a flat JSON object, in its order.
fn pairs(value: &Value, indent: &str) -> String {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| format!("{indent}{k}: {}\n", plain(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn status_text(body: &Value) -> String {
    let mut out = format!(
        "molten {}, up {} s, queue depth {}, model {}\nskills: {}\n",
        plain(&body["version"]),
        plain(&body["uptime_secs"]),
        plain(&body["queue_depth"]),
        plain(&body["llm"]),
        plain(&body["skills"]),
    );
    out.push_str("counters:\n");
    out.push_str(&pairs(&body["counters"], "  "));
    out.push_str("totals:\n");
    out.push_str(&pairs(&body["totals"], "  "));
    out
}

fn skills_text(body: &Value) -> String {
    let mut out = String::new();
    for skill in body["skills"].as_array().into_iter().flatten() {
        let origin = &skill["origin"];
        let from = match origin["kind"].as_str() {
            Some("plugin") => format!(
                "plugin {} ({})",
                plain(&origin["digest"]),
                origin["signed_by"]
                    .as_str()
                    .map_or("unsigned".to_owned(), |k| format!("signed by {k}"))
            ),
            _ => "built in".to_owned(),
        };
        let limits = &skill["limits"];
        out.push_str(&format!(
            "{:<20} {from}\n  fuel {}, timeout {} ms, memory {} MiB, output {} KiB; filesystem {}; http {}\n",
            plain(&skill["name"]),
            plain(&limits["fuel"]),
            plain(&limits["timeout_ms"]),
            plain(&limits["memory_mb"]),
            plain(&limits["output_kb"]),
            plain(&skill["filesystem"]),
            if skill["http"].as_array().is_some_and(|h| !h.is_empty()) {
                plain(&skill["http"])
            } else {
                "none".to_owned()
            },
        ));
    }
    for name in body["disabled"].as_array().into_iter().flatten() {
        out.push_str(&format!("{:<20} disabled\n", plain(name)));
    }
    for reason in body["refused"].as_array().into_iter().flatten() {
        out.push_str(&format!("refused: {}\n", plain(reason)));
    }
    out
}

fn poison_text(body: &Value) -> String {
    let messages = body["poisoned"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        return "no poisoned messages\n".to_owned();
    }
    messages
        .iter()
        .map(|m| {
            format!(
                "{}: {}\n  {}\n",
                plain(&m["id"]),
                plain(&m["reason"]),
                m["message"]
            )
        })
        .collect()
}
