//! The admin API for sites and the auditor's notice history, end to end: shared by the
//! SQLite tests (`http_foundation`) and the PostgreSQL ones (`http_postgres`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::Server;

const SHOP: &str = "https://bottega.example";

/// A request that must be refused: method, path, token, body, then the status, the error
/// code and a part of the message that names the problem.
type Refusal<'a> = (Method, String, Option<&'a str>, Option<Value>, u16, &'a str, &'a str);
const NEW_SHOP: &str = "https://shop.bottega.example";

async fn call(server: &Server, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = crate::client().request(method, server.at(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A widget consent for `notice` from `origin`.
async fn consent(server: &Server, key: &str, notice: &Value, origin: &str) -> (u16, Value) {
    let body = json!({ "site": key, "notice": notice, "purposes": ["utility"], "page_url": format!("{origin}/carrello") });
    let response = crate::client().post(server.at("/v1/consents")).header("Origin", origin).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The widget's configuration as a page on `origin` in Italian reads it.
async fn widget_config(server: &Server, key: &str, origin: &str) -> (u16, Value) {
    let response = crate::client().get(server.at(&format!("/v1/sites/{key}/widget?lang=it"))).header("Origin", origin).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no error code)")
}

/// An admin creates a site, publishes a new notice version and replaces the site's
/// origins over the API; the widget follows at once, consents keep pointing at the notice
/// version they were given on, and an auditor reads every version with the exact text its
/// hash covers. Tokens of other roles or sites, and bad input, are refused and change nothing.
pub async fn an_admin_manages_a_site_and_the_auditor_reads_its_notice_history(server: &Server) {
    let (admin, auditor, marketer) = (server.token("admin"), server.token("auditor"), server.token("marketer"));
    let default_key = server.site_key.clone().expect("the default site");

    // A new site, with its numbers normalised and notices in every built-in language.
    let (status, site) = call(
        server,
        Method::POST,
        "/v1/sites",
        Some(&admin),
        Some(json!({ "business": "Bottega Rossi", "phones": ["+39 333 765 4321"], "origins": [SHOP], "default_lang": "it" })),
    )
    .await;
    assert_eq!(status, 201, "{site}");
    let key = site["key"].as_str().unwrap().to_owned();
    assert_eq!(site["phones"], json!(["+393337654321"]));
    assert_eq!(site["origins"], json!([SHOP]));
    assert_eq!(call(server, Method::GET, &format!("/v1/sites/{key}"), Some(&admin), None).await, (200, site.clone()));
    let (_, all) = call(server, Method::GET, "/v1/sites", Some(&admin), None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");

    // Its history: version 1 of each language, current, each hash over the text shown.
    let (status, history) = call(server, Method::GET, &format!("/v1/sites/{key}/notices"), Some(&auditor), None).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["site"], json!(key));
    let notices = history["notices"].as_array().unwrap();
    let langs: Vec<&str> = notices.iter().map(|n| n["lang"].as_str().unwrap()).collect();
    assert_eq!(langs, ["ar", "de", "en", "es", "fr", "it", "pt"], "one per built-in language, by language");
    for n in notices {
        assert_eq!((n["version"].as_u64(), n["current"].as_bool()), (Some(1), Some(true)), "{n}");
        let text = n["canonical_text"].as_str().unwrap();
        assert_eq!(cornetta_server::notice::sha256_hex(text), n["sha256"].as_str().unwrap(), "the hash covers the canonical text: {n}");
        assert!(text.contains("Bottega Rossi"), "the notice names the business: {text}");
    }
    let first = notices.iter().find(|n| n["lang"] == "it").unwrap().clone();
    let (status, config) = widget_config(server, &key, SHOP).await;
    assert_eq!((status, &config["notice"]["id"]), (200, &first["id"]), "{config}");

    // A visitor consents on version 1.
    let (status, granted) = consent(server, &key, &first["id"], SHOP).await;
    assert_eq!(status, 201, "{granted}");

    // Version 2 of the Italian notice: the widget shows it from the next request on.
    let intro = "Bottega Rossi ti risponde su WhatsApp. Scegli tu cosa ricevere; puoi revocare quando vuoi.";
    let new_notice = json!({
        "lang": "it", "intro": intro,
        "purposes": [{ "purpose": "utility", "label": "Acconsento che Bottega Rossi mi scriva su WhatsApp per i miei ordini" }],
        "privacy_url": "https://bottega.example/privacy"
    });
    let (status, second) = call(server, Method::POST, &format!("/v1/sites/{key}/notices"), Some(&admin), Some(new_notice)).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!((second["version"].as_u64(), second["intro"].as_str()), (Some(2), Some(intro)));
    let (_, config) = widget_config(server, &key, SHOP).await;
    assert_eq!(config["notice"]["id"], second["id"], "{config}");

    // The history keeps version 1, no longer current, with the exact text the visitor saw.
    let (status, italian) = call(server, Method::GET, &format!("/v1/sites/{key}/notices?lang=it"), Some(&auditor), None).await;
    assert_eq!(status, 200, "{italian}");
    let versions: Vec<(u64, bool)> = italian["notices"].as_array().unwrap().iter().map(|n| (n["version"].as_u64().unwrap(), n["current"].as_bool().unwrap())).collect();
    assert_eq!(versions, [(1, false), (2, true)]);
    let (status, old) = call(server, Method::GET, &format!("/v1/sites/{key}/notices/{}", first["id"].as_str().unwrap()), Some(&auditor), None).await;
    assert_eq!(status, 200, "{old}");
    assert_eq!((&old["canonical_text"], &old["sha256"], &old["current"]), (&first["canonical_text"], &first["sha256"], &json!(false)));
    let (_, events) = call(server, Method::GET, &format!("/v1/consents?site={key}"), Some(&auditor), None).await;
    let event = &events["events"][0];
    assert_eq!((&event["notice"], &event["notice_sha256"]), (&first["id"], &first["sha256"]), "the consent still names version 1: {events}");
    assert_eq!(event["notice_text"], first["canonical_text"]);

    // New origins replace the old ones at once; a repeated one is kept once.
    let (status, updated) =
        call(server, Method::PUT, &format!("/v1/sites/{key}/origins"), Some(&admin), Some(json!({ "origins": [NEW_SHOP, format!("{NEW_SHOP}/")] }))).await;
    assert_eq!((status, &updated["origins"]), (200, &json!([NEW_SHOP])), "{updated}");
    let (status, refused) = consent(server, &key, &second["id"], SHOP).await;
    assert_eq!((status, error_code(&refused)), (403, "origin_not_allowed"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains(&format!("PUT /v1/sites/{key}/origins")), "{refused}");
    assert_eq!(widget_config(server, &key, SHOP).await.0, 403);
    assert_eq!(consent(server, &key, &second["id"], NEW_SHOP).await.0, 201);

    // Refused, naming the problem, and nothing changes.
    let too_many: Vec<String> = (0..51).map(|i| format!("https://s{i}.bottega.example")).collect();
    let other_admin = {
        let out = server.cli(&["token", "create", "--role", "admin", "--site", &default_key]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let origins = format!("/v1/sites/{key}/origins");
    let refusals: [Refusal<'_>; 13] = [
        (Method::PUT, origins.clone(), Some(&admin), Some(json!({ "origins": [NEW_SHOP, "ftp://bottega.example"] })), 422, "invalid_origin", "origins[1]"),
        (Method::PUT, origins.clone(), Some(&admin), Some(json!({ "origins": too_many })), 422, "invalid", "at most 50"),
        (Method::PUT, origins.clone(), Some(&admin), Some(json!({ "origin": [SHOP] })), 422, "invalid_body", "unknown field `origin`"),
        (Method::PUT, origins.clone(), Some(&auditor), Some(json!({ "origins": [SHOP] })), 403, "wrong_role", "admin"),
        (Method::PUT, origins.clone(), Some(&other_admin), Some(json!({ "origins": [SHOP] })), 403, "wrong_site", &key),
        (Method::PUT, origins.clone(), None, Some(json!({ "origins": [SHOP] })), 401, "unauthorized", "token"),
        (Method::PUT, "/v1/sites/pk_000000000000000000000000/origins".into(), Some(&admin), Some(json!({ "origins": [SHOP] })), 404, "not_found", "pk_000000000000000000000000"),
        (Method::GET, format!("/v1/sites/{key}"), Some(&auditor), None, 403, "wrong_role", "admin"),
        (Method::GET, format!("/v1/sites/{key}/notices"), Some(&marketer), None, 403, "wrong_role", "auditor"),
        (Method::GET, format!("/v1/sites/{key}/notices"), Some(&other_admin), None, 403, "wrong_site", &key),
        (Method::GET, format!("/v1/sites/{key}/notices?lang=italian"), Some(&auditor), None, 422, "invalid_lang", "italian"),
        (Method::GET, format!("/v1/sites/{key}/notices/nope"), Some(&auditor), None, 422, "invalid_notice", "notice id \"nope\""),
        // A notice of another site is not this site's, whoever asks.
        (Method::GET, format!("/v1/sites/{key}/notices/{}", default_notice(server, &default_key).await), Some(&auditor), None, 404, "not_found", "has no notice"),
    ];
    for (method, path, token, body, status, code, named) in refusals {
        let what = format!("{method} {path}");
        let (got, answer) = call(server, method, &path, token, body).await;
        assert_eq!((got, error_code(&answer)), (status, code), "{what}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{what}: the message names {named}: {message}");
    }
    let (_, now) = call(server, Method::GET, &format!("/v1/sites/{key}"), Some(&admin), None).await;
    assert_eq!(now["origins"], json!([NEW_SHOP]), "the refused updates changed nothing");

    // The CLI prints the same history, version 1's text included.
    let out = server.cli(&["site", "notices", &key, "--lang", "it"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let heads: Vec<&str> = printed.lines().filter(|l| l.starts_with("ntc_")).collect();
    assert_eq!(heads.len(), 2, "{printed}");
    assert!(heads[0].contains("v1") && heads[0].contains(first["sha256"].as_str().unwrap()) && !heads[0].ends_with("current"), "{printed}");
    assert!(heads[1].contains("v2") && heads[1].ends_with("current"), "{printed}");
    let first_line = first["canonical_text"].as_str().unwrap().lines().next().unwrap();
    assert!(printed.contains(&format!("    {first_line}")), "{printed}");
    // A new version from a file, through the CLI; a bad file names itself and publishes nothing.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notice-en.json");
    let english = json!({"lang": "en", "intro": "Bottega Rossi answers on WhatsApp.", "purposes": [{"purpose": "support", "label": "I agree that Bottega Rossi may answer my questions on WhatsApp"}]});
    std::fs::write(&file, english.to_string()).unwrap();
    let out = server.cli(&["site", "notices", &key, "--lang", "en", "--publish", file.to_str().unwrap()]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let heads: Vec<&str> = printed.lines().filter(|l| l.starts_with("ntc_")).collect();
    assert!(heads.len() == 2 && heads[1].contains("v2") && heads[1].ends_with("current"), "{printed}");
    assert!(printed.contains("    [support] I agree that Bottega Rossi may answer my questions on WhatsApp"), "{printed}");
    for (bad, named) in [
        (json!({"lang": "en", "intro": "", "purposes": [{"purpose": "utility", "label": "x"}]}), "intro is empty"),
        (json!({"lang": "en", "intro": "Hi", "purposes": [{"purpose": "newsletters", "label": "x"}]}), "newsletters"),
        (json!({"lang": "en", "intro": "Hi\u{0}", "purposes": [{"purpose": "utility", "label": "x"}]}), "NUL"),
    ] {
        std::fs::write(&file, bad.to_string()).unwrap();
        let out = server.cli(&["site", "notices", &key, "--publish", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(file.to_str().unwrap()) && stderr.contains(named), "{bad}: {stderr}");
    }
    let (_, english) = call(server, Method::GET, &format!("/v1/sites/{key}/notices?lang=en"), Some(&auditor), None).await;
    assert_eq!(english["notices"].as_array().map(Vec::len), Some(2), "the bad files published nothing: {english}");

    let out = server.cli(&["site", "notices", &key, "--lang", "??"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--lang"), "{}", String::from_utf8_lossy(&out.stderr));

    let log = server.log();
    assert!(!log.contains("internal error"), "no request reached a store error:\n{log}");
}

/// The English notice id of the default site, from its widget configuration.
async fn default_notice(server: &Server, key: &str) -> String {
    let target = crate::load::ConsentTarget::discover(&crate::client(), &server.url, key).await.unwrap();
    target.notice_id
}
