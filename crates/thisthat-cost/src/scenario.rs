//! A month of the app, as numbers.

use serde::Serialize;

use crate::CostError;

/// A month of "This, this or that": who uses it, how much, and with what photos. Every field
/// can be set in a TOML scenario file; the rest keep [`Scenario::seed`]'s values.
///
/// ```
/// let scenario = thisthat_cost::Scenario::from_toml("votes_per_session = 5\nphoto_bytes_display = 150000")
///     .expect("a valid scenario");
/// assert_eq!(scenario.votes_per_session, 5);
/// assert_eq!(scenario.sessions, thisthat_cost::Scenario::seed().sessions);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// A name for reports.
    pub name: String,
    /// People using the app in the month (the article's 10,000 downloads).
    pub monthly_active_users: u64,
    /// Sessions in the month (the article's 15,000).
    pub sessions: u64,
    /// Login requests per session (the article's 1). They reach the API but no port.
    pub logins_per_session: u64,
    /// Vote requests per session (the article's "about 20"). Each shows a competition first
    /// (one request for its signed photo URLs), then casts the vote.
    pub votes_per_session: u64,
    /// Feed pages read per session.
    pub feed_pages_per_session: u64,
    /// Competitions in one feed page (the API's default, 20).
    pub feed_page_size: u64,
    /// Competitions created in the month (the article's 4,500 images / 3).
    pub competitions: u64,
    /// Photos per competition (the rules' 3).
    pub photos_per_competition: u64,
    /// Photos a voter's app downloads per vote (3: it shows them all).
    pub photo_views_per_vote: u64,
    /// The vote that closes a competition (the rules' 24).
    pub votes_to_close: u64,
    /// Bytes of an uploaded photo.
    pub photo_bytes_original: u64,
    /// Bytes of the display variant a voter downloads (at most 1280 px, metadata stripped;
    /// 285 KB measured for a 12-megapixel phone photo, `docs/photos.md`).
    pub photo_bytes_display: u64,
    /// 1 if the original of each photo is stored beside its display variant (the rules'
    /// `keep_originals`, on by default), 0 if only the variant is kept.
    pub keep_originals: u64,
    /// Devices each owner registers for pushes.
    pub devices_per_owner: u64,
    /// Months photos and competitions are kept (storage is a steady state of this many
    /// months of uploads).
    pub retention_months: u64,
    /// 1 if the classifier screens content (a second call per photo on Rekognition and AI
    /// Vision, a second feature on Vision), 0 if not.
    pub screening: u64,
    /// Milliseconds of compute billed per API request (the article's 500).
    pub request_ms: u64,
    /// Memory of the function or container, in MB.
    pub memory_mb: u64,
    /// Bytes of an average API response (egress to the internet).
    pub api_response_bytes: u64,
    /// Bytes each way of one database or notifier call (only billed when it crosses clouds).
    pub call_bytes: u64,
}

/// Each field's name, smallest and largest allowed value.
const FIELDS: &[(&str, u64, u64)] = &[
    ("monthly_active_users", 1, 1_000_000_000),
    ("sessions", 0, 100_000_000_000),
    ("logins_per_session", 0, 1_000),
    ("votes_per_session", 0, 10_000),
    ("feed_pages_per_session", 0, 1_000),
    ("feed_page_size", 1, 100),
    ("competitions", 0, 10_000_000_000),
    ("photos_per_competition", 2, 10),
    ("photo_views_per_vote", 0, 100),
    ("votes_to_close", 1, 2_000),
    ("photo_bytes_original", 1, 10 * 1024 * 1024),
    ("photo_bytes_display", 1, 10 * 1024 * 1024),
    ("keep_originals", 0, 1),
    ("devices_per_owner", 0, 20),
    ("retention_months", 0, 1_200),
    ("screening", 0, 1),
    ("request_ms", 1, 900_000),
    ("memory_mb", 128, 10_240),
    ("api_response_bytes", 0, 10 * 1024 * 1024),
    ("call_bytes", 0, 10 * 1024 * 1024),
];

impl Scenario {
    /// The article's month: 10,000 downloads, 15,000 sessions of 1 login and 20 votes, 1,500
    /// competitions (4,500 photos). What the article left unsaid is filled in and named here:
    /// 2 MB photos uploaded and kept, voters downloading their 285 KB display variants, one
    /// feed page per session, one device per owner, a
    /// year of retention, screening on, 500 ms and 128 MB per request.
    pub fn seed() -> Scenario {
        Scenario {
            name: "seed".to_string(),
            monthly_active_users: 10_000,
            sessions: 15_000,
            logins_per_session: 1,
            votes_per_session: 20,
            feed_pages_per_session: 1,
            feed_page_size: 20,
            competitions: 1_500,
            photos_per_competition: 3,
            photo_views_per_vote: 3,
            votes_to_close: 24,
            photo_bytes_original: 2_000_000,
            photo_bytes_display: 285_000,
            keep_originals: 1,
            devices_per_owner: 1,
            retention_months: 12,
            screening: 1,
            request_ms: 500,
            memory_mb: 128,
            api_response_bytes: 2_000,
            call_bytes: 2_000,
        }
    }

    /// The seed with the fields a TOML document sets. An unknown field, a value that is not a
    /// whole number, a negative one or one out of range is refused, naming the field.
    pub fn from_toml(text: &str) -> Result<Scenario, CostError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| CostError::scenario("(file)", format!("not valid TOML: {e}")))?;
        let mut scenario = Scenario::seed();
        scenario.name = "custom".to_string();
        for (key, value) in &table {
            if key == "name" {
                scenario.name = value
                    .as_str()
                    .ok_or_else(|| CostError::scenario("name", "must be a string"))?
                    .to_string();
                continue;
            }
            let number = match value {
                toml::Value::Integer(n) => *n,
                toml::Value::Boolean(b) if key == "screening" => i64::from(*b),
                _ => {
                    return Err(CostError::scenario(
                        key,
                        format!("must be a whole number, not a {}", value.type_str()),
                    ));
                }
            };
            let number = u64::try_from(number).map_err(|_| CostError::scenario(key, "may not be negative"))?;
            scenario.set(key, number)?;
        }
        scenario.validate()?;
        Ok(scenario)
    }

    /// Sets one field by its name, within its bounds.
    pub fn set(&mut self, field: &str, value: u64) -> Result<(), CostError> {
        let Some(&(_, min, max)) = FIELDS.iter().find(|(name, _, _)| *name == field) else {
            let known: Vec<&str> = FIELDS.iter().map(|(n, _, _)| *n).collect();
            return Err(CostError::scenario(
                field,
                format!("unknown field; the fields are name, {}", known.join(", ")),
            ));
        };
        if !(min..=max).contains(&value) {
            return Err(CostError::scenario(
                field,
                format!("{value} is out of range {min}..={max}"),
            ));
        }
        let slot = match field {
            "monthly_active_users" => &mut self.monthly_active_users,
            "sessions" => &mut self.sessions,
            "logins_per_session" => &mut self.logins_per_session,
            "votes_per_session" => &mut self.votes_per_session,
            "feed_pages_per_session" => &mut self.feed_pages_per_session,
            "feed_page_size" => &mut self.feed_page_size,
            "competitions" => &mut self.competitions,
            "photos_per_competition" => &mut self.photos_per_competition,
            "photo_views_per_vote" => &mut self.photo_views_per_vote,
            "votes_to_close" => &mut self.votes_to_close,
            "photo_bytes_original" => &mut self.photo_bytes_original,
            "photo_bytes_display" => &mut self.photo_bytes_display,
            "keep_originals" => &mut self.keep_originals,
            "devices_per_owner" => &mut self.devices_per_owner,
            "retention_months" => &mut self.retention_months,
            "screening" => &mut self.screening,
            "request_ms" => &mut self.request_ms,
            "memory_mb" => &mut self.memory_mb,
            "api_response_bytes" => &mut self.api_response_bytes,
            "call_bytes" => &mut self.call_bytes,
            _ => return Err(CostError::scenario(field, "unknown field")),
        };
        *slot = value;
        Ok(())
    }

    /// Checks every field's range and the ones that depend on each other.
    pub fn validate(&self) -> Result<(), CostError> {
        for &(field, min, max) in FIELDS {
            let value = self.get(field);
            if !(min..=max).contains(&value) {
                return Err(CostError::scenario(
                    field,
                    format!("{value} is out of range {min}..={max}"),
                ));
            }
        }
        if self.sessions > 0 && self.sessions < self.monthly_active_users / 1_000 {
            return Err(CostError::scenario(
                "sessions",
                "fewer than one session per thousand users is not a month of use",
            ));
        }
        if self.competitions == 0 && self.sessions * self.votes_per_session > 0 {
            return Err(CostError::scenario(
                "competitions",
                "votes need at least one competition",
            ));
        }
        if self.photo_views_per_vote > self.photos_per_competition {
            return Err(CostError::scenario(
                "photo_views_per_vote",
                "cannot exceed photos_per_competition: the API hands out one URL per photo",
            ));
        }
        Ok(())
    }

    fn get(&self, field: &str) -> u64 {
        match field {
            "monthly_active_users" => self.monthly_active_users,
            "sessions" => self.sessions,
            "logins_per_session" => self.logins_per_session,
            "votes_per_session" => self.votes_per_session,
            "feed_pages_per_session" => self.feed_pages_per_session,
            "feed_page_size" => self.feed_page_size,
            "competitions" => self.competitions,
            "photos_per_competition" => self.photos_per_competition,
            "photo_views_per_vote" => self.photo_views_per_vote,
            "votes_to_close" => self.votes_to_close,
            "photo_bytes_original" => self.photo_bytes_original,
            "photo_bytes_display" => self.photo_bytes_display,
            "keep_originals" => self.keep_originals,
            "devices_per_owner" => self.devices_per_owner,
            "retention_months" => self.retention_months,
            "screening" => self.screening,
            "request_ms" => self.request_ms,
            "memory_mb" => self.memory_mb,
            "api_response_bytes" => self.api_response_bytes,
            "call_bytes" => self.call_bytes,
            _ => 0,
        }
    }

    /// The same app with `users` monthly active users: sessions and competitions scale with
    /// them (rounded to whole numbers), everything per session stays.
    pub fn with_users(&self, users: u64) -> Result<Scenario, CostError> {
        if users == 0 {
            return Err(CostError::scenario("users", "must be at least 1"));
        }
        let factor = users as f64 / self.monthly_active_users as f64;
        let scale = |n: u64| (n as f64 * factor).round() as u64;
        let mut scaled = self.clone();
        scaled.set("monthly_active_users", users)?;
        scaled
            .set("sessions", scale(self.sessions))
            .map_err(|_| CostError::scenario("users", format!("{users} users make sessions out of range")))?;
        scaled
            .set("competitions", scale(self.competitions).max(1))
            .map_err(|_| CostError::scenario("users", format!("{users} users make competitions out of range")))?;
        scaled.validate()?;
        Ok(scaled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_valid_and_a_file_overrides_only_what_it_sets() {
        Scenario::seed().validate().expect("seed");
        let s = Scenario::from_toml("name = \"small\"\nsessions = 10\nscreening = false").expect("valid");
        assert_eq!((s.name.as_str(), s.sessions, s.screening), ("small", 10, 0));
        assert_eq!(s.votes_to_close, 24);
    }

    #[test]
    fn bad_fields_are_refused_by_name() {
        let err = |t: &str| Scenario::from_toml(t).expect_err(t).to_string();
        assert!(err("sesions = 3").contains("`sesions`: unknown field"));
        assert!(err("sessions = -3").contains("`sessions`: may not be negative"));
        assert!(err("votes_to_close = 5000").contains("`votes_to_close`: 5000 is out of range 1..=2000"));
        assert!(err("photo_bytes_original = 1.5").contains("`photo_bytes_original`: must be a whole number"));
        assert!(err("competitions = 0").contains("`competitions`: votes need"));
        assert!(err("sessions = ").contains("not valid TOML"));
    }

    #[test]
    fn users_scale_sessions_and_competitions() {
        let s = Scenario::seed().with_users(1_000_000).expect("scaled");
        assert_eq!((s.sessions, s.competitions), (1_500_000, 150_000));
        assert!(Scenario::seed().with_users(0).is_err());
        assert!(Scenario::seed().with_users(2_000_000_000).is_err());
    }
}
