//! `molten admin ...`: what a running molten's admin routes say, for a terminal (`--json` for
//! scripts), with the URL and token from the config, or an Entra ID token from the Azure CLI.

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
    /// Tokens and cost per day and per user, and executions per skill.
    Usage {
        #[command(flatten)]
        args: AdminArgs,
        /// Only this user (channel:id, e.g. telegram:42).
        #[arg(long)]
        user: Option<String>,
        /// Only this skill (in the per-skill figures).
        #[arg(long)]
        skill: Option<String>,
        /// The first day, YYYY-MM-DD [default: 29 days before --until].
        #[arg(long)]
        since: Option<String>,
        /// The last day, YYYY-MM-DD [default: today, UTC].
        #[arg(long)]
        until: Option<String>,
    },
    /// Each live skill with its effective grant and figures; or switch one off or on.
    Skills {
        #[command(flatten)]
        args: AdminArgs,
        #[command(subcommand)]
        action: Option<SkillsAction>,
    },
    /// Messages that never got an answer; or send one back to the queue.
    Poison {
        #[command(flatten)]
        args: AdminArgs,
        #[command(subcommand)]
        action: Option<PoisonAction>,
    },
}

/// `molten admin skills ...`.
#[derive(Subcommand)]
pub(crate) enum SkillsAction {
    /// Stop offering skill NAME to the model, on every replica, until enabled again.
    Disable {
        /// The skill.
        name: String,
    },
    /// Offer skill NAME again.
    Enable {
        /// The skill.
        name: String,
    },
}

/// `molten admin poison ...`.
#[derive(Subcommand)]
pub(crate) enum PoisonAction {
    /// Send poisoned message ID back to the queue, to be answered afresh.
    Retry {
        /// Its id, as `molten admin poison` lists it.
        id: String,
    },
}

/// Where the server is, and how to print.
#[derive(clap::Args)]
pub(crate) struct AdminArgs {
    /// The server [default: http:// + server.listen of the config]
    #[arg(long, global = true)]
    url: Option<String>,
    /// The bearer token: the static admin token or an Entra ID token [default:
    /// server.admin_token]
    #[arg(
        long,
        global = true,
        env = "MOLTEN_ADMIN_BEARER",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Sign in with the Azure CLI: the bearer token is `az account get-access-token` for
    /// AUDIENCE [default: [admin] audience of the config]
    #[arg(long, global = true, value_name = "AUDIENCE", num_args = 0..=1, default_missing_value = "", conflicts_with = "token")]
    az: Option<String>,
    /// Print the server's JSON as it is.
    #[arg(long, global = true)]
    json: bool,
}

/// One request to the admin API and how its answer reads.
struct Request {
    post: bool,
    path: String,
    query: Vec<(&'static str, String)>,
    text: fn(&Value) -> String,
}

impl AdminCommand {
    fn request(&self) -> (Request, &AdminArgs) {
        let get = |path: &str, text| Request {
            post: false,
            path: path.to_owned(),
            query: Vec::new(),
            text,
        };
        let post = |path: String| Request {
            post: true,
            path,
            query: Vec::new(),
            text: done_text,
        };
        match self {
            AdminCommand::Status(args) => (get("/admin/status", status_text), args),
            AdminCommand::Usage {
                args,
                user,
                skill,
                since,
                until,
            } => {
                let mut request = get("/admin/usage", usage_text);
                for (name, value) in [
                    ("user", user),
                    ("skill", skill),
                    ("since", since),
                    ("until", until),
                ] {
                    if let Some(value) = value {
                        request.query.push((name, value.clone()));
                    }
                }
                (request, args)
            }
            AdminCommand::Skills { args, action } => match action {
                None => (get("/admin/skills", skills_text), args),
                Some(SkillsAction::Disable { name }) => (
                    post(format!("/admin/skills/{}/disable", encode(name))),
                    args,
                ),
                Some(SkillsAction::Enable { name }) => {
                    (post(format!("/admin/skills/{}/enable", encode(name))), args)
                }
            },
            AdminCommand::Poison { args, action } => match action {
                None => (get("/admin/poison", poison_text), args),
                Some(PoisonAction::Retry { id }) => {
                    (post(format!("/admin/poison/{}/retry", encode(id))), args)
                }
            },
        }
    }
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Runs an admin command against the server the config describes.
pub(crate) async fn run(config: &Config, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let (request, args) = command.request();
    let audience = config.admin.as_ref().map(|a| a.audience.as_str());
    let token = if let Some(token) = &args.token {
        token.clone()
    } else if let Some(given) = args.az.as_deref() {
        let audience = match given {
            "" => audience.context(
                "--az needs the audience: give it (--az api://molten) or set [admin] audience in the config",
            )?,
            given => given,
        };
        az_token(audience)?
    } else if let Some(token) = &config.server.admin_token {
        token.expose().to_owned()
    } else if let Some(audience) = audience {
        // Entra ID is how this server is administered: ask the Azure CLI.
        az_token(audience)?
    } else {
        anyhow::bail!(
            "no admin token: set server.admin_token in the config (or MOLTEN_ADMIN_TOKEN), or pass --token, or --az to sign in with the Azure CLI when [admin] is set"
        )
    };
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.listen));
    let mut url = url::Url::parse(&format!("{}{}", base.trim_end_matches('/'), request.path))
        .with_context(|| format!("--url {base} is not a URL; write it as http://host:port"))?;
    if !request.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&request.query);
    }
    let client = molten::service::http_client()?;
    let builder = if request.post {
        client.post(url.clone())
    } else {
        client.get(url.clone())
    };
    let response = builder
        .bearer_auth(token)
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
    } else {
        print!("{}", (request.text)(&body));
    }
    Ok(ExitCode::SUCCESS)
}

/// An Entra ID access token for `audience` from the Azure CLI's signed-in account.
fn az_token(audience: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new("az")
        .args(["account", "get-access-token", "--resource", audience])
        .args(["--query", "accessToken", "--output", "tsv"])
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "--az needs the Azure CLI (az), which is not installed here; install it and run az login, or pass --token"
            ),
            _ => anyhow::anyhow!("cannot run the Azure CLI (az): {e}"),
        })?;
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || token.is_empty() {
        let said = String::from_utf8_lossy(&output.stderr);
        anyhow::bail!(
            "az account get-access-token --resource {audience} failed: {}; run az login (with an account that has the admin role) and try again",
            said.trim().lines().next().unwrap_or("it printed no token")
        );
    }
    Ok(token)
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
        body["llm"].as_str().unwrap_or("none configured"),
        plain(&body["skills"]),
    );
    let gateway = &body["openclaw"];
    if gateway.is_object() {
        out.push_str(&format!(
            "openclaw: {}; {} turns answered, {} fallbacks to the model\n",
            if gateway["connected"] == Value::Bool(true) {
                "connected".to_owned()
            } else {
                format!("not connected ({})", plain(&gateway["last_error"]))
            },
            plain(&gateway["answered"]),
            plain(&gateway["fallbacks"]),
        ));
    }
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
        let week = &skill["last_7_days"];
        if week["calls"].as_u64().unwrap_or(0) > 0 {
            out.push_str(&format!(
                "  last 7 days: {} calls, {} failed, average {:.0} ms, p95 {} ms\n",
                plain(&week["calls"]),
                plain(&week["failures"]),
                week["average_ms"].as_f64().unwrap_or(0.0),
                plain(&week["p95_ms"]),
            ));
        }
    }
    for name in body["disabled"].as_array().into_iter().flatten() {
        out.push_str(&format!("{:<20} disabled (config)\n", plain(name)));
    }
    for name in body["switched_off"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<20} disabled (molten admin skills enable {} turns it on)\n",
            plain(name),
            plain(name)
        ));
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

/// What a POST did, in a sentence.
fn done_text(body: &Value) -> String {
    if let Some(id) = body["requeued"].as_str() {
        return format!(
            "message {id} is back in the queue (answered as {})\n",
            plain(&body["key"])
        );
    }
    format!(
        "skill {} is {}\n",
        plain(&body["skill"]),
        if body["enabled"] == Value::Bool(true) {
            "enabled"
        } else {
            "disabled on every replica"
        }
    )
}

fn spend(line: &Value) -> String {
    format!(
        "{:>8} {:>12} {:>12} {:>10.4}",
        plain(&line["messages"]),
        plain(&line["prompt_tokens"]),
        plain(&line["completion_tokens"]),
        line["cost_usd"].as_f64().unwrap_or(0.0)
    )
}

fn usage_text(body: &Value) -> String {
    let mut out = format!(
        "usage {} to {}{}\n\n",
        plain(&body["since"]),
        plain(&body["until"]),
        body["user"]
            .as_str()
            .map_or_else(String::new, |u| format!(", user {u}"))
    );
    let header = format!(
        "{:>8} {:>12} {:>12} {:>10}",
        "messages", "prompt", "completion", "USD"
    );
    out.push_str(&format!("{:<24} {header}\n", "day"));
    for day in body["days"].as_array().into_iter().flatten() {
        out.push_str(&format!("{:<24} {}\n", plain(&day["day"]), spend(day)));
    }
    out.push_str(&format!("{:<24} {}\n\n", "total", spend(&body["total"])));
    out.push_str(&format!("{:<24} {header}\n", "top users by cost"));
    for user in body["users"].as_array().into_iter().flatten() {
        out.push_str(&format!("{:<24} {}\n", plain(&user["user"]), spend(user)));
    }
    out.push_str(&format!(
        "\n{:<24} {:>8} {:>8} {:>8} {:>10} {:>8}\n",
        "skill", "calls", "failed", "success", "avg ms", "p95 ms"
    ));
    for skill in body["skills"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<24} {:>8} {:>8} {:>7.0}% {:>10.1} {:>8}\n",
            plain(&skill["skill"]),
            plain(&skill["calls"]),
            plain(&skill["failures"]),
            skill["success_rate"].as_f64().unwrap_or(0.0) * 100.0,
            skill["average_ms"].as_f64().unwrap_or(0.0),
            plain(&skill["p95_ms"]),
        ));
    }
    out
}
