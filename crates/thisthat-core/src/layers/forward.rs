//! The one place each port's calls are forwarded through an interceptor.

use std::{
    any::{Any, TypeId},
    time::SystemTime,
};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Call, Interceptor, Layered};
use crate::{
    BlobKey, Classification, Competition, CompetitionId, Device, Endpoint, FeedPage, FeedQuery, Notification,
    PushMessage, Result, UserId, Vote, VoteReceipt, ports::*,
};

const fn call(port: &'static str, operation: &'static str) -> Call {
    Call { port, operation }
}

#[async_trait]
impl<P: BlobStore + ?Sized, I: Interceptor> BlobStore for Layered<P, I> {
    async fn put(&self, key: &BlobKey, body: Bytes, options: &PutOptions) -> Result<BlobMeta> {
        let op = || {
            super::meter::bytes_in(body.len());
            self.inner.put(key, body.clone(), options)
        };
        self.interceptor.intercept(call("blob", "put"), op).await
    }
    async fn get(&self, key: &BlobKey, options: &GetOptions) -> Result<Blob> {
        let op = || async {
            let blob = self.inner.get(key, options).await;
            if let Ok(blob) = &blob {
                super::meter::bytes_out(blob.body.len());
            }
            blob
        };
        self.interceptor.intercept(call("blob", "get"), op).await
    }
    async fn head(&self, key: &BlobKey) -> Result<BlobMeta> {
        let op = || self.inner.head(key);
        self.interceptor.intercept(call("blob", "head"), op).await
    }
    async fn delete(&self, key: &BlobKey) -> Result<()> {
        let op = || self.inner.delete(key);
        self.interceptor.intercept(call("blob", "delete"), op).await
    }
    async fn list(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        let op = || self.inner.list(prefix, continuation.clone());
        self.interceptor.intercept(call("blob", "list"), op).await
    }
    async fn signed_url(&self, key: &BlobKey, request: &SignedUrlRequest) -> Result<SignedUrl> {
        let op = || self.inner.signed_url(key, request);
        self.interceptor.intercept(call("blob", "signed_url"), op).await
    }
    fn as_native(&self, ty: TypeId) -> Option<&dyn Any> {
        self.inner.as_native(ty)
    }
}

#[async_trait]
impl<P: Database + ?Sized, I: Interceptor> Database for Layered<P, I> {
    async fn insert_competition(&self, competition: &Competition) -> Result<()> {
        let op = || self.inner.insert_competition(competition);
        self.interceptor
            .intercept(call("database", "insert_competition"), op)
            .await
    }
    async fn publish_competition(&self, competition: &Competition) -> Result<()> {
        let op = || self.inner.publish_competition(competition);
        self.interceptor
            .intercept(call("database", "publish_competition"), op)
            .await
    }
    async fn delete_draft(&self, id: &CompetitionId) -> Result<()> {
        let op = || self.inner.delete_draft(id);
        self.interceptor.intercept(call("database", "delete_draft"), op).await
    }

    async fn expired_drafts(&self, before: SystemTime, limit: usize) -> Result<Vec<CompetitionId>> {
        let op = || self.inner.expired_drafts(before, limit);
        self.interceptor.intercept(call("database", "expired_drafts"), op).await
    }
    async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        let op = || self.inner.competition(id);
        self.interceptor.intercept(call("database", "competition"), op).await
    }
    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        let op = || self.inner.cast_vote(vote);
        self.interceptor.intercept(call("database", "cast_vote"), op).await
    }
    async fn feed(&self, query: &FeedQuery) -> Result<FeedPage> {
        let op = || self.inner.feed(query);
        self.interceptor.intercept(call("database", "feed"), op).await
    }
    async fn claim_notifications(&self, claim: &NotificationClaim) -> Result<Vec<Notification>> {
        let op = || self.inner.claim_notifications(claim);
        self.interceptor
            .intercept(call("database", "claim_notifications"), op)
            .await
    }
    async fn record_deliveries(&self, competition: &CompetitionId, devices: &[String]) -> Result<()> {
        let op = || self.inner.record_deliveries(competition, devices);
        self.interceptor
            .intercept(call("database", "record_deliveries"), op)
            .await
    }
    async fn complete_notification(&self, competition: &CompetitionId, at: SystemTime) -> Result<()> {
        let op = || self.inner.complete_notification(competition, at);
        self.interceptor
            .intercept(call("database", "complete_notification"), op)
            .await
    }
    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let op = || self.inner.save_endpoint(endpoint);
        self.interceptor.intercept(call("database", "save_endpoint"), op).await
    }
    async fn endpoints(&self, user: &UserId) -> Result<Vec<Endpoint>> {
        let op = || self.inner.endpoints(user);
        self.interceptor.intercept(call("database", "endpoints"), op).await
    }
    async fn delete_endpoint(&self, user: &UserId, token: &str) -> Result<()> {
        let op = || self.inner.delete_endpoint(user, token);
        self.interceptor
            .intercept(call("database", "delete_endpoint"), op)
            .await
    }
    fn as_native(&self, ty: TypeId) -> Option<&dyn Any> {
        self.inner.as_native(ty)
    }
}

#[async_trait]
impl<P: Notifier + ?Sized, I: Interceptor> Notifier for Layered<P, I> {
    async fn register(&self, device: &Device) -> Result<Endpoint> {
        let op = || self.inner.register(device);
        self.interceptor.intercept(call("notifier", "register"), op).await
    }
    async fn unregister(&self, endpoint: &Endpoint) -> Result<()> {
        let op = || self.inner.unregister(endpoint);
        self.interceptor.intercept(call("notifier", "unregister"), op).await
    }
    async fn send(&self, endpoint: &Endpoint, message: &PushMessage) -> Result<Delivery> {
        let op = || self.inner.send(endpoint, message);
        self.interceptor.intercept(call("notifier", "send"), op).await
    }
    fn as_native(&self, ty: TypeId) -> Option<&dyn Any> {
        self.inner.as_native(ty)
    }
}

#[async_trait]
impl<P: Classifier + ?Sized, I: Interceptor> Classifier for Layered<P, I> {
    async fn classify(&self, photo: &PhotoInput) -> Result<Classification> {
        let op = || {
            super::meter::bytes_in(photo.bytes.len());
            self.inner.classify(photo)
        };
        self.interceptor.intercept(call("classifier", "classify"), op).await
    }
    fn screens_content(&self) -> bool {
        self.inner.screens_content()
    }
    fn as_native(&self, ty: TypeId) -> Option<&dyn Any> {
        self.inner.as_native(ty)
    }
}
