//! The whole story of "This, this or that", end to end, on in-memory adapters: an owner posts
//! three real photos, 24 voters pick their favourite, the competition closes and the owner's
//! phone gets the result.
//!
//! Run it with `cargo run --example story`.

use thisthat::{
    Device, NewCompetition, Platform, Thisthat,
    testkit::{fixtures::user, memory::MemoryBackend, photos},
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();

    let memory = MemoryBackend::new();
    let service = Thisthat::builder(memory.backend()).build()?;

    let owner = user("alice");
    service
        .register_device(Device::new(owner.clone(), Platform::Fcm, "alice-phone-token")?)
        .await?;
    let photos = vec![photos::cat_png(), photos::coffee_png(), photos::rocket_jpeg()];
    let competition = service
        .create_competition(
            &owner,
            NewCompetition {
                title: Some("Which should be my wallpaper?".into()),
                photos,
            },
        )
        .await?;
    println!(
        "{} created competition {} \"{}\"",
        owner,
        competition.id,
        competition.title.as_deref().unwrap_or("")
    );
    for (i, photo) in competition.photos.iter().enumerate() {
        let labels: Vec<_> = photo
            .labels
            .iter()
            .map(|l| format!("{} {:.2}", l.name, l.confidence))
            .collect();
        println!(
            "  photo {}: {} {}x{}, {} bytes, labels [{}]",
            i + 1,
            photo.media_type,
            photo.width,
            photo.height,
            photo.size,
            labels.join(", ")
        );
    }
    println!(
        "  categories: {:?}",
        competition.categories.iter().map(|c| c.as_str()).collect::<Vec<_>>()
    );

    // 24 voters; most like the coffee.
    for i in 0..24 {
        let choice = [1, 1, 0, 1, 2, 1][i % 6];
        let receipt = service
            .vote(&user(&format!("voter-{i:02}")), &competition.id, choice)
            .await?;
        if let Some(outcome) = receipt.closed {
            println!(
                "vote {} closed it: tally {:?}, winners {:?}",
                i + 1,
                outcome.tally.counts(),
                outcome.winners
            );
        }
    }
    match service.vote(&user("latecomer"), &competition.id, 0).await {
        Err(e) => println!("a 25th vote is refused: {e} ({})", e.code()),
        Ok(_) => unreachable!("the competition is closed"),
    }

    for (endpoint, message) in memory.notifier.sent() {
        println!(
            "push to {} ({}): {} / {}",
            endpoint.device.user,
            endpoint.device.platform.as_str(),
            message.title,
            message.body
        );
    }
    Ok(())
}
