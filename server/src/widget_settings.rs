//! A site's widget settings (`sites.widget`): checking them before they are stored, and
//! resolving them for one visitor (greeting in their language) into the `WidgetConfig` the
//! widget fetches.

use cornetta_shared::api::{NoticeView, WidgetConfig};
use cornetta_shared::widget::{Agent, Hours, MAX_AGENTS, MAX_LABEL_CHARS, OutsideHours, WidgetSettings};
use cornetta_shared::{Lang, PhoneNumber, Region};

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
pub fn config(site: &Site, notice: Option<NoticeView>, langs: &[Lang]) -> WidgetConfig {
    let settings = stored(site);
    let greeting = langs
        .iter()
        .chain(notice.as_ref().map(|n| &n.lang))
        .chain(std::iter::once(&site.default_lang))
        .find_map(|l| settings.greeting.get(l).cloned());
    let agents: Vec<Agent> = settings.agents;
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
        outside_hours: settings.outside_hours,
        consent: settings.consent,
    }
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
    use super::*;

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
