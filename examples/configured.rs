//! The whole story on whichever adapters the configuration names, with no code for any
//! provider: each port is a URL from the environment, opened by [`thisthat::registry`] with
//! every adapter compiled in (cargo features `aws`, `azure`, `gcp`, and the default `local`
//! and `testkit`).
//!
//! ```sh
//! # All on AWS (credentials and region from the standard AWS chain):
//! THISTHAT_STORAGE=s3://my-photos \
//! THISTHAT_DATABASE='dynamodb://thisthat?create=true' \
//! THISTHAT_NOTIFIER='sns://?fcm=arn:aws:sns:eu-west-1:123456789012:app/GCM/thisthat' \
//! THISTHAT_CLASSIFIER=rekognition:// \
//! cargo run --features aws --example configured
//!
//! # Or any mix: DynamoDB for the data, everything else embedded.
//! THISTHAT_DATABASE='dynamodb://thisthat?create=true' cargo run --features aws --example configured
//! ```
//!
//! A port left unset is in memory. `scripts/test` runs this example on emulators, all on AWS
//! and as a mix (Cloud Storage + DynamoDB + SNS + Rekognition): `scripts/examples-on-emulators`.

use thisthat::{
    BackendConfig, DeliveryMode, Device, NewCompetition, Platform, Thisthat,
    testkit::{fixtures::user, photos},
};

fn port(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| "memory://".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let config = BackendConfig {
        storage: port("THISTHAT_STORAGE"),
        database: port("THISTHAT_DATABASE"),
        notifier: port("THISTHAT_NOTIFIER"),
        classifier: port("THISTHAT_CLASSIFIER"),
    };
    println!(
        "storage {}\ndatabase {}\nnotifier {}\nclassifier {}",
        config.storage, config.database, config.notifier, config.classifier
    );
    let backend = thisthat::registry().open(&config).await?;
    // Deferred, so that the delivery below reports what it did; a serverless deployment
    // would keep the default (inline: the closing vote's call delivers).
    let service = Thisthat::builder(backend).delivery(DeliveryMode::Deferred).build()?;

    let owner = user("alice");
    let phone = service
        .register_device(Device::new(
            owner.clone(),
            Platform::Fcm,
            format!("alice-phone-{}", std::process::id()),
        )?)
        .await?;
    println!("registered {}'s phone as {}", owner, phone.address);
    let competition = service
        .create_competition(
            &owner,
            NewCompetition {
                title: Some("Which should be my wallpaper?".into()),
                photos: photos::three(),
            },
        )
        .await?;
    println!(
        "created {} with categories {:?}",
        competition.id, competition.categories
    );
    let urls = service.photo_urls(&competition.id).await?;
    println!("photo 1 downloads from {}", urls[0].url);
    let mut last = None;
    for i in 0..competition.votes_to_close {
        let voter = user(&format!("voter{i}"));
        last = Some(service.vote(&voter, &competition.id, [0, 0, 1][i as usize % 3]).await?);
    }
    let outcome = last
        .and_then(|r| r.closed)
        .ok_or("the last vote did not close the competition")?;
    println!(
        "closed: tally {:?}, winners {:?}",
        outcome.tally.counts(),
        outcome.winners
    );
    let closed = service.competition(&competition.id).await?;
    if closed.outcome.as_ref() != Some(&outcome) {
        return Err("the stored result differs from the closing vote's".into());
    }
    let report = service.deliver_pending().await?;
    println!("delivery: {report:?}");
    if report.delivered == 0 || report.failed > 0 {
        return Err("the owner's result notification was not delivered".into());
    }
    Ok(())
}
