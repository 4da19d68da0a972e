//! Business hours in the browser: the current weekday and time in an IANA time zone, from
//! the browser's own `Intl` (a tz database in the wasm would cost hundreds of KB), and the
//! agents' online state computed with the shared `Hours` rules.

use std::cell::RefCell;

use cornetta_shared::widget::{ClockTime, Hours, OpenSpan, Weekday};
use js_sys::{Array, Date, Object};
use wasm_bindgen::prelude::*;

use crate::net::{get, set, text};

#[wasm_bindgen]
extern "C" {
    #[derive(Clone)]
    type Formatter;

    /// `new Intl.DateTimeFormat(locale, options)`, catching the RangeError an unknown
    /// time zone raises.
    #[wasm_bindgen(catch, constructor, js_namespace = Intl, js_class = "DateTimeFormat")]
    fn new(locale: &str, options: &Object) -> Result<Formatter, JsValue>;

    #[wasm_bindgen(method, js_name = formatToParts)]
    fn format_to_parts(this: &Formatter, date: &Date) -> Array;

    #[wasm_bindgen(method)]
    fn format(this: &Formatter, date: &Date) -> String;
}

thread_local! {
    /// The last clock made: making an `Intl.DateTimeFormat` is what costs (the first one
    /// with a time zone loads the browser's zone data, about 20 ms in headless Chromium
    /// here), reading the time with it does not; a site and its agents share a zone.
    static CLOCK: RefCell<Option<(String, Formatter)>> = const { RefCell::new(None) };
}

fn clock(time_zone: &str) -> Option<Formatter> {
    if let Some(f) = CLOCK.with_borrow(|c| c.as_ref().filter(|(zone, _)| zone == time_zone).map(|(_, f)| f.clone())) {
        return Some(f);
    }
    let options = Object::new();
    set(&options, "timeZone", &time_zone.into());
    set(&options, "weekday", &"short".into());
    set(&options, "hour", &"numeric".into());
    set(&options, "minute", &"numeric".into());
    set(&options, "hourCycle", &"h23".into());
    let f = Formatter::new("en-US", &options).ok()?;
    CLOCK.set(Some((time_zone.to_owned(), f.clone())));
    Some(f)
}

/// Now, in `time_zone`: the weekday and the minutes since midnight.
pub(crate) fn now_in(time_zone: &str) -> Option<(Weekday, u16)> {
    let parts = clock(time_zone)?.format_to_parts(&Date::new_0());
    let (mut day, mut hour, mut minute) = (None, None, None);
    for part in parts.iter() {
        let value = text(&part, "value").unwrap_or_default();
        match text(&part, "type").as_deref() {
            Some("weekday") => day = Weekday::parse(&value),
            Some("hour") => hour = value.parse::<u16>().ok(),
            Some("minute") => minute = value.parse::<u16>().ok(),
            _ => {}
        }
    }
    Some((day?, (hour? % 24) * 60 + minute?))
}

/// A weekday's name in the visitor's language (2024-01-01 was a Monday).
pub(crate) fn weekday_name(day: Weekday, lang: &str) -> String {
    let options = Object::new();
    set(&options, "weekday", &"long".into());
    let index = Weekday::ALL.iter().position(|d| *d == day).unwrap_or(0) as f64;
    let date = Date::new_with_year_month_day(2024, 0, 1 + index as i32);
    Formatter::new(lang, &options).map(|f| f.format(&date)).unwrap_or_default()
}

/// Reads an `Hours` object of the widget configuration.
pub(crate) fn parse(value: &JsValue) -> Option<Hours> {
    if !value.is_object() {
        return None;
    }
    let open = Array::from(&get(value, "open"))
        .iter()
        .filter_map(|span| {
            Some(OpenSpan {
                days: Array::from(&get(&span, "days")).iter().filter_map(|d| Weekday::parse(&d.as_string()?)).collect(),
                from: ClockTime::parse(&text(&span, "from")?).ok()?,
                to: ClockTime::parse(&text(&span, "to")?).ok()?,
            })
        })
        .collect();
    Some(Hours { time_zone: text(value, "time_zone")?, open })
}

/// Whether someone answers now, and if not, when they next do ("9:00", "Saturday 9:00").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Availability {
    pub(crate) online: bool,
    pub(crate) next: Option<String>,
}

pub(crate) fn availability(hours: Option<&Hours>, lang: &str) -> Availability {
    let Some(hours) = hours else { return Availability { online: true, next: None } };
    let Some((day, minute)) = now_in(&hours.time_zone) else {
        // A zone this browser does not know: better to offer the chat than to hide it.
        return Availability { online: true, next: None };
    };
    if hours.is_open(day, minute) {
        return Availability { online: true, next: None };
    }
    let next = hours.next_opening(day, minute).map(|(ahead, d, t)| if ahead == 0 { t.to_string() } else { format!("{} {t}", weekday_name(d, lang)) });
    Availability { online: false, next }
}
