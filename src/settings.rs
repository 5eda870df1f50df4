//! Server properties an admin edits day to day (Exchange's Hub Transport server
//! properties): the retry policy, the NDR copy address and tracking retention.
//! Stored in the `settings` table; a change reaches the running server within the
//! directory poll interval (the table's triggers bump `org_version`).

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::directory::{Result, invalid};
use crate::smtp::address::EmailAddress;
use crate::store::{Store, StoreError};

/// When to retry, warn and give up (PRODUCT §5; seed 000: every minute for an
/// hour, a delay notice, then hourly until five days, then an NDR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RetryPolicy {
    /// Retry interval during the first phase.
    #[serde(with = "secs")]
    #[schema(value_type = u64)]
    pub first_interval: Duration,
    /// How long the first phase lasts, counted from arrival.
    #[serde(with = "secs")]
    #[schema(value_type = u64)]
    pub first_phase: Duration,
    /// Retry interval after the first phase.
    #[serde(with = "secs")]
    #[schema(value_type = u64)]
    pub later_interval: Duration,
    /// Age at which the sender gets a delay DSN (once).
    #[serde(with = "secs")]
    #[schema(value_type = u64)]
    pub delay_notice_after: Duration,
    /// Age at which delivery stops with an NDR (5.4.7).
    #[serde(with = "secs")]
    #[schema(value_type = u64)]
    pub expiration: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_interval: Duration::from_secs(60),
            first_phase: Duration::from_secs(3600),
            later_interval: Duration::from_secs(3600),
            delay_notice_after: Duration::from_secs(3600),
            expiration: Duration::from_secs(5 * 86_400),
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt for a message of this age.
    pub fn interval_at(&self, age: Duration) -> Duration {
        if age < self.first_phase {
            self.first_interval
        } else {
            self.later_interval
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServerSettings {
    pub retry: RetryPolicy,
    /// Every NDR is copied to this address (Exchange: "Send copy of NDR to").
    pub ndr_copy_to: Option<EmailAddress>,
    pub tracking_retention_days: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            retry: RetryPolicy::default(),
            ndr_copy_to: None,
            tracking_retention_days: 30,
        }
    }
}

/// Parses `90`, `90s`, `15m`, `2h`, `5d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// The shortest exact form: `5d`, `1h`, `90s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= size && s.is_multiple_of(size) {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

const KEYS: [&str; 7] = [
    "retry.first_interval",
    "retry.first_phase",
    "retry.later_interval",
    "retry.delay_notice_after",
    "retry.expiration",
    "ndr_copy_to",
    "tracking_retention_days",
];

pub async fn load(store: &Store) -> Result<ServerSettings, StoreError> {
    let mut s = ServerSettings::default();
    for row in sqlx::query("SELECT key, value FROM settings")
        .fetch_all(store.pool())
        .await?
    {
        let (key, value): (String, String) = (row.get("key"), row.get("value"));
        let secs = || value.parse::<u64>().ok().map(Duration::from_secs);
        match key.as_str() {
            "retry.first_interval" => {
                s.retry.first_interval = secs().unwrap_or(s.retry.first_interval)
            }
            "retry.first_phase" => s.retry.first_phase = secs().unwrap_or(s.retry.first_phase),
            "retry.later_interval" => {
                s.retry.later_interval = secs().unwrap_or(s.retry.later_interval)
            }
            "retry.delay_notice_after" => {
                s.retry.delay_notice_after = secs().unwrap_or(s.retry.delay_notice_after)
            }
            "retry.expiration" => s.retry.expiration = secs().unwrap_or(s.retry.expiration),
            "ndr_copy_to" => s.ndr_copy_to = EmailAddress::parse(&value).ok(),
            "tracking_retention_days" => {
                s.tracking_retention_days = value.parse().unwrap_or(s.tracking_retention_days)
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Changes as typed; `None` leaves a value alone. Durations are `30s`, `15m`,
/// `1h`, `5d` or a number of seconds.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsInput {
    #[serde(deserialize_with = "crate::serde_util::string_or_number")]
    pub first_interval: Option<String>,
    #[serde(deserialize_with = "crate::serde_util::string_or_number")]
    pub first_phase: Option<String>,
    #[serde(deserialize_with = "crate::serde_util::string_or_number")]
    pub later_interval: Option<String>,
    #[serde(deserialize_with = "crate::serde_util::string_or_number")]
    pub delay_notice_after: Option<String>,
    #[serde(deserialize_with = "crate::serde_util::string_or_number")]
    pub expiration: Option<String>,
    /// `Some("")` or `Some("none")` removes the copy address.
    pub ndr_copy_to: Option<String>,
    pub tracking_retention_days: Option<u32>,
}

pub async fn update(store: &Store, input: SettingsInput) -> Result<ServerSettings> {
    let mut s = load(store).await?;
    let dur = |field: &'static str, v: &str| {
        parse_duration(v)
            .filter(|d| d.as_secs() >= 1)
            .ok_or_else(|| {
                invalid(
                    field,
                    format!("`{v}` is not a duration such as 30s, 15m, 1h or 5d"),
                )
            })
    };
    if let Some(v) = &input.first_interval {
        s.retry.first_interval = dur("first_interval", v)?;
    }
    if let Some(v) = &input.first_phase {
        s.retry.first_phase = dur("first_phase", v)?;
    }
    if let Some(v) = &input.later_interval {
        s.retry.later_interval = dur("later_interval", v)?;
    }
    if let Some(v) = &input.delay_notice_after {
        s.retry.delay_notice_after = dur("delay_notice_after", v)?;
    }
    if let Some(v) = &input.expiration {
        s.retry.expiration = dur("expiration", v)?;
    }
    if s.retry.expiration <= s.retry.first_interval {
        return Err(invalid(
            "expiration",
            "the expiration must be longer than the first retry interval",
        ));
    }
    if let Some(v) = &input.ndr_copy_to {
        s.ndr_copy_to = match v.trim() {
            "" | "none" => None,
            a => Some(EmailAddress::parse(a).map_err(|e| invalid("ndr_copy_to", e.to_string()))?),
        };
    }
    if let Some(d) = input.tracking_retention_days {
        if !(1..=3650).contains(&d) {
            return Err(invalid(
                "tracking_retention_days",
                "retention must be 1 to 3650 days",
            ));
        }
        s.tracking_retention_days = d;
    }
    let values = [
        s.retry.first_interval.as_secs().to_string(),
        s.retry.first_phase.as_secs().to_string(),
        s.retry.later_interval.as_secs().to_string(),
        s.retry.delay_notice_after.as_secs().to_string(),
        s.retry.expiration.as_secs().to_string(),
        s.ndr_copy_to
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        s.tracking_retention_days.to_string(),
    ];
    let mut tx = store.pool().begin().await?;
    for (key, value) in KEYS.iter().zip(values) {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432_000)));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(format_duration(Duration::from_secs(432_000)), "5d");
        assert_eq!(format_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(format_duration(Duration::from_secs(61)), "61s");
    }

    #[test]
    fn schedule_phases() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.interval_at(Duration::from_secs(10)),
            Duration::from_secs(60)
        );
        assert_eq!(
            p.interval_at(Duration::from_secs(7200)),
            Duration::from_secs(3600)
        );
    }
}
