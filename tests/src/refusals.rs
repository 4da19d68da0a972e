//! Requests both stores must refuse the same way, with a 422 and nothing stored: shared by
//! the SQLite tests (`http_foundation`) and the PostgreSQL ones (`http_postgres`).

use serde_json::{Value, json};

use crate::Server;
use crate::load::ConsentTarget;

/// A NUL character (U+0000) in a JSON string, a URL, or a settings file is refused before
/// any store sees it. Left to the stores, PostgreSQL refuses NUL in text and SQLite's
/// `length()` stops at it; both answered 500.
pub async fn nul_characters_are_refused_and_store_nothing(server: &Server) {
    let http = crate::client();
    let (admin, auditor, marketer) = (server.token("admin"), server.token("auditor"), server.token("marketer"));
    let key = server.site_key.clone().expect("the default site");
    let target = ConsentTarget::discover(&http, &server.url, &key).await.unwrap();
    let settings_before = get(server, &admin, &format!("/v1/sites/{key}/widget/settings")).await;

    let bodies = [
        ("POST", "/v1/sites".to_owned(), &admin, json!({ "business": "Acme\u{0}", "phones": ["+393331234567"], "origins": ["https://b.example"] })),
        (
            "POST",
            format!("/v1/sites/{key}/notices"),
            &admin,
            json!({ "lang": "en", "intro": "We ask", "purposes": [{ "purpose": "utility", "label": "Orders\u{0}" }] }),
        ),
        ("PUT", format!("/v1/sites/{key}/widget/settings"), &admin, json!({ "text": "Hi\u{0} {title}" })),
        ("POST", "/v1/whatsapp/apps".to_owned(), &admin, json!({ "name": "\u{0}", "verify_token": "tok-nul", "app_secret": "s3cr3t-s3cr3t" })),
        (
            "POST",
            "/v1/consents".to_owned(),
            &admin,
            json!({ "site": key, "notice": target.notice_id, "purposes": ["utility"], "page_url": "https://shop.example/\u{0}" }),
        ),
    ];
    for (method, path, token, body) in bodies {
        let raw = serde_json::to_string(&body).unwrap();
        assert!(raw.contains(r"\u0000"), "serde_json sends NUL escaped: {raw}");
        let response = http
            .request(method.parse().unwrap(), server.at(&path))
            .bearer_auth(token)
            .header("Origin", &target.origin)
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_refused(response, &format!("{method} {path}"), "request body").await;
    }
    for (path, token) in [("/v1/campaigns/%00".to_owned(), &marketer), ("/console/campaigns/%00".to_owned(), &marketer), (format!("/v1/consents?site={key}&phone=%00"), &auditor)] {
        let response = http.get(server.at(&path)).bearer_auth(token).send().await.unwrap();
        assert_refused(response, &path, "URL").await;
    }

    // Nothing was stored.
    assert_eq!(get(server, &admin, "/v1/sites").await.as_array().map(Vec::len), Some(1), "no second site");
    assert_eq!(get(server, &auditor, "/v1/consents").await["events"], json!([]), "no consent");
    assert_eq!(get(server, &admin, "/v1/whatsapp/apps").await, json!([]), "no app");
    assert_eq!(get(server, &admin, &format!("/v1/sites/{key}/widget/settings")).await, settings_before, "settings unchanged");
    let now = ConsentTarget::discover(&http, &server.url, &key).await.unwrap();
    assert_eq!(now.notice_id, target.notice_id, "no new notice version");

    // The CLI refuses a settings file with one too, naming the file and the character.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), r#"{"greeting": {"en": "Hi\u0000"}}"#).unwrap();
    let out = server.cli(&["site", "widget", &key, "--set-file", &file.path().display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("NUL character") && stderr.contains(&file.path().display().to_string()), "{stderr}");
    assert_eq!(get(server, &admin, &format!("/v1/sites/{key}/widget/settings")).await, settings_before, "settings unchanged");

    let log = server.log();
    assert!(!log.contains("internal error"), "no request reached a store error:\n{log}");
}

async fn assert_refused(response: reqwest::Response, what: &str, place: &str) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (422, Some("nul_character")), "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(place) && message.contains("U+0000"), "{what}: {message}");
}

async fn get(server: &Server, token: &str, path: &str) -> Value {
    let response = crate::client().get(server.at(path)).bearer_auth(token).send().await.unwrap();
    assert!(response.status().is_success(), "GET {path}: {}", response.status());
    response.json().await.unwrap()
}
