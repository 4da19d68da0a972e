//! Business hours in the browser: who answers now, as the server's configuration says
//! (`now`: it works the hours out in their time zone, so the page builds no `Intl` clock
//! for a zone, which costs its main thread tens of milliseconds), and the next opening's
//! weekday in the visitor's language.

use cornetta_shared::widget::{ClockTime, Weekday};
use js_sys::{Date, Object};
use wasm_bindgen::prelude::*;

use crate::net::{get, set, text};

#[wasm_bindgen]
extern "C" {
    type Formatter;

    /// `new Intl.DateTimeFormat(locale, options)`, catching the RangeError a malformed
    /// locale raises.
    #[wasm_bindgen(catch, constructor, js_namespace = Intl, js_class = "DateTimeFormat")]
    fn new(locale: &str, options: &Object) -> Result<Formatter, JsValue>;

    #[wasm_bindgen(method)]
    fn format(this: &Formatter, date: &Date) -> String;
}

/// A weekday's name in the visitor's language (2024-01-01 was a Monday).
pub(crate) fn weekday_name(day: Weekday, lang: &str) -> String {
    let options = Object::new();
    set(&options, "weekday", &"long".into());
    let index = Weekday::ALL.iter().position(|d| *d == day).unwrap_or(0) as f64;
    let date = Date::new_with_year_month_day(2024, 0, 1 + index as i32);
    Formatter::new(lang, &options).map(|f| f.format(&date)).unwrap_or_default()
}

/// Whether someone answers now, and if not, when they next do ("9:00", "Saturday 9:00").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Availability {
    pub(crate) online: bool,
    pub(crate) next: Option<String>,
}

/// Reads an `OpenNow` of the configuration; without one (no hours) always online.
pub(crate) fn availability(now: &JsValue, lang: &str) -> Availability {
    if !now.is_object() || get(now, "online").is_truthy() {
        return Availability { online: true, next: None };
    }
    let next = get(now, "next");
    let next = (|| {
        let day = Weekday::parse(&text(&next, "day")?)?;
        let time = ClockTime::parse(&text(&next, "time")?).ok()?;
        let today = get(&next, "in_days").as_f64()? == 0.0;
        Some(if today { time.to_string() } else { format!("{} {time}", weekday_name(day, lang)) })
    })();
    Availability { online: false, next }
}
