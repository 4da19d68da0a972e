//! Cornetta's widget: the chat panel, a Leptos CSR app the loader (`widget/loader.js`) starts
//! on intent inside the Shadow DOM where it already drew the launcher.
//!
//! The loader owns the launcher button (it must be there before any wasm arrives); this app
//! owns the dialog: business, greeting, one unticked box per purpose with the server's notice
//! text (GDPR Art. 7(2), EDPB 05/2020 ¶42: granular, never pre-ticked), Start chat, the
//! "you agreed on …" receipt and a one-click withdraw (Art. 7(3): as easy as giving it).

mod hours;
mod i18n;
mod net;

use std::sync::Arc;

use cornetta_shared::consent::REFERENCE_LEN;
use cornetta_shared::link::encode_text;
use cornetta_shared::widget::{MessageVars, fill_message};
use cornetta_shared::{NoticeId, PhoneNumber, Purpose, Reference, SiteKey, WaLink};
use js_sys::{Array, Object};
use leptos::html::Div;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::*;
use web_sys::{HtmlElement, KeyboardEvent, ShadowRoot};

use crate::hours::Availability;
use crate::i18n::Strings;
use crate::net::{get, set, text};

/// The panel's stylesheet, adopted into the shadow root (never an inline `<style>`: a
/// strict `style-src` would block it).
const CSS: &str = include_str!("panel.css");
/// The close button's icon, as markup: one static string costs the wasm less than a typed
/// `<svg>` view.
const CLOSE_ICON: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z"/></svg>"#;
/// What Tab cycles through inside the open dialog.
const FOCUSABLE: &str = "button:not([disabled]),input:not([disabled]),a[href]";

/// The options the loader read from the script tag (already checked there).
#[derive(Debug)]
struct Options {
    /// The Cornetta server's base URL, ending in `/`.
    api: String,
    site: Option<SiteKey>,
    /// data-phone's digits, country code first (the loader checked the shape).
    digits: Option<String>,
    business: Option<String>,
    text: Option<String>,
    greeting: Option<String>,
    /// `data-consent="optional"`: the chat may start with no box ticked.
    consent_optional: bool,
    ui: &'static Strings,
    /// The visitor's languages, best first, for the notice.
    langs: String,
    mobile: bool,
    qr: bool,
}

/// A published notice as the panel shows it.
#[derive(Debug, Clone)]
struct Notice {
    id: NoticeId,
    lang: String,
    intro: String,
    purposes: Vec<(Purpose, String)>,
    privacy_url: Option<String>,
}

/// What the panel draws once the site is known.
#[derive(Debug, Clone)]
struct Site {
    /// `None` in click-to-chat mode (no account): nothing is recorded then.
    key: Option<SiteKey>,
    business: String,
    phone: PhoneNumber,
    text: Option<String>,
    greeting: Option<String>,
    notice: Option<Notice>,
    avatar_url: Option<String>,
    privacy_url: Option<String>,
    /// Who answers (online ones only when outside hours means "hide").
    agents: Vec<AgentInfo>,
    /// The business as a whole: online when anyone (or its own hours) is.
    now: Availability,
    /// Where chats go outside hours, when that is another number.
    redirect: Option<PhoneNumber>,
    /// Outside hours with "hide" and nobody online: no chat is offered.
    closed: bool,
    consent_optional: bool,
}

#[derive(Debug, Clone)]
struct AgentInfo {
    name: String,
    role: Option<String>,
    phone: PhoneNumber,
    now: Availability,
}

impl Site {
    /// The number a chat with `agent` goes to now.
    fn phone_for(&self, agent: Option<&AgentInfo>) -> PhoneNumber {
        let (phone, online) = match agent {
            Some(a) => (&a.phone, a.now.online),
            None => (&self.phone, self.now.online),
        };
        match (&self.redirect, online) {
            (Some(other), false) => other.clone(),
            _ => phone.clone(),
        }
    }
}

#[derive(Debug, Clone)]
enum Load {
    Loading,
    Ready(Arc<Site>),
    Failed,
}

/// Where the visitor's consent stands in this page view.
#[derive(Debug, Clone, PartialEq, Default)]
enum Consent {
    #[default]
    None,
    /// Sent; the chat is already open.
    Sending(Reference),
    /// The server's 201: the time is already formatted for the visitor.
    Recorded { reference: Reference, at: String },
    Failed(String),
    Withdrawn,
}

/// Everything the chat part of the panel changes, in one signal: each signal's value type
/// costs the wasm its own copy of the reactive machinery, and the panel is small enough
/// that re-running its few reactive closures on any change costs nothing noticeable.
#[derive(Debug, Clone, Default)]
struct ChatState {
    /// The purposes ticked, in the order they were ticked.
    ticked: Vec<Purpose>,
    consent: Consent,
    /// The chat link and its QR code's URL, once Start chat was pressed on a desktop.
    link: Option<(String, String)>,
    /// The agent the chat goes to (index into the site's agents).
    chosen: usize,
}

/// The app's controls, shared by the exported handle and the view's event handlers.
#[derive(Debug)]
struct Ctl {
    root: ShadowRoot,
    launcher: HtmlElement,
    dialog: NodeRef<Div>,
    open: RwSignal<bool>,
    emit: js_sys::Function,
}

impl Ctl {
    fn emit(&self, name: &str, detail: &JsValue) {
        let _ = self.emit.call2(&JsValue::NULL, &name.into(), detail);
    }

    fn set_open(&self, open: bool, focus: bool) {
        if self.open.get_untracked() == open {
            return;
        }
        self.open.set(open);
        let _ = self.launcher.set_attribute("aria-expanded", if open { "true" } else { "false" });
        self.emit(if open { "open" } else { "close" }, &JsValue::UNDEFINED);
        if open && focus {
            // After the render that un-hides the dialog: focus moves into it (WCAG 2.4.3).
            let dialog = self.dialog;
            request_animation_frame(move || {
                if let Some(d) = dialog.get_untracked() {
                    let _ = d.focus();
                }
            });
        } else if !open {
            // Back to the launcher, so keyboard users continue where they were.
            let _ = self.launcher.focus();
        }
    }

    /// Escape closes; Tab and Shift+Tab stay inside while open.
    fn keydown(&self, ev: &KeyboardEvent) {
        match ev.key().as_str() {
            "Escape" => {
                ev.prevent_default();
                self.set_open(false, true);
            }
            "Tab" => {
                let Some(dialog) = self.dialog.get_untracked() else { return };
                let Ok(list) = dialog.query_selector_all(FOCUSABLE) else { return };
                // Only what is rendered: parts hidden by the state classes have no offsetParent.
                let shown: Vec<web_sys::Node> = (0..list.length())
                    .filter_map(|i| list.item(i))
                    .filter(|n| n.dyn_ref::<HtmlElement>().is_some_and(|e| e.offset_parent().is_some()))
                    .collect();
                let (Some(first), Some(last)) = (shown.first().cloned(), shown.last().cloned()) else { return };
                let active: Option<web_sys::Node> = self.root.active_element().map(Into::into);
                let dialog_node: &web_sys::Node = &dialog;
                let target = if ev.shift_key() && (active.as_ref() == Some(&first) || active.as_ref() == Some(dialog_node)) {
                    Some(last)
                } else if !ev.shift_key() && active.as_ref() == Some(&last) {
                    Some(first)
                } else {
                    None
                };
                if let Some(t) = target.and_then(|t| t.dyn_into::<HtmlElement>().ok()) {
                    ev.prevent_default();
                    let _ = t.focus();
                }
            }
            _ => {}
        }
    }
}

/// The controls as the view holds them: a `Copy` handle (the DOM handles inside are not
/// `Send`, and reactive closures must be).
type CtlRef = StoredValue<Ctl, LocalStorage>;

/// The handle the loader keeps: the launcher's clicks and the page's triggers call it.
#[wasm_bindgen]
#[derive(Debug)]
pub struct App {
    ctl: CtlRef,
}

#[wasm_bindgen]
impl App {
    /// Opens the panel and moves focus into it (launcher, `#chat`, `data-cornetta-open`).
    pub fn open(&self) {
        self.ctl.with_value(|c| c.set_open(true, true));
    }

    /// Opens the panel without taking focus (timed, scroll and exit-intent triggers: the
    /// visitor did not ask, so their focus stays where it is).
    pub fn show(&self) {
        self.ctl.with_value(|c| c.set_open(true, false));
    }

    pub fn close(&self) {
        self.ctl.with_value(|c| c.set_open(false, true));
    }

    pub fn toggle(&self) {
        self.ctl.with_value(|c| c.set_open(!c.open.get_untracked(), true));
    }
}

fn options(opts: &JsValue) -> Result<Options, String> {
    let site = text(opts, "site").map(|s| SiteKey::parse(&s)).transpose().map_err(|_| "data-site is malformed")?;
    let ui = i18n::strings(&text(opts, "ui").unwrap_or_default());
    Ok(Options {
        api: text(opts, "api").ok_or("the loader gave no api URL")?,
        site,
        digits: text(opts, "digits"),
        business: text(opts, "business"),
        text: text(opts, "text"),
        greeting: text(opts, "greeting"),
        consent_optional: text(opts, "consent").as_deref() == Some("optional"),
        ui,
        langs: text(opts, "langs").unwrap_or_else(|| ui.lang.to_owned()),
        mobile: get(opts, "mobile").is_truthy(),
        qr: get(opts, "qr").is_truthy(),
    })
}

/// The static (no-account) site from the script tag's attributes.
fn static_site(o: &Options) -> Result<Site, String> {
    // The loader checked data-phone and kept its digits, country code first.
    let digits = o.digits.as_deref().ok_or("the script tag needs data-site or data-phone")?;
    let phone = PhoneNumber::from_e164(&format!("+{digits}")).map_err(|_| "data-phone is not an international number")?;
    Ok(Site {
        key: None,
        business: o.business.clone().unwrap_or_default(),
        phone,
        text: o.text.clone(),
        greeting: o.greeting.clone(),
        notice: None,
        avatar_url: None,
        privacy_url: None,
        agents: Vec::new(),
        now: Availability { online: true, next: None },
        redirect: None,
        closed: false,
        consent_optional: o.consent_optional,
    })
}

/// Reads `GET /v1/sites/{key}/widget` (`WidgetConfig`), parsing every field into its type.
fn site_from_config(key: SiteKey, c: &JsValue, o: &Options) -> Result<Site, String> {
    let phone = PhoneNumber::from_e164(&text(c, "phone").unwrap_or_default()).map_err(|_| "phone is not E.164")?;
    let n = get(c, "notice");
    let notice = if n.is_object() {
        let purposes = Array::from(&get(&n, "purposes"))
            .iter()
            .filter_map(|p| Some((text(&p, "purpose")?.parse::<Purpose>().ok()?, text(&p, "label")?)))
            .collect();
        Some(Notice {
            id: NoticeId::parse(&text(&n, "id").unwrap_or_default()).map_err(|_| "notice.id is malformed")?,
            lang: text(&n, "lang").unwrap_or_default(),
            intro: text(&n, "intro").unwrap_or_default(),
            purposes,
            privacy_url: text(&n, "privacy_url").filter(|u| u.starts_with("https://") || u.starts_with("http://")),
        })
    } else {
        None
    };
    let lang = o.ui.lang;
    // Who answers now, as the server worked it out from the business hours.
    let site_now = get(c, "now");
    let outside = get(c, "outside_hours");
    let mode = text(&outside, "mode").unwrap_or_default();
    let hide = mode == "hide";
    let redirect = if mode == "redirect" { text(&outside, "phone").and_then(|p| PhoneNumber::from_e164(&p).ok()) } else { None };
    let all: Vec<AgentInfo> = Array::from(&get(c, "agents"))
        .iter()
        .filter_map(|a| {
            Some(AgentInfo {
                name: text(&a, "name")?,
                role: text(&a, "role"),
                phone: PhoneNumber::from_e164(&text(&a, "phone")?).ok()?,
                now: hours::availability(&get(&a, "now"), lang),
            })
        })
        .collect();
    let had_agents = !all.is_empty();
    let agents: Vec<AgentInfo> = all.iter().filter(|a| !hide || a.now.online).cloned().collect();
    let now = match (site_now.is_object(), had_agents) {
        (true, _) => hours::availability(&site_now, lang),
        (false, true) => Availability { online: all.iter().any(|a| a.now.online), next: all.iter().find_map(|a| a.now.next.clone()) },
        (false, false) => Availability { online: true, next: None },
    };
    Ok(Site {
        key: Some(key),
        business: text(c, "business").unwrap_or_default(),
        phone,
        text: o.text.clone().or_else(|| text(c, "text")),
        greeting: o.greeting.clone().or_else(|| text(c, "greeting")),
        notice,
        avatar_url: text(c, "avatar_url").filter(|u| u.starts_with("https://")),
        privacy_url: text(c, "privacy_url"),
        closed: hide && ((had_agents && agents.is_empty()) || (!had_agents && !now.online)),
        agents,
        now,
        redirect,
        consent_optional: o.consent_optional || text(c, "consent").as_deref() == Some("optional"),
    })
}

/// A fresh reference from the browser's CSPRNG, known before the click ends so the chat can
/// open inside it.
fn random_reference() -> Option<Reference> {
    let mut bytes = [0u8; REFERENCE_LEN];
    web_sys::window()?.crypto().ok()?.get_random_values_with_u8_array(&mut bytes).ok()?;
    Some(Reference::from_random(bytes))
}

/// "Online", "We reply from 9:00", or "Offline".
fn status(now: &Availability, ui: &Strings) -> String {
    match (now.online, &now.next) {
        (true, _) => ui.online.to_owned(),
        (false, Some(next)) => fill(ui.replies_from, next),
        (false, None) => ui.offline.to_owned(),
    }
}

/// A translated string with its one `{…}` placeholder filled in (split on chars: cheaper in
/// the wasm than `str::replace`).
fn fill(template: &str, value: &str) -> String {
    match template.split_once('{').and_then(|(before, rest)| Some((before, rest.split_once('}')?.1))) {
        Some((before, after)) => [before, value, after].concat(),
        None => template.to_owned(),
    }
}

fn initials(name: &str) -> String {
    // The browser's toUpperCase: Rust's would bring its Unicode case tables into the wasm.
    let first: String = name.split(' ').filter_map(|w| w.chars().next()).take(2).collect();
    js_sys::JsString::from(first).to_upper_case().into()
}

fn page() -> (String, String) {
    let window = web_sys::window();
    let title = window.as_ref().and_then(|w| w.document()).map(|d| d.title()).unwrap_or_default();
    let url = window.and_then(|w| w.location().href().ok()).unwrap_or_default();
    (title, url)
}

fn local_time(iso: &str, lang: &str) -> String {
    let options = Object::new();
    set(&options, "dateStyle", &"long".into());
    set(&options, "timeStyle", &"short".into());
    js_sys::Date::new(&iso.into()).to_locale_string(lang, &options).into()
}

/// Starts the app: called once by the loader with the shadow root, the element to mount
/// into, its launcher and the options it read from the script tag.
#[wasm_bindgen]
pub fn start(root: ShadowRoot, mount: HtmlElement, launcher: HtmlElement, opts: JsValue) -> Result<App, JsValue> {
    let o = Arc::new(options(&opts)?);
    if let Ok(css) = get(&opts, "css").dyn_into::<js_sys::Function>() {
        let _ = css.call1(&JsValue::NULL, &CSS.into());
    }
    let emit = get(&opts, "emit").dyn_into::<js_sys::Function>().map_err(|_| JsValue::from_str("the loader gave no emit function"))?;
    let ctl: CtlRef = StoredValue::new_local(Ctl { root, launcher, dialog: NodeRef::new(), open: RwSignal::new(false), emit });
    let load = RwSignal::new(Load::Loading);
    // Mounting first also sets up the executor the configuration request runs on.
    let view_o = o.clone();
    leptos::mount::mount_to(mount, move || view! { <Panel ctl=ctl load=load o=view_o /> }).forget();
    match &o.site {
        None => load.set(static_site(&o).map(|s| Load::Ready(Arc::new(s))).unwrap_or(Load::Failed)),
        Some(key) => {
            let url = format!("{}v1/sites/{}/widget?lang={}", o.api, key, encode_text(&o.langs));
            let (key, o) = (key.clone(), o.clone());
            spawn_local(async move {
                let state = match net::answer(net::request(&url, None)).await {
                    Ok(a) if a.status == 200 => match site_from_config(key, &a.body, &o) {
                        Ok(site) => {
                            // Reading the configuration and drawing the panel are two
                            // tasks, each short for the page's main thread, not one long one.
                            net::yield_to_page().await;
                            Load::Ready(Arc::new(site))
                        }
                        Err(e) => {
                            web_sys::console::error_1(&format!("Cornetta: the site's configuration is malformed: {e}").into());
                            Load::Failed
                        }
                    },
                    Ok(a) => {
                        web_sys::console::error_1(&format!("Cornetta: the site's configuration failed: {}", a.error_message()).into());
                        Load::Failed
                    }
                    Err(e) => {
                        web_sys::console::error_1(&format!("Cornetta: {e}").into());
                        Load::Failed
                    }
                };
                load.set(state);
            });
        }
    }
    Ok(App { ctl })
}

/// The dialog. Its parts are drawn once and shown or hidden (`hidden`), rather than
/// swapped as different views: every distinct view type costs the wasm its own copy of
/// Leptos's rendering code.
#[component]
fn Panel(
    /// The open state, the dialog's element and the way back to the launcher.
    ctl: CtlRef,
    /// The site's configuration, as it arrives.
    load: RwSignal<Load>,
    /// The script tag's options.
    o: Arc<Options>,
) -> impl IntoView {
    let ui = o.ui;
    let (open, dialog) = ctl.with_value(|c| (c.open, c.dialog));
    let ready = move || match load.get() {
        Load::Ready(s) => Some(s),
        _ => None,
    };
    let business = move || ready().map(|s| s.business.clone()).unwrap_or_default();
    let avatar = move || ready().and_then(|s| s.avatar_url.clone());
    view! {
        <div
            class="panel"
            role="dialog"
            aria-modal="true"
            aria-labelledby="cornetta-title"
            tabindex="-1"
            lang=ui.lang
            dir=if ui.lang == "ar" { "rtl" } else { "ltr" }
            data-testid="cornetta-panel"
            hidden=move || !open.get()
            node_ref=dialog
            on:keydown=move |ev| ctl.with_value(|c| c.keydown(&ev))
        >
            <div class="head">
                <span class="avatar" aria-hidden="true">
                    <img alt="" hidden=move || avatar().is_none() src=move || avatar().unwrap_or_default() />
                    {move || if avatar().is_some() { String::new() } else { initials(&business()) }}
                </span>
                <div class="who">
                    <h2 id="cornetta-title" data-testid="cornetta-business">
                        {move || { let b = business(); if b.is_empty() { "WhatsApp".to_owned() } else { b } }}
                    </h2>
                    <p class="status" data-testid="cornetta-status">
                        {move || ready().filter(|s| s.key.is_some()).map(|s| status(&s.now, ui)).unwrap_or_default()}
                    </p>
                </div>
                <button type="button" class="close" aria-label=ui.close data-testid="cornetta-close" inner_html=CLOSE_ICON
                    on:click=move |_| ctl.with_value(|c| c.set_open(false, true))>

                </button>
            </div>
            // Which note shows is a class (panel.css), as in `Chat`.
            <div class=move || match load.get() { Load::Loading => "body loading", Load::Failed => "body failed", Load::Ready(_) => "body" }>
                <p class="note when-loading">{ui.loading}</p>
                <p class="note error when-failed" role="alert" data-testid="cornetta-unavailable">
                    {ui.unavailable}
                </p>
                {move || ready().map(|site| view! { <Chat site=site ctl=ctl o=o.clone() /> })}
            </div>
        </div>
    }
}

/// Greeting, agents, consent boxes, Start chat, receipt, withdraw, and on desktop the QR
/// code of the chat link.
#[component]
fn Chat(
    /// The loaded site.
    site: Arc<Site>,
    /// For the analytics events.
    ctl: CtlRef,
    o: Arc<Options>,
) -> impl IntoView {
    let ui = o.ui;
    let records = site.key.is_some() && site.notice.as_ref().is_some_and(|n| !n.purposes.is_empty());
    let required = records && !site.consent_optional;
    // The first agent who is online now answers, unless the visitor picks another.
    let state = RwSignal::new(ChatState { chosen: site.agents.iter().position(|a| a.now.online).unwrap_or(0), ..ChatState::default() });
    let consent = move || state.with(|s| s.consent.clone());
    let set_consent = move |c: Consent| state.update(|s| s.consent = c);
    let agreed = move || state.with(|s| matches!(s.consent, Consent::Recorded { .. } | Consent::Sending(_)));
    let can_start = move || !required || !state.with(|s| s.ticked.is_empty()) || agreed();
    let greeting = site.greeting.clone().unwrap_or_else(|| ui.greeting.to_owned());

    let start_site = site.clone();
    let start_o = o.clone();
    let start = move |_| {
        let site = &start_site;
        let o = &start_o;
        // Everything up to window.open is synchronous: browsers allow a new window only
        // while the click's user activation lasts, so nothing here may wait on the server.
        let (purposes, current, chosen) = state.with_untracked(|s| (s.ticked.clone(), s.consent.clone(), s.chosen));
        let existing = match current {
            Consent::Recorded { reference, .. } | Consent::Sending(reference) => Some(reference),
            _ => None,
        };
        let new_grant = existing.is_none() && records && !purposes.is_empty();
        let reference = existing.or_else(|| new_grant.then(random_reference).flatten());
        let (title, url) = page();
        let agent = site.agents.get(chosen);
        let vars = MessageVars { title: &title, url: &url, agent: agent.map_or("", |a| a.name.as_str()), reference: reference.as_ref() };
        let text = fill_message(site.text.as_deref(), &vars);
        let phone = site.phone_for(agent);
        let link = match WaLink::new(phone.clone(), Some(&text)) {
            Ok(link) => link,
            Err(e) => {
                set_consent(Consent::Failed(e.to_string()));
                return;
            }
        };
        if let (true, Some(reference), Some(key), Some(notice)) = (new_grant, &reference, &site.key, &site.notice) {
            let body = Object::new();
            set(&body, "site", &key.as_str().into());
            set(&body, "notice", &notice.id.as_str().into());
            set(&body, "purposes", &purposes.iter().map(|p| JsValue::from_str(p.as_str())).collect::<Array>());
            set(&body, "reference", &reference.to_string().into());
            set(&body, "page_url", &url.into());
            set(&body, "text", &text.as_str().into());
            // The request starts here, before the window opens; keepalive lets it finish
            // even if the page goes away.
            let pending = net::request(&format!("{}v1/consents", o.api), Some(&body));
            set_consent(Consent::Sending(reference.clone()));
            let (reference, lang) = (reference.clone(), ui.lang);
            spawn_local(async move {
                match net::answer(pending).await {
                    Ok(a) if a.status == 201 => {
                        let at = local_time(&net::text(&a.body, "recorded_at").unwrap_or_default(), lang);
                        ctl.with_value(|c| c.emit("consent", &detail(Some(&reference), None)));
                        set_consent(Consent::Recorded { reference, at });
                        // The receipt pushed the QR code down.
                        if state.with_untracked(|s| s.link.is_some()) {
                            scroll_to_end(ctl);
                        }
                    }
                    Ok(a) => set_consent(Consent::Failed(a.error_message())),
                    Err(e) => set_consent(Consent::Failed(e)),
                }
            });
        }
        if let Some(window) = web_sys::window() {
            let _ = window.open_with_url_and_target_and_features(link.url(), "_blank", "noopener");
        }
        ctl.with_value(|c| c.emit("chat", &detail(reference.as_ref(), agent.map(|a| a.name.as_str()))));
        if !o.mobile && o.qr {
            // The same link as a QR code (the server's SVG), to scan with the phone.
            let qr = format!("{}v1/qr?format=svg&margin=2&phone={}&text={}", o.api, encode_text(phone.as_str()), encode_text(&text));
            state.update(|s| s.link = Some((link.url().to_owned(), qr)));
            scroll_to_end(ctl);
        }
    };

    let withdraw_site = site.clone();
    let withdraw_o = o.clone();
    let withdraw = move |_| {
        let (Consent::Recorded { reference, .. }, Some(key)) = (state.with_untracked(|s| s.consent.clone()), withdraw_site.key.clone()) else { return };
        let body = Object::new();
        set(&body, "site", &key.as_str().into());
        let pending = net::request(&format!("{}v1/consents/{}/withdraw", withdraw_o.api, reference.as_str()), Some(&body));
        spawn_local(async move {
            match net::answer(pending).await {
                Ok(a) if a.status == 200 => {
                    state.update(|s| {
                        s.ticked.clear();
                        s.link = None;
                        s.consent = Consent::Withdrawn;
                    });
                    ctl.with_value(|c| c.emit("withdraw", &detail(Some(&reference), None)));
                }
                Ok(a) => set_consent(Consent::Failed(a.error_message())),
                Err(e) => set_consent(Consent::Failed(e)),
            }
        });
    };

    let notice = site.notice.clone().filter(|_| records);
    let privacy = notice.as_ref().and_then(|n| n.privacy_url.clone()).or_else(|| site.privacy_url.clone());
    let boxes = notice.map(|n| {
        let items = n
            .purposes
            .iter()
            .map(|(purpose, label)| {
                let purpose = *purpose;
                view! {
                    <label class="purpose">
                        <input
                            type="checkbox"
                            data-testid=format!("cornetta-purpose-{}", purpose.as_str())
                            prop:checked=move || state.with(|s| s.ticked.contains(&purpose))
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                state.update(|s| {
                                    let t = &mut s.ticked;
                                    t.retain(|p| *p != purpose);
                                    if on {
                                        t.push(purpose);
                                    }
                                });
                            }
                        />
                        <span>{label.clone()}</span>
                    </label>
                }
            })
            .collect_view();
        view! {
            <fieldset class="consent" lang=n.lang.clone() data-testid="cornetta-consent">
                <legend>{n.intro.clone()}</legend>
                {items}
                <a class="privacy" href=privacy.clone().unwrap_or_default() target="_blank" rel="noopener"
                    data-testid="cornetta-privacy" hidden=privacy.is_none()>{ui.privacy}</a>
            </fieldset>
        }
    });

    let agents = (!site.agents.is_empty()).then(|| {
        let items = site
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let about = [a.role.clone(), Some(status(&a.now, ui))].into_iter().flatten().collect::<Vec<_>>().join(" · ");
                view! {
                    <li>
                        <button type="button" class="agent" data-testid=format!("cornetta-agent-{i}")
                            aria-pressed=move || if state.with(|s| s.chosen) == i { "true" } else { "false" }
                            on:click=move |_| state.update(|s| s.chosen = i)>
                            <span class=if a.now.online { "dot on" } else { "dot" } aria-hidden="true"></span>
                            <span>{a.name.clone()}<small>{about}</small></span>
                        </button>
                    </li>
                }
            })
            .collect_view();
        view! { <ul class="agents" aria-label=ui.agents data-testid="cornetta-agents">{items}</ul> }
    });
    let closed = site.closed;
    // The person's own copy of the consent receipt (`GET /v1/receipts/{reference}`).
    let receipt_url = site.key.as_ref().map(|k| ([o.api.as_str(), "v1/receipts/"].concat(), ["?site=", k.as_str()].concat())).unwrap_or_default();
    let receipt = move || match consent() {
        Consent::Recorded { reference, at } => Some((fill(ui.agreed, &at), reference.to_string())),
        _ => None,
    };
    let failure = move || match consent() {
        Consent::Failed(reason) => Some(fill(ui.not_recorded, &reason)),
        _ => None,
    };
    // One class on the chat's root says which of its parts show (panel.css), rather than a
    // reactive `hidden` on each part: every reactive attribute costs the wasm its own copy
    // of Leptos's effect code.
    let parts = move || {
        let mut class = String::from("state");
        class.push_str(match consent() {
            Consent::Recorded { .. } => " agreed recorded",
            Consent::Sending(_) => " agreed",
            Consent::Withdrawn => " withdrawn",
            Consent::Failed(_) => " failed",
            Consent::None => "",
        });
        if !required || can_start() {
            class.push_str(" can-start");
        }
        if state.with(|s| s.link.is_some()) {
            class.push_str(" linked");
        }
        class
    };

    view! {
        <div class=parts>
        // dir=auto: a greeting in another script than the UI (English in an Arabic panel)
        // keeps its own direction.
        <p class="greeting" dir="auto" data-testid="cornetta-greeting">{greeting}</p>
        <p class="note" data-testid="cornetta-closed" hidden=!closed>{status(&site.now, ui)}</p>
        <div class="chat" hidden=closed>
            {agents}
            {boxes}
            // Kept in view at the panel's foot (panel.css) however far the panel scrolls.
            <div class="actions">
                <p class="hint" id="cornetta-hint">{ui.hint}</p>
                <button type="button" class="start" data-testid="cornetta-start" disabled=move || !can_start()
                    aria-describedby="cornetta-hint" on:click=start>
                    {ui.start}
                </button>
            </div>
        </div>
        <div class="receipt when-recorded" role="status" data-testid="cornetta-agreed">
            <p>{move || receipt().map(|r| r.0).unwrap_or_default()}</p>
            <p class="ref">{ui.reference}": "<strong data-testid="cornetta-reference">{move || receipt().map(|r| r.1).unwrap_or_default()}</strong></p>
            <button type="button" class="link" data-testid="cornetta-withdraw" on:click=withdraw>{ui.withdraw}</button>
            <a class="link" data-testid="cornetta-receipt" target="_blank" rel="noopener" download
                href=move || receipt().map(|r| [receipt_url.0.as_str(), &r.1, &receipt_url.1].concat()).unwrap_or_default()>{ui.receipt}</a>
        </div>
        <p class="receipt when-withdrawn" role="status" data-testid="cornetta-withdrawn">{ui.withdrawn}</p>
        <p class="note error when-failed" role="alert" data-testid="cornetta-error">
            {move || failure().unwrap_or_default()}
        </p>
        <div class="qr when-linked" data-testid="cornetta-qr">
            <img class="code" width="168" height="168" alt=ui.scan src=move || state.with(|s| s.link.as_ref().map(|l| l.1.clone())).unwrap_or_default() />
            <p>{ui.scan}</p>
            <a href=move || state.with(|s| s.link.as_ref().map(|l| l.0.clone())).unwrap_or_default() target="_blank" rel="noopener" data-testid="cornetta-open-web">{ui.open_web}</a>
        </div>
        </div>
    }
}

/// Scrolls the dialog to its end after the next render: on a short screen the QR code
/// shown after Start chat is below the fold.
fn scroll_to_end(ctl: CtlRef) {
    let dialog = ctl.with_value(|c| c.dialog);
    request_animation_frame(move || {
        if let Some(d) = dialog.get_untracked() {
            d.set_scroll_top(d.scroll_height());
        }
    });
}

/// An analytics event's detail: `{reference, agent}` when known.
fn detail(reference: Option<&Reference>, agent: Option<&str>) -> JsValue {
    let detail = Object::new();
    if let Some(r) = reference {
        set(&detail, "reference", &r.to_string().into());
    }
    if let Some(a) = agent {
        set(&detail, "agent", &a.into());
    }
    detail.into()
}
