//! Calling windows in the callee's local time.
//!
//! A [`CallingWindow`] is open at an instant when, in the callee's zone, the local time is
//! on an allowed weekday, inside `schedule.start..schedule.end`, inside the legal window
//! (`compliance.legal_window_start..legal_window_end`, never wider than 08:00–21:00) and
//! outside every do-not-disturb range; every end is exclusive.
//!
//! Which zones are the callee's ([`zones_for`]): the contact's own valid `timezone` AND
//! every zone of the number, whatever the campaign says; the window must be open in all of
//! them ([`ZoneChoice::AllOf`]). The number's zones: for +1 numbers the area code
//! ([`nanp_zones`]; area codes that straddle a zone line map to every zone they touch), else
//! a single-zone country's zone ([`region_zone`]), else EVERY zone of a country with
//! several ([`region_zones`], the most restrictive choice). Only when neither the contact
//! nor the number gives a zone (a country in none of the tables) is the policy's default
//! zone used. A contact zone may not lie outside the number's country
//! ([`zone_fits_number`]): imports and the contacts API refuse it.
//!
//! Local time is only ever computed from a UTC instant, which is always well defined; so a
//! nonexistent local time (02:30 on a spring-forward day) is simply never seen, and a
//! repeated hour (01:30 on a fall-back day) is seen twice. [`CallingWindow::next_open`]
//! walks from change point to change point (window boundaries, local midnights, offset
//! transitions found by bisection), so it is exact to the second across DST changes.

use crate::campaign::{CampaignConfig, Compliance, LocalTime, Schedule, TimezonePolicy, Weekday};
use crate::contact::{Contact, parse_timezone};
use crate::phone::E164;
use chrono::{DateTime, Datelike, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::{
    Africa as Af, America as Am, Asia, Atlantic, Australia as Au, Europe as Eu, Pacific, Tz,
};

/// How far ahead [`CallingWindow::next_open`] looks, in days.
pub const LOOKAHEAD_DAYS: i64 = 14;

/// The zone(s) a callee's window is read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneChoice {
    /// The callee's zone is known.
    Exact(Tz),
    /// The callee is in one of these zones: the window must be open in all of them.
    /// An empty list is never open.
    AllOf(Vec<Tz>),
}

impl ZoneChoice {
    /// The zones to check, one for [`ZoneChoice::Exact`].
    pub fn zones(&self) -> &[Tz] {
        match self {
            ZoneChoice::Exact(zone) => std::slice::from_ref(zone),
            ZoneChoice::AllOf(zones) => zones,
        }
    }
}

/// The callee's zones for a contact: its own and its number's (see the module doc).
pub fn zones_for(contact: &Contact, policy: &TimezonePolicy) -> ZoneChoice {
    zones_for_number(contact.timezone.as_deref(), &contact.phone, policy)
}

/// [`zones_for`] from a contact's `timezone` field and phone number: the contact's zone
/// and every zone of the number; the policy's default zone only when neither gives one.
pub fn zones_for_number(
    timezone: Option<&str>,
    phone: &E164,
    policy: &TimezonePolicy,
) -> ZoneChoice {
    let mut zones: Vec<Tz> = timezone.and_then(parse_timezone).into_iter().collect();
    for zone in number_zones(phone)
        .as_ref()
        .map_or(&[][..], ZoneChoice::zones)
    {
        if !zones.contains(zone) {
            zones.push(*zone);
        }
    }
    match zones.as_slice() {
        [] => ZoneChoice::Exact(policy.default_zone()),
        [zone] => ZoneChoice::Exact(*zone),
        _ => ZoneChoice::AllOf(zones),
    }
}

/// Every zone of the number's country: its region's zone or zones (for a +1 number, its
/// country's, not only its area code's); `None` when the country is in neither table.
pub fn country_zones(phone: &E164) -> Option<Vec<Tz>> {
    match phone.region() {
        Some(region) => match region_zone(region.code()) {
            Some(zone) => Some(vec![zone]),
            None => Some(region_zones(region.code()).to_vec()).filter(|z| !z.is_empty()),
        },
        None => number_zones(phone).map(|choice| choice.zones().to_vec()),
    }
}

/// Instants at which two zones are compared by offset: mid-winter and mid-summer, both
/// hemispheres' daylight saving covered.
const OFFSET_PROBES: [i64; 4] = [1_736_942_400, 1_752_580_800, 1_768_478_400, 1_784_116_800];

/// Whether a contact zone lies inside the number's country: it is one of the country's
/// zones, or keeps the same clock as one of them in winter and summer (`America/Detroit`
/// for a New York number). True when the country is in no table (nothing to compare).
pub fn zone_fits_number(zone: Tz, phone: &E164) -> bool {
    let Some(country) = country_zones(phone) else {
        return true;
    };
    let offsets = |z: Tz| {
        OFFSET_PROBES.map(|secs| {
            let at = DateTime::from_timestamp(secs, 0).unwrap_or_default();
            z.offset_from_utc_datetime(&at.naive_utc()).fix()
        })
    };
    let mine = offsets(zone);
    country.iter().any(|c| *c == zone || offsets(*c) == mine)
}

/// Why a contact zone is refused for a number, `None` when it fits (see
/// [`zone_fits_number`]); invalid zone names are left to the caller.
pub fn zone_mismatch(timezone: &str, phone: &E164) -> Option<String> {
    let zone = parse_timezone(timezone)?;
    (!zone_fits_number(zone, phone)).then(|| {
        let region = phone
            .region()
            .map_or("?".to_owned(), |r| r.code().to_owned());
        format!(
            "{timezone:?} is outside the country of {phone} ({region}): calls must respect \
             the number's own local time"
        )
    })
}

/// The zone(s) of a phone number: its area code for +1 numbers, else its country's zone
/// or all of its country's zones; `None` when the country is in neither table.
pub fn number_zones(phone: &E164) -> Option<ZoneChoice> {
    let digits = phone.as_str().strip_prefix("+1").filter(|d| d.len() == 10);
    if let Some(choice) = digits
        .and_then(|d| d[..3].parse().ok())
        .and_then(nanp_zones)
    {
        return Some(choice);
    }
    let region = phone.region()?;
    if let Some(zone) = region_zone(region.code()) {
        return Some(ZoneChoice::Exact(zone));
    }
    let zones = region_zones(region.code());
    (!zones.is_empty()).then(|| ZoneChoice::AllOf(zones.to_vec()))
}

/// The zone of a single-zone country (ISO 3166 alpha-2, any case); `None` for a country
/// with several zones (see [`region_zones`]) or one not in the table.
pub fn region_zone(region: &str) -> Option<Tz> {
    let code = region.trim().to_ascii_uppercase();
    SINGLE_ZONE
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, z)| *z)
}

/// Every zone of a country with several (`US`, `CA`, `AU`, ...); empty for other codes.
pub fn region_zones(region: &str) -> &'static [Tz] {
    let code = region.trim().to_ascii_uppercase();
    MULTI_ZONE
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(&[], |(_, z)| *z)
}

/// The zone(s) of a US or Canadian area code, `None` when it is not in the table.
pub fn nanp_zones(area_code: u16) -> Option<ZoneChoice> {
    if let Some((_, zones)) = SPLIT_AREAS.iter().find(|(code, _)| *code == area_code) {
        return Some(ZoneChoice::AllOf(zones.to_vec()));
    }
    AREAS
        .iter()
        .find(|(_, codes)| codes.contains(&area_code))
        .map(|(zone, _)| ZoneChoice::Exact(*zone))
}

/// Single-zone countries and NANP territories with their own region code.
#[rustfmt::skip]
const SINGLE_ZONE: &[(&str, Tz)] = &[
    ("GB", Eu::London), ("IE", Eu::Dublin), ("FR", Eu::Paris), ("DE", Eu::Berlin),
    ("IT", Eu::Rome), ("NL", Eu::Amsterdam), ("BE", Eu::Brussels), ("LU", Eu::Luxembourg),
    ("CH", Eu::Zurich), ("AT", Eu::Vienna), ("SE", Eu::Stockholm), ("NO", Eu::Oslo),
    ("DK", Eu::Copenhagen), ("FI", Eu::Helsinki), ("PL", Eu::Warsaw), ("CZ", Eu::Prague),
    ("SK", Eu::Bratislava), ("HU", Eu::Budapest), ("RO", Eu::Bucharest), ("BG", Eu::Sofia),
    ("GR", Eu::Athens), ("TR", Eu::Istanbul), ("UA", Eu::Kyiv), ("HR", Eu::Zagreb),
    ("RS", Eu::Belgrade), ("SI", Eu::Ljubljana), ("IS", Atlantic::Reykjavik),
    ("IL", Asia::Jerusalem), ("SA", Asia::Riyadh), ("AE", Asia::Dubai), ("QA", Asia::Qatar),
    ("KW", Asia::Kuwait), ("BH", Asia::Bahrain), ("OM", Asia::Muscat), ("JO", Asia::Amman),
    ("LB", Asia::Beirut), ("IQ", Asia::Baghdad), ("EG", Af::Cairo), ("MA", Af::Casablanca),
    ("NG", Af::Lagos), ("KE", Af::Nairobi), ("GH", Af::Accra), ("ZA", Af::Johannesburg),
    ("IN", Asia::Kolkata), ("PK", Asia::Karachi), ("BD", Asia::Dhaka), ("LK", Asia::Colombo),
    ("NP", Asia::Kathmandu), ("CN", Asia::Shanghai), ("HK", Asia::Hong_Kong),
    ("TW", Asia::Taipei), ("JP", Asia::Tokyo), ("KR", Asia::Seoul), ("SG", Asia::Singapore),
    ("MY", Asia::Kuala_Lumpur), ("TH", Asia::Bangkok), ("VN", Asia::Ho_Chi_Minh),
    ("PH", Asia::Manila), ("AR", Am::Argentina::Buenos_Aires), ("CO", Am::Bogota),
    ("PE", Am::Lima), ("VE", Am::Caracas), ("UY", Am::Montevideo), ("PR", Am::Puerto_Rico),
    ("DO", Am::Santo_Domingo), ("JM", Am::Jamaica), ("BS", Am::Nassau), ("BB", Am::Barbados),
    ("TT", Am::Port_of_Spain), ("BM", Atlantic::Bermuda), ("VI", Am::St_Thomas),
    ("GU", Pacific::Guam),
];

/// Countries with several zones: a number whose area is unknown must be inside the window
/// in all of them.
#[rustfmt::skip]
const MULTI_ZONE: &[(&str, &[Tz])] = &[
    ("US", &[Am::New_York, Am::Chicago, Am::Denver, Am::Phoenix, Am::Los_Angeles,
        Am::Anchorage, Am::Adak, Pacific::Honolulu]),
    ("CA", &[Am::St_Johns, Am::Halifax, Am::Toronto, Am::Winnipeg, Am::Regina, Am::Edmonton,
        Am::Whitehorse, Am::Vancouver]),
    ("MX", &[Am::Cancun, Am::Mexico_City, Am::Mazatlan, Am::Hermosillo, Am::Tijuana]),
    ("BR", &[Am::Noronha, Am::Sao_Paulo, Am::Manaus, Am::Rio_Branco]),
    ("AU", &[Au::Sydney, Au::Lord_Howe, Au::Brisbane, Au::Adelaide, Au::Darwin, Au::Perth]),
    ("NZ", &[Pacific::Auckland, Pacific::Chatham]),
    ("ES", &[Eu::Madrid, Atlantic::Canary]),
    ("PT", &[Eu::Lisbon, Atlantic::Azores]),
    ("CL", &[Am::Santiago, Am::Punta_Arenas, Pacific::Easter]),
    ("EC", &[Am::Guayaquil, Pacific::Galapagos]),
    ("ID", &[Asia::Jakarta, Asia::Makassar, Asia::Jayapura]),
    ("KZ", &[Asia::Almaty, Asia::Aqtobe, Asia::Aqtau, Asia::Oral, Asia::Qyzylorda]),
    ("MN", &[Asia::Ulaanbaatar, Asia::Hovd]),
    ("CD", &[Af::Kinshasa, Af::Lubumbashi]),
    ("RU", &[Eu::Kaliningrad, Eu::Moscow, Eu::Samara, Asia::Yekaterinburg, Asia::Omsk,
        Asia::Novosibirsk, Asia::Krasnoyarsk, Asia::Irkutsk, Asia::Yakutsk, Asia::Vladivostok,
        Asia::Magadan, Asia::Kamchatka]),
];

/// US and Canadian area codes wholly inside one zone (a zone with the same current rules
/// stands for its neighbours: New_York for Detroit and Indianapolis, Halifax for Moncton).
#[rustfmt::skip]
const AREAS: &[(Tz, &[u16])] = &[
    (Am::New_York, &[
        201, 202, 203, 207, 212, 215, 216, 220, 223, 229, 231, 234, 239, 240, 248, 252, 260,
        267, 269, 272, 276, 301, 302, 304, 305, 313, 315, 317, 321, 330, 332, 336, 339, 347,
        351, 352, 380, 386, 401, 404, 407, 410, 412, 413, 419, 423, 434, 440, 443, 463, 470,
        475, 478, 484, 502, 508, 513, 516, 517, 518, 540, 551, 561, 567, 570, 571, 585, 586,
        603, 606, 607, 609, 610, 614, 616, 617, 631, 640, 646, 667, 678, 680, 681, 703, 704,
        706, 716, 717, 718, 724, 727, 732, 734, 740, 743, 754, 757, 762, 765, 770, 772, 774,
        781, 786, 802, 803, 804, 810, 813, 814, 828, 838, 843, 845, 848, 854, 856, 857, 859,
        860, 862, 863, 864, 865, 878, 904, 908, 910, 912, 914, 917, 919, 929, 934, 937, 941,
        947, 954, 959, 973, 978, 980, 984, 989,
    ]),
    (Am::Chicago, &[
        205, 210, 214, 217, 218, 224, 225, 228, 251, 254, 256, 262, 281, 309, 312, 314, 316,
        318, 319, 320, 325, 331, 337, 346, 361, 402, 405, 409, 414, 417, 430, 432, 447, 469,
        479, 501, 504, 507, 512, 515, 531, 534, 539, 563, 573, 580, 601, 608, 612, 615, 618,
        629, 630, 636, 641, 651, 659, 660, 662, 682, 708, 712, 713, 715, 726, 731, 737, 763,
        769, 773, 779, 806, 815, 816, 817, 830, 832, 847, 870, 872, 901, 903, 913, 918, 920,
        931, 936, 938, 940, 945, 952, 956, 972, 979, 985,
    ]),
    (Am::Denver, &[303, 307, 385, 406, 435, 505, 575, 719, 720, 801, 915, 970]),
    (Am::Phoenix, &[480, 520, 602, 623]),
    (Am::Los_Angeles, &[
        206, 209, 213, 253, 279, 310, 323, 341, 350, 360, 408, 415, 424, 425, 442, 503, 509,
        510, 530, 559, 562, 564, 619, 626, 628, 650, 657, 661, 669, 702, 707, 714, 725, 747,
        760, 805, 818, 820, 831, 858, 909, 916, 925, 949, 951, 971,
    ]),
    (Pacific::Honolulu, &[808]),
    (Am::Toronto, &[
        226, 249, 289, 343, 365, 416, 437, 438, 450, 514, 519, 548, 579, 613, 647, 705, 819,
        873, 905,
    ]),
    (Am::Halifax, &[506, 782, 902]),
    (Am::Winnipeg, &[204, 431]),
    (Am::Edmonton, &[403, 587, 780, 825]),
    (Am::Vancouver, &[604]),
];

/// Area codes whose territory straddles a zone line (or holds a place keeping its
/// neighbour's time): every zone they touch.
#[rustfmt::skip]
const SPLIT_AREAS: &[(u16, &[Tz])] = &[
    (850, &[Am::New_York, Am::Chicago]), (906, &[Am::New_York, Am::Chicago]),
    (219, &[Am::New_York, Am::Chicago]), (574, &[Am::New_York, Am::Chicago]),
    (812, &[Am::New_York, Am::Chicago]), (930, &[Am::New_York, Am::Chicago]),
    (270, &[Am::New_York, Am::Chicago]), (364, &[Am::New_York, Am::Chicago]),
    (334, &[Am::New_York, Am::Chicago]), (308, &[Am::Chicago, Am::Denver]),
    (605, &[Am::Chicago, Am::Denver]), (620, &[Am::Chicago, Am::Denver]),
    (701, &[Am::Chicago, Am::Denver]), (785, &[Am::Chicago, Am::Denver]),
    (208, &[Am::Denver, Am::Los_Angeles]), (986, &[Am::Denver, Am::Los_Angeles]),
    (458, &[Am::Denver, Am::Los_Angeles]), (541, &[Am::Denver, Am::Los_Angeles]),
    (775, &[Am::Denver, Am::Los_Angeles]), (928, &[Am::Phoenix, Am::Denver]),
    (907, &[Am::Anchorage, Am::Adak]), (709, &[Am::St_Johns, Am::Halifax]),
    (418, &[Am::Toronto, Am::Halifax]), (581, &[Am::Toronto, Am::Halifax]),
    (367, &[Am::Toronto, Am::Halifax]), (807, &[Am::Toronto, Am::Winnipeg]),
    (306, &[Am::Regina, Am::Winnipeg]), (639, &[Am::Regina, Am::Winnipeg]),
    (236, &[Am::Vancouver, Am::Edmonton]), (250, &[Am::Vancouver, Am::Edmonton]),
    (672, &[Am::Vancouver, Am::Edmonton]), (778, &[Am::Vancouver, Am::Edmonton]),
    (867, &[Am::Whitehorse, Am::Edmonton, Am::Winnipeg, Am::Toronto]),
];

/// When calls may be placed, in local time: days, an hour range and do-not-disturb gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingWindow {
    days: Vec<Weekday>,
    start: NaiveTime,
    end: NaiveTime,
    do_not_disturb: Vec<(NaiveTime, NaiveTime)>,
}

impl CallingWindow {
    /// The campaign's window: its schedule inside its legal window, itself never wider
    /// than the regulatory 08:00–21:00.
    pub fn for_campaign(config: &CampaignConfig) -> Self {
        let c = &config.compliance;
        let legal = Compliance {
            legal_window_start: c
                .legal_window_start
                .max(Compliance::default().legal_window_start),
            legal_window_end: c
                .legal_window_end
                .min(Compliance::default().legal_window_end),
            ..c.clone()
        };
        CallingWindow::new(&config.schedule, &legal)
    }

    /// The schedule intersected with the given legal window, taken as is.
    pub fn new(schedule: &Schedule, compliance: &Compliance) -> Self {
        let time = LocalTime::time;
        CallingWindow {
            days: schedule.days.clone(),
            start: time(schedule.start).max(time(compliance.legal_window_start)),
            end: time(schedule.end).min(time(compliance.legal_window_end)),
            do_not_disturb: schedule
                .do_not_disturb
                .iter()
                .map(|r| (time(r.start), time(r.end)))
                .collect(),
        }
    }

    /// Whether a call may be placed at `at` in every zone of `zones`.
    pub fn is_open(&self, zones: &ZoneChoice, at: DateTime<Utc>) -> bool {
        let all = zones.zones();
        !all.is_empty() && all.iter().all(|zone| self.is_open_in(*zone, at))
    }

    /// Whether a call may be placed at `at` in one zone.
    pub fn is_open_in(&self, zone: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&zone);
        let t = local.time();
        self.days.contains(&Weekday::from(local.weekday()))
            && self.start <= t
            && t < self.end
            && !self.do_not_disturb.iter().any(|(s, e)| *s <= t && t < *e)
    }

    /// The earliest instant ≥ `after` at which the window is open in every zone; `None`
    /// when it does not open within [`LOOKAHEAD_DAYS`].
    pub fn next_open(&self, zones: &ZoneChoice, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let limit = after.checked_add_signed(TimeDelta::days(LOOKAHEAD_DAYS))?;
        let mut t = after;
        while t <= limit {
            if self.is_open(zones, t) {
                return Some(t);
            }
            // Each step moves strictly forward to the next instant where any zone's answer
            // may change, so nothing open is skipped and the loop ends at `limit`.
            t = zones
                .zones()
                .iter()
                .filter_map(|z| self.next_change(*z, t))
                .min()?;
        }
        None
    }

    /// The next instant after `t` at which [`Self::is_open_in`] may change in `zone`: a
    /// window boundary, local midnight or an offset transition, whichever comes first.
    fn next_change(&self, zone: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let now = t.with_timezone(&zone).time();
        let since_midnight = now.signed_duration_since(NaiveTime::MIN);
        let to_midnight = TimeDelta::days(1) - since_midnight;
        let bounds = [self.start, self.end]
            .into_iter()
            .chain(self.do_not_disturb.iter().flat_map(|(s, e)| [*s, *e]));
        let step = bounds
            .filter(|b| *b > now)
            .map(|b| b.signed_duration_since(now))
            .fold(to_midnight, TimeDelta::min);
        let guess = t.checked_add_signed(step)?;
        let offset = |secs: i64| {
            let at = DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
            zone.offset_from_utc_datetime(&at.naive_utc()).fix()
        };
        let (mut lo, mut hi) = (t.timestamp(), guess.timestamp());
        let before = offset(lo);
        if offset(hi) == before {
            return Some(guess);
        }
        // Transitions fall on whole seconds: find the first second with the new offset.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if offset(mid) == before {
                lo = mid
            } else {
                hi = mid
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::TimeRange;
    use crate::{ContactId, TenantId};
    use chrono::NaiveDateTime;
    use proptest::prelude::*;

    const NY: Tz = Am::New_York;

    /// An instant written `2025-03-09 07:00` or `2025-03-09 06:59:59`, in UTC.
    fn at(s: &str) -> DateTime<Utc> {
        let parse = |f| NaiveDateTime::parse_from_str(s, f);
        parse("%Y-%m-%d %H:%M:%S")
            .or_else(|_| parse("%Y-%m-%d %H:%M"))
            .unwrap()
            .and_utc()
    }

    fn hm(s: &str) -> LocalTime {
        s.parse().unwrap()
    }

    fn range((start, end): (LocalTime, LocalTime)) -> TimeRange {
        TimeRange { start, end }
    }

    /// Every day, with the legal window opened to the whole day.
    fn window(start: &str, end: &str, dnd: &[(&str, &str)]) -> CallingWindow {
        let do_not_disturb = dnd.iter().map(|(s, e)| range((hm(s), hm(e)))).collect();
        let (days, start, end) = (Weekday::ALL.to_vec(), hm(start), hm(end));
        let schedule = Schedule {
            days,
            start,
            end,
            do_not_disturb,
        };
        CallingWindow::new(&schedule, &whole_day())
    }

    fn whole_day() -> Compliance {
        let (legal_window_start, legal_window_end) = (hm("00:00"), hm("23:59"));
        Compliance {
            legal_window_start,
            legal_window_end,
            consent_required: false,
        }
    }

    fn campaign() -> CallingWindow {
        CallingWindow::for_campaign(&CampaignConfig::default())
    }

    fn open(w: &CallingWindow, zone: Tz, when: &str) -> bool {
        w.is_open(&ZoneChoice::Exact(zone), at(when))
    }

    /// The next opening as `2025-03-09 07:00:00`, or `never`.
    fn next(w: &CallingWindow, zone: Tz, after: &str) -> String {
        let next = w.next_open(&ZoneChoice::Exact(zone), at(after));
        next.map_or("never".into(), |t| {
            t.format("%Y-%m-%d %H:%M:%S").to_string()
        })
    }

    fn zones(phone: &str, timezone: Option<&str>, policy: &TimezonePolicy) -> ZoneChoice {
        let t = at("2025-01-01 00:00");
        let contact = Contact {
            id: ContactId(1),
            tenant_id: TenantId(1),
            phone: E164::parse(phone, None).unwrap(),
            name: None,
            email: None,
            company: None,
            timezone: timezone.map(str::to_owned),
            attributes: Default::default(),
            consent_at: None,
            opted_out_at: None,
            created_at: t,
            updated_at: t,
        };
        zones_for(&contact, policy)
    }

    #[test]
    fn the_contacts_own_timezone_adds_to_the_numbers_zone() {
        let p = TimezonePolicy::default();
        let z = zones("+14155552671", Some("America/Phoenix"), &p);
        assert_eq!(z, ZoneChoice::AllOf(vec![Am::Phoenix, Am::Los_Angeles]));
        let same = zones("+14155552671", Some("America/Los_Angeles"), &p);
        assert_eq!(same, ZoneChoice::Exact(Am::Los_Angeles));
    }

    #[test]
    fn new_yorkers_tagged_tokyo_are_never_dialed_at_new_york_night() {
        let z = zones(
            "+12125550123",
            Some("Asia/Tokyo"),
            &TimezonePolicy::default(),
        );
        assert_eq!(z, ZoneChoice::AllOf(vec![Asia::Tokyo, NY]));
        let mut config = CampaignConfig::default();
        config.schedule.days = Weekday::ALL.to_vec();
        config.schedule.start = hm("00:00");
        config.schedule.end = hm("23:59");
        let w = CallingWindow::for_campaign(&config);
        // 2025-01-15 02:00 UTC is 11:00 in Tokyo and 21:00 in New York: closed.
        assert!(!w.is_open(&z, at("2025-01-15 02:00")));
        // Every minute of a week: never open outside 08:00-21:00 in New York.
        let mut t = at("2025-01-13 00:00");
        while t < at("2025-01-20 00:00") {
            let ny = t.with_timezone(&NY).time();
            if w.is_open(&z, t) {
                assert!(ny >= hm("08:00").time() && ny < hm("21:00").time(), "{t}");
            }
            t += TimeDelta::minutes(1);
        }
        assert!(!zone_fits_number(
            Asia::Tokyo,
            &E164::parse("+12125550123", None).unwrap()
        ));
    }

    #[test]
    fn a_zone_fits_a_number_of_its_country_or_one_keeping_the_same_clock() {
        let ny = E164::parse("+12125550123", None).unwrap();
        assert!(zone_fits_number(Am::Los_Angeles, &ny));
        assert!(zone_fits_number(Am::Detroit, &ny));
        assert!(!zone_fits_number(Eu::London, &ny));
        let london = E164::parse("+442079460958", None).unwrap();
        assert!(zone_fits_number(Eu::London, &london));
        assert!(!zone_fits_number(Eu::Paris, &london));
        let why = zone_mismatch("Asia/Tokyo", &ny).unwrap();
        assert!(
            why.contains("\"Asia/Tokyo\"") && why.contains("(US)"),
            "{why}"
        );
        assert_eq!(zone_mismatch("America/Chicago", &ny), None);
    }

    #[test]
    fn a_us_area_code_gives_its_zone_and_a_split_one_gives_both() {
        let p = TimezonePolicy::default();
        let exact = |phone| match zones(phone, None, &p) {
            ZoneChoice::Exact(zone) => Some(zone),
            ZoneChoice::AllOf(_) => None,
        };
        assert_eq!(exact("+14155552671"), Some(Am::Los_Angeles));
        assert_eq!(exact("+12125550123"), Some(NY));
        assert_eq!(exact("+16045550123"), Some(Am::Vancouver));
        let both = ZoneChoice::AllOf(vec![NY, Am::Chicago]);
        assert_eq!(zones("+18505550123", None, &p), both);
    }

    #[test]
    fn an_unknown_us_area_code_must_be_open_in_every_us_zone() {
        let z = zones("+18005550199", None, &TimezonePolicy::default());
        assert_eq!(z, ZoneChoice::AllOf(region_zones("US").to_vec()));
        // In July, 09:00 in Honolulu is 19:00 UTC and 17:00 in New York is 21:00 UTC.
        let next = campaign().next_open(&z, at("2025-07-16 12:00"));
        assert_eq!(next, Some(at("2025-07-16 19:00")));
        assert!(!campaign().is_open(&z, at("2025-07-16 21:00")));
    }

    #[test]
    fn a_single_zone_country_gives_its_zone_and_others_fall_back_to_the_default() {
        let p = TimezonePolicy {
            default_timezone: "Asia/Riyadh".to_owned(),
            use_number_region: true,
        };
        let london = zones("+442079460958", None, &p);
        assert_eq!(london, ZoneChoice::Exact(Eu::London));
        assert_eq!(region_zone("in"), Some(Asia::Kolkata));
        assert_eq!(region_zone("US"), None);
        // Iceland-adjacent Faroe Islands (+298) are in no table: the default applies.
        let faroe = zones("+298201234", None, &p);
        assert_eq!(faroe, ZoneChoice::Exact(Asia::Riyadh));
        let nowhere = ZoneChoice::AllOf(vec![]);
        assert!(!campaign().is_open(&nowhere, at("2025-07-16 15:00")));
    }

    #[test]
    fn the_campaign_window_is_the_schedule_inside_the_legal_window() {
        let mut config = CampaignConfig::default();
        config.schedule.start = hm("07:00");
        config.schedule.end = hm("22:00");
        let lunch = range((hm("12:00"), hm("13:00")));
        config.schedule.do_not_disturb = vec![lunch];
        let w = CallingWindow::for_campaign(&config);
        // Wednesday 2025-01-15, EST (UTC-5): 07:59:59 is before the legal 08:00.
        assert!(!open(&w, NY, "2025-01-15 12:59:59"));
        assert!(open(&w, NY, "2025-01-15 13:00"));
        // Do not disturb from 12:00 to 13:00, end exclusive.
        assert!(!open(&w, NY, "2025-01-15 17:00"));
        assert!(open(&w, NY, "2025-01-15 18:00"));
        // 21:00 is past the legal end; saturday is not a calling day.
        assert!(!open(&w, NY, "2025-01-16 02:00"));
        assert!(!open(&w, NY, "2025-01-18 15:00"));
    }

    #[test]
    fn a_window_starting_at_a_nonexistent_0230_opens_at_0300_on_spring_forward_day() {
        // 2025-03-09 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
        let w = window("02:30", "05:00", &[]);
        assert_eq!(next(&w, NY, "2025-03-09 05:00"), "2025-03-09 07:00:00");
        assert!(!open(&w, NY, "2025-03-09 06:59:59"));
        let w = window("00:00", "23:59", &[("01:00", "02:30")]);
        assert_eq!(next(&w, NY, "2025-03-09 06:30"), "2025-03-09 07:00:00");
    }

    #[test]
    fn the_repeated_0130_hour_on_fall_back_day_is_open_twice() {
        // 2025-11-02: 01:00-01:59 EDT is 05:00-05:59 UTC, then 01:00-01:59 EST 06:00-06:59.
        let w = window("00:00", "01:30", &[]);
        assert!(open(&w, NY, "2025-11-02 05:29:59"));
        assert!(!open(&w, NY, "2025-11-02 05:30"));
        assert_eq!(next(&w, NY, "2025-11-02 05:30"), "2025-11-02 06:00:00");
        assert!(!open(&w, NY, "2025-11-02 06:30"));
        assert_eq!(next(&w, NY, "2025-11-02 06:30"), "2025-11-03 05:00:00");
    }

    #[test]
    fn london_opens_an_hour_earlier_in_utc_after_the_clocks_go_forward() {
        // Friday 2025-03-28 is GMT; Monday 2025-03-31 is BST (UTC+1).
        let (w, london) = (campaign(), Eu::London);
        assert_eq!(next(&w, london, "2025-03-28 08:30"), "2025-03-28 09:00:00");
        assert_eq!(next(&w, london, "2025-03-28 17:00"), "2025-03-31 08:00:00");
    }

    #[test]
    fn sydney_opens_an_hour_later_in_utc_after_its_autumn_change() {
        // Friday 2025-04-04 09:00 AEDT is Thursday 22:00 UTC; Monday 2025-04-07 09:00 AEST
        // is Sunday 23:00 UTC.
        let (w, sydney) = (campaign(), Au::Sydney);
        assert_eq!(next(&w, sydney, "2025-04-03 12:00"), "2025-04-03 22:00:00");
        assert_eq!(next(&w, sydney, "2025-04-04 06:00"), "2025-04-06 23:00:00");
    }

    #[test]
    fn kolkata_opens_on_its_half_hour_offset() {
        let (w, kolkata) = (campaign(), Asia::Kolkata);
        assert!(!open(&w, kolkata, "2025-01-06 03:29:59"));
        assert!(open(&w, kolkata, "2025-01-06 03:30"));
        assert_eq!(next(&w, kolkata, "2025-01-06 00:00"), "2025-01-06 03:30:00");
    }

    #[test]
    fn a_window_that_never_opens_has_no_next_open() {
        let mut schedule = Schedule {
            days: vec![],
            ..Schedule::default()
        };
        let never = |s: &Schedule| CallingWindow::new(s, &Compliance::default());
        assert_eq!(next(&never(&schedule), NY, "2025-01-06 00:00"), "never");
        schedule.days = vec![Weekday::Monday];
        schedule.do_not_disturb = vec![range((hm("08:00"), hm("18:00")))];
        assert_eq!(next(&never(&schedule), NY, "2025-01-06 00:00"), "never");
        let ny = ZoneChoice::Exact(NY);
        assert_eq!(campaign().next_open(&ny, DateTime::<Utc>::MAX_UTC), None);
    }

    #[rustfmt::skip]
    const ZONES: &[Tz] = &[NY, Eu::London, Au::Sydney, Asia::Kolkata, Au::Lord_Howe, Pacific::Chatham];

    /// Offset transitions of the zones above in 2025, to draw instants near them.
    #[rustfmt::skip]
    const TRANSITIONS: &[i64] = &[1_741_503_600, 1_762_063_200, 1_743_296_400, 1_761_440_400,
        1_743_868_800, 1_759_593_600];

    fn any_window() -> impl Strategy<Value = CallingWindow> {
        let time = (0u32..24, 0u32..60).prop_map(|(h, m)| LocalTime::hm(h, m));
        let sorted = (time.clone(), time).prop_map(|(a, b)| (a.min(b), a.max(b)));
        let dnd = proptest::collection::vec(sorted.clone().prop_map(range), 0..3);
        (1u8..128, sorted, dnd).prop_map(|(mask, (start, end), do_not_disturb)| {
            let days = Weekday::ALL.iter().enumerate();
            let days = days.filter(|(i, _)| mask & (1 << i) != 0).map(|(_, d)| *d);
            let days = days.collect();
            let schedule = Schedule {
                days,
                start,
                end,
                do_not_disturb,
            };
            CallingWindow::new(&schedule, &whole_day())
        })
    }

    fn any_zones() -> impl Strategy<Value = ZoneChoice> {
        prop_oneof![
            proptest::sample::select(ZONES).prop_map(ZoneChoice::Exact),
            proptest::sample::subsequence(ZONES, 1..3).prop_map(ZoneChoice::AllOf),
        ]
    }

    /// Any instant of 2020..2030, or one within about two days of an offset transition.
    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        let near = (proptest::sample::select(TRANSITIONS), -200_000i64..200_000);
        let near = near.prop_map(|(t, d)| t + d);
        prop_oneof![1_577_836_800i64..1_893_456_000, near]
            .prop_map(|secs| DateTime::from_timestamp(secs, 0).unwrap_or_default())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn next_open_is_open_and_nothing_before_it_is(
            w in any_window(), zones in any_zones(), t in any_instant(),
        ) {
            let next = w.next_open(&zones, t);
            if let Some(n) = next {
                prop_assert!(n >= t && w.is_open(&zones, n));
                prop_assert!(n == t || !w.is_open(&zones, n - TimeDelta::seconds(1)));
            }
            let span = next.unwrap_or(t + TimeDelta::days(LOOKAHEAD_DAYS));
            let mut m = t;
            while m < span && m < t + TimeDelta::days(4) {
                prop_assert!(!w.is_open(&zones, m), "open at {m} before {next:?}");
                m += TimeDelta::minutes(1);
            }
        }
    }

    /// Numbers of one zone, a split area, an unknown area, single- and multi-zone countries.
    const NUMBERS: &[&str] = &[
        "+12125550123",
        "+14155552671",
        "+18505550123",
        "+18005550199",
        "+442079460958",
        "+61291234567",
        "+74951234567",
        "+5511912345678",
        "+919876543210",
        "+16045550123",
    ];

    #[rustfmt::skip]
    const CONTACT_ZONES: &[&str] = &["Asia/Tokyo", "America/New_York", "America/Los_Angeles",
        "Europe/London", "Australia/Sydney", "Asia/Kolkata", "Pacific/Chatham", "Asia/Kathmandu"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// For any instant the campaign window says open, the local time in the contact's
        /// zone and in every zone of its number is inside the legal and campaign windows.
        #[test]
        fn open_means_open_in_every_zone_involved(
            phone in proptest::sample::select(NUMBERS),
            own in proptest::option::of(proptest::sample::select(CONTACT_ZONES)),
            (start, end) in (0u32..24, 0u32..24).prop_map(|(a, b)| (a.min(b), a.max(b) + 1)),
            mask in 1u8..128,
            t in any_instant(),
        ) {
            let mut config = CampaignConfig::default();
            config.schedule.start = LocalTime::hm(start, 0);
            config.schedule.end = LocalTime::hm(end.min(23), if end > 23 { 59 } else { 0 });
            let days = Weekday::ALL.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0);
            config.schedule.days = days.map(|(_, d)| *d).collect();
            let w = CallingWindow::for_campaign(&config);
            let phone = E164::parse(phone, None).unwrap();
            let chosen = zones_for_number(own, &phone, &config.timezone);
            let mut involved: Vec<Tz> = own.and_then(parse_timezone).into_iter().collect();
            involved.extend(number_zones(&phone).map_or(vec![], |z| z.zones().to_vec()));
            prop_assert!(!involved.is_empty());
            for zone in &involved {
                prop_assert!(chosen.zones().contains(zone), "{zone} missing from {chosen:?}");
            }
            if w.is_open(&chosen, t) {
                let low = hm("08:00").time().max(config.schedule.start.time());
                let high = hm("21:00").time().min(config.schedule.end.time());
                for zone in involved {
                    let local = t.with_timezone(&zone);
                    prop_assert!(low <= local.time() && local.time() < high, "{zone} at {local}");
                    let day = Weekday::from(local.weekday());
                    prop_assert!(config.schedule.days.contains(&day), "{zone} on {day:?}");
                }
            }
        }
    }
}
