//! The widget end to end in real headless Chromium: the example shop (another origin than
//! the API, as a merchant's site is) → launcher → panel → opt-in → consent stored → wa.me.

use std::time::Duration;

use cornetta_shared::Reference;
use cornetta_shared::api::{ConsentPage, WidgetConfig};
use cornetta_shared::link::{decode_text, encode_text};
use cornetta_shared::widget::{MessageVars, fill_message};
use cornetta_tests::browser::Browser;
use cornetta_tests::{Server, client};
use fantoccini::Locator;

const WAIT: Duration = Duration::from_secs(15);

/// Replaces `window.open` so the test sees where the widget sends the visitor (a headless
/// browser would otherwise really try to load wa.me).
const CAPTURE_OPEN: &str = "window.__opened = []; window.open = function (url, target, features) { window.__opened.push([String(url), String(target), String(features)]); return null; }; return true;";

async fn widget_config(server: &Server, origin: &str) -> WidgetConfig {
    let key = server.site_key.as_deref().expect("the default site was created");
    let response = client()
        .get(server.at(&format!("/v1/sites/{key}/widget?lang=en")))
        .header("origin", origin)
        .send()
        .await
        .expect("the config request is answered");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a WidgetConfig")
}

#[tokio::test]
async fn a_visitor_opts_in_on_the_shop_page_and_is_sent_to_whatsapp_with_the_recorded_reference() {
    let server = Server::builder().with_demo().start().expect("the server starts");
    let shop = server.demo_url.clone().expect("the example shop is served");
    let browser = Browser::start().await.expect("Chromium starts");
    browser.capture_console().await.unwrap();
    let page_url = format!("{shop}/");
    browser.client.goto(&page_url).await.unwrap();
    browser.client.execute(CAPTURE_OPEN, vec![]).await.unwrap();

    let widget = browser.widget().await.unwrap();
    let launcher = widget.find(Locator::Css("[data-testid=cornetta-launcher]")).await.unwrap();
    assert_eq!(launcher.prop("tagName").await.unwrap().as_deref(), Some("BUTTON"), "the launcher is a real button");
    let name = launcher.attr("aria-label").await.unwrap().unwrap_or_default();
    assert!(name.contains("WhatsApp"), "the launcher has an accessible name: {name:?}");

    // The first click, before any wasm was fetched, must not be lost: it opens the panel.
    launcher.click().await.unwrap();
    let panel = wait_for(&browser, &widget, "[data-testid=cornetta-panel]").await;
    let start = wait_for(&browser, &widget, "[data-testid=cornetta-start]").await;
    assert_eq!(panel.attr("role").await.unwrap().as_deref(), Some("dialog"));
    let business = widget.find(Locator::Css("[data-testid=cornetta-business]")).await.unwrap().text().await.unwrap();
    assert_eq!(business, "Acme Shop");
    assert!(!start.is_enabled().await.unwrap(), "Start chat is disabled until a box is ticked");

    let checkbox = widget.find(Locator::Css("[data-testid=cornetta-purpose-utility]")).await.unwrap();
    assert_eq!(checkbox.prop("checked").await.unwrap().as_deref(), Some("false"), "the box starts unticked");
    let label = widget.find(Locator::Css("[data-testid=cornetta-consent] label")).await.unwrap().text().await.unwrap();
    assert!(label.contains("Acme Shop") && label.contains("WhatsApp"), "the label names the business and WhatsApp: {label:?}");
    checkbox.click().await.unwrap();
    assert!(start.is_enabled().await.unwrap(), "ticking the box enables Start chat");
    start.click().await.unwrap();

    let opened = browser.wait_for_js("return window.__opened.length ? window.__opened[0] : null;", WAIT).await.unwrap();
    let opened_url = opened[0].as_str().unwrap().to_owned();
    assert_eq!(opened[1], "_blank");
    let text = decode_text(&opened_url).expect("the link has a prefilled text");
    let reference = Reference::find_in(&text).expect("the prefilled text carries the reference");

    // The receipt appears once the server answered 201.
    let receipt = wait_for(&browser, &widget, "[data-testid=cornetta-agreed]").await;
    let shown = widget.find(Locator::Css("[data-testid=cornetta-reference]")).await.unwrap().text().await.unwrap();
    assert_eq!(shown, reference.to_string());
    assert!(receipt.is_displayed().await.unwrap());
    // On this desktop viewport the panel also shows the chat link's QR code, drawn by the server.
    let qr = "var h = document.querySelector('cornetta-widget'); var i = h && h.shadowRoot.querySelector('[data-testid=cornetta-qr] img'); \
              return i && i.complete && i.naturalWidth > 0 ? i.naturalWidth : null;";
    browser.wait_for_js(qr, WAIT).await.expect("the QR code image loads");
    let shot = browser.screenshot("foundation-panel-after-consent").await.unwrap();
    eprintln!("screenshot: {}", shot.display());

    let config = widget_config(&server, &shop).await;
    let notice = config.notice.clone().expect("the default site has an English notice");
    let expected_text = fill_message(
        config.text.as_deref(),
        &MessageVars { title: "Acme Shop – Handmade leather shoes", url: &page_url, agent: "", reference: Some(&reference) },
    );
    assert_eq!(opened_url, format!("https://wa.me/393331234567?text={}", encode_text(&expected_text)));

    let token = server.token("auditor");
    let page: ConsentPage = client()
        .get(server.at(&format!("/v1/consents?reference={}", reference.as_str())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1, "exactly one consent row for the reference");
    let event = &page.events[0];
    assert_eq!(event.action.as_str(), "granted");
    assert_eq!(event.method.as_str(), "widget");
    assert_eq!(event.notice.as_ref(), Some(&notice.id));
    assert_eq!(event.notice_sha256.as_deref(), Some(notice.sha256.as_str()));
    assert_eq!(event.page_url.as_deref(), Some(page_url.as_str()));
    assert_eq!(event.purposes.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["utility"]);
    browser.close().await;
}

/// Waits for an element inside the widget's shadow root.
async fn wait_for(browser: &Browser, root: &fantoccini::elements::ShadowRoot, css: &str) -> fantoccini::elements::Element {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok(el) = root.find(Locator::Css(css)).await
            && el.is_displayed().await.unwrap_or(false)
        {
            return el;
        }
        if std::time::Instant::now() > deadline {
            panic!("{css} did not appear in the widget within {WAIT:?}; the page's console:\n{}", browser.console().await.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
