//! The visitor's withdrawal page in their language, end to end: a widget consent, its
//! receipt's link to the page, the page in the browser's language (or the one the link asks
//! for), refusals and the withdrawal in the form's language, and the event it records.
//! Shared by the SQLite tests (`http_audit`) and the PostgreSQL ones (`http_postgres`).

use cornetta_shared::Reference;
use serde_json::{Value, json};

use crate::{Server, client};

/// An origin the default site allows (the example shop page's).
const ORIGIN: &str = "http://127.0.0.1:8081";

async fn get_json(server: &Server, path: &str, token: &str) -> Value {
    let response = client().get(server.at(path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// GET the page with `Accept-Language: accept`: status, Content-Language and the HTML.
async fn page(server: &Server, query: &str, accept: &str) -> (u16, Option<String>, String) {
    let res = client().get(server.at(&format!("/withdraw?{query}"))).header("accept-language", accept).send().await.unwrap();
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("vary").as_deref(), Some("accept-language"), "{query}: caches keep one copy per language");
    let (status, language) = (res.status().as_u16(), header("content-language"));
    (status, language, res.text().await.unwrap())
}

/// POST the page's form as the page in `lang` sends it (the browser itself says English).
async fn post(server: &Server, site: &str, lang: &str, reference: &str) -> (u16, String) {
    let form = [("site", site), ("reference", reference), ("lang", lang)];
    let res = client().post(server.at("/withdraw")).header("origin", &server.url).header("accept-language", "en").form(&form).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

pub async fn a_visitor_withdraws_on_the_page_in_their_language(server: &Server) {
    let site = server.site_key.clone().expect("serve printed the default site");
    let auditor = server.token("auditor");
    let config: Value = client().get(server.at(&format!("/v1/sites/{site}/widget?lang=it"))).header("Origin", ORIGIN).send().await.unwrap().json().await.unwrap();
    let notice = &config["notice"];
    assert_eq!(notice["lang"], "it", "{config}");
    let body = json!({"site": site, "notice": notice["id"], "purposes": ["marketing", "utility"], "page_url": format!("{ORIGIN}/carrello")});
    let response = client().post(server.at("/v1/consents")).header("Origin", ORIGIN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let reference = created["reference"].as_str().unwrap().to_owned();

    // The receipt links the page with the reference and the notice's language filled in.
    let receipt = get_json(server, &format!("/v1/consents/{}/receipt", created["id"].as_str().unwrap()), &auditor).await;
    let method = receipt["withdrawal"]["method"].as_str().unwrap();
    let query = format!("site={site}&ref={reference}&lang=it");
    assert!(method.contains(&format!("/withdraw?{query} ")), "{method}");
    let (status, language, html) = page(server, &query, "de").await;
    assert_eq!((status, language.as_deref()), (200, Some("it")), "the link's language wins over the browser's");
    assert!(html.contains(&format!(r#"value="{reference}""#)) && html.contains("Revoca il mio consenso") && !html.contains("<script"), "{html}");

    // Else the browser's best language we have (q-values count), else English; Arabic RTL.
    let (_, language, html) = page(server, &format!("site={site}"), "nl, it;q=0.8, de;q=0.9").await;
    assert_eq!(language.as_deref(), Some("de"));
    assert!(html.contains(r#"<html lang="de" dir="ltr">"#) && html.contains(r#"name="lang" value="de""#), "{html}");
    let (_, _, html) = page(server, &format!("site={site}"), "ar-EG").await;
    assert!(html.contains(r#"<html lang="ar" dir="rtl">"#) && html.contains("اسحب موافقتي"), "{html}");
    let (_, language, html) = page(server, &format!("site={site}"), "nl, *;q=0.5").await;
    assert!(language.as_deref() == Some("en") && html.contains("Withdraw my consent"), "{html}");
    let (status, language, html) = page(server, "site=pk_000000000000000000000000", "es-MX").await;
    assert!(status == 404 && language.as_deref() == Some("es") && html.contains("Sitio desconocido") && !html.contains("<form"), "{status}: {html}");

    // Refusals and the answer come in the form's language, and refusals record nothing.
    let (status, html) = post(server, &site, "de", "K7QXM").await;
    assert!(status == 422 && html.contains("Das ist keine Referenz") && html.contains(r#"value="K7QXM""#), "{status}: {html}");
    let (status, html) = post(server, &site, "es", &Reference::from_random([6; 10]).to_string()).await;
    assert!(status == 404 && html.contains("no tiene ningún consentimiento con la referencia"), "{status}: {html}");
    let events = get_json(server, &format!("/v1/consents?site={site}&reference={reference}"), &auditor).await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(1), "only the grant: {events}");
    let (status, html) = post(server, &site, "fr", &reference.to_lowercase()).await;
    assert!(status == 200 && html.contains("Votre consentement a été retiré</h1>"), "{status}: {html}");
    assert!(html.contains(&format!("Votre consentement avec la référence {reference} a été retiré le ")), "{html}");

    // Recorded once, every purpose, as a web form.
    let events = get_json(server, &format!("/v1/consents?site={site}&reference={reference}"), &auditor).await;
    let withdrawn = &events["events"][1];
    assert_eq!((withdrawn["action"].as_str(), withdrawn["method"].as_str()), (Some("withdrawn"), Some("form")), "{events}");
    assert_eq!(withdrawn["purposes"], json!(["marketing", "utility"]), "{events}");

    // Withdrawing again (the form resubmitted, the widget's button) records nothing more and
    // answers with the withdrawal that ended the consent.
    let (status, again) = post(server, &site, "fr", &reference).await;
    let when = html.split(" a été retiré le ").nth(1).and_then(|rest| rest.split(" (UTC)").next()).expect("the time of the withdrawal");
    assert!(status == 200 && again.contains(&format!(" a été retiré le {when} (UTC)")), "{status}: {again}");
    let (status, view) = widget_withdraw(server, &site, &reference).await;
    assert_eq!((status, &view["id"]), (200, &withdrawn["id"]), "{view}");
    let events = get_json(server, &format!("/v1/consents?site={site}&reference={reference}"), &auditor).await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(2), "the grant and one withdrawal: {events}");

    // A consent partly withdrawn by the business: the page withdraws only what is left.
    let response = client().post(server.at("/v1/consents")).header("Origin", ORIGIN).json(&body).send().await.unwrap();
    let second = response.json::<Value>().await.unwrap()["reference"].as_str().unwrap().to_owned();
    let by_auditor = json!({"site": site, "purposes": ["marketing"], "reason": "asked by phone"});
    let response = client().post(server.at(&format!("/v1/consents/{second}/withdraw"))).bearer_auth(&auditor).json(&by_auditor).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (status, html) = post(server, &site, "en", &second).await;
    assert!(status == 200 && html.contains("was withdrawn on"), "{status}: {html}");
    let events = get_json(server, &format!("/v1/consents?site={site}&reference={second}"), &auditor).await;
    let purposes: Vec<&Value> = events["events"].as_array().unwrap().iter().map(|e| &e["purposes"]).collect();
    assert_eq!(purposes, [&json!(["marketing", "utility"]), &json!(["marketing"]), &json!(["utility"])], "{events}");
    let (status, view) = widget_withdraw(server, &site, &second).await;
    assert_eq!((status, &view["id"]), (200, &events["events"][2]["id"]), "{view}");
    let events = get_json(server, &format!("/v1/consents?site={site}&reference={second}"), &auditor).await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(3), "{events}");

    assert!(!server.log().contains(&reference) && !server.log().contains(&second), "references stay out of the log");
}

/// The widget's withdraw button: status and answer.
async fn widget_withdraw(server: &Server, site: &str, reference: &str) -> (u16, Value) {
    let body = json!({"site": site});
    let response = client().post(server.at(&format!("/v1/consents/{reference}/withdraw"))).header("Origin", ORIGIN).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// One consent withdrawn from everywhere at once (the widget's button twice, the page's form,
/// the business by API, marketing only): each purpose is ended by exactly one event, and
/// every answer names an event that is in the log.
pub async fn withdrawals_sent_at_once_end_each_purpose_once(server: &Server) {
    let site = server.site_key.clone().expect("serve printed the default site");
    let auditor = server.token("auditor");
    let config: Value = client().get(server.at(&format!("/v1/sites/{site}/widget?lang=en"))).header("Origin", ORIGIN).send().await.unwrap().json().await.unwrap();
    for round in 0..3 {
        let body = json!({"site": site, "notice": config["notice"]["id"], "purposes": ["marketing", "utility"], "page_url": format!("{ORIGIN}/checkout")});
        let response = client().post(server.at("/v1/consents")).header("Origin", ORIGIN).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201);
        let reference = response.json::<Value>().await.unwrap()["reference"].as_str().unwrap().to_owned();
        // All in flight together: the widget's button (twice per four), the business by API
        // (marketing only), the page's form.
        let requests = (0..12).map(|i| {
            let (site, reference, auditor) = (&site, &reference, &auditor);
            async move {
                let url = server.at(&format!("/v1/consents/{reference}/withdraw"));
                let response = match i % 4 {
                    0 | 1 => client().post(url).header("Origin", ORIGIN).json(&json!({"site": site})).send().await.unwrap(),
                    2 => client().post(url).bearer_auth(auditor).json(&json!({"site": site, "purposes": ["marketing"], "reason": "asked by phone"})).send().await.unwrap(),
                    _ => {
                        let (status, html) = post(server, site, "en", reference).await;
                        assert!(status == 200 && html.contains("was withdrawn on"), "{status}: {html}");
                        return None;
                    }
                };
                assert_eq!(response.status(), 200);
                Some(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned())
            }
        });
        let answered: Vec<String> = futures::future::join_all(requests).await.into_iter().flatten().collect();
        let events = get_json(server, &format!("/v1/consents?site={site}&reference={reference}&action=withdrawn"), &auditor).await;
        let withdrawals = events["events"].as_array().unwrap();
        let mut ended: Vec<&str> = withdrawals.iter().flat_map(|e| e["purposes"].as_array().unwrap()).filter_map(Value::as_str).collect();
        ended.sort_unstable();
        assert_eq!(ended, ["marketing", "utility"], "round {round}: each purpose withdrawn exactly once: {events}");
        for id in &answered {
            assert!(withdrawals.iter().any(|e| e["id"] == id.as_str()), "round {round}: an answer names {id}, which is not in the log: {events}");
        }
    }
    let verify = get_json(server, &format!("/v1/ledger/verify?site={site}"), &auditor).await;
    assert_eq!(verify["ok"], true, "{verify}");
}
