//! The raw Firestore RPCs the database port is written against (`BatchGetDocuments`,
//! `Commit`, `RunQuery`), each bounded in time and counted, and the builders of their writes,
//! preconditions and filters.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use firestore::gcloud_sdk::{
    google::firestore::v1::{
        BatchGetDocumentsRequest, CommitRequest, Document, DocumentMask, Precondition, RunQueryRequest,
        StructuredQuery, Value, Write, batch_get_documents_response, firestore_client::FirestoreClient, precondition,
        run_query_request, structured_query, write,
    },
    prost_types::Timestamp,
};
use futures::StreamExt as _;
use thisthat_core::{Result, layers::bill};
use tonic::Code;

use crate::error::{corrupt, firestore_status};

type Client = FirestoreClient<firestore::gcloud_sdk::GoogleAuthMiddleware>;

/// The units Firestore bills (the price table's keys), reported by the RPCs that cause them:
/// documents read, written and deleted. Index entries read beyond the documents (none for the
/// single-field and equality queries used here) are left to the model.
const READ: &str = "firestore.read";
const WRITE: &str = "firestore.write";
const DELETE: &str = "firestore.delete";

/// The longest one raw Firestore call (a whole `BatchGetDocuments`, `Commit` or `RunQuery`,
/// streamed reply included) may take. The `firestore` crate's request timeout covers only the
/// crate's own calls, not the raw gRPC ones this adapter makes, and a vote holds its
/// competition's in-process lock across them: without a bound, one hung connection would hold
/// up every later vote on that competition in this process.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One Firestore database's RPCs, counting every request sent.
#[derive(Clone)]
pub(crate) struct Rpc {
    pub(crate) db: firestore::FirestoreDb,
    requests: Arc<AtomicU64>,
}

impl Rpc {
    pub(crate) fn new(db: firestore::FirestoreDb) -> Self {
        Rpc {
            db,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many requests were sent through this client and its clones.
    pub(crate) fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The gRPC client for one request (cheap: clones share the channel), counted.
    fn grpc(&self) -> Client {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.db.client().get()
    }

    fn database(&self) -> String {
        self.db.get_database_path().clone()
    }

    /// `projects/{p}/databases/{d}/documents`.
    pub(crate) fn documents_path(&self) -> &String {
        self.db.get_documents_path()
    }

    /// Reads documents (missing ones are `None`), in the order asked, in one request.
    pub(crate) async fn batch_get(
        &self,
        names: &[String],
    ) -> std::result::Result<Vec<Option<Document>>, tonic::Status> {
        let request = BatchGetDocumentsRequest {
            database: self.database(),
            documents: names.to_vec(),
            ..Default::default()
        };
        let mut found: HashMap<String, Document> = HashMap::new();
        timed(CALL_TIMEOUT, "BatchGetDocuments", async {
            let mut stream = self.grpc().batch_get_documents(request).await?.into_inner();
            while let Some(response) = stream.next().await {
                if let Some(batch_get_documents_response::Result::Found(doc)) = response?.result {
                    found.insert(doc.name.clone(), doc);
                }
            }
            Ok(())
        })
        .await?;
        // Firestore bills a read for every document looked up, found or not.
        bill(READ, names.len() as f64);
        Ok(names.iter().map(|n| found.remove(n)).collect())
    }

    /// Reads one document.
    pub(crate) async fn get_raw(&self, name: &str) -> std::result::Result<Option<Document>, tonic::Status> {
        Ok(self.batch_get(&[name.to_string()]).await?.pop().flatten())
    }

    /// Reads one document, its failure mapped.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Document>> {
        self.get_raw(name).await.map_err(firestore_status)
    }

    /// Applies `writes` atomically: all of them, or (a precondition failing) none.
    pub(crate) async fn commit(&self, writes: Vec<Write>) -> std::result::Result<(), tonic::Status> {
        let deletes = writes
            .iter()
            .filter(|w| matches!(w.operation, Some(write::Operation::Delete(_))))
            .count();
        let others = writes.len() - deletes;
        let request = CommitRequest {
            database: self.database(),
            writes,
            ..Default::default()
        };
        timed(CALL_TIMEOUT, "Commit", self.grpc().commit(request)).await?;
        // A commit refused (a precondition failed) writes nothing and is not reported.
        bill(WRITE, others as f64);
        bill(DELETE, deletes as f64);
        Ok(())
    }

    /// Runs `query` over `collection` (the full, prefixed collection id).
    pub(crate) async fn run_query(&self, collection: String, query: StructuredQuery) -> Result<Vec<Document>> {
        let query = StructuredQuery {
            from: vec![structured_query::CollectionSelector {
                collection_id: collection,
                all_descendants: false,
            }],
            ..query
        };
        let request = RunQueryRequest {
            parent: self.documents_path().clone(),
            query_type: Some(run_query_request::QueryType::StructuredQuery(query)),
            ..Default::default()
        };
        let docs = timed(CALL_TIMEOUT, "RunQuery", async {
            let mut stream = self.grpc().run_query(request).await?.into_inner();
            let mut docs = Vec::new();
            while let Some(response) = stream.next().await {
                if let Some(doc) = response?.document {
                    docs.push(doc);
                }
            }
            Ok(docs)
        })
        .await
        .map_err(firestore_status)?;
        // A read per document returned, and at least one per query even when none match.
        bill(READ, docs.len().max(1) as f64);
        Ok(docs)
    }
}

/// Runs one raw gRPC call within `limit` (in practice [`CALL_TIMEOUT`]); running out of time is
/// `DEADLINE_EXCEEDED`, which maps to [`thisthat_core::Error::Unavailable`] like Firestore's
/// own deadline.
pub(crate) async fn timed<T>(
    limit: Duration,
    what: &str,
    call: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
) -> std::result::Result<T, tonic::Status> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(tonic::Status::deadline_exceeded(format!(
            "{what} did not finish within {limit:?}"
        )))
    })
}

/// The precondition "the document exists" (or "does not").
pub(crate) fn exists(exists: bool) -> Option<Precondition> {
    Some(Precondition {
        condition_type: Some(precondition::ConditionType::Exists(exists)),
    })
}

/// The precondition "the document is exactly as read". Firestore sends every document it
/// returns with its update time; one without it cannot be guarded, and writing it
/// unconditionally would silently drop the optimistic check, so that is an error.
pub(crate) fn updated_at(doc: &Document) -> Result<Option<Precondition>> {
    let time: Timestamp = doc
        .update_time
        .ok_or_else(|| corrupt(format!("{} was read without its update time", doc.name)))?;
    Ok(Some(Precondition {
        condition_type: Some(precondition::ConditionType::UpdateTime(time)),
    }))
}

/// A write of `fields` to document `name`: only the fields in `mask` if one is given (a field
/// in the mask but not in `fields` is removed), under precondition `pre`.
pub(crate) fn upsert(
    name: String,
    fields: HashMap<String, Value>,
    mask: Option<&[&str]>,
    pre: Option<Precondition>,
) -> Write {
    Write {
        update_mask: mask.map(|m| DocumentMask {
            field_paths: m.iter().map(|f| f.to_string()).collect(),
        }),
        current_document: pre,
        operation: Some(write::Operation::Update(Document {
            name,
            fields,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Deletes document `name` under precondition `pre`.
pub(crate) fn delete(name: String, pre: Option<Precondition>) -> Write {
    Write {
        current_document: pre,
        operation: Some(write::Operation::Delete(name)),
        ..Default::default()
    }
}

/// A filter on one field.
pub(crate) fn field_filter(
    field: &str,
    op: structured_query::field_filter::Operator,
    value: Value,
) -> structured_query::Filter {
    structured_query::Filter {
        filter_type: Some(structured_query::filter::FilterType::FieldFilter(
            structured_query::FieldFilter {
                field: Some(structured_query::FieldReference {
                    field_path: field.to_string(),
                }),
                op: op as i32,
                value: Some(value),
            },
        )),
    }
}

/// All of `filters` (none is no filter).
pub(crate) fn all_of(mut filters: Vec<structured_query::Filter>) -> Option<structured_query::Filter> {
    if filters.len() <= 1 {
        return filters.pop();
    }
    Some(structured_query::Filter {
        filter_type: Some(structured_query::filter::FilterType::CompositeFilter(
            structured_query::CompositeFilter {
                op: structured_query::composite_filter::Operator::And as i32,
                filters,
            },
        )),
    })
}

/// Order by `field`.
pub(crate) fn order(field: &str, direction: structured_query::Direction) -> structured_query::Order {
    structured_query::Order {
        field: Some(structured_query::FieldReference {
            field_path: field.to_string(),
        }),
        direction: direction as i32,
    }
}

/// A write that lost a race: Firestore aborted it under contention, or a precondition on the
/// document's update time or existence failed because another writer got there first.
pub(crate) fn contended(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Aborted | Code::FailedPrecondition | Code::AlreadyExists
    )
}

/// A commit that ended without telling whether it was applied.
pub(crate) fn unanswered(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal
    )
}

#[cfg(test)]
mod tests {
    use thisthat_core::Error;

    use super::*;
    use crate::error::firestore_status;

    #[tokio::test]
    async fn raw_calls_that_hang_end_as_unavailable() {
        let hung = timed(
            Duration::from_millis(20),
            "Commit",
            std::future::pending::<std::result::Result<(), tonic::Status>>(),
        );
        let status = tokio::time::timeout(Duration::from_secs(5), hung)
            .await
            .expect("the call is bounded")
            .expect_err("a hung call fails");
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(matches!(firestore_status(status), Error::Unavailable { .. }));
        let quick = timed(Duration::from_secs(5), "Commit", async { Ok(7) }).await;
        assert_eq!(quick.expect("in time"), 7);
    }

    #[test]
    fn a_document_without_an_update_time_cannot_be_guarded() {
        let mut doc = Document {
            name: "projects/p/databases/(default)/documents/competitions/x".into(),
            ..Default::default()
        };
        let unguarded = updated_at(&doc);
        assert!(matches!(unguarded, Err(Error::Backend { .. })), "{unguarded:?}");
        doc.update_time = Some(Timestamp { seconds: 1, nanos: 2 });
        let guard = updated_at(&doc).expect("guarded").expect("a precondition");
        assert!(matches!(
            guard.condition_type,
            Some(precondition::ConditionType::UpdateTime(Timestamp {
                seconds: 1,
                nanos: 2
            }))
        ));
    }
}
