//! The booking store on SQLite, with each build's way of reaching the database.
//!
//! - **legacy**: one connection behind one async mutex, for reads and writes alike, so a search
//!   waits behind a booking; its search filters by expressions no index could serve and looks up
//!   ratings with correlated subqueries over the unindexed reviews; and it notifies the customer
//!   before it lets go of the connection.
//! - **rebuilt**: a pool of reader connections and one writer connection (SQLite has one writer
//!   at a time anyway; serialising writers here spares them SQLite's busy-wait), WAL so readers
//!   never wait for the writer, indexed queries, and a queued notification.
//!
//! All SQL runs in `spawn_blocking`; a task waits for its connection asynchronously first.

use std::path::Path;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::Mutex;

use crate::booking::{rank, rating, Booking, BookingId, NewBooking, Offer, Status};
use crate::catalog::{find_city, City, Service, SLOTS_PER_DAY};
use crate::error::{StoreError, TestbedError};
use crate::notify::{Event, Notification, Notifier};
use crate::slots::{free_slots, parse_date, Slot, SlotRequest};
use crate::Build;

/// Most partners a search returns.
pub const SEARCH_LIMIT: usize = 20;

/// Reader connections in rebuilt's pool (besides its one writer).
pub const READERS: usize = 4;

const LEGACY_SEARCH: &str = "
SELECT p.id, p.name, s.base_rupees,
       (SELECT count(*) FROM reviews r WHERE r.partner_id = p.id),
       (SELECT coalesce(sum(r.stars), 0) FROM reviews r WHERE r.partner_id = p.id)
FROM partners p, partner_services s
WHERE lower(p.city) = lower(?1) AND s.partner_id = p.id AND s.service LIKE ?2";

const REBUILT_SEARCH: &str = "
SELECT p.id, p.name, s.base_rupees,
       (SELECT count(*) FROM reviews r WHERE r.partner_id = p.id),
       (SELECT coalesce(sum(r.stars), 0) FROM reviews r WHERE r.partner_id = p.id)
FROM partners p JOIN partner_services s ON s.partner_id = p.id
WHERE p.city = ?1 AND s.service = ?2";

const SELECT_BOOKING: &str = "
SELECT b.seq, b.partner_id, p.name, p.city, b.service, b.day, b.slot, b.customer,
       b.price_paise, b.status
FROM bookings b JOIN partners p ON p.id = b.partner_id
WHERE b.seq = ?1";

/// Why a booking was not made, though the request was well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BookingRefused {
    UnknownPartner(i64),
    NotOffered { partner_id: i64, service: String },
    SlotTaken(Slot),
    DayFull(NaiveDate),
}

/// Why a booking was not cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelRefused {
    Unknown(BookingId),
    AlreadyCancelled(BookingId),
}

enum Access {
    Global(Arc<Mutex<Connection>>),
    Pooled {
        readers: Arc<crate::pool::Pool>,
        writer: Arc<Mutex<Connection>>,
    },
}

#[derive(Clone, Copy)]
enum Lane {
    Read,
    Write,
}

/// The database, reached the way one build reaches it.
pub(crate) struct Store {
    build: Build,
    access: Access,
    notifier: Arc<Notifier>,
}

impl Store {
    /// Opens (creating and seeding if empty) the database at `path` for `build`. Blocking.
    pub fn open(path: &Path, build: Build, notifier: Arc<Notifier>) -> Result<Store, TestbedError> {
        let mut first = crate::schema::connect(path, build)?;
        crate::schema::prepare(&mut first, path, build)?;
        let access = match build {
            Build::Legacy => Access::Global(Arc::new(Mutex::new(first))),
            Build::Rebuilt => {
                let readers = (0..READERS)
                    .map(|_| crate::schema::connect(path, build))
                    .collect::<Result<Vec<_>, _>>()?;
                Access::Pooled {
                    readers: crate::pool::Pool::new(readers),
                    writer: Arc::new(Mutex::new(first)),
                }
            }
        };
        Ok(Store {
            build,
            access,
            notifier,
        })
    }

    /// The build this store serves.
    pub fn build(&self) -> Build {
        self.build
    }

    /// Partners in `city` offering `service`, best rated first, at most [`SEARCH_LIMIT`].
    pub async fn search(
        &self,
        city: &'static City,
        service: &'static Service,
    ) -> Result<Vec<Offer>, StoreError> {
        let sql = match self.build {
            Build::Legacy => LEGACY_SEARCH,
            Build::Rebuilt => REBUILT_SEARCH,
        };
        self.run(Lane::Read, move |conn| {
            let mut statement = conn.prepare_cached(sql)?;
            let rows = statement.query_map((city.name, service.name), |row| {
                let base: i64 = row.get(2)?;
                let reviews: i64 = row.get(3)?;
                Ok(Offer {
                    partner_id: row.get(0)?,
                    name: row.get(1)?,
                    price_paise: base * i64::from(city.price_percent),
                    rating: rating(row.get(4)?, reviews),
                    reviews,
                })
            })?;
            let offers = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(rank(offers, SEARCH_LIMIT))
        })
        .await
    }

    /// The free slots of `partner_id` on `day` that start after `now`; `None` for no such partner.
    pub async fn availability(
        &self,
        partner_id: i64,
        day: NaiveDate,
        now: NaiveDateTime,
    ) -> Result<Option<Vec<Slot>>, StoreError> {
        self.run(Lane::Read, move |conn| {
            if partner(conn, partner_id)?.is_none() {
                return Ok(None);
            }
            let taken = taken_slots(conn, partner_id, day)?;
            Ok(Some(free_slots(day, &taken, now)))
        })
        .await
    }

    /// Books `new` in one transaction and notifies the customer.
    pub async fn book(
        &self,
        new: NewBooking,
        now: NaiveDateTime,
    ) -> Result<Result<Booking, BookingRefused>, StoreError> {
        let notifier = Arc::clone(&self.notifier);
        self.run(Lane::Write, move |conn| {
            let booked = insert_booking(conn, new, now)?;
            if let Ok(booking) = &booked {
                notifier.send(Notification {
                    booking: booking.id,
                    customer: booking.customer.clone(),
                    event: Event::Confirmed,
                });
            }
            Ok(booked)
        })
        .await
    }

    /// The booking with this id, if any.
    pub async fn booking(&self, id: BookingId) -> Result<Option<Booking>, StoreError> {
        self.run(Lane::Read, move |conn| select_booking(conn, id))
            .await
    }

    /// Cancels a confirmed booking, freeing its slot, and notifies the customer.
    pub async fn cancel(
        &self,
        id: BookingId,
    ) -> Result<Result<Booking, CancelRefused>, StoreError> {
        let notifier = Arc::clone(&self.notifier);
        self.run(Lane::Write, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(booking) = select_booking(&tx, id)? else {
                return Ok(Err(CancelRefused::Unknown(id)));
            };
            if booking.status == Status::Cancelled {
                return Ok(Err(CancelRefused::AlreadyCancelled(id)));
            }
            tx.prepare_cached("UPDATE bookings SET status = 'cancelled' WHERE seq = ?1")?
                .execute([id.0])?;
            tx.commit()?;
            notifier.send(Notification {
                booking: id,
                customer: booking.customer.clone(),
                event: Event::Cancelled,
            });
            Ok(Ok(Booking {
                status: Status::Cancelled,
                ..booking
            }))
        })
        .await
    }

    /// Runs `f` on a connection of `lane` in a blocking task, holding the connection (and, on
    /// legacy, the whole database) until `f` returns.
    async fn run<R, F>(&self, lane: Lane, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        match (&self.access, lane) {
            (Access::Global(conn), _) | (Access::Pooled { writer: conn, .. }, Lane::Write) => {
                let mut conn = Arc::clone(conn).lock_owned().await;
                tokio::task::spawn_blocking(move || f(&mut conn)).await?
            }
            (Access::Pooled { readers, .. }, Lane::Read) => {
                let mut conn = readers.get().await;
                tokio::task::spawn_blocking(move || f(&mut conn)).await?
            }
        }
    }
}

/// The partner's name and city.
fn partner(conn: &Connection, id: i64) -> Result<Option<(String, String)>, StoreError> {
    let found = conn
        .prepare_cached("SELECT name, city FROM partners WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(found)
}

/// Grid indexes held by confirmed bookings of the partner on the day.
fn taken_slots(conn: &Connection, partner_id: i64, day: NaiveDate) -> Result<Vec<u8>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT slot FROM bookings WHERE partner_id = ?1 AND day = ?2 AND status = 'confirmed'",
    )?;
    let slots = statement
        .query_map((partner_id, day.to_string()), |row| row.get::<_, u8>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(slots)
}

fn insert_booking(
    conn: &mut Connection,
    new: NewBooking,
    now: NaiveDateTime,
) -> Result<Result<Booking, BookingRefused>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some((partner_name, city)) = partner(&tx, new.partner_id)? else {
        return Ok(Err(BookingRefused::UnknownPartner(new.partner_id)));
    };
    let base: Option<i64> = tx
        .prepare_cached(
            "SELECT base_rupees FROM partner_services WHERE partner_id = ?1 AND service = ?2",
        )?
        .query_row((new.partner_id, &new.service), |row| row.get(0))
        .optional()?;
    let Some(base) = base else {
        return Ok(Err(BookingRefused::NotOffered {
            partner_id: new.partner_id,
            service: new.service,
        }));
    };
    let percent = find_city(&city)
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "partner {} in unknown city {city:?}",
                new.partner_id
            ))
        })?
        .price_percent;
    let slot = match new.slot {
        SlotRequest::Exact(slot) => slot,
        SlotRequest::Day(day) => {
            let taken = taken_slots(&tx, new.partner_id, day)?;
            match free_slots(day, &taken, now).first() {
                Some(slot) => *slot,
                None => return Ok(Err(BookingRefused::DayFull(day))),
            }
        }
    };
    let price_paise = base * i64::from(percent);
    let inserted = tx
        .prepare_cached(
            "INSERT INTO bookings (partner_id, service, day, slot, customer, price_paise, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'confirmed')",
        )?
        .execute((
            new.partner_id,
            &new.service,
            slot.day.to_string(),
            slot.index,
            &new.customer,
            price_paise,
        ));
    match inserted {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            return Ok(Err(BookingRefused::SlotTaken(slot)));
        }
        Err(e) => return Err(e.into()),
    }
    let id = BookingId(tx.last_insert_rowid());
    tx.commit()?;
    Ok(Ok(Booking {
        id,
        partner_id: new.partner_id,
        partner_name,
        city,
        service: new.service,
        slot,
        customer: new.customer,
        price_paise,
        status: Status::Confirmed,
    }))
}

fn select_booking(conn: &Connection, id: BookingId) -> Result<Option<Booking>, StoreError> {
    type Row = (
        i64,
        i64,
        String,
        String,
        String,
        String,
        i64,
        String,
        i64,
        String,
    );
    let row: Option<Row> = conn
        .prepare_cached(SELECT_BOOKING)?
        .query_row([id.0], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        })
        .optional()?;
    let Some((
        seq,
        partner_id,
        partner_name,
        city,
        service,
        day,
        index,
        customer,
        price_paise,
        status,
    )) = row
    else {
        return Ok(None);
    };
    let corrupt = |what: &str| StoreError::Corrupt(format!("booking {seq}: {what}"));
    let day = parse_date(&day).ok_or_else(|| corrupt("bad day"))?;
    let index = u8::try_from(index)
        .ok()
        .filter(|i| *i < SLOTS_PER_DAY)
        .ok_or_else(|| corrupt("bad slot"))?;
    let status = Status::from_name(&status).ok_or_else(|| corrupt("bad status"))?;
    Ok(Some(Booking {
        id: BookingId(seq),
        partner_id,
        partner_name,
        city,
        service,
        slot: Slot { day, index },
        customer,
        price_paise,
        status,
    }))
}
