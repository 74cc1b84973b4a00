//! A small client over the documented Table service REST API: just what the database adapter
//! needs (tables, point reads, insert, merge, replace, delete, queries with continuation, and
//! entity-group transactions). A REST client instead of `azure_data_tables` 0.21 because that
//! crate is frozen and would link a second `azure_core`; see `docs/azure.md`.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{Semaphore, SemaphorePermit};

use azure_core::time::{OffsetDateTime, to_rfc7231};
use bytes::Bytes;
use reqwest::{Method, RequestBuilder};
use serde_json::{Map, Value};
use thisthat_core::{Error, Result};
use thisthat_http::{HttpStatusError, Resend};
use url::Url;

use crate::{auth::StorageAuth, error::missing_table};

pub(crate) use crate::error::TABLE_PROVIDER as PROVIDER;

/// The Table service version thisthat speaks (JSON payloads, OAuth).
const VERSION: &str = "2019-02-02";

/// Entity properties as the service returns them (`odata.etag` removed into [`Entity::etag`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Entity {
    pub props: Map<String, Value>,
    pub etag: Option<String>,
}

impl Entity {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.props.get(name).and_then(Value::as_str)
    }

    /// An integer: an `Edm.Int32` (a JSON number) or an `Edm.Int64` (sent as a string).
    pub fn i64(&self, name: &str) -> Option<i64> {
        match self.props.get(name)? {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.props.get(name).and_then(Value::as_bool)
    }
}

/// What a request answered: success, or the one failure status the call expects (a missing
/// entity for a read, an existing table for a create), which is an answer, not an error.
#[derive(Debug)]
enum Answered {
    Success(reqwest::Response),
    Expected,
}

/// One operation of an entity-group transaction.
#[derive(Debug, Clone)]
pub(crate) enum BatchOp {
    /// Insert; fails with 409 if the entity exists.
    Insert(Map<String, Value>),
    /// Merge properties into an entity whose ETag matches.
    Merge {
        partition: String,
        row: String,
        props: Map<String, Value>,
        if_match: String,
    },
}

/// Why a batch did not commit: the first operation the service refused (nothing of the batch
/// was applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entity-group transaction refused at operation {index:?}: HTTP {status} {code}")]
pub(crate) struct BatchFailure {
    /// The operation's position in the batch, when the service says.
    pub index: Option<usize>,
    /// Its HTTP status.
    pub status: u16,
    /// The service's error code (`EntityAlreadyExists`, `UpdateConditionNotSatisfied`, ...).
    pub code: String,
}

/// A client of one table in one storage account.
#[derive(Clone)]
pub struct TableClient {
    http: reqwest::Client,
    account_url: Url,
    table: String,
    auth: StorageAuth,
    /// Requests in flight at once. Unbounded, a burst of votes opens a connection per vote,
    /// and servers drop connections past their accept backlog (Azurite reset them at about
    /// 1,000); queueing here costs nothing the service would not make us wait for anyway.
    in_flight: Arc<Semaphore>,
    /// Requests sent, for tests and metrics (each takes one permit).
    sent: Arc<AtomicU64>,
}

/// How long an idle connection is kept for reuse.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// The default bound on a client's requests in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

impl std::fmt::Debug for TableClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableClient")
            .field("account_url", &self.account_url.as_str())
            .field("table", &self.table)
            .field("auth", &self.auth)
            .finish()
    }
}

/// Table names: 3 to 63 letters and digits, starting with a letter.
fn check_table_name(name: &str) -> Result<()> {
    let ok = (3..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{name:?} is not a table name: 3 to 63 letters and digits, starting with a letter"
        )))
    }
}

/// Quotes a key for a URL or a filter: single quotes doubled.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl TableClient {
    /// A client of `table` in the account at `account_url` (`https://{account}.table.core.windows.net`
    /// or Azurite's `http://127.0.0.1:10002/devstoreaccount1`).
    pub fn new(account_url: Url, table: &str, auth: StorageAuth) -> Result<Self> {
        check_table_name(table)?;
        if account_url.cannot_be_a_base() {
            return Err(Error::config(format!("{account_url} is not a table endpoint")));
        }
        Ok(TableClient {
            // Idle connections are dropped before a server's keep-alive timeout (Node's, hence
            // Azurite's, is 5 s) can close one just as it is reused (ECONNRESET).
            http: thisthat_http::build(thisthat_http::client_builder().pool_idle_timeout(IDLE_TIMEOUT))?,
            account_url,
            table: table.to_owned(),
            auth,
            in_flight: Arc::new(Semaphore::new(DEFAULT_MAX_IN_FLIGHT)),
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Allows at most `n` requests in flight at once (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.in_flight = Arc::new(Semaphore::new(n.max(1)));
        self
    }

    /// How many requests this client (and its clones) has sent.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    async fn permit(&self) -> Result<SemaphorePermit<'_>> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        // Azure bills Table storage by REST request, an entity-group `$batch` being one, and
        // every request takes one permit: reported as sent (docs/azure.md, "What it bills").
        thisthat_core::layers::bill("table.transaction", 1.0);
        // The semaphore is never closed, so this cannot fail in practice.
        self.in_flight.acquire().await.map_err(|e| Error::backend(PROVIDER, e))
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The HTTP client, for requests the adapter does not make.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn url(&self, suffix: &str) -> Url {
        let base = self.account_url.as_str().trim_end_matches('/');
        // The suffix is built from checked table names and quoted keys of safe characters.
        Url::parse(&format!("{base}/{suffix}")).unwrap_or_else(|_| self.account_url.clone())
    }

    pub(crate) fn entity_url(&self, partition: &str, row: &str) -> Url {
        self.url(&format!(
            "{}(PartitionKey={},RowKey={})",
            self.table,
            quote(partition),
            quote(row)
        ))
    }

    /// A request with the service version, the date and the authorisation.
    async fn request(&self, method: Method, url: Url) -> Result<RequestBuilder> {
        let date = to_rfc7231(&OffsetDateTime::now_utc());
        let authorization = match &self.auth {
            StorageAuth::Key(key) => key.shared_key_lite(&date, url.path()),
            StorageAuth::Token(credential) => StorageAuth::bearer(&**credential).await?,
        };
        Ok(self
            .http
            .request(method, url)
            .header("x-ms-date", date)
            .header("x-ms-version", VERSION)
            .header("DataServiceVersion", "3.0")
            .header("MaxDataServiceVersion", "3.0;NetFx")
            .header("Accept", "application/json;odata=minimalmetadata")
            .header("Authorization", authorization))
    }

    /// Sends `request`; a success is [`Answered::Success`], the status `expected` (one the
    /// call treats as its own answer, e.g. 404 for a missing entity) [`Answered::Expected`],
    /// a missing table `Config`, anything else through `thisthat_http::status_error`.
    async fn answer(&self, request: RequestBuilder, resend: Resend, expected: u16) -> Result<Answered> {
        let answer = thisthat_http::exchange(PROVIDER, request, resend).await?;
        if answer.response.status().as_u16() != expected {
            let table = self.table.as_str();
            return thisthat_http::success(PROVIDER, answer.response, |e| missing_table(table, e))
                .await
                .map(Answered::Success);
        }
        let error = HttpStatusError::from_response(answer.response).await;
        match missing_table(&self.table, &error) {
            Some(e) => Err(e),
            None => Ok(Answered::Expected),
        }
    }

    /// Creates the table; an existing one is fine.
    pub async fn create_table(&self) -> Result<()> {
        let _permit = self.permit().await?;
        let body = serde_json::json!({ "TableName": self.table }).to_string();
        let request = self
            .request(Method::POST, self.url("Tables"))
            .await?
            .header("Content-Type", "application/json")
            .header("Prefer", "return-no-content")
            .body(body);
        // 409: it exists, which is what was asked for.
        self.answer(request, Resend::Never, 409).await.map(drop)
    }

    /// Deletes the table and everything in it; a missing one is fine.
    pub async fn delete_table(&self) -> Result<()> {
        let _permit = self.permit().await?;
        let url = self.url(&format!("Tables({})", quote(&self.table)));
        let request = self.request(Method::DELETE, url).await?;
        // 404: already gone.
        self.answer(request, Resend::Safe, 404).await.map(drop)
    }

    /// Reads one entity, `None` if missing. `select` limits the properties read.
    pub(crate) async fn get(&self, partition: &str, row: &str, select: Option<&str>) -> Result<Option<Entity>> {
        let _permit = self.permit().await?;
        let mut url = self.entity_url(partition, row);
        if let Some(select) = select {
            url.query_pairs_mut().append_pair("$select", select);
        }
        let request = self.request(Method::GET, url).await?;
        let response = match self.answer(request, Resend::Safe, 404).await? {
            Answered::Success(response) => response,
            Answered::Expected => return Ok(None),
        };
        let header_etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| thisthat_http::transport_error(PROVIDER, e))?;
        let mut entity = parse_entity(&body)?;
        if entity.etag.is_none() {
            entity.etag = header_etag;
        }
        Ok(Some(entity))
    }

    /// Inserts an entity. [`Error::Conflict`] if one with its keys exists.
    pub(crate) async fn insert(&self, entity: &Map<String, Value>) -> Result<()> {
        let _permit = self.permit().await?;
        let request = self
            .request(Method::POST, self.url(&self.table))
            .await?
            .header("Content-Type", "application/json")
            .header("Prefer", "return-no-content")
            .body(Value::Object(entity.clone()).to_string());
        thisthat_http::send(PROVIDER, request, |e| {
            missing_table(&self.table, e).or_else(|| {
                (e.status == 409).then(|| Error::Conflict {
                    reason: "the entity exists".into(),
                    source: Some(e.clone().into()),
                })
            })
        })
        .await
        .map(drop)
    }

    /// Replaces (`PUT`) or merges (`MERGE`) an entity. With `if_match` the write happens only
    /// if the ETag matches ([`Error::Conflict`] otherwise; an entity deleted since it was read
    /// is [`Error::NotFound`] of `what`, as the ports report a deleted competition); without
    /// it, the entity is inserted or replaced.
    pub(crate) async fn write(
        &self,
        what: thisthat_core::Entity,
        partition: &str,
        row: &str,
        props: &Map<String, Value>,
        merge: bool,
        if_match: Option<&str>,
    ) -> Result<()> {
        let _permit = self.permit().await?;
        let method = if merge {
            Method::from_bytes(b"MERGE").map_err(|e| Error::backend(PROVIDER, e))?
        } else {
            Method::PUT
        };
        let mut request = self
            .request(method, self.entity_url(partition, row))
            .await?
            .header("Content-Type", "application/json")
            .body(Value::Object(props.clone()).to_string());
        if let Some(etag) = if_match {
            request = request.header("If-Match", etag);
        }
        thisthat_http::send(PROVIDER, request, |e| {
            missing_table(&self.table, e).or_else(|| match e.status {
                404 => Some(Error::not_found(what, format!("{partition}/{row}"))),
                412 => Some(Error::Conflict {
                    reason: "the entity changed".into(),
                    source: Some(e.clone().into()),
                }),
                _ => None,
            })
        })
        .await
        .map(drop)
    }

    /// Deletes an entity if its ETag matches (`*`: whatever it is). Missing is fine;
    /// a changed ETag is [`Error::Conflict`].
    pub(crate) async fn delete(&self, partition: &str, row: &str, if_match: &str) -> Result<()> {
        let _permit = self.permit().await?;
        let request = self
            .request(Method::DELETE, self.entity_url(partition, row))
            .await?
            .header("If-Match", if_match);
        match thisthat_http::send(PROVIDER, request, |e| {
            missing_table(&self.table, e).or_else(|| match e.status {
                404 => Some(Error::not_found(thisthat_core::Entity::Competition, row)),
                412 => Some(Error::Conflict {
                    reason: "the entity changed".into(),
                    source: Some(e.clone().into()),
                }),
                _ => None,
            })
        })
        .await
        {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One page of a query: the entities and the continuation (next partition and row key).
    /// `select` limits the properties read.
    pub(crate) async fn query(
        &self,
        filter: &str,
        select: Option<&str>,
        top: Option<usize>,
        continuation: Option<&(String, String)>,
    ) -> Result<(Vec<Entity>, Option<(String, String)>)> {
        let _permit = self.permit().await?;
        let mut url = self.url(&format!("{}()", self.table));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("$filter", filter);
            if let Some(select) = select {
                q.append_pair("$select", select);
            }
            if let Some(top) = top {
                q.append_pair("$top", &top.to_string());
            }
            if let Some((pk, rk)) = continuation {
                q.append_pair("NextPartitionKey", pk);
                if !rk.is_empty() {
                    q.append_pair("NextRowKey", rk);
                }
            }
        }
        let request = self.request(Method::GET, url).await?;
        let table = self.table.as_str();
        let response = thisthat_http::send_idempotent(PROVIDER, request, |e| missing_table(table, e)).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let next = header("x-ms-continuation-NextPartitionKey")
            .map(|pk| (pk, header("x-ms-continuation-NextRowKey").unwrap_or_default()));
        let body = response
            .bytes()
            .await
            .map_err(|e| thisthat_http::transport_error(PROVIDER, e))?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| Error::Backend {
            provider: PROVIDER,
            message: "a query answer was not JSON".into(),
            source: Some(e.into()),
        })?;
        let mut entities = Vec::new();
        for item in value.get("value").and_then(Value::as_array).into_iter().flatten() {
            if let Value::Object(map) = item {
                entities.push(entity_from_map(map.clone()));
            }
        }
        Ok((entities, next))
    }

    /// Runs an entity-group transaction: every operation (same partition) or none. A refused
    /// operation comes back as `Ok(Err(BatchFailure))`, parsed from the multipart answer, never
    /// as success; transport and service-wide failures are `Err`.
    pub(crate) async fn batch(&self, ops: &[BatchOp]) -> Result<std::result::Result<(), BatchFailure>> {
        let _permit = self.permit().await?;
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let (batch, changeset) = (format!("batch_{id}"), format!("changeset_{id}"));
        let mut body = String::new();
        // Infallible: writing to a String.
        let _ = write!(
            body,
            "--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
        );
        for op in ops {
            let (method, url, props, if_match) = match op {
                BatchOp::Insert(props) => ("POST", self.url(&self.table), props, None),
                BatchOp::Merge {
                    partition,
                    row,
                    props,
                    if_match,
                } => ("MERGE", self.entity_url(partition, row), props, Some(if_match)),
            };
            let _ = write!(
                body,
                "--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
                 {method} {url} HTTP/1.1\r\nContent-Type: application/json\r\n\
                 Accept: application/json;odata=minimalmetadata\r\nPrefer: return-no-content\r\n\
                 DataServiceVersion: 3.0\r\n"
            );
            if let Some(etag) = if_match {
                let _ = write!(body, "If-Match: {etag}\r\n");
            }
            let _ = write!(body, "\r\n{}\r\n", Value::Object(props.clone()));
        }
        let _ = write!(body, "--{changeset}--\r\n--{batch}--\r\n");
        let request = self
            .request(Method::POST, self.url("$batch"))
            .await?
            .header("Content-Type", format!("multipart/mixed; boundary={batch}"))
            .body(Bytes::from(body));
        // Sent again when it fails before any answer (a reset on a kept-alive connection):
        // the one batch there is, a vote's, is guarded by the competition's ETag and inserts
        // the vote row, so a copy sent after the first one landed is refused (412 or 409) and
        // the vote reads again and finds its own ballot (`decide_vote` answers the original
        // receipt). Tested behind a proxy that loses the batch's answer.
        let answer = thisthat_http::exchange(PROVIDER, request, Resend::Safe).await?;
        let response = thisthat_http::success(PROVIDER, answer.response, |_| None).await?;
        let text = response
            .text()
            .await
            .map_err(|e| thisthat_http::transport_error(PROVIDER, e))?;
        parse_batch_response(&text, ops.len())
    }
}

fn entity_from_map(mut props: Map<String, Value>) -> Entity {
    let etag = props.remove("odata.etag").and_then(|v| v.as_str().map(str::to_owned));
    props.retain(|k, _| !k.starts_with("odata."));
    Entity { props, etag }
}

fn parse_entity(body: &[u8]) -> Result<Entity> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(entity_from_map(map)),
        Ok(_) => Err(Error::Backend {
            provider: PROVIDER,
            message: "an entity was not a JSON object".into(),
            source: None,
        }),
        Err(e) => Err(Error::Backend {
            provider: PROVIDER,
            message: "an entity was not JSON".into(),
            source: Some(e.into()),
        }),
    }
}

/// Reads the multipart answer of a batch: one `HTTP/1.1 <status>` line per operation on
/// success; on failure one part with the failing status and an OData error whose message starts
/// with the operation's index (`1:The update condition specified in the request was not
/// satisfied.`).
pub(crate) fn parse_batch_response(text: &str, operations: usize) -> Result<std::result::Result<(), BatchFailure>> {
    let mut statuses = Vec::new();
    let mut failure: Option<BatchFailure> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("HTTP/1.1 ") else {
            continue;
        };
        let Some(status) = rest.split_whitespace().next().and_then(|s| s.parse::<u16>().ok()) else {
            continue;
        };
        statuses.push(status);
        if (200..300).contains(&status) || failure.is_some() {
            continue;
        }
        // The error body is the first JSON line after the part's headers.
        let error = lines[i + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with("--"))
            .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok());
        let odata = error.as_ref().and_then(|v| v.get("odata.error"));
        let code = odata
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let message = odata
            .and_then(|e| e.get("message"))
            .and_then(|m| m.get("value").or(Some(m)))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let index = message
            .split_once(':')
            .and_then(|(n, _)| n.trim().parse::<usize>().ok());
        failure = Some(BatchFailure { index, status, code });
    }
    if let Some(failure) = failure {
        return Ok(Err(failure));
    }
    if statuses.len() != operations {
        // Neither a failure nor one success per operation: nothing says the batch committed.
        return Err(Error::Backend {
            provider: PROVIDER,
            message: format!(
                "a batch of {operations} operations was answered with {} statuses",
                statuses.len()
            ),
            source: Some(HttpStatusError::new(202, text.to_owned()).into()),
        });
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_batch_has_one_success_per_operation() {
        let text = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n\
            --changesetresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\
            --changesetresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\
            --changesetresponse_1--\r\n--batchresponse_1--\r\n";
        assert_eq!(parse_batch_response(text, 2).expect("parsed"), Ok(()));
        assert!(
            parse_batch_response(text, 3).is_err(),
            "a missing status is not success"
        );
    }

    #[test]
    fn a_refused_operation_is_reported_with_its_index() {
        let text = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n\
            --changesetresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 412 Precondition Failed\r\n\
            Content-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n\
            {\"odata.error\":{\"code\":\"UpdateConditionNotSatisfied\",\"message\":{\"lang\":\"en-US\",\"value\":\"1:The update condition specified in the request was not satisfied.\"}}}\r\n\
            --changesetresponse_1--\r\n--batchresponse_1--\r\n";
        let failure = parse_batch_response(text, 3).expect("parsed").expect_err("refused");
        assert_eq!(failure.status, 412);
        assert_eq!(failure.index, Some(1));
        assert_eq!(failure.code, "UpdateConditionNotSatisfied");
    }

    #[test]
    fn table_names_are_checked() {
        assert!(check_table_name("thisthat").is_ok());
        assert!(check_table_name("1abc").is_err());
        assert!(check_table_name("ab").is_err());
        assert!(check_table_name("a-b-c").is_err());
    }
}
