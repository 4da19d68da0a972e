//! A site's widget settings (`sites.widget`): checking them before they are stored, and
//! resolving them for one visitor (greeting in their language) into the `WidgetConfig` the
//! widget fetches.

use cornetta_shared::api::{NoticeView, WidgetConfig};
use cornetta_shared::widget::{AgentView, Hours, MAX_AGENTS, MAX_LABEL_CHARS, OpenNow, OutsideHours, Weekday, WidgetSettings};
use cornetta_shared::{Lang, PhoneNumber, Region};
use jiff::Timestamp;

use crate::store::Site;

/// Checks settings an admin sent and puts phone numbers in E.164 form. `region` lets
/// national numbers through (the server's default region when absent).
pub fn check(mut settings: WidgetSettings, region: Option<Region>) -> Result<WidgetSettings, String> {
    for (lang, greeting) in &settings.greeting {
        label("greeting", &format!(" ({lang})"), greeting)?;
    }
    if let Some(text) = &settings.text {
        let chars = text.chars().count();
        if chars > cornetta_shared::link::MAX_TEXT_CHARS {
            return Err(format!("text is {chars} characters long; the maximum is {}", cornetta_shared::link::MAX_TEXT_CHARS));
        }
    }
    if let Some(url) = &settings.avatar_url
        && (!url.starts_with("https://") || url.len() > 500) {
            return Err(format!("avatar_url {:?} must be an https:// URL of at most 500 characters", clip(url)));
        }
    if let Some(url) = &settings.privacy_url
        && (!(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 500) {
            return Err(format!("privacy_url {:?} must be an http(s) URL of at most 500 characters", clip(url)));
        }
    if settings.agents.len() > MAX_AGENTS {
        return Err(format!("a widget may list at most {MAX_AGENTS} agents"));
    }
    for (i, agent) in settings.agents.iter_mut().enumerate() {
        label("agents[].name", &format!(" (agent {})", i + 1), &agent.name)?;
        if let Some(role) = &agent.role {
            label("agents[].role", &format!(" (agent {})", i + 1), role)?;
        }
        agent.phone = e164(&agent.phone, region).map_err(|e| format!("agents[{i}].phone: {e}"))?;
        if let Some(hours) = &agent.hours {
            hours_ok(hours).map_err(|e| format!("agents[{i}].hours: {e}"))?;
        }
    }
    if let Some(hours) = &settings.hours {
        hours_ok(hours).map_err(|e| format!("hours: {e}"))?;
    }
    if let OutsideHours::Redirect { phone } = &mut settings.outside_hours {
        *phone = e164(phone, region).map_err(|e| format!("outside_hours.phone: {e}"))?;
    }
    Ok(settings)
}

fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

fn label(what: &str, which: &str, value: &str) -> Result<(), String> {
    let chars = value.trim().chars().count();
    if chars == 0 || chars > MAX_LABEL_CHARS {
        return Err(format!("{what}{which} must be 1 to {MAX_LABEL_CHARS} characters"));
    }
    if value.contains(['<', '>']) {
        return Err(format!("{what}{which} must not contain < or >"));
    }
    Ok(())
}

fn e164(input: &str, region: Option<Region>) -> Result<String, String> {
    PhoneNumber::parse(input, region).map(|p| p.as_str().to_owned()).map_err(|e| e.to_string())
}

/// The spans, and the time zone against the tz database (IANA names only).
fn hours_ok(hours: &Hours) -> Result<(), String> {
    hours.check()?;
    jiff::tz::TimeZone::get(&hours.time_zone)
        .map(|_| ())
        .map_err(|_| format!("time_zone {:?} is not in the time zone database (e.g. Europe/Rome, America/New_York)", clip(&hours.time_zone)))
}

/// The stored settings; a row written before a field existed still reads.
pub fn stored(site: &Site) -> WidgetSettings {
    match serde_json::from_value::<WidgetSettings>(site.widget.clone()) {
        Ok(settings) => settings,
        Err(err) => {
            tracing::warn!(site = %site.key, error = %err, "the site's widget settings do not parse; using defaults");
            WidgetSettings::default()
        }
    }
}

/// What the widget draws for a visitor who reads `langs` (best first).
pub fn config(site: &Site, notice: Option<NoticeView>, langs: &[Lang], at: Timestamp) -> WidgetConfig {
    let settings = stored(site);
    let greeting = langs
        .iter()
        .chain(notice.as_ref().map(|n| &n.lang))
        .chain(std::iter::once(&site.default_lang))
        .find_map(|l| settings.greeting.get(l).cloned());
    let site_now = settings.hours.as_ref().and_then(|h| open_now(h, at));
    let agents = settings
        .agents
        .into_iter()
        .map(|agent| {
            // The site's answer is worked out once; an agent with hours of their own gets theirs.
            let now = match &agent.hours {
                Some(own) => open_now(own, at),
                None => site_now.clone(),
            };
            AgentView { agent, now }
        })
        .collect();
    WidgetConfig {
        site: site.key.clone(),
        business: site.business_name.clone(),
        phone: site.phones[0].to_string(),
        text: settings.text,
        notice,
        greeting,
        avatar_url: settings.avatar_url,
        privacy_url: settings.privacy_url,
        agents,
        hours: settings.hours,
        now: site_now,
        outside_hours: settings.outside_hours,
        consent: settings.consent,
    }
}

/// Whether `hours` are open at `at`, in their own time zone (None for a zone the tz
/// database lacks: the settings were checked against it when saved).
fn open_now(hours: &Hours, at: Timestamp) -> Option<OpenNow> {
    let local = at.to_zoned(jiff::tz::TimeZone::get(&hours.time_zone).ok()?);
    let day = Weekday::ALL[local.weekday().to_monday_zero_offset() as usize];
    let minute = local.hour() as u16 * 60 + local.minute() as u16;
    Some(hours.open_now(day, minute))
}

/// The example shop's settings: two agents with business hours, so the demo page shows
/// the whole panel. Only the default site created on an empty database gets them.
pub fn demo() -> WidgetSettings {
    let json = serde_json::json!({
        "greeting": {
            "en": "Hi! Questions about sizes, orders or returns? We usually answer within minutes.",
            "it": "Ciao! Domande su taglie, ordini o resi? Di solito rispondiamo in pochi minuti."
        },
        "text": "Hi Acme Shop! I have a question about {title} (ref {ref})",
        "privacy_url": null,
        "agents": [
            { "name": "Giulia", "role": "Sizes and orders", "phone": "+393331234567",
              "hours": { "time_zone": "Europe/Rome", "open": [ { "days": ["mon", "tue", "wed", "thu", "fri"], "from": "00:00", "to": "24:00" }, { "days": ["sat", "sun"], "from": "00:00", "to": "24:00" } ] } },
            { "name": "Marco", "role": "Repairs and care", "phone": "+393337654321",
              "hours": { "time_zone": "Europe/Rome", "open": [ { "days": ["sat"], "from": "09:00", "to": "13:00" } ] } }
        ],
        "outside_hours": { "mode": "notice" }
    });
    serde_json::from_value(json).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use cornetta_shared::widget::{ClockTime, NextOpening};

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn open_now_is_read_in_the_hours_own_time_zone() {
        let hours: Hours = serde_json::from_str(
            r#"{"time_zone":"Europe/Rome","open":[{"days":["mon","tue","wed","thu","fri"],"from":"09:00","to":"18:00"},{"days":["sat"],"from":"22:00","to":"02:00"}]}"#,
        )
        .unwrap();
        let next = |in_days, day, time: &str| Some(NextOpening { in_days, day, time: ClockTime::parse(time).unwrap() });
        let cases = [
            // Monday 2026-03-02 08:30 UTC is 09:30 in Rome (UTC+1): open.
            ("2026-03-02T08:30:00Z", true, None),
            // 07:30 UTC is 08:30 in Rome: opens at 9:00 today.
            ("2026-03-02T07:30:00Z", false, next(0, Weekday::Mon, "09:00")),
            // Summer time (UTC+2): 16:30 UTC on Friday 2026-07-03 is 18:30, closed until Saturday 22:00.
            ("2026-07-03T16:30:00Z", false, next(1, Weekday::Sat, "22:00")),
            // Past midnight in the Saturday night span: Sunday 01:30 in Rome.
            ("2026-07-04T23:30:00Z", true, None),
            // Sunday 02:30 in Rome: closed until Monday 9:00.
            ("2026-07-05T00:30:00Z", false, next(1, Weekday::Mon, "09:00")),
        ];
        for (moment, online, next) in cases {
            assert_eq!(open_now(&hours, at(moment)), Some(OpenNow { online, next }), "{moment}");
        }
        let unknown = Hours { time_zone: "Mars/Olympus".into(), open: hours.open.clone() };
        assert_eq!(open_now(&unknown, at("2026-03-02T08:30:00Z")), None, "a zone the tz database lacks");
    }

    #[test]
    fn the_configuration_says_who_answers_now_by_their_own_hours_or_the_sites() {
        let mut settings = demo();
        // The site: weekdays 9–18 in Rome. Giulia has her own hours (always), Marco the site's.
        settings.hours = Some(serde_json::from_str(r#"{"time_zone":"Europe/Rome","open":[{"days":["mon","tue","wed","thu","fri"],"from":"09:00","to":"18:00"}]}"#).unwrap());
        settings.agents[1].hours = None;
        let site = Site {
            id: "site_test".into(),
            key: cornetta_shared::SiteKey::parse("pk_0123456789abcdef").unwrap(),
            business_name: "Acme Shop".into(),
            phones: vec![PhoneNumber::from_e164("+393331234567").unwrap()],
            allowed_origins: Vec::new(),
            default_lang: Lang::parse("en").unwrap(),
            widget: serde_json::to_value(&settings).unwrap(),
            created_at: Timestamp::UNIX_EPOCH,
        };
        // Monday 20:00 in Rome.
        let config = config(&site, None, &[], at("2026-03-02T19:00:00Z"));
        assert_eq!(config.now, Some(OpenNow { online: false, next: Some(NextOpening { in_days: 1, day: Weekday::Tue, time: ClockTime::parse("09:00").unwrap() }) }));
        assert_eq!(config.agents[0].now.as_ref().map(|n| n.online), Some(true), "Giulia's own hours: always");
        assert_eq!(config.agents[1].now, config.now, "Marco follows the site's hours");
        // As the widget and the tests read it: the agent's own fields beside `now`.
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["agents"][1]["name"], "Marco");
        assert_eq!(json["agents"][1]["now"]["next"], serde_json::json!({"in_days": 1, "day": "tue", "time": "09:00"}));
        assert_eq!(serde_json::from_value::<WidgetConfig>(json).unwrap(), config, "it reads back");
    }

    #[test]
    fn the_demo_settings_pass_their_own_checks() {
        let demo = demo();
        assert_eq!(demo.agents.len(), 2);
        assert!(check(demo, None).is_ok());
    }

    #[test]
    fn bad_settings_are_refused_with_the_field_named() {
        let cases = [
            (r#"{"agents":[{"name":"","phone":"+393331234567"}]}"#, "agents[].name (agent 1) must be 1 to"),
            (r#"{"agents":[{"name":"Giulia","phone":"12"}]}"#, "agents[0].phone:"),
            (r#"{"hours":{"time_zone":"Mars/Olympus","open":[{"days":["mon"],"from":"09:00","to":"18:00"}]}}"#, "not in the time zone database"),
            (r#"{"hours":{"time_zone":"Europe/Rome","open":[{"days":["mon"],"from":"18:00","to":"18:00"}]}}"#, "must not start and end at the same time"),
            (r#"{"hours":{"time_zone":"Europe/Rome","open":[{"days":[],"from":"09:00","to":"18:00"}]}}"#, "at least one day"),
            (r#"{"avatar_url":"http://x.example/a.png"}"#, "avatar_url"),
            (r#"{"greeting":{"en":"<script>"}}"#, "must not contain < or >"),
            (r#"{"outside_hours":{"mode":"redirect","phone":"abc"}}"#, "outside_hours.phone"),
        ];
        for (json, want) in cases {
            let settings: WidgetSettings = serde_json::from_str(json).unwrap();
            let err = check(settings, None).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_bad_times_do_not_parse() {
        for json in [r#"{"colour":"red"}"#, r#"{"hours":{"time_zone":"Europe/Rome","open":[{"days":["mon"],"from":"9","to":"18:00"}]}}"#, r#"{"consent":"maybe"}"#] {
            assert!(serde_json::from_str::<WidgetSettings>(json).is_err(), "{json}");
        }
    }
}
