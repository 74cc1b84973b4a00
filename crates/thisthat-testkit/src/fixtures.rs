//! Ready-made domain values for tests.

use std::time::SystemTime;

use thisthat_core::{
    BlobKey, Category, Competition, CompetitionId, Device, Label, MediaType, Photo, PhotoVariant, Platform, Status,
    Tally, UserId, Vote,
};

/// A user id from a literal, for tests. Panics on an invalid id, which is a bug in the test.
pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap_or_else(|e| panic!("bad test user id {name:?}: {e}"))
}

/// The current time at millisecond precision, which every database stores exactly.
pub fn now_ms() -> SystemTime {
    thisthat_core::model::unix_ms::truncate(SystemTime::now())
}

/// A competition of three labelled PNG photos, as the service would store it, with the
/// given status, owner and threshold.
pub fn competition(owner: &str, status: Status, votes_to_close: u32) -> Competition {
    let id = CompetitionId::new();
    let label = |name: &str, confidence| Label {
        name: Category::new(name).expect("valid category"),
        confidence,
    };
    let photos = (0..3)
        .map(|i| Photo {
            key: BlobKey::photo(&id, i, MediaType::Png),
            media_type: MediaType::Png,
            size: 1000 + i as u64,
            width: 640,
            height: 480,
            labels: vec![label("cat", 0.93), label(&format!("thing {i}"), 0.5)],
            display: Some(PhotoVariant {
                key: BlobKey::display(&id, i, MediaType::Jpeg),
                media_type: MediaType::Jpeg,
                size: 100 + i as u64,
                width: 480,
                height: 640,
            }),
            // One photo of three without its original: the flag round-trips either way.
            original_kept: i != 1,
        })
        .collect();
    Competition {
        id,
        owner: user(owner),
        title: Some("Which one? ünïcödé ✓".into()),
        status,
        photos,
        categories: vec![Category::new("cat").expect("valid category")],
        tally: Tally::zero(3),
        votes_to_close,
        outcome: None,
        created_at: now_ms(),
    }
}

/// A vote by `voter` for photo `choice` of `competition`.
pub fn vote(competition: &Competition, voter: &str, choice: usize) -> Vote {
    Vote {
        competition: competition.id,
        voter: user(voter),
        choice,
    }
}

/// An FCM device of `owner` with a token unique to this call.
pub fn device(owner: &str) -> Device {
    Device::new(user(owner), Platform::Fcm, format!("token-{}", CompetitionId::new())).expect("valid device")
}
