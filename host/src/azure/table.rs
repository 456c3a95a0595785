//! A small client for the Azure Table service's REST API (JSON, no metadata). The official SDK
//! for Rust has no Tables crate on the `azure_core` 1.x line (the old `azure_data_tables` sits
//! on a retired core and its own HTTP stack), and molten needs few calls: create a table,
//! insert an entity (failing on a duplicate key, which makes dedupe atomic), insert-or-merge,
//! point read, query with a filter, delete.

use std::time::Duration;

use azure_core::http::Url;
use serde_json::Value;

use super::{StorageAuth, STORAGE_SCOPE};

const API_VERSION: &str = "2019-02-02";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A Table service request that failed.
#[derive(Debug, thiserror::Error)]
#[error("table storage: {0}")]
pub struct TableError(pub String);

/// The table service of one account.
#[derive(Clone)]
pub struct TableClient {
    endpoint: Url,
    auth: StorageAuth,
    http: reqwest::Client,
}

impl TableClient {
    pub(super) fn new(endpoint: Url, auth: StorageAuth, http: reqwest::Client) -> Self {
        Self {
            endpoint,
            auth,
            http,
        }
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{path}"));
        url
    }

    async fn send(
        &self,
        method: reqwest::Method,
        mut url: Url,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<reqwest::Response, TableError> {
        let bearer = match &self.auth {
            StorageAuth::Key(sas) => {
                sas.apply(&mut url);
                None
            }
            StorageAuth::Token(credential) => Some(
                credential
                    .get_token(&[STORAGE_SCOPE], None)
                    .await
                    .map_err(|e| TableError(e.to_string()))?
                    .token,
            ),
        };
        let mut request = self
            .http
            .request(method, url)
            .timeout(TIMEOUT)
            .header("x-ms-version", API_VERSION)
            .header("accept", "application/json;odata=nometadata")
            .header("dataserviceversion", "3.0;NetFx")
            .header("maxdataserviceversion", "3.0;NetFx");
        if let Some(token) = bearer {
            request = request.bearer_auth(token.secret());
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        // The error would quote the URL, and with it the SAS.
        request.send().await.map_err(|e| {
            TableError(format!(
                "the table service did not answer: {}",
                e.without_url()
            ))
        })
    }

    /// Creates `table` unless it exists.
    pub async fn create_table(&self, table: &str) -> Result<(), TableError> {
        let body = serde_json::json!({ "TableName": table });
        let response = self
            .send(
                reqwest::Method::POST,
                self.url("Tables"),
                Some(&body),
                &[("prefer", "return-no-content")],
            )
            .await?;
        match response.status().as_u16() {
            200..=299 | 409 => Ok(()),
            _ => Err(failure(&format!("creating table {table}"), response).await),
        }
    }

    /// Inserts `entity` (which carries `PartitionKey` and `RowKey`); `false` if an entity with
    /// those keys exists.
    pub async fn insert(&self, table: &str, entity: &Value) -> Result<bool, TableError> {
        let response = self
            .send(
                reqwest::Method::POST,
                self.url(table),
                Some(entity),
                &[("prefer", "return-no-content")],
            )
            .await?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            409 => Ok(false),
            _ => Err(failure(&format!("inserting into {table}"), response).await),
        }
    }

    /// The entity with these keys, if there is one.
    pub async fn get(
        &self,
        table: &str,
        partition: &str,
        row: &str,
    ) -> Result<Option<Value>, TableError> {
        Ok(self
            .get_tagged(table, partition, row)
            .await?
            .map(|(entity, _)| entity))
    }

    /// The entity with these keys and its ETag, if there is one.
    pub async fn get_tagged(
        &self,
        table: &str,
        partition: &str,
        row: &str,
    ) -> Result<Option<(Value, String)>, TableError> {
        let response = self
            .send(
                reqwest::Method::GET,
                self.url(&entity(table, partition, row)),
                None,
                &[],
            )
            .await?;
        match response.status().as_u16() {
            200..=299 => {
                let etag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let entity = response.json().await.map_err(|e| {
                    TableError(format!("reading from {table}: unreadable answer: {e}"))
                })?;
                Ok(Some((entity, etag)))
            }
            404 => Ok(None),
            _ => Err(failure(&format!("reading from {table}"), response).await),
        }
    }

    /// Replaces the entity with `value`'s keys by `value` if its ETag is still `etag`;
    /// `false` if someone changed (or deleted) it since it was read.
    pub async fn replace_if(
        &self,
        table: &str,
        value: &Value,
        etag: &str,
    ) -> Result<bool, TableError> {
        let key = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
        let response = self
            .send(
                reqwest::Method::PUT,
                self.url(&entity(table, &key("PartitionKey"), &key("RowKey"))),
                Some(value),
                &[("if-match", etag)],
            )
            .await?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 | 412 => Ok(false),
            _ => Err(failure(&format!("writing to {table}"), response).await),
        }
    }

    /// Inserts `entity`, or sets its properties on the existing entity with its keys (the
    /// service's Insert Or Merge: properties `value` does not name are kept).
    pub async fn merge(&self, table: &str, value: &Value) -> Result<(), TableError> {
        let key = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
        let response = self
            .send(
                reqwest::Method::PATCH,
                self.url(&entity(table, &key("PartitionKey"), &key("RowKey"))),
                Some(value),
                &[],
            )
            .await?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            _ => Err(failure(&format!("writing to {table}"), response).await),
        }
    }

    /// Deletes one entity; a missing one is not an error.
    pub async fn delete(&self, table: &str, partition: &str, row: &str) -> Result<(), TableError> {
        let response = self
            .send(
                reqwest::Method::DELETE,
                self.url(&entity(table, partition, row)),
                None,
                &[("if-match", "*")],
            )
            .await?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(failure(&format!("deleting from {table}"), response).await),
        }
    }

    /// Deletes the entities of `partition` whose `at_ms` (see [`dated_row`]) is before
    /// `cutoff_ms`: how dedupe keys, claims and reply marks are forgotten.
    pub async fn delete_older(
        &self,
        table: &str,
        partition: &str,
        cutoff_ms: i64,
    ) -> Result<(), TableError> {
        let filter = format!("PartitionKey eq '{partition}' and at_ms lt {cutoff_ms}L");
        for row in self.query(table, Some(&filter), "RowKey").await? {
            let key = row["RowKey"].as_str().unwrap_or_default();
            self.delete(table, partition, key).await?;
        }
        Ok(())
    }

    /// Every entity matching the OData `filter` (all when `None`), with only the `select`ed
    /// properties, following continuation tokens.
    pub async fn query(
        &self,
        table: &str,
        filter: Option<&str>,
        select: &str,
    ) -> Result<Vec<Value>, TableError> {
        let mut entities = Vec::new();
        let mut next: Option<(String, String)> = None;
        loop {
            let mut url = self.url(&format!("{table}()"));
            {
                let mut query = url.query_pairs_mut();
                if let Some(filter) = filter {
                    query.append_pair("$filter", filter);
                }
                query.append_pair("$select", select);
                if let Some((partition, row)) = &next {
                    query.append_pair("NextPartitionKey", partition);
                    query.append_pair("NextRowKey", row);
                }
            }
            let response = self.send(reqwest::Method::GET, url, None, &[]).await?;
            if !response.status().is_success() {
                return Err(failure(&format!("querying {table}"), response).await);
            }
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            next = header("x-ms-continuation-nextpartitionkey").map(|partition| {
                (
                    partition,
                    header("x-ms-continuation-nextrowkey").unwrap_or_default(),
                )
            });
            let page: Value = response
                .json()
                .await
                .map_err(|e| TableError(format!("querying {table}: unreadable answer: {e}")))?;
            if let Some(Value::Array(items)) = page.get("value").cloned() {
                entities.extend(items);
            }
            if next.is_none() {
                return Ok(entities);
            }
        }
    }
}

/// The address of one entity.
fn entity(table: &str, partition: &str, row: &str) -> String {
    format!(
        "{table}(PartitionKey='{}',RowKey='{}')",
        quote(partition),
        quote(row)
    )
}

/// The entity for `key` in `partition`, dated now: row key its hash (keys may hold characters
/// a row key may not), the key itself for people reading the table, and `at_ms` for
/// [`TableClient::delete_older`]. Callers add their own properties.
pub fn dated_row(partition: &str, key: &str) -> Value {
    serde_json::json!({
        "PartitionKey": partition,
        "RowKey": super::hashed_key(key),
        "key": key,
        "at_ms": crate::db::now_ms().to_string(),
        "at_ms@odata.type": "Edm.Int64",
    })
}

/// An `Edm.Int64` property as the service returns it without metadata (a string) or a number.
pub fn int64(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// A key inside `'…'` of an entity address: quotes doubled, then percent-encoded.
fn quote(key: &str) -> String {
    let doubled = key.replace('\'', "''");
    url::form_urlencoded::byte_serialize(doubled.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn failure(what: &str, response: reqwest::Response) -> TableError {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    let message = body["odata.error"]["message"]["value"]
        .as_str()
        .or_else(|| body["odata.error"]["code"].as_str())
        .unwrap_or("no detail")
        .to_owned();
    TableError(format!("{what}: {status}: {message}"))
}
