//! Deterministic seed data: partners, what they offer at what base price, and their reviews.
//!
//! The same [`SEED`] gives the same rows on every run and in both builds, so two databases seeded
//! apart answer the same requests the same way. Slots are not stored: a slot is free unless a
//! confirmed booking holds it.

use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Transaction;

use crate::catalog::{CITIES, PARTNERS, SERVICES};

/// The seed every database is filled from.
pub const SEED: u64 = 0x7770_ea4b;

/// Most reviews a partner has (from 0, evenly: about 1,250 in all). Sized so that legacy's
/// unindexed rating look-ups cost about 2 ms per search in a release build.
pub const MAX_REVIEWS_PER_PARTNER: u32 = 5;

const NAME_FIRST: [&str; 16] = [
    "Lotus", "Saffron", "Jasmine", "Banyan", "Monsoon", "Peacock", "Tulsi", "Marigold", "Indigo",
    "Sandal", "Neem", "Kesar", "Mogra", "Chandan", "Amaltas", "Gulmohar",
];
const NAME_SECOND: [&str; 8] = [
    "Salon",
    "Studio",
    "Spa",
    "Wellness",
    "Grooming Lounge",
    "Beauty Bar",
    "Retreat",
    "Care",
];

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub partners: u32,
    pub offers: u32,
    pub reviews: u32,
}

/// Fills the empty tables in `tx` from [`SEED`].
pub(crate) fn seed(tx: &Transaction<'_>) -> rusqlite::Result<Summary> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut partner = tx.prepare("INSERT INTO partners (id, name, city) VALUES (?1, ?2, ?3)")?;
    let mut offer = tx.prepare(
        "INSERT INTO partner_services (partner_id, service, base_rupees) VALUES (?1, ?2, ?3)",
    )?;
    let mut review = tx.prepare("INSERT INTO reviews (partner_id, stars) VALUES (?1, ?2)")?;
    let mut summary = Summary {
        partners: 0,
        offers: 0,
        reviews: 0,
    };
    for id in 1..=PARTNERS {
        let city = CITIES[rng.random_range(0..CITIES.len())];
        let name = format!(
            "{} {}",
            NAME_FIRST[rng.random_range(0..NAME_FIRST.len())],
            NAME_SECOND[rng.random_range(0..NAME_SECOND.len())]
        );
        partner.execute((id, &name, city.name))?;
        summary.partners += 1;
        let count = rng.random_range(3..=5);
        let mut offered = index::sample(&mut rng, SERVICES.len(), count).into_vec();
        offered.sort_unstable();
        for i in offered {
            let service = SERVICES[i];
            let base = 10 * rng.random_range(service.min_rupees / 10..=service.max_rupees / 10);
            offer.execute((id, service.name, base))?;
            summary.offers += 1;
        }
        // Partners differ in quality; each partner's reviews cluster around its own level.
        let level: u32 = rng.random_range(2..=5);
        for _ in 0..rng.random_range(0..=MAX_REVIEWS_PER_PARTNER) {
            let stars = (level + rng.random_range(0..=2))
                .saturating_sub(1)
                .clamp(1, 5);
            review.execute((id, stars))?;
            summary.reviews += 1;
        }
    }
    Ok(summary)
}
