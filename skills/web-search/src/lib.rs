//! `web_search`: the Tavily search API, results formatted for a model to read.

use molten_skill::{Context, Error};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

const ENDPOINT: &str = "https://api.tavily.com/search";
const SNIPPET_CHARS: usize = 500;

/// What to search for. molten checks every call against the schema derived from this type, so
/// `run` sees only lengths, ranges and names that fit.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    /// What to search for.
    #[schemars(length(min = 1, max = 400))]
    query: String,
    /// How many results (1 to 10).
    #[serde(default = "five")]
    #[schemars(range(min = 1, max = 10))]
    max_results: u8,
    /// advanced is slower and more thorough.
    #[serde(default)]
    search_depth: Depth,
    /// What kind of search.
    #[serde(default)]
    topic: Topic,
    /// With topic news: how many days back.
    #[serde(default)]
    #[schemars(range(min = 1))]
    days: Option<u32>,
}

fn five() -> u8 {
    5
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
enum Depth {
    #[default]
    Basic,
    Advanced,
}

#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
enum Topic {
    #[default]
    General,
    News,
    Finance,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    results: Vec<Hit>,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(default)]
    title: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    published_date: Option<String>,
}

fn search(args: Args, _context: &Context) -> Result<String, Error> {
    let query = args.query.trim();
    if query.is_empty() {
        return Err(Error::InvalidInput("query must not be empty".into()));
    }
    let mut body = json!({
        "query": query,
        "max_results": args.max_results,
        "search_depth": match args.search_depth {
            Depth::Basic => "basic",
            Depth::Advanced => "advanced",
        },
        "topic": match args.topic {
            Topic::General => "general",
            Topic::News => "news",
            Topic::Finance => "finance",
        },
        "include_answer": false,
    });
    if let Some(days) = args.days {
        body["days"] = days.into();
    }
    let response = molten_skill::http::request(
        "POST",
        ENDPOINT,
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
    .map_err(|e| Error::Failed(format!("web search unavailable: {e}")))?;
    if response.status != 200 {
        return Err(api_error(&response));
    }
    let answer: Answer = serde_json::from_slice(&response.body).map_err(|e| {
        Error::Failed(format!(
            "the search service answered something unexpected: {e}"
        ))
    })?;
    Ok(format_results(query, &answer))
}

molten_skill::skill!(
    name: "web_search",
    description: "Search the web for current information. Returns the top results with \
                  title, URL and a snippet; cite the URLs you use.",
    run: search,
);

/// Tavily's error body is `{"detail": {"error": "..."}}`.
fn api_error(response: &molten_skill::http::Response) -> Error {
    let detail = serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| {
            v["detail"]["error"]
                .as_str()
                .or_else(|| v["detail"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| response.text().chars().take(200).collect());
    let hint = match response.status {
        400 => "the search request was not accepted",
        401 | 403 => "the search service refused the API key; the operator must set tavily-api-key",
        429 => "the search service is rate limiting; try again in a minute",
        432 | 433 => "the search plan's limit is reached; the operator must check the Tavily plan",
        500..=599 => "the search service is failing; try again later",
        _ => "the search failed",
    };
    Error::Failed(format!("{hint} (HTTP {}: {detail})", response.status))
}

fn format_results(query: &str, answer: &Answer) -> String {
    if answer.results.is_empty() {
        return format!("No results for \"{query}\".");
    }
    let mut out = format!("Results for \"{query}\":\n");
    if let Some(summary) = answer.answer.as_deref().filter(|a| !a.is_empty()) {
        out.push_str(&format!("Summary: {summary}\n"));
    }
    for (i, hit) in answer.results.iter().enumerate() {
        let snippet: String = hit.content.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut snippet: String = snippet.chars().take(SNIPPET_CHARS).collect();
        if hit.content.chars().count() > SNIPPET_CHARS {
            snippet.push('…');
        }
        out.push_str(&format!(
            "\n{}. {}\n   {}\n",
            i + 1,
            hit.title.trim(),
            hit.url
        ));
        if let Some(date) = &hit.published_date {
            out.push_str(&format!("   published {date}\n"));
        }
        if !snippet.is_empty() {
            out.push_str(&format!("   {snippet}\n"));
        }
    }
    out
}
