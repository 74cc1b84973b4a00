//! How to test your own code against thisthat's ports with mockall mocks.
//!
//! Your application has a handler of its own, here `remind_owner`, that reads a competition
//! and pushes a reminder to the owner's devices. Its test sets expectations on
//! `MockDatabase` and `MockNotifier` instead of running any backend.
//!
//! Run the test with `cargo test --example mock_handler --features mock`.

use std::sync::Arc;

use thisthat::{
    CompetitionId, PushMessage, Result,
    ports::{Database, Delivery, Notifier},
};

/// Your handler: reminds an owner how many votes their competition still needs. Returns how
/// many devices were reached.
pub async fn remind_owner(
    database: Arc<dyn Database>,
    notifier: Arc<dyn Notifier>,
    id: &CompetitionId,
) -> Result<usize> {
    let competition = database.competition(id).await?;
    let missing = competition.votes_to_close.saturating_sub(competition.tally.total());
    let message = PushMessage {
        title: "Almost there".into(),
        body: format!("{missing} more votes to a result"),
        competition: competition.id,
        idempotency_key: format!("reminder-{}-{missing}", competition.id),
    };
    let mut reached = 0;
    for endpoint in database.endpoints(&competition.owner).await? {
        if notifier.send(&endpoint, &message).await? == Delivery::Accepted {
            reached += 1;
        }
    }
    Ok(reached)
}

fn main() {
    println!("run `cargo test --example mock_handler --features mock` to see the mocks at work");
}

#[cfg(test)]
mod tests {
    use mockall::predicate::eq;
    use thisthat::{
        Endpoint, Error, Status, Tally,
        ports::{MockDatabase, MockNotifier},
        testkit::fixtures,
    };

    use super::*;

    #[tokio::test]
    async fn reminds_every_device_with_the_votes_still_needed() {
        let mut competition = fixtures::competition("alice", Status::Open, 24);
        competition.tally = Tally::from_counts(vec![5, 3, 2]);
        let id = competition.id;
        let phone = Endpoint {
            device: fixtures::device("alice"),
            address: "arn:phone".into(),
        };

        let mut database = MockDatabase::new();
        database
            .expect_competition()
            .with(eq(id))
            .times(1)
            .returning(move |_| Ok(competition.clone()));
        let endpoints = vec![phone.clone()];
        database
            .expect_endpoints()
            .times(1)
            .returning(move |_| Ok(endpoints.clone()));

        let mut notifier = MockNotifier::new();
        notifier
            .expect_send()
            .withf(|endpoint, message| endpoint.address == "arn:phone" && message.body == "14 more votes to a result")
            .times(1)
            .returning(|_, _| Ok(Delivery::Accepted));

        let reached = remind_owner(Arc::new(database), Arc::new(notifier), &id)
            .await
            .expect("reminder");
        assert_eq!(reached, 1);
    }

    #[tokio::test]
    async fn a_missing_competition_is_reported_and_nobody_is_pushed() {
        let id = CompetitionId::new();
        let mut database = MockDatabase::new();
        database
            .expect_competition()
            .returning(|id| Err(Error::not_found(thisthat::Entity::Competition, id)));
        let mut notifier = MockNotifier::new();
        notifier.expect_send().never();

        let result = remind_owner(Arc::new(database), Arc::new(notifier), &id).await;
        assert!(matches!(result, Err(Error::NotFound { .. })));
    }
}
