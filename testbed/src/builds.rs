//! The two builds, and the three places their answers differ on purpose.
//!
//! How each build stores and serves (its locking, indexes and notifications) lives in
//! [`crate::store`] and [`crate::notify`]; what each build *answers* differently is all here.

use std::fmt;
use std::str::FromStr;

use http::StatusCode;

/// Which implementation of the booking API a [`crate::Testbed`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Build {
    /// One global connection, unindexed search, notifications sent inside the request.
    Legacy,
    /// Indexed, WAL, a connection pool, notifications queued for a background task.
    Rebuilt,
}

impl Build {
    /// Both builds, legacy first.
    pub const ALL: [Build; 2] = [Build::Legacy, Build::Rebuilt];

    /// The lower-case name, as in `GET /health` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Build::Legacy => "legacy",
            Build::Rebuilt => "rebuilt",
        }
    }

    /// Where `twinpeak testbed` listens unless told otherwise: legacy on 127.0.0.1:9001, rebuilt
    /// on 127.0.0.1:9002 (the primary and shadow of `examples/proxy.yaml`).
    pub fn default_addr(self) -> std::net::SocketAddr {
        let port = match self {
            Build::Legacy => 9001,
            Build::Rebuilt => 9002,
        };
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A price of `paise` as this build writes it in JSON.
    ///
    /// Legacy writes the amount as computed (`1046.5`), rebuilt rounds half up to whole rupees
    /// (`1047`). A whole amount is written the same by both (`1058`).
    pub fn price(self, paise: i64) -> serde_json::Number {
        match self {
            Build::Legacy if paise % 100 != 0 => serde_json::Number::from_f64(paise as f64 / 100.0)
                .unwrap_or_else(|| serde_json::Number::from(paise / 100)),
            Build::Legacy => serde_json::Number::from(paise / 100),
            Build::Rebuilt => serde_json::Number::from((paise + 50).div_euclid(100)),
        }
    }

    /// The status of a booking whose slot is invalid (unparseable, in the past, or off the
    /// 09:00-17:00 grid): 400 on legacy, 422 on rebuilt.
    pub fn invalid_slot_status(self) -> StatusCode {
        match self {
            Build::Legacy => StatusCode::BAD_REQUEST,
            Build::Rebuilt => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a [`Build`] from a name other than `legacy` or `rebuilt`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown build {0:?}: expected legacy or rebuilt")]
pub struct UnknownBuild(pub String);

impl FromStr for Build {
    type Err = UnknownBuild;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legacy" => Ok(Build::Legacy),
            "rebuilt" => Ok(Build::Rebuilt),
            other => Err(UnknownBuild(other.to_string())),
        }
    }
}

/// A booking as the API returns it; the partner's name goes under a different key per build.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct BookingView {
    pub id: String,
    pub partner_id: i64,
    /// Legacy's key for the partner's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_name: Option<String>,
    /// Rebuilt's key for the partner's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_display_name: Option<String>,
    pub city: String,
    pub service: String,
    pub slot: String,
    pub customer: String,
    pub price: serde_json::Number,
    pub status: &'static str,
}

impl BookingView {
    /// The view of `booking` this build answers with.
    pub fn new(build: Build, booking: crate::booking::Booking) -> BookingView {
        let (partner_name, partner_display_name) = match build {
            Build::Legacy => (Some(booking.partner_name), None),
            Build::Rebuilt => (None, Some(booking.partner_name)),
        };
        BookingView {
            id: booking.id.to_string(),
            partner_id: booking.partner_id,
            partner_name,
            partner_display_name,
            city: booking.city,
            service: booking.service,
            slot: booking.slot.to_string(),
            customer: booking.customer,
            price: build.price(booking.price_paise),
            status: booking.status.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for build in Build::ALL {
            assert_eq!(build.to_string().parse::<Build>(), Ok(build));
        }
        assert_eq!(
            "Legacy".parse::<Build>().unwrap_err().to_string(),
            "unknown build \"Legacy\": expected legacy or rebuilt"
        );
    }

    #[test]
    fn legacy_keeps_fractions_rebuilt_rounds_half_up() {
        let show = |build: Build, paise| build.price(paise).to_string();
        assert_eq!(show(Build::Legacy, 104_950), "1049.5");
        assert_eq!(show(Build::Rebuilt, 104_950), "1050");
        assert_eq!(show(Build::Legacy, 86_425), "864.25");
        assert_eq!(show(Build::Rebuilt, 86_425), "864");
        assert_eq!(show(Build::Legacy, 105_800), "1058");
        assert_eq!(show(Build::Rebuilt, 105_800), "1058");
    }

    #[test]
    fn invalid_slots_answer_differently() {
        assert_eq!(Build::Legacy.invalid_slot_status(), 400);
        assert_eq!(Build::Rebuilt.invalid_slot_status(), 422);
    }
}
