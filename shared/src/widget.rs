//! The widget's vocabulary, shared by the server (which stores and serves a site's widget
//! settings) and the wasm widget (which draws them): agents, business hours in a time
//! zone, what happens outside them, and the prefilled message template.
//!
//! The wasm widget reads the served JSON through the browser's `JSON` (serde would cost it
//! tens of KB) but builds these same types, so both sides agree on what is valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::consent::{Lang, Reference};

/// Most agents a site may list.
pub const MAX_AGENTS: usize = 10;
/// Most opening spans per hours table.
pub const MAX_SPANS: usize = 21;
/// Longest greeting, agent name or role, in characters.
pub const MAX_LABEL_CHARS: usize = 300;

/// A day of the week, as `mon` … `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// Parses `mon`…`sun`, and the English names `Mon`, `Monday` that `Intl` gives.
    pub fn parse(s: &str) -> Option<Weekday> {
        let s = s.get(..3)?.to_ascii_lowercase();
        Weekday::ALL.into_iter().find(|d| d.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self.index()]
    }

    fn index(self) -> usize {
        self as usize
    }

    fn next(self) -> Weekday {
        Weekday::ALL[(self.index() + 1) % 7]
    }

    fn previous(self) -> Weekday {
        Weekday::ALL[(self.index() + 6) % 7]
    }
}

/// A time of day, `HH:MM` on a 24-hour clock (`24:00` closes a span at midnight).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {0:?} is not HH:MM on a 24-hour clock (e.g. 09:00, 18:30)")]
pub struct ClockTimeError(pub String);

impl ClockTime {
    pub fn parse(s: &str) -> Result<Self, ClockTimeError> {
        let err = || ClockTimeError(s.chars().take(20).collect());
        let (h, m) = s.trim().split_once(':').ok_or_else(err)?;
        let ok = |p: &str| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        if !ok(h) || m.len() != 2 || !ok(m) {
            return Err(err());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
        if m > 59 || h > 24 || (h == 24 && m != 0) {
            return Err(err());
        }
        Ok(Self(h * 60 + m))
    }

    pub fn from_minutes(minutes: u16) -> Option<Self> {
        (minutes <= 24 * 60).then_some(Self(minutes))
    }

    /// Minutes since midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl fmt::Debug for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClockTime({self})")
    }
}

impl TryFrom<String> for ClockTime {
    type Error = ClockTimeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ClockTime> for String {
    fn from(value: ClockTime) -> Self {
        format!("{:02}:{:02}", value.0 / 60, value.0 % 60)
    }
}

/// Open from `from` to `to` on each of `days` (local time of the hours' time zone). A span
/// that ends before it starts runs past midnight: `sat 22:00 to 02:00` is open from Saturday
/// 22:00 until Sunday 02:00.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSpan {
    pub days: Vec<Weekday>,
    pub from: ClockTime,
    pub to: ClockTime,
}

impl OpenSpan {
    fn overnight(&self) -> bool {
        self.from > self.to
    }

    fn covers(&self, day: Weekday, minute: u16) -> bool {
        let (from, to) = (self.from.minutes(), self.to.minutes());
        let started_today = self.days.contains(&day) && from <= minute && (self.overnight() || minute < to);
        let from_yesterday = self.overnight() && minute < to && self.days.contains(&day.previous());
        started_today || from_yesterday
    }
}

/// Business hours: when someone answers, in an IANA time zone (`Europe/Rome`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    /// An IANA time zone name; the server checks it against its tz database when set, the
    /// browser's `Intl` resolves local times in it.
    pub time_zone: String,
    pub open: Vec<OpenSpan>,
}

impl Hours {
    /// Checks the spans: at least one day each, `from` other than `to`, at most [`MAX_SPANS`].
    pub fn check(&self) -> Result<(), String> {
        let tz_ok = !self.time_zone.is_empty()
            && self.time_zone.len() <= 64
            && self.time_zone.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
        if !tz_ok {
            return Err(format!("time_zone {:?} is not an IANA time zone name such as Europe/Rome", self.time_zone));
        }
        if self.open.len() > MAX_SPANS {
            return Err(format!("hours may list at most {MAX_SPANS} spans"));
        }
        for span in &self.open {
            if span.days.is_empty() {
                return Err("each span of open hours needs at least one day (mon … sun)".into());
            }
            if span.from == span.to {
                return Err(format!("an open span must not start and end at the same time ({0} to {0}); all day is 00:00 to 24:00", span.from));
            }
        }
        Ok(())
    }

    /// Whether it is open at `minute` (since midnight) on `day`, local time; a span past
    /// midnight counts on the day after its own until it ends.
    pub fn is_open(&self, day: Weekday, minute: u16) -> bool {
        self.open.iter().any(|s| s.covers(day, minute))
    }

    /// The next opening after `minute` on `day`: in how many days (0 = today, 7 = the
    /// same weekday next week), which day, and at what time.
    pub fn next_opening(&self, day: Weekday, minute: u16) -> Option<(u8, Weekday, ClockTime)> {
        let mut d = day;
        for offset in 0..8u8 {
            let after = if offset == 0 { Some(minute) } else { None };
            let first = self
                .open
                .iter()
                .filter(|s| s.days.contains(&d) && after.is_none_or(|m| s.from.minutes() > m))
                .map(|s| s.from)
                .min();
            if let Some(t) = first {
                return Some((offset, d, t));
            }
            d = d.next();
        }
        None
    }
}

/// Whether someone answers at a moment, and if not, when they next do. The server works it
/// out from [`Hours`] in their time zone and sends it with the widget's configuration: the
/// browser then needs no time zone data (building an `Intl` clock for a zone costs the
/// page's main thread tens of milliseconds), and a visitor's wrong clock changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenNow {
    pub online: bool,
    /// When offline, the next opening (none when the hours list no open span).
    #[serde(default)]
    pub next: Option<NextOpening>,
}

/// The next opening: in how many days (0 today, 7 the same weekday next week), which day
/// and at what time, local time of the hours' zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextOpening {
    pub in_days: u8,
    pub day: Weekday,
    pub time: ClockTime,
}

impl Hours {
    /// [`OpenNow`] at `minute` (since midnight) on `day`, local time.
    pub fn open_now(&self, day: Weekday, minute: u16) -> OpenNow {
        if self.is_open(day, minute) {
            return OpenNow { online: true, next: None };
        }
        let next = self.next_opening(day, minute).map(|(in_days, day, time)| NextOpening { in_days, day, time });
        OpenNow { online: false, next }
    }
}

/// What the widget does outside business hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutsideHours {
    /// Still offer the chat, saying when replies come ("we reply from 9:00").
    #[default]
    Notice,
    /// Chats go to another number (e.g. an on-call line), E.164.
    Redirect { phone: String },
    /// Offline agents are not shown; with no one online, neither is the chat.
    Hide,
}

/// Whether the chat may start without a ticked box.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// "Start chat" stays disabled until a box is ticked (the default).
    #[default]
    Required,
    /// The chat may start without consent; ticked boxes are still recorded.
    Optional,
}

/// Someone who answers chats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub name: String,
    #[serde(default)]
    pub role: Option<String>,
    /// Their WhatsApp number, E.164.
    pub phone: String,
    /// Their own hours; the site's hours when absent.
    #[serde(default)]
    pub hours: Option<Hours>,
}

/// An agent as the widget's configuration gives them: their settings, and whether they
/// answer now by their own hours or else the site's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: Agent,
    /// Absent when neither they nor the site have hours: always online.
    #[serde(default)]
    pub now: Option<OpenNow>,
}

/// A site's widget settings as its admin sets them (the `sites.widget` column;
/// `cornetta site widget KEY --set-file settings.json`, `PUT /v1/sites/{key}/widget`).
/// Appearance (colour, side, offset, dark mode) is set on the script tag instead, so the
/// launcher draws before any request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetSettings {
    /// The greeting per language (`{"en": "Hi!", "it": "Ciao!"}`); the widget's own
    /// translated greeting when the visitor's language has none.
    #[serde(default)]
    pub greeting: std::collections::BTreeMap<Lang, String>,
    /// The prefilled message template: `{title}`, `{url}`, `{ref}`, `{agent}`.
    #[serde(default)]
    pub text: Option<String>,
    /// An https image shown as the business's avatar; initials otherwise.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// The privacy policy, linked under the boxes (the notice's own URL wins).
    #[serde(default)]
    pub privacy_url: Option<String>,
    #[serde(default)]
    pub agents: Vec<Agent>,
    /// The site's business hours (always open when absent).
    #[serde(default)]
    pub hours: Option<Hours>,
    #[serde(default)]
    pub outside_hours: OutsideHours,
    #[serde(default)]
    pub consent: ConsentMode,
}

impl FromStr for ConsentMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(ConsentMode::Required),
            "optional" => Ok(ConsentMode::Optional),
            _ => Err(format!("consent mode {s:?} is unknown; expected required or optional")),
        }
    }
}

/// What fills a message template's variables.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageVars<'a> {
    /// `{title}`: the page's title.
    pub title: &'a str,
    /// `{url}`: the page's address.
    pub url: &'a str,
    /// `{agent}`: the chosen agent's name.
    pub agent: &'a str,
    /// `{ref}`: the consent's reference, when a consent is being recorded.
    pub reference: Option<&'a Reference>,
}

/// `template` with each placeholder of `vars` (`("{name}", value)`) replaced by its value,
/// in one pass: a value is never expanded again, and any other `{` stays as it is.
pub fn fill_placeholders(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        // split_at_checked and get, not indexing: no panic path in the wasm.
        let (before, after) = rest.split_at_checked(start).unwrap_or((rest, ""));
        out.push_str(before);
        let (v, len) = vars.iter().find(|(name, _)| after.starts_with(name)).map_or(("{", 1), |(name, v)| (*v, name.len()));
        out.push_str(v);
        rest = after.get(len..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Fills `{title}`, `{url}`, `{agent}` and `{ref}` in one pass (a value that itself
/// contains `{url}` is never expanded again).
///
/// With a reference and no `{ref}` in the template, ` (ref K7QXM-2PA9R)` is appended, so the
/// person's first WhatsApp message always carries it: that is what binds the web opt-in to
/// their number. Without a reference, `{ref}` and a `(ref {ref})` around it disappear.
pub fn fill_message(template: Option<&str>, vars: &MessageVars<'_>) -> String {
    let reference = vars.reference.map(ToString::to_string);
    let stripped;
    let template = match (&reference, template) {
        (None, Some(t)) => {
            stripped = remove_all(&remove_all(t, "(ref {ref})"), "{ref}");
            stripped.as_str()
        }
        (_, t) => t.unwrap_or(""),
    };
    let vars = [("{title}", vars.title), ("{url}", vars.url), ("{agent}", vars.agent), ("{ref}", reference.as_deref().unwrap_or(""))];
    let out = fill_placeholders(template, &vars);
    let out = out.trim_end();
    match &reference {
        Some(r) if !has_ref(template) && out.trim().is_empty() => format!("Hi! (ref {r})"),
        Some(r) if !has_ref(template) => format!("{out} (ref {r})"),
        _ => out.trim_start().to_owned(),
    }
}

// The two helpers below search for a `char` and compare at each hit, instead of
// `str::replace`/`contains` with a `&str` pattern: the widget compiles this file to wasm,
// where the two-way string searcher those bring costs kilobytes.

/// `text` without any occurrence of `pattern` (which starts with an ASCII character).
fn remove_all(text: &str, pattern: &str) -> String {
    let Some(first) = pattern.chars().next() else { return text.to_owned() };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(first) {
        let (before, after) = rest.split_at_checked(at).unwrap_or((rest, ""));
        out.push_str(before);
        if let Some(tail) = after.strip_prefix(pattern) {
            rest = tail;
        } else {
            out.push(first);
            rest = after.get(first.len_utf8()..).unwrap_or("");
        }
    }
    out.push_str(rest);
    out
}

/// Whether `template` has a `{ref}` placeholder.
fn has_ref(template: &str) -> bool {
    template.match_indices('{').any(|(at, _)| template.get(at..).is_some_and(|t| t.starts_with("{ref}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_all_and_has_ref_agree_with_the_std_string_functions() {
        for text in ["", "{ref}", "a (ref {ref}) b {ref}", "((ref {ref})", "{{ref}}", "ref {re} {ref", "é{ref}🙂(ref {ref})x", "(((("] {
            for pattern in ["(ref {ref})", "{ref}"] {
                assert_eq!(remove_all(text, pattern), text.replace(pattern, ""), "{text:?} - {pattern:?}");
            }
            assert_eq!(has_ref(text), text.contains("{ref}"), "{text:?}");
        }
    }

    fn reference() -> Reference {
        Reference::parse("K7QXM-2PA9R").unwrap()
    }

    #[test]
    fn variables_are_filled_once() {
        let r = reference();
        let vars = MessageVars { title: "Shoes {url}", url: "https://shop.example/p?a=1&b=2#x", agent: "Giulia", reference: Some(&r) };
        let cases = [
            (Some("Hi! I have a question about {title}"), "Hi! I have a question about Shoes {url} (ref K7QXM-2PA9R)"),
            (Some("{agent}, see {url} — {ref}"), "Giulia, see https://shop.example/p?a=1&b=2#x — K7QXM-2PA9R"),
            (Some("{unknown} {ref"), "{unknown} {ref (ref K7QXM-2PA9R)"),
            (None, "Hi! (ref K7QXM-2PA9R)"),
            (Some("   "), "Hi! (ref K7QXM-2PA9R)"),
            (Some("Ciao 👋 {title}\n"), "Ciao 👋 Shoes {url} (ref K7QXM-2PA9R)"),
        ];
        for (template, want) in cases {
            assert_eq!(fill_message(template, &vars), want, "{template:?}");
        }
    }

    fn weekdays_9_to_18() -> Hours {
        Hours {
            time_zone: "Europe/Rome".into(),
            open: vec![
                OpenSpan { days: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri], from: ClockTime::parse("09:00").unwrap(), to: ClockTime::parse("18:00").unwrap() },
                OpenSpan { days: vec![Weekday::Sat], from: ClockTime::parse("10:00").unwrap(), to: ClockTime::parse("13:00").unwrap() },
            ],
        }
    }

    #[test]
    fn hours_say_whether_it_is_open_and_when_it_opens_next() {
        let h = weekdays_9_to_18();
        assert!(h.check().is_ok());
        let at = |s: &str| ClockTime::parse(s).unwrap().minutes();
        assert!(h.is_open(Weekday::Mon, at("09:00")));
        assert!(!h.is_open(Weekday::Mon, at("18:00")), "the end is exclusive");
        assert!(!h.is_open(Weekday::Sun, at("12:00")));
        let next = |d, t| h.next_opening(d, at(t)).map(|(ahead, day, time)| (ahead, day, time.to_string()));
        assert_eq!(next(Weekday::Mon, "07:30"), Some((0, Weekday::Mon, "9:00".into())));
        assert_eq!(next(Weekday::Fri, "19:00"), Some((1, Weekday::Sat, "10:00".into())));
        assert_eq!(next(Weekday::Sat, "14:00"), Some((2, Weekday::Mon, "9:00".into())));
        let saturday_only = Hours { time_zone: "UTC".into(), open: vec![h.open[1].clone()] };
        let same = Hours { time_zone: "UTC".into(), open: vec![OpenSpan { days: vec![Weekday::Mon], from: ClockTime::parse("09:00").unwrap(), to: ClockTime::parse("09:00").unwrap() }] };
        assert!(same.check().unwrap_err().contains("00:00 to 24:00"));
        assert_eq!(saturday_only.next_opening(Weekday::Sat, at("14:00")).map(|(a, d, _)| (a, d)), Some((7, Weekday::Sat)));
        assert_eq!(Hours { time_zone: "UTC".into(), open: vec![] }.next_opening(Weekday::Mon, 0), None);
    }

    #[test]
    fn a_span_that_ends_before_it_starts_runs_past_midnight() {
        let t = |s: &str| ClockTime::parse(s).unwrap();
        // A bar's line: Friday and Saturday nights, 22:00 to 02:00; Sunday 22:00 to midnight.
        let h = Hours {
            time_zone: "Europe/Rome".into(),
            open: vec![
                OpenSpan { days: vec![Weekday::Fri, Weekday::Sat], from: t("22:00"), to: t("02:00") },
                OpenSpan { days: vec![Weekday::Sun], from: t("22:00"), to: t("00:00") },
            ],
        };
        assert!(h.check().is_ok());
        let at = |s: &str| t(s).minutes();
        let open = [(Weekday::Fri, "22:00"), (Weekday::Fri, "23:59"), (Weekday::Sat, "00:00"), (Weekday::Sat, "01:59"), (Weekday::Sun, "01:00"), (Weekday::Sun, "23:00")];
        for (day, time) in open {
            assert!(h.is_open(day, at(time)), "{day:?} {time}");
        }
        let closed = [(Weekday::Fri, "21:59"), (Weekday::Fri, "01:00"), (Weekday::Sat, "02:00"), (Weekday::Sat, "12:00"), (Weekday::Mon, "00:30"), (Weekday::Thu, "23:00")];
        for (day, time) in closed {
            assert!(!h.is_open(day, at(time)), "{day:?} {time}");
        }
        let next = |d, s| h.next_opening(d, at(s)).map(|(ahead, day, time)| (ahead, day, time.to_string()));
        assert_eq!(next(Weekday::Sat, "03:00"), Some((0, Weekday::Sat, "22:00".into())));
        assert_eq!(next(Weekday::Mon, "00:30"), Some((4, Weekday::Fri, "22:00".into())));
    }

    #[test]
    fn clock_times_are_24_hour_hh_mm() {
        assert_eq!(ClockTime::parse("9:05").unwrap().minutes(), 545);
        assert_eq!(String::from(ClockTime::parse("24:00").unwrap()), "24:00");
        for bad in ["", "9", "09:5", "25:00", "24:01", "12:60", "ab:cd", "-1:00", "09:000"] {
            assert!(ClockTime::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Weekday::parse("Monday"), Some(Weekday::Mon));
        assert_eq!(Weekday::parse("xyz"), None);
    }

    #[test]
    fn without_a_reference_the_ref_variable_disappears() {
        let vars = MessageVars { title: "Shoes", url: "u", agent: "", reference: None };
        let cases = [
            (Some("Hi about {title} (ref {ref})"), "Hi about Shoes"),
            (Some("Hi {ref}"), "Hi"),
            (Some("Hi"), "Hi"),
            (None, ""),
        ];
        for (template, want) in cases {
            assert_eq!(fill_message(template, &vars), want, "{template:?}");
        }
    }
}
