//! OpenAPI schemas of the identifiers and values the HTTP API sends as strings or arrays
//! (feature `openapi`). The structs derive theirs next to their definitions; the types here
//! are serialised through `String` (or as a bare array), so their schema states the rules
//! their constructors check, with the same limits.

use std::borrow::Cow;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Type,
        schema::{ArrayBuilder, ObjectBuilder, Schema},
    },
};

use crate::{BlobKey, Category, CompetitionId, Tally, UserId};

fn string(description: &str, example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .examples([example])
}

/// A count of votes: a `u32` as JSON Schema states it.
pub(crate) fn count() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(u32::MAX))
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int32,
        )))
}

macro_rules! named {
    ($($ty:ty),*) => {$(
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        }
    )*};
}

named!(CompetitionId, UserId, BlobKey, Category, Tally);

impl PartialSchema for CompetitionId {
    fn schema() -> RefOr<Schema> {
        string(
            "A ULID in canonical upper-case Crockford base32; sorts by creation time.",
            "01JD4ZQ8VJ5YH0J3W6PX2E9K7M",
        )
        // The first character carries the top bits of the 48-bit time: at most `7`.
        .pattern(Some("^[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .min_length(Some(26))
        .max_length(Some(26))
        .into()
    }
}

impl PartialSchema for UserId {
    fn schema() -> RefOr<Schema> {
        string(
            "A user id: the `sub` claim of the caller's token. 1 to 128 ASCII letters, digits \
             and `-_.:@|`, not starting with `.`.",
            "alice",
        )
        .pattern(Some("^[A-Za-z0-9_:@|-][A-Za-z0-9._:@|-]*$"))
        .min_length(Some(1))
        .max_length(Some(UserId::MAX_LEN))
        .into()
    }
}

impl PartialSchema for BlobKey {
    fn schema() -> RefOr<Schema> {
        string(
            "Where a blob is stored: `/`-separated segments of ASCII letters, digits and \
             `!-_.*'()`, none empty, `.` or `..`.",
            "competitions/01JD4ZQ8VJ5YH0J3W6PX2E9K7M/0.jpg",
        )
        .min_length(Some(1))
        .max_length(Some(BlobKey::MAX_LEN))
        .into()
    }
}

impl PartialSchema for Category {
    fn schema() -> RefOr<Schema> {
        string(
            "A lower-case label such as `cat` or `coffee`: trimmed, inner whitespace folded to \
             one space.",
            "tabby cat",
        )
        .min_length(Some(1))
        .max_length(Some(Category::MAX_CHARS))
        .into()
    }
}

impl PartialSchema for Tally {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(count())
            .description(Some("Votes per photo, indexed like the competition's photos."))
            .examples([serde_json::json!([3, 5, 5])])
            .into()
    }
}
