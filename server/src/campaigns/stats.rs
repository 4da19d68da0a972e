//! A campaign's scans over a range of UTC days: per day and device class, with totals, as
//! JSON, CSV, and the data of the console's chart.

use std::collections::BTreeMap;

use jiff::ToSpan;
use jiff::civil::Date;
use serde::Serialize;

use super::{Campaign, DeviceClass, ScanCount};

/// The longest range one request covers.
pub const MAX_DAYS: i64 = 366;
/// Days shown when no range is asked for.
pub const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    pub day: Date,
    /// Scans per device class, in `DeviceClass::ALL` order.
    pub by_device: [u64; 5],
}

impl DayRow {
    pub fn total(&self) -> u64 {
        self.by_device.iter().sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub from: Date,
    pub to: Date,
    /// Every day of the range, oldest first, zeros included.
    pub days: Vec<DayRow>,
    pub by_device: [u64; 5],
    /// Of these, scans counted in memory and not yet written to the store.
    pub unsaved: u64,
}

#[derive(Debug, Serialize)]
pub struct StatsJson {
    campaign: String,
    tracked: bool,
    from: String,
    to: String,
    total: u64,
    unsaved: u64,
    by_device: BTreeMap<&'static str, u64>,
    days: Vec<DayJson>,
}

#[derive(Debug, Serialize)]
struct DayJson {
    day: String,
    total: u64,
    #[serde(flatten)]
    by_device: BTreeMap<&'static str, u64>,
}

fn index(device: DeviceClass) -> usize {
    DeviceClass::ALL.iter().position(|d| *d == device).unwrap_or(0)
}

impl Stats {
    /// The range is `from..=to` (default: the 30 days up to `today`, so a chart always has
    /// a month's scale, with zeros before the campaign began).
    pub fn build(counts: &[ScanCount], today: Date, from: Option<Date>, to: Option<Date>) -> Result<Self, String> {
        let to = to.unwrap_or(today);
        let from = from.unwrap_or_else(|| to.checked_sub((DEFAULT_DAYS - 1).days()).unwrap_or(to));
        if from > to {
            return Err(format!("from ({from}) is after to ({to})"));
        }
        let span = (to - from).get_days() as i64 + 1;
        if span > MAX_DAYS {
            return Err(format!("the range is {span} days; at most {MAX_DAYS} days at a time"));
        }
        let mut days: Vec<DayRow> = Vec::with_capacity(span as usize);
        let mut day = from;
        for _ in 0..span {
            days.push(DayRow { day, by_device: [0; 5] });
            day = day.tomorrow().unwrap_or(day);
        }
        let mut by_device = [0u64; 5];
        for c in counts {
            if c.day < from || c.day > to {
                continue;
            }
            let i = (c.day - from).get_days() as usize;
            if let Some(row) = days.get_mut(i) {
                row.by_device[index(c.device)] += c.scans;
                by_device[index(c.device)] += c.scans;
            }
        }
        Ok(Self { from, to, days, by_device, unsaved: 0 })
    }

    pub fn total(&self) -> u64 {
        self.by_device.iter().sum()
    }

    pub fn to_json(&self, campaign: &Campaign) -> StatsJson {
        let devices = |counts: &[u64; 5]| DeviceClass::ALL.iter().zip(counts).map(|(d, n)| (d.as_str(), *n)).collect::<BTreeMap<_, _>>();
        StatsJson {
            campaign: campaign.id.clone(),
            tracked: campaign.tracked(),
            from: self.from.to_string(),
            to: self.to.to_string(),
            total: self.total(),
            unsaved: self.unsaved,
            by_device: devices(&self.by_device),
            days: self.days.iter().map(|d| DayJson { day: d.day.to_string(), total: d.total(), by_device: devices(&d.by_device) }).collect(),
        }
    }

    /// `day,ios,android,desktop,other,bot,total`, one line per day.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("day");
        for d in DeviceClass::ALL {
            out.push(',');
            out.push_str(d.as_str());
        }
        out.push_str(",total\n");
        for row in &self.days {
            out.push_str(&row.day.to_string());
            for n in row.by_device {
                out.push_str(&format!(",{n}"));
            }
            out.push_str(&format!(",{}\n", row.total()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn days_without_scans_are_zero_and_counts_land_on_their_day_and_device() {
        let counts = vec![
            ScanCount { campaign_id: "c".into(), day: d("2027-01-02"), device: DeviceClass::Android, scans: 3 },
            ScanCount { campaign_id: "c".into(), day: d("2027-01-02"), device: DeviceClass::Android, scans: 1 },
            ScanCount { campaign_id: "c".into(), day: d("2027-01-03"), device: DeviceClass::Ios, scans: 2 },
            ScanCount { campaign_id: "c".into(), day: d("2026-12-01"), device: DeviceClass::Ios, scans: 9 },
        ];
        let s = Stats::build(&counts, d("2027-01-04"), Some(d("2027-01-01")), None).unwrap();
        assert_eq!(s.from, d("2027-01-01"));
        assert_eq!(s.days.len(), 4);
        let month = Stats::build(&counts, d("2027-01-04"), None, None).unwrap();
        assert_eq!((month.from, month.days.len(), month.total()), (d("2026-12-06"), 30, 6));
        assert_eq!(s.days[1].by_device, [0, 4, 0, 0, 0]);
        assert_eq!(s.days[2].by_device, [2, 0, 0, 0, 0]);
        assert_eq!(s.total(), 6);
        assert_eq!(s.to_csv().lines().nth(2), Some("2027-01-02,0,4,0,0,0,4"));
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(Stats::build(&[], d("2027-01-04"), Some(d("2027-01-05")), Some(d("2027-01-04"))).is_err());
        assert!(Stats::build(&[], d("2027-01-04"), Some(d("2020-01-01")), None).is_err());
    }
}
