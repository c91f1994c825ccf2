//! What the store keeps and returns: bookings, their ids and states, and search results.

use std::fmt;

use crate::slots::{Slot, SlotRequest};

/// A booking's id: `bk-` and its sequence number, at least six digits (`bk-000001`).
///
/// Ids count up from 1 in the order bookings are made, so the same sequence of bookings gets the
/// same ids on both builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BookingId(pub i64);

impl BookingId {
    /// Parses the canonical form only (`bk-000001`, not `bk-1`), so one booking has one id.
    pub fn parse(text: &str) -> Option<BookingId> {
        let digits = text.strip_prefix("bk-")?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id = BookingId(digits.parse().ok()?);
        (id.0 > 0 && id.to_string() == text).then_some(id)
    }
}

impl fmt::Display for BookingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bk-{:06}", self.0)
    }
}

/// Whether a booking holds its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Holds its slot.
    Confirmed,
    /// Gave its slot back.
    Cancelled,
}

impl Status {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status stored under `name`.
    pub fn from_name(name: &str) -> Option<Status> {
        match name {
            "confirmed" => Some(Status::Confirmed),
            "cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }
}

/// A booking as stored, with its partner's name and city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// Its id.
    pub id: BookingId,
    /// The partner booked.
    pub partner_id: i64,
    /// The partner's name.
    pub partner_name: String,
    /// The partner's city.
    pub city: String,
    /// The service booked.
    pub service: String,
    /// The slot held (or once held, when cancelled).
    pub slot: Slot,
    /// Who booked.
    pub customer: String,
    /// The price in paise (hundredths of a rupee).
    pub price_paise: i64,
    /// Confirmed or cancelled.
    pub status: Status,
}

/// A booking to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBooking {
    /// The partner to book.
    pub partner_id: i64,
    /// A service the partner offers.
    pub service: String,
    /// The exact slot, or the day to take the first free slot of.
    pub slot: SlotRequest,
    /// Who books.
    pub customer: String,
}

/// A partner that offers the service searched for, at its price there.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    /// The partner's id.
    pub partner_id: i64,
    /// The partner's name.
    pub name: String,
    /// The price in paise.
    pub price_paise: i64,
    /// Average review, to one decimal; `None` without reviews.
    pub rating: Option<f64>,
    /// Number of reviews.
    pub reviews: i64,
}

/// The average of `count` reviews summing to `stars`, rounded half up to one decimal.
pub fn rating(stars: i64, count: i64) -> Option<f64> {
    (count > 0).then(|| ((stars * 10 * 2 + count) / (2 * count)) as f64 / 10.0)
}

/// Orders offers best first (highest rating, unrated last, then lowest id) and keeps `limit`.
pub fn rank(mut offers: Vec<Offer>, limit: usize) -> Vec<Offer> {
    offers.sort_by(|a, b| {
        let rating = |o: &Offer| o.rating.unwrap_or(-1.0);
        rating(b)
            .total_cmp(&rating(a))
            .then(a.partner_id.cmp(&b.partner_id))
    });
    offers.truncate(limit);
    offers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_spelling() {
        assert_eq!(BookingId(1).to_string(), "bk-000001");
        assert_eq!(BookingId(1_234_567).to_string(), "bk-1234567");
        assert_eq!(BookingId::parse("bk-000042"), Some(BookingId(42)));
        assert_eq!(BookingId::parse("bk-1234567"), Some(BookingId(1_234_567)));
        for bad in [
            "bk-42",
            "bk-0000042",
            "bk-000000",
            "42",
            "bk--00001",
            "bk-+00001",
            "bk-",
            "bk-99999999999999999999999",
        ] {
            assert_eq!(BookingId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ratings_round_half_up() {
        assert_eq!(rating(0, 0), None);
        assert_eq!(rating(9, 2), Some(4.5));
        assert_eq!(rating(13, 3), Some(4.3));
        assert_eq!(rating(14, 3), Some(4.7));
        assert_eq!(rating(5, 1), Some(5.0));
    }

    #[test]
    fn ranking_puts_best_rated_first() {
        let offer = |id, rating| Offer {
            partner_id: id,
            name: String::new(),
            price_paise: 0,
            rating,
            reviews: 0,
        };
        let ranked = rank(
            vec![
                offer(3, Some(4.0)),
                offer(1, None),
                offer(2, Some(4.0)),
                offer(4, Some(4.5)),
            ],
            3,
        );
        let ids: Vec<i64> = ranked.iter().map(|o| o.partner_id).collect();
        assert_eq!(ids, [4, 2, 3]);
    }
}
