//! The daily slot grid: parsing dates and slots, and which slots are still bookable.
//!
//! Slots are stored as a day (`YYYY-MM-DD`) and an index into the grid (0 is 09:00, 47 is 16:50);
//! they are shown as `YYYY-MM-DDTHH:MM`.

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use crate::catalog::{OPENING_MINUTE, SLOTS_PER_DAY, SLOT_MINUTES};

/// One slot: a day and its place in that day's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The day.
    pub day: NaiveDate,
    /// Index into the grid, below [`SLOTS_PER_DAY`].
    pub index: u8,
}

impl Slot {
    /// When the slot starts.
    pub fn start(self) -> NaiveDateTime {
        let minute = OPENING_MINUTE + u32::from(self.index) * SLOT_MINUTES;
        let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0).unwrap_or(NaiveTime::MIN);
        self.day.and_time(time)
    }

    /// Whether it can still be booked at `now`: it starts after `now`.
    pub fn is_after(self, now: NaiveDateTime) -> bool {
        self.start() > now
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.start().format("%Y-%m-%dT%H:%M"))
    }
}

/// What a booking asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRequest {
    /// The first free slot of the day.
    Day(NaiveDate),
    /// Exactly this slot.
    Exact(Slot),
}

/// Why a requested slot cannot be booked whatever the state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSlot {
    /// Neither `YYYY-MM-DD` nor `YYYY-MM-DDTHH:MM`.
    #[error("slot {0:?} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)")]
    Unparseable(String),
    /// Before 09:00, after 16:50, or not on a 10-minute mark.
    #[error("slot {0:?} is not on the grid: every 10 minutes from 09:00 to 16:50")]
    OffGrid(String),
    /// The day or the slot is over.
    #[error("slot {0:?} is in the past")]
    Past(String),
}

/// Parses a booking's `slot` and checks it against `now`.
pub fn parse_slot(text: &str, now: NaiveDateTime) -> Result<SlotRequest, InvalidSlot> {
    let unparseable = || InvalidSlot::Unparseable(text.to_string());
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let day = parse_date(date).ok_or_else(unparseable)?;
    let Some(time) = time else {
        if day < now.date() {
            return Err(InvalidSlot::Past(text.to_string()));
        }
        return Ok(SlotRequest::Day(day));
    };
    let (hour, minute) = parse_hh_mm(time).ok_or_else(unparseable)?;
    let minute_of_day = hour * 60 + minute;
    let offset = minute_of_day.checked_sub(OPENING_MINUTE);
    let index = match offset {
        Some(offset)
            if offset % SLOT_MINUTES == 0 && offset / SLOT_MINUTES < SLOTS_PER_DAY.into() =>
        {
            (offset / SLOT_MINUTES) as u8
        }
        _ => return Err(InvalidSlot::OffGrid(text.to_string())),
    };
    let slot = Slot { day, index };
    if !slot.is_after(now) {
        return Err(InvalidSlot::Past(text.to_string()));
    }
    Ok(SlotRequest::Exact(slot))
}

/// Parses exactly `YYYY-MM-DD` (four-digit year, two-digit month and day) into a real date.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !shape {
        return None;
    }
    let year = text[0..4].parse().ok()?;
    let month = text[5..7].parse().ok()?;
    let day = text[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// Parses exactly `HH:MM` (24-hour) into hour and minute.
fn parse_hh_mm(text: &str) -> Option<(u32, u32)> {
    let b = text.as_bytes();
    let shape = b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit());
    if !shape {
        return None;
    }
    let hour: u32 = text[0..2].parse().ok()?;
    let minute: u32 = text[3..5].parse().ok()?;
    (hour < 24 && minute < 60).then_some((hour, minute))
}

/// The slots of `day` that start after `now` and whose index is not in `taken`, in order.
pub fn free_slots(day: NaiveDate, taken: &[u8], now: NaiveDateTime) -> Vec<Slot> {
    (0..SLOTS_PER_DAY)
        .map(|index| Slot { day, index })
        .filter(|slot| !taken.contains(&slot.index) && slot.is_after(now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").unwrap()
    }

    fn day(text: &str) -> NaiveDate {
        parse_date(text).unwrap()
    }

    #[test]
    fn grid_runs_from_nine_to_ten_to_five() {
        let d = day("2030-05-01");
        assert_eq!(Slot { day: d, index: 0 }.to_string(), "2030-05-01T09:00");
        assert_eq!(Slot { day: d, index: 47 }.to_string(), "2030-05-01T16:50");
        assert_eq!(free_slots(d, &[], at("2030-04-30T12:00")).len(), 48);
    }

    #[test]
    fn parses_days_and_exact_slots() {
        let now = at("2030-05-01T12:00");
        assert_eq!(
            parse_slot("2030-05-02", now),
            Ok(SlotRequest::Day(day("2030-05-02")))
        );
        assert_eq!(
            parse_slot("2030-05-01", now),
            Ok(SlotRequest::Day(day("2030-05-01")))
        );
        assert_eq!(
            parse_slot("2030-05-02T16:50", now),
            Ok(SlotRequest::Exact(Slot {
                day: day("2030-05-02"),
                index: 47
            }))
        );
        assert_eq!(
            parse_slot("2030-05-01T12:10", now),
            Ok(SlotRequest::Exact(Slot {
                day: day("2030-05-01"),
                index: 19
            }))
        );
    }

    #[test]
    fn rejects_what_can_never_be_booked() {
        let now = at("2030-05-01T12:00");
        let unparseable = [
            "",
            "tomorrow",
            "2030-5-2",
            "2030-05-02T9:00",
            "2030-02-30",
            "2030-05-02 09:00",
            "2030-05-02T09:00:00",
            "+2030-05-02",
            "2030-05-02T24:00",
            "2030-05-02T09:60",
            "२०३०-05-02",
            "2030-05-02T",
        ];
        for text in unparseable {
            assert!(
                matches!(parse_slot(text, now), Err(InvalidSlot::Unparseable(_))),
                "{text}"
            );
        }
        for text in ["2030-05-02T08:50", "2030-05-02T17:00", "2030-05-02T09:05"] {
            assert!(
                matches!(parse_slot(text, now), Err(InvalidSlot::OffGrid(_))),
                "{text}"
            );
        }
        for text in [
            "2030-04-30",
            "2030-05-01T12:00",
            "2030-05-01T09:00",
            "1999-01-01T10:00",
        ] {
            assert!(
                matches!(parse_slot(text, now), Err(InvalidSlot::Past(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn free_slots_skip_taken_and_started_ones() {
        let d = day("2030-05-01");
        let free = free_slots(d, &[19, 20], at("2030-05-01T12:00"));
        assert_eq!(free.first().unwrap().to_string(), "2030-05-01T12:30");
        assert_eq!(free.len(), 48 - 21);
        assert!(free_slots(d, &[], at("2030-05-01T17:00")).is_empty());
    }
}
