//! QR studio against the real server and CLI: every code is decoded back with `rqrr`
//! (PNG via `png`, SVG rasterised by `resvg`) and must hold exactly the link; campaigns,
//! short-link redirects, scan counts, stats CSV, batch ZIPs, and refusals.

use std::io::Read;
use std::time::Duration;

use cornetta_tests::qr::{decode_png, decode_svg, png_to_gray};
use cornetta_tests::{Server, client, wait_for};
use serde_json::{Value, json};

const PHONE: &str = "+393331234567";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36";
const DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(30)).build().unwrap()
}

fn wa_link(text: &str) -> String {
    format!("https://wa.me/393331234567?text={}", cornetta_shared::link::encode_text(text))
}

async fn get_bytes(url: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let res = client().get(url).send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn decode(format: &str, bytes: &[u8]) -> String {
    match format {
        "png" => decode_png(bytes).unwrap(),
        _ => decode_svg(std::str::from_utf8(bytes).unwrap()).unwrap(),
    }
}

#[tokio::test]
async fn every_style_of_qr_code_decodes_to_the_exact_link() {
    let server = Server::start().unwrap();
    let text = "Ciao! Vorrei info su #42 & sconti 50% 👋";
    let cases = [
        ("svg", "size=512"),
        ("png", "size=512"),
        ("png", "size=3cm&dpi=300"),
        ("png", "size=1in&dpi=600"),
        ("png", "size=20mm&dpi=300&ecc=L"),
        ("svg", "size=3cm"),
        ("png", "fg=%23075e54&bg=%23ffffff"),
        ("svg", "fg=%23075e54&bg=%23ffffff"),
        ("png", "fg=%23000000&bg=%23ffd700&ecc=Q"),
        ("png", "fg=%23ffffff&bg=%23000000"),
        ("svg", "fg=%23ffffff&bg=%23000000"),
        ("png", "ecc=H&label=true&size=3cm&dpi=300"),
        ("svg", "ecc=H&label=true"),
        ("png", "ecc=H&label=true&fg=%231a237e&bg=%23fffde7&size=600"),
        ("png", "margin=0&size=400"),
        ("svg", "margin=8"),
    ];
    for (format, options) in cases {
        let url = server.at(&format!("/v1/qr?phone=%2B393331234567&text={}&format={format}&{options}", cornetta_shared::link::encode_text(text)));
        let (status, headers, body) = get_bytes(&url).await;
        assert_eq!(status, 200, "{format} {options}: {}", String::from_utf8_lossy(&body));
        let want_type = if format == "png" { "image/png" } else { "image/svg+xml" };
        assert_eq!(headers["content-type"], want_type);
        assert!(headers.contains_key("etag"));
        assert_eq!(decode(format, &body), wa_link(text), "{format} {options}");
        if format == "svg" {
            let svg = String::from_utf8(body).unwrap();
            assert_eq!(svg.matches("<path").count(), 1, "{options}: one path for the modules");
        }
    }
}

#[tokio::test]
async fn a_png_at_a_printed_size_has_its_pixels_and_resolution() {
    let server = Server::start().unwrap();
    let (status, _, body) = get_bytes(&server.at("/v1/qr?phone=%2B393331234567&format=png&size=3cm&dpi=300")).await;
    assert_eq!(status, 200);
    let (_, info) = png_to_gray(&body).unwrap();
    // 3 cm / 2.54 cm × 300 = 354 px; 300 dpi = 11811 px per metre.
    assert_eq!((info.width, info.height), (354, 354));
    assert_eq!(info.pixels_per_metre, Some(11811));
    assert_eq!(info.bit_depth, 1);
    let (_, _, coloured) = get_bytes(&server.at("/v1/qr?phone=%2B393331234567&format=png&fg=%23075e54")).await;
    let (_, info) = png_to_gray(&coloured).unwrap();
    assert!(info.indexed && info.bit_depth == 1, "{info:?}");
}

#[tokio::test]
async fn qr_options_that_scanners_or_printers_cannot_use_are_refused_naming_the_parameter() {
    let server = Server::start().unwrap();
    let cases = [
        ("fg=%23cccccc&bg=%23ffffff", "contrast ratio"),
        ("fg=%2325d366", "contrast ratio"),
        ("fg=%23cccccc&bg=%23555555", "inverted"),
        ("fg=%23ffffff&bg=%23ffffff", "contrast ratio"),
        ("fg=red", "fg"),
        ("ecc=M&label=true", "error correction H"),
        ("size=10", "size"),
        ("size=3parsecs", "size"),
        ("format=png&size=50cm&dpi=600", "use the SVG"),
        ("size=512&dpi=300", "dpi"),
        ("dpi=9000&size=3cm", "dpi"),
        ("margin=99", "margin"),
        ("format=gif", "format"),
        ("colour=%23000", "unknown field"),
    ];
    for (options, needle) in cases {
        let res = client().get(server.at(&format!("/v1/qr?phone=%2B393331234567&{options}"))).send().await.unwrap();
        assert_eq!(res.status(), 422, "{options}");
        let body: Value = res.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{options}: {message}");
    }
}

async fn create_campaign(server: &Server, token: &str, body: Value) -> Value {
    let res = client().post(server.at("/v1/campaigns")).bearer_auth(token).json(&body).send().await.unwrap();
    let status = res.status();
    let json: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{json}");
    json
}

async fn scan(server: &Server, code_url: &str, ua: &str) -> reqwest::Response {
    let _ = server;
    no_redirects().get(code_url).header("user-agent", ua).send().await.unwrap()
}

#[tokio::test]
async fn a_tracked_campaign_redirects_each_scan_to_whatsapp_with_its_own_reference_and_counts_it() {
    let server = Server::start().unwrap();
    let token = server.token("marketer");
    let c = create_campaign(&server, &token, json!({"name": "Spring poster", "text": "Hi! Poster offer, ref {ref}", "source": "poster", "medium": "print"})).await;
    let short = c["short_url"].as_str().unwrap().to_owned();
    assert_eq!(c["link"], c["short_url"]);
    let code = c["code"].as_str().unwrap();
    assert_eq!(short, server.at(&format!("/q/{code}")));
    assert_eq!(code.len(), 10);
    assert!(!code.contains(['0', '1', 'o', 'l']), "{code}");

    let mut refs = Vec::new();
    for ua in [IPHONE, IPHONE, ANDROID, DESKTOP, "curl/8.5.0"] {
        let res = scan(&server, &short, ua).await;
        assert_eq!(res.status(), 302);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("https://wa.me/393331234567?text="), "{location}");
        let text = cornetta_shared::link::decode_text(&location).unwrap();
        let reference = cornetta_shared::Reference::find_in(&text).expect("the text carries a reference");
        assert_eq!(text, format!("Hi! Poster offer, ref {reference}"));
        refs.push(reference);
    }
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 5, "every scan gets its own reference");

    // Upper case, as typed from a poster, works too.
    let res = scan(&server, &server.at(&format!("/q/{}", code.to_ascii_uppercase())), ANDROID).await;
    assert_eq!(res.status(), 302);

    let id = c["id"].as_str().unwrap();
    let stats: Value = client().get(server.at(&format!("/v1/campaigns/{id}/stats"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["total"], 6, "{stats}");
    assert_eq!(stats["by_device"], json!({"ios": 2, "android": 2, "desktop": 1, "other": 0, "bot": 1}));
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    let last = stats["days"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["day"], today.as_str());
    assert_eq!(last["total"], 6);

    let res = client().get(server.at(&format!("/v1/campaigns/{id}/stats?format=csv"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = res.text().await.unwrap();
    assert_eq!(csv.lines().next(), Some("day,ios,android,desktop,other,bot,total"));
    assert_eq!(csv.lines().last().unwrap(), format!("{today},2,2,1,0,1,6"));

    // No consent is recorded by a scan: that is the ledger's business.
    let auditor = server.token("auditor");
    let consents: Value = client().get(server.at("/v1/consents")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    assert_eq!(consents["events"].as_array().map(Vec::len).unwrap_or(0), 0, "{consents}");
}

async fn patch_campaign(server: &Server, token: &str, id: &str, body: Value) -> (u16, Value) {
    let res = client().patch(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(token).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// Where a scan of `short` lands: the number's digits and the decoded text.
async fn landing(server: &Server, short: &str) -> (String, String) {
    let res = scan(server, short, IPHONE).await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let digits = location.trim_start_matches("https://wa.me/").split('?').next().unwrap().to_owned();
    (digits, cornetta_shared::link::decode_text(&location).unwrap_or_default())
}

/// A printed tracked code keeps working when its campaign is edited: the next scan goes to
/// the new number and message, and keeps counting on the same campaign. A static code holds
/// the wa.me link itself, so its number and text stay as printed.
async fn an_edited_campaign_sends_the_same_printed_code_to_the_new_number_and_text(server: &Server) {
    let token = server.token("marketer");
    let c = create_campaign(server, &token, json!({"name": "Window sticker", "text": "Hi! Sticker {ref}", "source": "sticker", "expires_at": "2099-01-31"})).await;
    let id = c["id"].as_str().unwrap();
    let short = c["short_url"].as_str().unwrap().to_owned();
    let code_png = client().get(server.at(&format!("/v1/campaigns/{id}/qr?format=png"))).bearer_auth(&token).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(decode_png(&code_png).unwrap(), short, "the printed code holds the short link");
    let (digits, text) = landing(server, &short).await;
    assert_eq!(digits, "393331234567");
    assert!(text.starts_with("Hi! Sticker "), "{text}");
    assert!(c["updated_at"].is_null(), "{c}");

    let (status, edited) = patch_campaign(
        server,
        &token,
        id,
        json!({"name": "Window sticker (autumn)", "phone": "+39 333 765 4321", "text": "Ciao! Vetrina {ref}", "source": null, "expires_at": null}),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!((&edited["name"], &edited["phone"], &edited["text"]), (&json!("Window sticker (autumn)"), &json!("+393337654321"), &json!("Ciao! Vetrina {ref}")));
    assert_eq!((&edited["source"], &edited["expires_at"]), (&Value::Null, &Value::Null), "null clears: {edited}");
    assert_eq!((&edited["code"], &edited["short_url"]), (&c["code"], &c["short_url"]), "the printed code stays");
    assert!(edited["updated_at"].as_str().is_some_and(|t| t >= c["created_at"].as_str().unwrap()), "{edited}");

    // The same code now lands on the new number, with a fresh reference in the new text.
    let (digits, text) = landing(server, &short).await;
    assert_eq!(digits, "393337654321");
    let reference = cornetta_shared::Reference::find_in(&text).expect("a reference per scan");
    assert_eq!(text, format!("Ciao! Vetrina {reference}"));
    let after_png = client().get(server.at(&format!("/v1/campaigns/{id}/qr?format=png"))).bearer_auth(&token).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(decode_png(&after_png).unwrap(), short, "a new download of the code holds the same short link");
    wait_for(Duration::from_secs(10), || async {
        let s: Value = client().get(server.at(&format!("/v1/campaigns/{id}/stats"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        s["total"] == 2
    })
    .await
    .expect("scans before and after the edit count on the one campaign");

    // Only what is given changes: a tag alone.
    let (status, tagged) = patch_campaign(server, &token, id, json!({"medium": "window"})).await;
    assert_eq!((status, &tagged["medium"], &tagged["text"], &tagged["phone"]), (200, &json!("window"), &edited["text"], &edited["phone"]), "{tagged}");

    // Refused with the field named, and nothing changes.
    let auditor = server.token("auditor");
    let long = "x".repeat(5000);
    let refusals = [
        (&token, json!({"text": long}), 422, "invalid_campaign", "text"),
        (&token, json!({"expires_at": "2020-01-01"}), 422, "invalid_campaign", "expires_at"),
        (&token, json!({"expires_at": "soon"}), 422, "invalid_campaign", "expires_at"),
        (&token, json!({"name": "  "}), 422, "invalid_campaign", "name"),
        (&token, json!({"source": "Bad Tag!"}), 422, "invalid_campaign", "source"),
        (&token, json!({"phone": "12"}), 422, "invalid_phone", "phone number"),
        (&token, json!({"code": "abcdefghjk"}), 422, "invalid_body", "unknown field `code`"),
        (&auditor, json!({"name": "Mine now"}), 403, "wrong_role", "marketer"),
    ];
    for (who, body, status, code, named) in refusals {
        let what = body.to_string();
        let (got, answer) = patch_campaign(server, who, id, body).await;
        assert_eq!((got, answer["error"]["code"].as_str().unwrap_or_default()), (status, code), "{what}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap_or_default().contains(named), "{what}: {answer}");
    }
    let (status, missing) = patch_campaign(server, &token, "cmp_nope", json!({"name": "x"})).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_found")), "{missing}");
    let now: Value = client().get(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(now, tagged, "the refused edits changed nothing");

    // A static code is the wa.me link itself: its number and text cannot change, its name can.
    let flyer = create_campaign(server, &token, json!({"name": "Flyer", "tracked": false, "text": "Hi from the flyer"})).await;
    let flyer_id = flyer["id"].as_str().unwrap();
    for body in [json!({"text": "Another text"}), json!({"phone": "+39 333 765 4321"})] {
        let (status, answer) = patch_campaign(server, &token, flyer_id, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("static campaign"), "{answer}");
    }
    let (status, renamed) = patch_campaign(server, &token, flyer_id, json!({"name": "Flyer (reprint)", "text": "Hi from the flyer"})).await;
    assert_eq!((status, &renamed["name"], &renamed["link"]), (200, &json!("Flyer (reprint)"), &flyer["link"]), "{renamed}");

    // The console's campaign page edits the same way, its form filled in with what is stored.
    let http = no_redirects();
    let session = console_sign_in(server, &http, &token).await;
    let page_url = server.at(&format!("/console/campaigns/{id}"));
    let html = http.get(&page_url).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"value="Window sticker (autumn)""#) && html.contains("Ciao! Vetrina {ref}</textarea>") && html.contains(r#"value="+393337654321""#), "{html}");
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let save = |csrf: String, text: String| {
        let (http, session, url, origin) = (http.clone(), session.clone(), page_url.clone(), server.url.clone());
        async move {
            let form = [
                ("csrf", csrf.as_str()), ("name", "Window sticker (winter)"), ("phone", "+39 333 765 4321"), ("text", text.as_str()),
                ("expires", "2099-12-31"), ("expires_was", ""), ("source", ""), ("medium", "window"),
            ];
            http.post(url).header("cookie", session).header("origin", origin).form(&form).send().await.unwrap()
        }
    };
    assert_eq!(save("wrong".into(), "Buone feste! {ref}".into()).await.status(), 403, "the form needs its CSRF token");
    let refused = save(csrf.clone(), "x".repeat(5000)).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains(r#"data-testid="form-error">text: "#), "the page names the field: {html}");
    assert!(html.contains(&format!("{}</textarea>", "x".repeat(5000))) && html.contains(r#"value="Window sticker (winter)""#), "the refused form comes back as typed");
    assert!(landing(server, &short).await.1.starts_with("Ciao! Vetrina "), "a refused form changes nothing");
    let saved = save(csrf.clone(), "Buone feste! {ref}".into()).await;
    assert_eq!((saved.status().as_u16(), saved.headers()["location"].to_str().unwrap()), (303, format!("/console/campaigns/{id}").as_str()));
    assert!(landing(server, &short).await.1.starts_with("Buone feste! "), "the next scan opens the console's new message");
    let now: Value = client().get(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!((&now["name"], &now["expires_at"], &now["medium"]), (&json!("Window sticker (winter)"), &json!("2100-01-01T00:00:00Z"), &json!("window")), "{now}");
    let flyer_page = http.get(server.at(&format!("/console/campaigns/{flyer_id}"))).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(flyer_page.contains(r#"data-testid="edit-name""#) && !flyer_page.contains(r#"data-testid="edit-text""#), "a static campaign's form has no message to change");
    assert!(!flyer_page.contains(r#"data-testid="end-form""#), "a static code cannot be ended");

    // Ending it from the console: every printed code then shows the ended page.
    let html = http.get(&page_url).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-testid="end-form""#), "a live tracked campaign can be ended");
    let end = |csrf: String| {
        let (http, session, url, origin) = (http.clone(), session.clone(), format!("{page_url}/end"), server.url.clone());
        async move { http.post(url).header("cookie", session).header("origin", origin).form(&[("csrf", csrf.as_str())]).send().await.unwrap() }
    };
    assert_eq!(end("wrong".into()).await.status(), 403);
    assert_eq!(scan(server, &short, IPHONE).await.status(), 302, "a refused end changes nothing");
    assert_eq!(end(csrf.clone()).await.status(), 303);
    assert_eq!(scan(server, &short, IPHONE).await.status(), 410, "the printed code now says the campaign has ended");
    let html = http.get(&page_url).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"<span class="tag">ended</span>"#) && !html.contains(r#"data-testid="end-form""#), "the page says it ended");

    // And over the API: a second end keeps the first; a static campaign cannot be ended.
    let end_api = |id: String| {
        let (url, token) = (server.at(&format!("/v1/campaigns/{id}/end")), token.clone());
        async move {
            let res = client().post(url).bearer_auth(token).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, first) = end_api(id.to_owned()).await;
    assert_eq!((status, &first["expired"]), (200, &json!(true)), "{first}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, again) = end_api(id.to_owned()).await;
    assert_eq!(again["expires_at"], first["expires_at"], "ending an ended campaign keeps its end");
    let (status, refused) = end_api(flyer_id.to_owned()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("static_campaign")), "{refused}");
    assert_eq!(end_api("cmp_nope".into()).await.0, 404);
}

#[tokio::test]
async fn an_edited_tracked_campaign_sends_its_printed_code_to_the_new_number_and_text() {
    let server = Server::start().unwrap();
    an_edited_campaign_sends_the_same_printed_code_to_the_new_number_and_text(&server).await;
}

#[tokio::test]
async fn scan_counts_survive_a_restart_once_written() {
    let mut server = Server::start().unwrap();
    let token = server.token("marketer");
    let c = create_campaign(&server, &token, json!({"name": "Receipt"})).await;
    let short_path = format!("/q/{}", c["code"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(scan(&server, &server.at(&short_path), ANDROID).await.status(), 302);
    }
    let stats_url = |s: &Server| s.at(&format!("/v1/campaigns/{}/stats", c["id"].as_str().unwrap()));
    // Wait until the background writer has stored the counts (`unsaved` drops to 0).
    wait_for(Duration::from_secs(10), || async {
        let s: Value = client().get(stats_url(&server)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        s["total"] == 3 && s["unsaved"] == 0
    })
    .await
    .unwrap();
    server.restart().unwrap();
    let s: Value = client().get(stats_url(&server)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["total"], 3, "{s}");
}

#[tokio::test]
async fn campaign_codes_decode_to_the_short_link_or_for_static_campaigns_the_wa_me_link() {
    let server = Server::start().unwrap();
    let token = server.token("marketer");
    let tracked = create_campaign(&server, &token, json!({"name": "Window", "text": "Hi {ref}"})).await;
    let fixed = create_campaign(&server, &token, json!({"name": "Flyer", "text": "Hi from the flyer", "tracked": false})).await;
    assert_eq!(fixed["short_url"], Value::Null);
    assert_eq!(fixed["link"], wa_link("Hi from the flyer"));
    for (c, want) in [(&tracked, tracked["short_url"].as_str().unwrap().to_owned()), (&fixed, wa_link("Hi from the flyer"))] {
        for url in [c["qr"]["svg"].as_str().unwrap(), c["qr"]["png"].as_str().unwrap()] {
            let res = client().get(url).bearer_auth(&token).send().await.unwrap();
            assert_eq!(res.status(), 200, "{url}");
            let png = url.contains("format=png");
            let body = res.bytes().await.unwrap();
            assert_eq!(decode(if png { "png" } else { "svg" }, &body), want, "{url}");
        }
        let url = format!("{}/v1/campaigns/{}/qr?format=png&ecc=H&label=true&fg=%23075e54&size=5cm&dpi=300", server.url, c["id"].as_str().unwrap());
        let body = client().get(&url).bearer_auth(&token).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(decode("png", &body), want);
    }
}

#[tokio::test]
async fn bad_campaigns_are_refused_with_the_field_named() {
    let server = Server::start().unwrap();
    let token = server.token("marketer");
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "text": "Hi {ref}", "tracked": false}), "{ref} needs a tracked campaign"),
        (json!({"name": "x", "source": "Not A Tag"}), "source"),
        (json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}), "expiry must be in the future"),
        (json!({"name": "x", "expires_at": "next tuesday"}), "expires_at"),
        (json!({"name": "x", "phone": "12"}), "phone"),
        (json!({"name": "x", "text": "x".repeat(5000)}), "text"),
        (json!({"name": "x", "site": "pk_nonexistent"}), "site"),
    ];
    for (body, needle) in cases {
        let res = client().post(server.at("/v1/campaigns")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert!(res.status() == 422 || res.status() == 404, "{body}: {}", res.status());
        let err: Value = res.json().await.unwrap();
        assert!(err["error"]["message"].as_str().unwrap().contains(needle), "{body}: {err}");
    }
}

#[tokio::test]
async fn campaign_routes_need_a_marketer_token() {
    let server = Server::start().unwrap();
    let auditor = server.token("auditor");
    let res = client().post(server.at("/v1/campaigns")).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = client().post(server.at("/v1/campaigns")).bearer_auth(&auditor).json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = client().get(server.at("/v1/campaigns")).bearer_auth(&auditor).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let marketer = server.token("marketer");
    let c = create_campaign(&server, &marketer, json!({"name": "x"})).await;
    let list: Value = client().get(server.at("/v1/campaigns")).bearer_auth(&marketer).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["campaigns"][0]["id"], c["id"]);
    let res = client().get(server.at("/v1/campaigns/cmp_nope")).bearer_auth(&marketer).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn unknown_and_ended_codes_show_a_friendly_page_not_an_error() {
    let server = Server::start().unwrap();
    let token = server.token("marketer");
    for path in ["/q/zzzzzzzzzz", "/q/short", "/q/0000000000"] {
        let res = no_redirects().get(server.at(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(res.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
        let html = res.text().await.unwrap();
        assert!(html.contains("This code does not lead anywhere"), "{html}");
    }
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2)).to_string();
    let c = create_campaign(&server, &token, json!({"name": "Flash sale", "expires_at": soon})).await;
    let short = c["short_url"].as_str().unwrap().to_owned();
    assert_eq!(scan(&server, &short, ANDROID).await.status(), 302);
    wait_for(Duration::from_secs(10), || async { scan(&server, &short, ANDROID).await.status() == 410 }).await.unwrap();
    let html = scan(&server, &short, ANDROID).await.text().await.unwrap();
    assert!(html.contains("This campaign has ended"), "{html}");
}

#[tokio::test]
async fn guessing_codes_runs_into_the_miss_quota_while_real_codes_still_work() {
    let server = Server::builder().args(["--short-link-misses-per-minute", "3"]).start().unwrap();
    let token = server.token("marketer");
    let c = create_campaign(&server, &token, json!({"name": "x"})).await;
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for guess in ["2222222222", "3333333333", "4444444444", "5555555555", "6666666666"] {
            v.push(no_redirects().get(server.at(&format!("/q/{guess}"))).send().await.unwrap().status().as_u16());
        }
        v
    };
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
    assert_eq!(scan(&server, c["short_url"].as_str().unwrap(), ANDROID).await.status(), 302);
}

fn read_zip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().into_owned(), data)
        })
        .collect()
}

const BATCH_CSV: &str = "name,phone,text\nShop window,+39 333 123 4567,Ciao dalla vetrina\nBad number,+39 12,Hi\nReceipt,+1 650 253 0000,\"Hello, receipt #7 & 50%\"\n,+393331234567,no name\nReceipt,+393331234567,Second receipt\n";

fn check_batch(files: &[(String, Vec<u8>)]) {
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["codes/shop-window.png", "codes/shop-window.svg", "codes/receipt.png", "codes/receipt-2.svg", "links.csv", "errors.csv"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let links = &files.iter().find(|(n, _)| n == "links.csv").unwrap().1;
    let mut reader = csv::Reader::from_reader(links.as_slice());
    let mut rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        let (link, file_list) = (&record[3], &record[4]);
        for file in file_list.split(' ') {
            let data = &files.iter().find(|(n, _)| n == file).unwrap().1;
            let format = if file.ends_with(".png") { "png" } else { "svg" };
            assert_eq!(decode(format, data), link, "{file}");
        }
        rows += 1;
    }
    assert_eq!(rows, 3);
    let errors = String::from_utf8(files.iter().find(|(n, _)| n == "errors.csv").unwrap().1.clone()).unwrap();
    let lines: Vec<&str> = errors.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(lines, ["3", "5"], "{errors}");
}

#[tokio::test]
async fn a_batch_upload_gives_a_zip_of_codes_and_links_and_names_bad_lines() {
    let server = Server::start().unwrap();
    let token = server.token("marketer");
    let res = client()
        .post(server.at("/v1/qr/batch?size=2cm&dpi=300&ecc=Q"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(BATCH_CSV)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert_eq!(res.headers()["x-cornetta-bad-lines"], "3,5");
    let files = read_zip(&res.bytes().await.unwrap());
    check_batch(&files);

    let res = client().post(server.at("/v1/qr/batch")).bearer_auth(&token).body("name,phone,text\nx,12,y\n").send().await.unwrap();
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("line 2"), "{err}");
    let res = client().post(server.at("/v1/qr/batch")).body(BATCH_CSV).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[test]
fn the_cli_writes_print_ready_codes_that_decode_and_names_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| cornetta_tests::cornetta(dir.path(), args);
    let text = "Hello from the CLI #1";
    for (file, extra) in [
        ("a.png", vec!["--size", "3cm", "--dpi", "300"]),
        ("b.svg", vec!["--fg", "#075e54"]),
        ("c.png", vec!["--label", "--fg", "#1a237e", "--bg", "#fffde7"]),
    ] {
        let out_path = dir.path().join(file);
        let mut args = vec!["qr", "--phone", PHONE, "--text", text, "-o", out_path.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let out = run(&args);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let bytes = std::fs::read(&out_path).unwrap();
        let format = if file.ends_with(".png") { "png" } else { "svg" };
        assert_eq!(decode(format, &bytes), wa_link(text), "{file}");
    }
    let out_path = dir.path().join("x.png");
    for (extra, needle) in [
        (vec!["--fg", "#dddddd"], "--fg"),
        (vec!["--ecc", "M", "--label"], "--label"),
        (vec!["--size", "3 miles"], "--size"),
        (vec!["--dpi", "99999", "--size", "2cm"], "--dpi"),
    ] {
        let mut args = vec!["qr", "--phone", PHONE, "-o", out_path.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let out = run(&args);
        assert!(!out.status.success(), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
    }
}

#[test]
fn the_cli_batch_writes_a_zip_and_reports_bad_lines_but_keeps_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("codes.csv");
    std::fs::write(&csv_path, BATCH_CSV).unwrap();
    let zip_path = dir.path().join("out.zip");
    let out = cornetta_tests::cornetta(dir.path(), &["qr", "--batch", csv_path.to_str().unwrap(), "-o", zip_path.to_str().unwrap(), "--ecc", "H", "--label"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bad rows make the exit status non-zero");
    assert!(stderr.contains("codes.csv:3:") && stderr.contains("codes.csv:5:"), "{stderr}");
    check_batch(&read_zip(&std::fs::read(&zip_path).unwrap()));
}

/// The hidden form token and the sign-in cookie of the console's sign-in page.
async fn console_sign_in(server: &Server, http: &reqwest::Client, token: &str) -> String {
    let res = http.get(server.at("/console/sign-in")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let signin = cookie.split(';').next().unwrap().to_owned();
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let res = http
        .post(server.at("/console/sign-in"))
        .header("cookie", &signin)
        .header("origin", &server.url)
        .form(&[("token", token), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).find(|c| c.starts_with("cornetta_console=")).unwrap().to_owned();
    session.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_console_refuses_forms_without_their_token_or_from_another_origin() {
    let server = Server::start().unwrap();
    let http = no_redirects();
    let token = server.token("marketer");
    // Without a session the console sends people to sign in.
    let res = http.get(server.at("/console/campaigns")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/console/sign-in"));
    let session = console_sign_in(&server, &http, &token).await;
    let page = http.get(server.at("/console/campaigns")).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let post = |csrf: String, origin: String| {
        let http = http.clone();
        let session = session.clone();
        let url = server.at("/console/campaigns");
        async move { http.post(url).header("cookie", session).header("origin", origin).form(&[("name", "Poster"), ("csrf", csrf.as_str()), ("tracked", "on")]).send().await.unwrap() }
    };
    assert_eq!(post("wrong".into(), server.url.clone()).await.status(), 403);
    assert_eq!(post(csrf.clone(), "https://evil.example".into()).await.status(), 403);
    let ok = post(csrf, server.url.clone()).await;
    assert_eq!(ok.status(), 303);
    assert!(ok.headers()["location"].to_str().unwrap().starts_with("/console/campaigns/cmp_"));
    // An auditor token cannot sign in.
    let auditor = server.token("auditor");
    let res = http.get(server.at("/console/sign-in")).send().await.unwrap();
    let signin = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let html = res.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let res = http.post(server.at("/console/sign-in")).header("cookie", signin).form(&[("token", auditor.as_str()), ("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("needs a marketer token"));
}

#[tokio::test]
async fn on_postgresql_campaigns_scans_and_console_sessions_work_and_survive_a_restart() {
    let db = cornetta_tests::pg::TestDatabase::create().await.unwrap();
    let mut server = Server::builder().args(["--database-url", db.url.as_str()]).start().unwrap();
    let token = server.token("marketer");
    let c = create_campaign(&server, &token, json!({"name": "PG poster", "text": "Hi {ref}", "expires_at": "2099-01-31"})).await;
    assert_eq!(c["expires_at"], "2099-02-01T00:00:00Z");
    for ua in [IPHONE, ANDROID] {
        assert_eq!(scan(&server, c["short_url"].as_str().unwrap(), ua).await.status(), 302);
    }
    let stats_url = |s: &Server| s.at(&format!("/v1/campaigns/{}/stats", c["id"].as_str().unwrap()));
    wait_for(Duration::from_secs(10), || async {
        let s: Value = client().get(stats_url(&server)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        s["total"] == 2 && s["unsaved"] == 0
    })
    .await
    .unwrap();
    server.restart().unwrap();
    let s: Value = client().get(stats_url(&server)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["by_device"]["ios"], 1);
    assert_eq!(s["by_device"]["android"], 1);
    let list: Value = client().get(server.at("/v1/campaigns")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["campaigns"][0]["id"], c["id"]);
    let http = no_redirects();
    let session = console_sign_in(&server, &http, &token).await;
    let page = http.get(server.at(&format!("/console/campaigns/{}", c["id"].as_str().unwrap()))).header("cookie", &session).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("data-total=\"2\""));
}

#[tokio::test]
async fn on_postgresql_an_edited_tracked_campaign_sends_its_printed_code_to_the_new_number_and_text() {
    let db = cornetta_tests::pg::TestDatabase::create().await.unwrap();
    let server = Server::builder().args(["--database-url", db.url.as_str()]).start().unwrap();
    an_edited_campaign_sends_the_same_printed_code_to_the_new_number_and_text(&server).await;
}

/// PATCH with `If-Match`; the status, the ETag answered and the body.
async fn patch_if(server: &Server, token: &str, id: &str, if_match: reqwest::header::HeaderValue, body: Value) -> (u16, Option<String>, Value) {
    let res = client().patch(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(token).header("if-match", if_match).json(&body).send().await.unwrap();
    let etag = res.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), etag, res.json().await.unwrap_or(Value::Null))
}

/// Two marketers (or two tabs) editing one campaign: an edit made on a version that is no
/// longer current is refused with `If-Match` (and in the console), and concurrent edits of
/// different fields without it all land, none undoing another.
async fn edits_made_on_an_old_version_are_refused_and_concurrent_edits_all_land(server: &Server) {
    let token = server.token("marketer");
    let c = create_campaign(server, &token, json!({"name": "Shop window", "text": "Hi! Window {ref}"})).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let res = client().get(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(&token).send().await.unwrap();
    let first = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(first.starts_with('"') && first.ends_with('"'), "a strong ETag: {first}");
    let value = |tag: &str| reqwest::header::HeaderValue::from_str(tag).unwrap();

    let (status, second, renamed) = patch_if(server, &token, &id, value(&first), json!({"name": "Shop window (spring)"})).await;
    let second = second.expect("an ETag with the edit");
    assert!(status == 200 && second != first, "{status} {second}: {renamed}");
    // A colleague's edit made on the first version is refused, naming the current one.
    let (status, _, stale) = patch_if(server, &token, &id, value(&first), json!({"text": "Old idea {ref}"})).await;
    assert_eq!((status, stale["error"]["code"].as_str()), (412, Some("precondition_failed")), "{stale}");
    assert!(stale["error"]["message"].as_str().unwrap().contains(&second), "{stale}");
    let (status, _, weak) = patch_if(server, &token, &id, value(&format!("W/{second}")), json!({"text": "Weak {ref}"})).await;
    assert_eq!(status, 412, "a weak tag never matches for a change: {weak}");
    let now: Value = client().get(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!((&now["name"], &now["text"]), (&json!("Shop window (spring)"), &json!("Hi! Window {ref}")), "refused edits changed nothing: {now}");
    let (status, _, bad) = patch_if(server, &token, &id, reqwest::header::HeaderValue::from_bytes(b"\"\xff\"").unwrap(), json!({"text": "x"})).await;
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("invalid_if_match")), "{bad}");
    let (status, third, _) = patch_if(server, &token, &id, value(&format!("\"nope\", {second}")), json!({"medium": "window"})).await;
    assert_eq!(status, 200, "a list naming the current version matches");
    let (status, _, any) = patch_if(server, &token, &id, value("*"), json!({"medium": "glass"})).await;
    assert_eq!((status, &any["medium"]), (200, &json!("glass")), "{any}");
    assert_ne!(third, Some(second.clone()));

    // Without If-Match, edits of different fields at once all land (each is made on the
    // latest version), round after round.
    for round in 0..6 {
        let bodies = [
            json!({"name": format!("Window {round}")}),
            json!({"text": format!("Round {round} {{ref}}")}),
            json!({"source": format!("round-{round}")}),
            json!({"medium": format!("pane-{round}")}),
        ];
        let edits: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let (url, token) = (server.at(&format!("/v1/campaigns/{id}")), token.clone());
                tokio::spawn(async move { client().patch(url).bearer_auth(token).json(&body).send().await.unwrap().status().as_u16() })
            })
            .collect();
        for edit in edits {
            assert_eq!(edit.await.unwrap(), 200);
        }
        let now: Value = client().get(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let expected = (json!(format!("Window {round}")), json!(format!("Round {round} {{ref}}")), json!(format!("round-{round}")), json!(format!("pane-{round}")));
        assert_eq!((now["name"].clone(), now["text"].clone(), now["source"].clone(), now["medium"].clone()), expected, "round {round}: no edit undid another");
    }

    // The console's form carries the version it was shown with: a form left open in a tab
    // does not undo a change saved since.
    let http = no_redirects();
    let session = console_sign_in(server, &http, &token).await;
    let page_url = server.at(&format!("/console/campaigns/{id}"));
    let html = http.get(&page_url).header("cookie", &session).send().await.unwrap().text().await.unwrap();
    let field = |html: &str, name: &str| html.split(&format!("name=\"{name}\" value=\"")).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let (csrf, shown) = (field(&html, "csrf"), field(&html, "version"));
    let res = client().get(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(shown, res.headers()["etag"].to_str().unwrap().replace('"', "&#34;"), "the form holds the current version");
    let (status, _, _) = patch_if(server, &token, &id, value("*"), json!({"text": "Saved meanwhile {ref}"})).await;
    assert_eq!(status, 200);
    let save = |version: String| {
        let (http, session, url, origin, csrf) = (http.clone(), session.clone(), page_url.clone(), server.url.clone(), csrf.clone());
        async move {
            let version = version.replace("&#34;", "\"");
            let form = [("csrf", csrf.as_str()), ("version", version.as_str()), ("name", "From the old tab"), ("text", "Old tab {ref}")];
            http.post(url).header("cookie", session).header("origin", origin).form(&form).send().await.unwrap()
        }
    };
    let refused = save(shown).await;
    assert_eq!(refused.status(), 412);
    let html = refused.text().await.unwrap();
    assert!(html.contains(r#"data-testid="form-error">This campaign was changed"#), "{html}");
    assert!(html.contains("<dd>Saved meanwhile {ref}</dd>") && html.contains("Old tab {ref}</textarea>"), "the latest version, and the form as typed: {html}");
    let saved = save(field(&html, "version")).await;
    assert_eq!(saved.status(), 303, "saved on the version the page now shows");
    let now: Value = client().get(server.at(&format!("/v1/campaigns/{id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!((&now["name"], &now["text"]), (&json!("From the old tab"), &json!("Old tab {ref}")), "{now}");
}

#[tokio::test]
async fn edits_made_on_an_old_version_are_refused_and_concurrent_edits_all_land_on_sqlite() {
    let server = Server::start().unwrap();
    edits_made_on_an_old_version_are_refused_and_concurrent_edits_all_land(&server).await;
}

#[tokio::test]
async fn edits_made_on_an_old_version_are_refused_and_concurrent_edits_all_land_on_postgresql() {
    let db = cornetta_tests::pg::TestDatabase::create().await.unwrap();
    let server = Server::builder().args(["--database-url", db.url.as_str()]).start().unwrap();
    edits_made_on_an_old_version_are_refused_and_concurrent_edits_all_land(&server).await;
}
