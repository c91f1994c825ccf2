//! The fixed catalogue both builds serve: the cities and services of `scenarios/data/`, the size
//! of the partner base and the daily slot grid.
//!
//! The lists mirror `scenarios/data/cities.csv` and `scenarios/data/services.csv`, so a scenario
//! that draws from those files always names something the testbed knows.

/// A city partners work in, with the percentage its prices carry over the base price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct City {
    /// Lower-case name, as in `cities.csv` and in the `city` query parameter.
    pub name: &'static str,
    /// Region, as in `cities.csv`.
    pub region: &'static str,
    /// Price level in percent of the base price (115: 15 % dearer).
    pub price_percent: u32,
}

/// A service partners offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Lower-case name, as in `services.csv` and in requests.
    pub name: &'static str,
    /// Duration, as in `services.csv`.
    pub duration_minutes: u32,
    /// Cheapest base price a partner asks, in whole rupees.
    pub min_rupees: u32,
    /// Dearest base price a partner asks, in whole rupees.
    pub max_rupees: u32,
}

/// Every city, in the order of `cities.csv`.
pub const CITIES: [City; 8] = [
    city("mumbai", "west", 115),
    city("delhi", "north", 110),
    city("bengaluru", "south", 110),
    city("pune", "west", 105),
    city("hyderabad", "south", 105),
    city("chennai", "south", 100),
    city("kolkata", "east", 95),
    city("ahmedabad", "west", 95),
];

/// Every service, in the order of `services.csv`.
pub const SERVICES: [Service; 8] = [
    service("haircut", 30, 300, 900),
    service("beard-trim", 15, 150, 450),
    service("hair-colour", 90, 1200, 3500),
    service("massage", 60, 1500, 4000),
    service("facial", 45, 800, 2500),
    service("manicure", 40, 400, 1200),
    service("pedicure", 50, 500, 1400),
    service("yoga-class", 60, 300, 1000),
];

/// Number of partners in a seeded database; their ids run from 1 to this.
pub const PARTNERS: u32 = 500;

/// Bookable slots per partner and day: every 10 minutes from 09:00, the last at 16:50.
pub const SLOTS_PER_DAY: u8 = 48;

/// Minutes between two slots.
pub const SLOT_MINUTES: u32 = 10;

/// Minute of the day the first slot starts (09:00).
pub const OPENING_MINUTE: u32 = 9 * 60;

/// The city with this exact (lower-case) name.
pub fn find_city(name: &str) -> Option<&'static City> {
    CITIES.iter().find(|c| c.name == name)
}

/// The service with this exact (lower-case) name.
pub fn find_service(name: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.name == name)
}

const fn city(name: &'static str, region: &'static str, price_percent: u32) -> City {
    City {
        name,
        region,
        price_percent,
    }
}

const fn service(name: &'static str, duration_minutes: u32, min: u32, max: u32) -> Service {
    Service {
        name,
        duration_minutes,
        min_rupees: min,
        max_rupees: max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded lists must name exactly what the scenario data files name.
    #[test]
    fn lists_match_the_scenario_data_files() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/data");
        let names = |file: &str| -> Vec<String> {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            text.lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.to_string())
                .collect()
        };
        let cities: Vec<String> = CITIES
            .iter()
            .map(|c| format!("{},{}", c.name, c.region))
            .collect();
        assert_eq!(names("cities.csv"), cities);
        let services: Vec<String> = SERVICES
            .iter()
            .map(|s| format!("{},{}", s.name, s.duration_minutes))
            .collect();
        assert_eq!(names("services.csv"), services);
    }

    #[test]
    fn lookups_are_exact() {
        assert_eq!(find_city("pune").unwrap().price_percent, 105);
        assert!(find_city("Pune").is_none());
        assert!(find_service("hair%").is_none());
        assert_eq!(find_service("massage").unwrap().duration_minutes, 60);
    }
}
