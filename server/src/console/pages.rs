//! The console's pages: askama templates (auto-escaped HTML in `server/templates/`) fed
//! with plain view structs, and the scans chart drawn here as SVG (no script needed).

use askama::Template;

use super::{CampaignForm, EditForm};
use crate::campaigns::stats::Stats;
use crate::campaigns::{Campaign, DeviceClass, short_url};
use crate::state::AppState;
use crate::store::Site;

pub(super) fn render(t: &impl Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a console template failed");
        "<!doctype html><title>Error</title><p>The page could not be drawn; the details were logged.</p>".to_owned()
    })
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticeTpl<'a> {
    title: &'a str,
    message: &'a str,
}

/// A short page for people: a title and a sentence (unknown or expired codes, refusals).
pub fn notice_page(title: &str, message: &str) -> String {
    render(&NoticeTpl { title, message })
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInTpl<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
    title: &'a str,
}

pub fn sign_in(form_csrf: &str, error: Option<&str>) -> String {
    // The layout's sign-out form needs a session; the sign-in page has none.
    render(&SignInTpl { csrf: form_csrf, error, title: "Sign in" })
}

struct SiteOption {
    key: String,
    name: String,
    selected: bool,
}

struct CampaignRow {
    id: String,
    name: String,
    link: String,
    tracked: bool,
    expired: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct CampaignsTpl<'a> {
    csrf: &'a str,
    title: &'a str,
    sites: Vec<SiteOption>,
    rows: Vec<CampaignRow>,
    form: &'a CampaignForm,
    error: Option<&'a str>,
    preview_url: String,
    default_phone: String,
    tracked: bool,
    label: bool,
    ecc_options: Vec<EccOption>,
}

struct EccOption {
    level: &'static str,
    selected: bool,
}

pub(super) fn campaigns(state: &AppState, csrf: &str, sites: &[Site], campaigns: &[Campaign], form: &CampaignForm, error: Option<&str>) -> String {
    let now = jiff::Timestamp::now();
    let rows = campaigns
        .iter()
        .map(|c| CampaignRow {
            id: c.id.clone(),
            name: c.name.clone(),
            link: c.qr_payload(&state.settings.public_url).unwrap_or_default(),
            tracked: c.tracked(),
            expired: c.is_expired(now),
            created: c.created_at.strftime("%Y-%m-%d").to_string(),
        })
        .collect();
    let selected_site = sites.iter().find(|s| s.key.as_str() == form.site).or(sites.first());
    let default_phone = selected_site.and_then(|s| s.phones.first()).map(|p| p.to_string()).unwrap_or_default();
    let sites = if sites.len() > 1 {
        sites
            .iter()
            .map(|s| SiteOption { key: s.key.to_string(), name: s.business_name.clone(), selected: s.key.as_str() == form.site })
            .collect()
    } else {
        Vec::new()
    };
    render(&CampaignsTpl {
        csrf,
        title: "Campaigns",
        sites,
        rows,
        form,
        error,
        preview_url: form.preview_url(),
        default_phone,
        tracked: form.tracked.is_some(),
        label: form.label.is_some(),
        ecc_options: ["L", "M", "Q", "H"]
            .into_iter()
            .map(|level| EccOption { level, selected: level == if form.ecc.is_empty() { "M" } else { form.ecc.as_str() } })
            .collect(),
    })
}

struct Download {
    label: String,
    href: String,
}

struct DeviceTotal {
    class: &'static str,
    label: &'static str,
    scans: u64,
}

struct DayLine {
    day: String,
    counts: Vec<u64>,
    total: u64,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignTpl<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
    /// What the edit form shows: the stored campaign, or what was sent when it was refused.
    form: EditValues,
    title: &'a str,
    site: &'a str,
    c: &'a Campaign,
    link: String,
    short: Option<String>,
    target: String,
    expires: Option<String>,
    expired: bool,
    qr_src: String,
    downloads: Vec<Download>,
    chart: String,
    totals: Vec<DeviceTotal>,
    days: Vec<DayLine>,
    device_labels: Vec<&'static str>,
    total: u64,
    from: String,
    to: String,
}

/// The edit form's values as shown.
#[derive(Debug)]
struct EditValues {
    name: String,
    phone: String,
    text: String,
    source: String,
    medium: String,
    expires: String,
    expires_was: String,
}

impl EditValues {
    /// What `sent` holds, else what is stored: a refused form comes back as it was typed.
    fn shown(c: &Campaign, expires_day: &str, sent: Option<&EditForm>) -> Self {
        let pick = |sent: Option<&Option<String>>, stored: String| sent.and_then(Clone::clone).unwrap_or(stored);
        Self {
            name: pick(sent.map(|s| &s.name), c.name.clone()),
            phone: pick(sent.map(|s| &s.phone), c.phone.to_string()),
            text: pick(sent.map(|s| &s.text), c.text.clone().unwrap_or_default()),
            source: pick(sent.map(|s| &s.source), c.source.as_ref().map(|t| t.as_str().to_owned()).unwrap_or_default()),
            medium: pick(sent.map(|s| &s.medium), c.medium.as_ref().map(|t| t.as_str().to_owned()).unwrap_or_default()),
            expires: pick(sent.map(|s| &s.expires), expires_day.to_owned()),
            expires_was: pick(sent.map(|s| &s.expires_was), expires_day.to_owned()),
        }
    }
}

pub(super) fn campaign(state: &AppState, csrf: &str, site: &Site, c: &Campaign, stats: &Stats, error: Option<&str>, sent: Option<&EditForm>) -> String {
    // An expiry made from a date is the start of the next UTC day.
    let expires_day = c.expires_at.map(|t| (t - jiff::SignedDuration::from_micros(1)).to_zoned(jiff::tz::TimeZone::UTC).date().to_string()).unwrap_or_default();
    let base = format!("/console/campaigns/{}/qr", c.id);
    let downloads = vec![
        Download { label: "SVG (vector, any size)".into(), href: format!("{base}?format=svg&size=3cm") },
        Download { label: "PNG 2 cm at 300 dpi".into(), href: format!("{base}?format=png&size=2cm&dpi=300") },
        Download { label: "PNG 3 cm at 300 dpi".into(), href: format!("{base}?format=png&size=3cm&dpi=300") },
        Download { label: "PNG 5 cm at 300 dpi".into(), href: format!("{base}?format=png&size=5cm&dpi=300") },
        Download { label: "PNG 10 cm at 300 dpi (poster)".into(), href: format!("{base}?format=png&size=10cm&dpi=300") },
        Download { label: "PNG 1024 px (screens)".into(), href: format!("{base}?format=png&size=1024") },
    ];
    let totals = DeviceClass::ALL
        .iter()
        .zip(stats.by_device)
        .map(|(d, n)| DeviceTotal { class: d.as_str(), label: d.label(), scans: n })
        .collect();
    let days = stats
        .days
        .iter()
        .rev()
        .filter(|d| d.total() > 0)
        .map(|d| DayLine { day: d.day.to_string(), counts: d.by_device.to_vec(), total: d.total() })
        .collect();
    render(&CampaignTpl {
        csrf,
        error,
        form: EditValues::shown(c, &expires_day, sent),
        title: &c.name,
        site: &site.business_name,
        c,
        link: c.qr_payload(&state.settings.public_url).unwrap_or_default(),
        short: c.code.as_ref().map(|code| short_url(&state.settings.public_url, code)),
        target: c.link_for(None).map(|l| l.url().to_owned()).unwrap_or_default(),
        expires: c.expires_at.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string()),
        expired: c.is_expired(jiff::Timestamp::now()),
        qr_src: format!("{base}?size=320"),
        downloads,
        chart: chart_svg(stats),
        totals,
        days,
        device_labels: DeviceClass::ALL.iter().map(|d| d.label()).collect(),
        total: stats.total(),
        from: stats.from.to_string(),
        to: stats.to.to_string(),
    })
}

/// The stacked bar chart of scans per day by device class, as inline SVG. Colours come
/// from classes in `console.css` (a CSP without inline styles still applies them); every
/// bar has a `<title>` and the whole chart a text alternative.
pub fn chart_svg(stats: &Stats) -> String {
    const W: f64 = 720.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 28.0;
    const TOP: f64 = 12.0;
    let n = stats.days.len().max(1) as f64;
    let max = stats.days.iter().map(|d| d.total()).max().unwrap_or(0).max(1);
    // A round axis top: 1, 2, 5 × 10^k.
    let mut top = 1u64;
    'outer: loop {
        for m in [1, 2, 5] {
            if top * m >= max {
                top *= m;
                break 'outer;
            }
        }
        top *= 10;
    }
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - TOP;
    let slot = plot_w / n;
    let bar = (slot * 0.7).max(1.0);
    let mut out = String::new();
    let summary = format!("Scans per day from {} to {}: {} in total", stats.from, stats.to, stats.total());
    out.push_str(&format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"chart-title\" data-testid=\"scan-chart\" data-total=\"{}\"><title id=\"chart-title\">{}</title>",
        stats.total(),
        summary
    ));
    for i in 0..=2u64 {
        let value = top * i / 2;
        let y = TOP + plot_h - plot_h * (value as f64) / (top as f64);
        out.push_str(&format!("<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>", W - 8.0));
        out.push_str(&format!("<text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{value}</text>", LEFT - 6.0, y + 4.0));
    }
    for (i, day) in stats.days.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = TOP + plot_h;
        let mut parts = Vec::new();
        for (device, count) in DeviceClass::ALL.iter().zip(day.by_device) {
            if count == 0 {
                continue;
            }
            let h = plot_h * count as f64 / top as f64;
            y -= h;
            out.push_str(&format!(
                "<rect class=\"bar bar-{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\"/>",
                device.as_str()
            ));
            parts.push(format!("{} {count}", device.label()));
        }
        if day.total() > 0 {
            out.push_str(&format!(
                "<rect class=\"hit\" x=\"{:.1}\" y=\"{TOP}\" width=\"{slot:.1}\" height=\"{plot_h:.1}\"><title>{}: {} scans ({})</title></rect>",
                LEFT + slot * i as f64,
                day.day,
                day.total(),
                parts.join(", ")
            ));
        }
        let label_every = (n / 6.0).ceil().max(1.0) as usize;
        if i % label_every == 0 || i + 1 == stats.days.len() {
            out.push_str(&format!(
                "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                LEFT + slot * i as f64 + slot / 2.0,
                H - 8.0,
                day.day.strftime("%b %d")
            ));
        }
    }
    out.push_str("</svg>");
    out
}
