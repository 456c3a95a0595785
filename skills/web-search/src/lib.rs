//! `web_search`: the Tavily search API, results formatted for a model to read.

wit_bindgen::generate!({ path: "../../wit", world: "skill" });

use serde::Deserialize;
use serde_json::json;

const ENDPOINT: &str = "https://api.tavily.com/search";
const MAX_QUERY_CHARS: usize = 400;
const SNIPPET_CHARS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    query: String,
    #[serde(default = "five")]
    max_results: u8,
    #[serde(default)]
    search_depth: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    days: Option<u32>,
}

fn five() -> u8 {
    5
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

struct WebSearch;

impl Guest for WebSearch {
    fn describe() -> Descriptor {
        Descriptor {
            name: "web_search".into(),
            description: "Search the web for current information. Returns the top results \
                          with title, URL and a snippet; cite the URLs you use."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to search for."},
                    "max_results": {"type": "integer", "minimum": 1, "maximum": 10, "default": 5},
                    "search_depth": {"type": "string", "enum": ["basic", "advanced"],
                                     "description": "advanced is slower and more thorough"},
                    "topic": {"type": "string", "enum": ["general", "news", "finance"]},
                    "days": {"type": "integer", "minimum": 1,
                             "description": "with topic news: how many days back"}
                },
                "required": ["query"],
                "additionalProperties": false
            })
            .to_string(),
        }
    }

    fn invoke(arguments: String, _context: CallContext) -> Result<String, SkillError> {
        let args: Args = serde_json::from_str(&arguments)
            .map_err(|e| SkillError::InvalidInput(format!("arguments: {e}")))?;
        let query = args.query.trim();
        if query.is_empty() {
            return Err(SkillError::InvalidInput("query must not be empty".into()));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(SkillError::InvalidInput(format!(
                "query is longer than {MAX_QUERY_CHARS} characters; shorten it"
            )));
        }
        if !(1..=10).contains(&args.max_results) {
            return Err(SkillError::InvalidInput(
                "max_results must be 1 to 10".into(),
            ));
        }
        let depth = args.search_depth.as_deref().unwrap_or("basic");
        if !matches!(depth, "basic" | "advanced") {
            return Err(SkillError::InvalidInput(
                "search_depth must be basic or advanced".into(),
            ));
        }
        let topic = args.topic.as_deref().unwrap_or("general");
        if !matches!(topic, "general" | "news" | "finance") {
            return Err(SkillError::InvalidInput(
                "topic must be general, news or finance".into(),
            ));
        }
        let mut body = json!({
            "query": query,
            "max_results": args.max_results,
            "search_depth": depth,
            "topic": topic,
            "include_answer": false,
        });
        if let Some(days) = args.days {
            body["days"] = days.into();
        }
        let response = molten_http::request(
            "POST",
            ENDPOINT,
            &[("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
        .map_err(|e| SkillError::Failed(format!("web search unavailable: {e}")))?;
        if response.status != 200 {
            return Err(api_error(&response));
        }
        let answer: Answer = serde_json::from_slice(&response.body).map_err(|e| {
            SkillError::Failed(format!(
                "the search service answered something unexpected: {e}"
            ))
        })?;
        Ok(format_results(query, &answer))
    }
}

/// Tavily's error body is `{"detail": {"error": "..."}}`.
fn api_error(response: &molten_http::Response) -> SkillError {
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
    SkillError::Failed(format!("{hint} (HTTP {}: {detail})", response.status))
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

export!(WebSearch);
