//! The demo's contacts: people in cities where it is daytime now, so that their calling
//! window (08:00–21:00 in the callee's local time, read in the contact's zone and the
//! number's) is open while the demo runs, each with an `agent_*` attribute that tells the
//! scripted agent how the call goes.
//!
//! Numbers are of the city's own country and area (a contact's zone must agree with its
//! number), from ranges kept for fiction where there is one (US `555-01xx`, London
//! `020 7946 0xxx`).

use chrono::{DateTime, Timelike, Utc};

/// A city contacts live in: its zone and how its numbers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The city.
    pub city: &'static str,
    /// Its IANA zone.
    pub zone: &'static str,
    /// The number without its last digits.
    prefix: &'static str,
    /// The first number of the range; the contact's index is added.
    first: u32,
    /// How many digits follow the prefix.
    digits: usize,
}

impl Place {
    /// The `index`th number of the city (0 to 99).
    pub fn number(&self, index: u32) -> String {
        format!(
            "{}{:0width$}",
            self.prefix,
            self.first + index % 100,
            width = self.digits
        )
    }

    /// The local hour in the city at `now`.
    fn local_hour(&self, now: DateTime<Utc>) -> Option<u32> {
        let zone = switchboard_engine::contact::parse_timezone(self.zone)?;
        Some(now.with_timezone(&zone).hour())
    }
}

/// Cities around the world: at every hour of the year it is daytime in at least one.
pub const PLACES: &[Place] = &[
    Place {
        city: "New York",
        zone: "America/New_York",
        prefix: "+1212555",
        first: 100,
        digits: 4,
    },
    Place {
        city: "Los Angeles",
        zone: "America/Los_Angeles",
        prefix: "+1213555",
        first: 100,
        digits: 4,
    },
    Place {
        city: "London",
        zone: "Europe/London",
        prefix: "+44207946",
        first: 0,
        digits: 4,
    },
    Place {
        city: "Berlin",
        zone: "Europe/Berlin",
        prefix: "+4930901820",
        first: 0,
        digits: 2,
    },
    Place {
        city: "Mumbai",
        zone: "Asia/Kolkata",
        prefix: "+91982000",
        first: 0,
        digits: 4,
    },
    Place {
        city: "Tokyo",
        zone: "Asia/Tokyo",
        prefix: "+8135550",
        first: 0,
        digits: 4,
    },
];

/// Local hours a city is called in: from 09:00 to 19:00, so that the window stays open
/// for at least two hours of demo.
const DAYTIME: std::ops::Range<u32> = 9..19;

/// The cities where it is daytime at `now`.
pub fn daytime_places(now: DateTime<Utc>) -> Vec<Place> {
    PLACES
        .iter()
        .filter(|p| p.local_hour(now).is_some_and(|h| DAYTIME.contains(&h)))
        .copied()
        .collect()
}

const FIRST_NAMES: [&str; 10] = [
    "Ada",
    "Grace",
    "Alan",
    "Katherine",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Claude",
    "Frances",
];
const LAST_NAMES: [&str; 7] = [
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Reyes",
    "Patel",
    "Novak",
];

/// What the scripted agent reports, in turn: mostly interest, some refusals, a call back
/// in two minutes, a wrong number and a callee who asks never to be called again.
const OUTCOMES: [&str; 10] = [
    "interested",
    "not_interested",
    "interested",
    "callback",
    "interested",
    "not_interested",
    "wrong_number",
    "interested",
    "not_interested",
    "do_not_call",
];

/// The attribute every demo contact carries, which the campaign's audience selects.
pub const SEGMENT: &str = "demo";

/// A CSV of `count` contacts (at most 100) spread over `places`, with the attributes the
/// scripted agent reads: its outcome, how long it talks and listens, when to call back.
pub fn csv(places: &[Place], count: u32) -> String {
    let mut out = String::from(
        "phone,name,timezone,city,segment,agent_outcome,agent_talk_ms,agent_listen_ms,\
         agent_callback_in_minutes\n",
    );
    if places.is_empty() {
        return out;
    }
    for i in 0..count.min(100) {
        let place = places[i as usize % places.len()];
        let name = format!(
            "{} {}",
            FIRST_NAMES[i as usize % FIRST_NAMES.len()],
            LAST_NAMES[(i as usize * 3 + 1) % LAST_NAMES.len()]
        );
        let outcome = OUTCOMES[i as usize % OUTCOMES.len()];
        // Two to five seconds of greeting, one and a half to three of listening.
        let talk_ms = 2_000 + (i * 700) % 3_000;
        let listen_ms = 1_500 + (i * 500) % 1_500;
        out.push_str(&format!(
            "{},{name},{},{},{SEGMENT},{outcome},{talk_ms},{listen_ms},2\n",
            place.number(i),
            place.zone,
            place.city
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use switchboard_engine::E164;
    use switchboard_engine::campaign::TimezonePolicy;
    use switchboard_engine::window::{ZoneChoice, zones_for_number};

    #[test]
    fn every_number_is_valid_and_its_window_is_read_in_its_citys_zone_alone() {
        for place in PLACES {
            let zone = switchboard_engine::contact::parse_timezone(place.zone).unwrap();
            for i in [0, 1, 42, 99] {
                let number = place.number(i);
                let phone = E164::parse(&number, None)
                    .unwrap_or_else(|e| panic!("{} number {number}: {e}", place.city));
                assert_eq!(phone.as_str(), number, "already in E.164");
                assert_eq!(
                    zones_for_number(Some(place.zone), &phone, &TimezonePolicy::default()),
                    ZoneChoice::Exact(zone),
                    "{} number {number}",
                    place.city
                );
            }
        }
    }

    #[test]
    fn at_every_hour_of_winter_and_summer_it_is_daytime_somewhere() {
        for (month, day) in [(1, 15), (7, 15), (3, 30), (11, 2)] {
            for hour in 0..24 {
                for minute in [0, 30, 59] {
                    let now = Utc
                        .with_ymd_and_hms(2026, month, day, hour, minute, 0)
                        .unwrap();
                    assert!(!daytime_places(now).is_empty(), "no daytime city at {now}");
                }
            }
        }
    }

    #[test]
    fn contacts_are_spread_over_the_cities_with_distinct_numbers() {
        let places = daytime_places(Utc.with_ymd_and_hms(2026, 1, 15, 15, 0, 0).unwrap());
        assert_eq!(
            places.iter().map(|p| p.city).collect::<Vec<_>>(),
            ["New York", "London", "Berlin"],
        );
        let csv = csv(&places, 40);
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), 40);
        let numbers: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r.split(',').next().unwrap()).collect();
        assert_eq!(numbers.len(), 40, "every number differs");
        assert!(rows[0].starts_with("+1212555"), "{}", rows[0]);
        assert!(rows[0].contains(",America/New_York,New York,demo,interested,"));
        assert!(rows[9].contains(",do_not_call,"), "{}", rows[9]);
    }
}
