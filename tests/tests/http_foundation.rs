//! The foundation over HTTP against the real `cornetta serve` process and a real SQLite
//! file: links, QR codes, consents from the widget's origin, the auditor's query, limits
//! and errors, and durability across a crash.

use cornetta_tests::{Server, client};
use serde_json::{Value, json};

const ORIGIN: &str = "http://127.0.0.1:8081";

async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.expect("the server answers");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.expect("a JSON body");
    (status, body)
}

fn enc(s: &str) -> String {
    cornetta_shared::link::encode_text(s)
}

#[tokio::test]
async fn link_turns_every_accepted_phone_format_into_one_e164() {
    let server = Server::start().unwrap();
    let cases = [
        ("+39 333 123 4567", None),
        ("+39 333-123-4567", None),
        ("0039 333 1234567", Some("IT")),
        ("333 123 4567", Some("IT")),
        ("333 123 4567", Some("it")),
    ];
    for (phone, region) in cases {
        let mut url = server.at(&format!("/v1/link?phone={}", enc(phone)));
        if let Some(r) = region {
            url.push_str(&format!("&region={r}"));
        }
        let (status, body) = get_json(&url).await;
        assert_eq!(status, 200, "{phone} {region:?}: {body}");
        assert_eq!(body, json!({"url": "https://wa.me/393331234567", "phone": "+393331234567"}), "{phone}");
    }
    let (status, body) = get_json(&server.at(&format!("/v1/link?phone={}", enc("+1 (650) 253-0000")))).await;
    assert_eq!((status, body["phone"].as_str()), (200, Some("+16502530000")));
}

#[tokio::test]
async fn link_refuses_bad_numbers_with_422_and_says_what_is_wrong() {
    let server = Server::start().unwrap();
    let cases = [
        ("", "phone number is empty"),
        ("+39 12", "too short for region IT"),
        ("+999 123 456 789", "unknown country code"),
        ("----", "has no digits"),
        ("333 123 4567", "has no country code"),
        ("+39 333 abc 4567", "contains letters"),
        ("+1 212 000 0000", "not a valid number for region US"),
    ];
    for (phone, expected) in cases {
        let (status, body) = get_json(&server.at(&format!("/v1/link?phone={}", enc(phone)))).await;
        assert_eq!(status, 422, "{phone:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_phone", "{phone:?}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{phone:?}: {message}");
    }
    let (status, body) = get_json(&server.at("/v1/link")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("missing_phone")));
    let (status, body) = get_json(&server.at("/v1/link?phone=333&region=XX1")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_region")));
}

#[tokio::test]
async fn link_text_survives_encoding_byte_for_byte() {
    let server = Server::start().unwrap();
    let texts = [
        "Hi! I have a question about #42 & more: 100% sure? a=b+c",
        "line one\nline two\r\nline three",
        "ciao 👋🏽 — ¿qué tal? مرحبا بك",
        "שלום ‏עולם",
        "%41 is not A",
    ];
    for text in texts {
        let (status, body) = get_json(&server.at(&format!("/v1/link?phone=%2B393331234567&text={}", enc(text)))).await;
        assert_eq!(status, 200, "{text:?}: {body}");
        let url = body["url"].as_str().unwrap();
        assert!(url.starts_with("https://wa.me/393331234567?text="), "{url}");
        let query = url.split_once("?text=").unwrap().1;
        assert!(query.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)), "{url}");
        assert_eq!(cornetta_shared::link::decode_text(url).as_deref(), Some(text));
    }
}

#[tokio::test]
async fn link_without_text_has_no_query_string_and_overlong_text_is_refused() {
    let server = Server::start().unwrap();
    let (_, body) = get_json(&server.at("/v1/link?phone=%2B393331234567&text=")).await;
    assert_eq!(body["url"], "https://wa.me/393331234567");
    let long = "a".repeat(cornetta_shared::link::MAX_TEXT_CHARS + 1);
    let (status, body) = get_json(&server.at(&format!("/v1/link?phone=%2B393331234567&text={long}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("text_too_long")), "{body}");
    let emoji = enc(&"😀".repeat(1000));
    let (status, body) = get_json(&server.at(&format!("/v1/link?phone=%2B393331234567&text={emoji}"))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("link_too_long")), "{body}");
}

fn decode_png(bytes: &[u8]) -> String {
    let image = image::load_from_memory(bytes).expect("a PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the image");
    grids[0].decode().expect("the code decodes").1
}

#[tokio::test]
async fn qr_png_decodes_back_to_exactly_the_link() {
    let server = Server::start().unwrap();
    let text = "Hi! #42 & 100% 👋\nthanks";
    for ecc in ["L", "M", "Q", "H"] {
        let url = server.at(&format!("/v1/qr?phone=%2B393331234567&text={}&format=png&size=400&ecc={ecc}", enc(text)));
        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/png");
        assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age"));
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && !etag.starts_with("W/"), "a strong ETag: {etag}");
        let bytes = response.bytes().await.unwrap();
        let decoded = decode_png(&bytes);
        let expected = cornetta_shared::WaLink::new(cornetta_shared::PhoneNumber::from_e164("+393331234567").unwrap(), Some(text)).unwrap();
        assert_eq!(decoded, expected.url(), "ecc {ecc}");
        let info = image::load_from_memory(&bytes).unwrap();
        assert_eq!((info.width(), info.height()), (400, 400));
        let again = client().get(&url).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
    }
}

#[tokio::test]
async fn qr_svg_is_one_compact_path() {
    let server = Server::start().unwrap();
    let response = client().get(server.at("/v1/qr?phone=%2B393331234567&text=Hello&format=svg&size=300&margin=2")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    let svg = response.text().await.unwrap();
    assert_eq!(svg.matches("<path").count(), 1, "{svg}");
    assert!(svg.contains("width=\"300\""));
    assert!(svg.len() < 8_000, "{} bytes", svg.len());
}

#[tokio::test]
async fn qr_refuses_bad_parameters_naming_them() {
    let server = Server::start().unwrap();
    let cases = [
        ("format=gif", "format must be svg or png"),
        ("size=10", "size must be 64 to 4096 pixels, not 10"),
        ("size=big", "size must be pixels (64-4096"),
        ("margin=99", "margin must be a whole number from 0 to 16"),
        ("ecc=Z", "ecc must be one of L, M, Q, H"),
        ("colour=red", "unknown field"),
    ];
    for (param, expected) in cases {
        let (status, body) = get_json(&server.at(&format!("/v1/qr?phone=%2B393331234567&{param}"))).await;
        assert_eq!(status, 422, "{param}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(expected), "{param}: {body}");
    }
}

/// The default site's key and its English notice id.
async fn site_and_notice(server: &Server) -> (String, String, String) {
    let key = server.site_key.clone().expect("a fresh server creates the default site");
    let response = client().get(server.at(&format!("/v1/sites/{key}/widget?lang=en"))).header("origin", ORIGIN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let config: Value = response.json().await.unwrap();
    let notice = config["notice"]["id"].as_str().unwrap().to_owned();
    let hash = config["notice"]["sha256"].as_str().unwrap().to_owned();
    (key, notice, hash)
}

async fn post_consent(server: &Server, origin: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = client().post(server.at("/v1/consents")).json(body);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn list_consents(server: &Server, token: &str, query: &str) -> (u16, Value) {
    let response = client().get(server.at(&format!("/v1/consents?{query}"))).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_consent_from_the_sites_origin_is_stored_and_the_auditor_sees_it() {
    let server = Server::start().unwrap();
    let (site, notice, hash) = site_and_notice(&server).await;
    let body = json!({
        "site": site, "notice": notice, "purposes": ["utility"],
        "reference": "K7QXM-2PA9R", "page_url": "http://127.0.0.1:8081/shoes?size=42",
        "text": "Hi! I have a question about Shoes {ref}"
    });
    let (status, created) = post_consent(&server, Some(ORIGIN), &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["reference"], "K7QXM-2PA9R");
    assert_eq!(created["notice_sha256"], hash);
    assert_eq!(created["link"], format!("https://wa.me/393331234567?text={}", enc("Hi! I have a question about Shoes K7QXM-2PA9R")));
    assert!(created["id"].as_str().unwrap().starts_with("evt_"));

    let auditor = server.token("auditor");
    let (status, page) = list_consents(&server, &auditor, "reference=K7QXM-2PA9R").await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["id"], created["id"]);
    assert_eq!(event["action"], "granted");
    assert_eq!(event["method"], "widget");
    assert_eq!(event["purposes"], json!(["utility"]));
    assert_eq!(event["notice_sha256"], hash);
    assert!(event["notice_text"].as_str().unwrap().contains("I agree that Acme Shop may send me order updates on WhatsApp"));
    assert_eq!(event["page_url"], "http://127.0.0.1:8081/shoes?size=42");
    assert_eq!(event["ip"], "127.0.0.0/24");
    assert!(event["user_agent"].is_string());
    assert_eq!(event["recorded_at"], created["recorded_at"]);
    assert_eq!(event["seq"], 0);

    // The notice hash is the SHA-256 of the text the auditor is shown.
    let text = event["notice_text"].as_str().unwrap();
    assert_eq!(cornetta_server::notice::sha256_hex(text), hash);

    // Time-range queries include it; a range before it does not.
    let (_, page) = list_consents(&server, &auditor, "from=2020-01-01T00:00:00Z&to=2999-01-01T00:00:00Z").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    let (_, page) = list_consents(&server, &auditor, "from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z").await;
    assert!(page["events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_auditor_api_needs_an_auditor_token() {
    let server = Server::start().unwrap();
    let response = client().get(server.at("/v1/consents")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = list_consents(&server, "crn_notarealtoken", "").await;
    assert_eq!(status, 401);
    let marketer = server.token("marketer");
    let (status, body) = list_consents(&server, &marketer, "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")));
    let admin = server.token("admin");
    assert_eq!(list_consents(&server, &admin, "").await.0, 200);

    // A revoked token stops working at once.
    let auditor = server.token("auditor");
    assert_eq!(list_consents(&server, &auditor, "").await.0, 200);
    let listed = server.cli(&["token", "list"]);
    let listing = String::from_utf8_lossy(&listed.stdout);
    let id = listing.lines().rfind(|l| l.contains("auditor")).unwrap().split_whitespace().next().unwrap().to_owned();
    assert!(server.cli(&["token", "revoke", &id]).status.success());
    assert_eq!(list_consents(&server, &auditor, "").await.0, 401);
}

#[tokio::test]
async fn consents_from_other_origins_or_without_one_are_refused_and_nothing_is_stored() {
    let server = Server::start().unwrap();
    let (site, notice, _) = site_and_notice(&server).await;
    let body = json!({"site": site, "notice": notice, "purposes": ["utility"]});
    let (status, error) = post_consent(&server, Some("https://evil.example"), &body).await;
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("origin_not_allowed")), "{error}");
    let (status, error) = post_consent(&server, None, &body).await;
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("origin_missing")), "{error}");
    // An Origin that is not ASCII is still an origin, and not an allowed one.
    let response = client()
        .post(server.at("/v1/consents"))
        .header("origin", reqwest::header::HeaderValue::from_bytes(b"http://caf\xc3\xa9.example").unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "origin_not_allowed", "{error}");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("http://café.example")), "{error}");
    let auditor = server.token("auditor");
    let (_, page) = list_consents(&server, &auditor, "").await;
    assert!(page["events"].as_array().unwrap().is_empty(), "{page}");

    // The browser's preflight from the page gets CORS headers for the real request.
    let preflight = client()
        .request(reqwest::Method::OPTIONS, server.at("/v1/consents"))
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], ORIGIN);
}

#[tokio::test]
async fn bad_consent_bodies_get_json_errors_and_store_nothing() {
    let server = Server::start().unwrap();
    let (site, notice, _) = site_and_notice(&server).await;
    let good = json!({"site": site, "notice": notice, "purposes": ["utility"]});
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body.to_string()
    };
    let huge = json!({"site": site, "notice": notice, "purposes": ["utility"], "page_url": format!("https://x/{}", "a".repeat(20_000))}).to_string();
    let cases: Vec<(String, u16, &str)> = vec![
        ("{\"site\": ".into(), 400, "malformed_json"),
        ("[]".into(), 422, "invalid_body"),
        (with("purposes", json!("utility")), 422, "invalid_body"),
        (with("purposes", json!(["promo"])), 422, "invalid_body"),
        (with("purposes", json!([])), 422, "no_purpose"),
        (with("purposes", json!(["utility", "utility"])), 422, "duplicate_purpose"),
        (with("purposes", json!(["support"])), 422, "purpose_not_in_notice"),
        (with("reference", json!("not-a-ref")), 422, "invalid_body"),
        (with("reference", json!(12)), 422, "invalid_body"),
        (with("notice", json!("ntc_00000000000000000000000000000000")), 422, "unknown_notice"),
        (with("site", json!("pk_000000000000000000000000")), 404, "not_found"),
        (with("page_url", json!("javascript:alert(1)")), 422, "invalid_page_url"),
        (with("phone", json!("+39 12")), 422, "invalid_phone"),
        (with("surprise", json!(true)), 422, "invalid_body"),
        (huge, 413, "payload_too_large"),
    ];
    for (body, status, code) in cases {
        let response = client()
            .post(server.at("/v1/consents"))
            .header("origin", ORIGIN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{}", &body[..body.len().min(120)]);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{}: {error}", &body[..body.len().min(120)]);
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let response = client().post(server.at("/v1/consents")).header("origin", ORIGIN).body(good.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 415, "no content type");
    // A compressed body is refused whole (RFC 7694), not read as its compressed bytes.
    for encoding in ["gzip", "br, gzip"] {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gzip, good.to_string().as_bytes()).unwrap();
        let response = client()
            .post(server.at("/v1/consents"))
            .header("origin", ORIGIN)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(gzip.finish().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415, "{encoding}");
        assert_eq!(response.headers().get("accept-encoding").and_then(|v| v.to_str().ok()), Some("identity"));
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unsupported_media_type", "{error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("Content-Encoding")), "{error}");
    }
    let auditor = server.token("auditor");
    let (_, page) = list_consents(&server, &auditor, "").await;
    assert!(page["events"].as_array().unwrap().is_empty(), "nothing stored: {page}");
}

#[tokio::test]
async fn a_reference_cannot_be_used_twice() {
    let server = Server::start().unwrap();
    let (site, notice, _) = site_and_notice(&server).await;
    let body = json!({"site": site, "notice": notice, "purposes": ["utility"], "reference": "K7QXM-2PA9R"});
    assert_eq!(post_consent(&server, Some(ORIGIN), &body).await.0, 201);
    let (status, error) = post_consent(&server, Some(ORIGIN), &body).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("reference_in_use")), "{error}");
}

#[tokio::test]
async fn an_acknowledged_consent_survives_a_crash() {
    let mut server = Server::start().unwrap();
    let (site, notice, _) = site_and_notice(&server).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let body = json!({"site": site, "notice": notice, "purposes": ["utility", "marketing"], "page_url": format!("http://127.0.0.1:8081/p{i}")});
        let (status, created) = post_consent(&server, Some(ORIGIN), &body).await;
        assert_eq!(status, 201);
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    server.kill();
    server.restart().unwrap();
    let auditor = server.token("auditor");
    let (_, page) = list_consents(&server, &auditor, "limit=100").await;
    let stored: Vec<&str> = page["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(stored, ids);
    let seqs: Vec<u64> = page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn auditor_pages_follow_the_cursor_in_a_stable_order() {
    let server = Server::start().unwrap();
    let (site, notice, _) = site_and_notice(&server).await;
    for _ in 0..7 {
        let body = json!({"site": site, "notice": notice, "purposes": ["utility"]});
        assert_eq!(post_consent(&server, Some(ORIGIN), &body).await.0, 201);
    }
    let auditor = server.token("auditor");
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = list_consents(&server, &auditor, &format!("limit=3{cursor}")).await;
        assert_eq!(status, 200);
        seen.extend(page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).collect::<Vec<_>>());
    let (status, body) = list_consents(&server, &auditor, "limit=0").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_parameter")));
    let (status, body) = list_consents(&server, &auditor, "cursor=garbage").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_cursor")));
    let (status, body) = list_consents(&server, &auditor, "from=yesterday").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_time")));
}

#[tokio::test]
async fn a_visitor_withdraws_with_the_reference_and_an_auditor_with_a_reason() {
    let server = Server::start().unwrap();
    let (site, notice, _) = site_and_notice(&server).await;
    let body = json!({"site": site, "notice": notice, "purposes": ["utility", "marketing"], "reference": "ABCDE-FGHJK"});
    assert_eq!(post_consent(&server, Some(ORIGIN), &body).await.0, 201);
    let response = client()
        .post(server.at("/v1/consents/ABCDE-FGHJK/withdraw"))
        .header("origin", ORIGIN)
        .json(&json!({"site": site, "purposes": ["marketing"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let withdrawn: Value = response.json().await.unwrap();
    assert_eq!((withdrawn["action"].as_str(), withdrawn["purposes"].clone()), (Some("withdrawn"), json!(["marketing"])));
    let auditor = server.token("auditor");
    let response = client()
        .post(server.at("/v1/consents/ABCDE-FGHJK/withdraw"))
        .bearer_auth(&auditor)
        .json(&json!({"site": site, "reason": "asked by phone on 3 March"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, page) = list_consents(&server, &auditor, "reference=ABCDE-FGHJK").await;
    let events = page["events"].as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["granted", "withdrawn", "withdrawn"]);
    assert_eq!(events[2]["reason"], "asked by phone on 3 March");
    assert_eq!(events[2]["method"], "admin");
    let response = client()
        .post(server.at("/v1/consents/ZZZZZ-ZZZZZ/withdraw"))
        .header("origin", ORIGIN)
        .json(&json!({"site": site}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn public_writes_past_the_rate_limit_get_429_with_retry_after() {
    let server = Server::builder().args(["--public-writes-per-minute", "3"]).start().unwrap();
    let (site, notice, _) = site_and_notice(&server).await;
    let body = json!({"site": site, "notice": notice, "purposes": ["utility"]});
    for _ in 0..3 {
        assert_eq!(post_consent(&server, Some(ORIGIN), &body).await.0, 201);
    }
    let response = client().post(server.at("/v1/consents")).header("origin", ORIGIN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn unknown_routes_and_health_answer_json() {
    let server = Server::start().unwrap();
    let (status, body) = get_json(&server.at("/nope")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, body) = get_json(&server.at("/healthz")).await;
    assert_eq!((status, body["status"].as_str(), body["store"].as_str()), (200, Some("ok"), Some("sqlite")));
    // A known route asked with a method it does not take: 405 in our error shape, the
    // methods it takes in `Allow`.
    let response = client().patch(server.at("/v1/consents")).send().await.expect("the server answers");
    assert_eq!(response.status(), 405);
    let allow = response.headers().get("allow").and_then(|a| a.to_str().ok()).unwrap_or_default().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow: {allow}");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Allow")), "{body}");
}

/// A path segment that is not UTF-8 once percent-decoded gets our JSON 400 naming the
/// part, on public and token routes alike (axum's own rejection is plain text).
#[tokio::test]
async fn path_segments_that_are_not_utf8_get_a_json_400_naming_the_part() {
    let server = Server::start().unwrap();
    let auditor = server.token("auditor");
    let admin = server.token("admin");
    let cases = [
        ("GET", "/v1/sites/%FF%FE/widget", None, "`key`"),
        ("GET", "/widget/%FF", None, "`file`"),
        ("POST", "/v1/consents/%FF%FE/withdraw", None, "`reference`"),
        ("GET", "/v1/consents/%FF/receipt", Some(&auditor), "`id`"),
        ("GET", "/v1/subjects/%FF/status", Some(&auditor), "`phone`"),
        ("DELETE", "/v1/whatsapp/numbers/%C3%28", Some(&admin), "`phone_number_id`"),
    ];
    for (method, path, token, part) in cases {
        let mut request = client().request(method.parse().unwrap(), server.at(path)).header("Origin", ORIGIN);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        assert_eq!(response.status(), 400, "{method} {path}");
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        assert_eq!(body["error"]["code"], "invalid_path", "{method} {path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(part) && message.contains("UTF-8"), "{method} {path}: {message}");
    }
}

/// A query value that is not UTF-8 once percent-decoded is refused naming the parameter,
/// not turned into U+FFFD in the link.
#[tokio::test]
async fn query_values_that_are_not_utf8_are_refused_naming_the_parameter() {
    let server = Server::start().unwrap();
    let (status, body) = get_json(&server.at("/v1/link?phone=%2B393331234567&text=Ciao%FF")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_query")), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.starts_with("text ")), "{body}");
    // Valid percent-encoded UTF-8 still goes through byte for byte.
    let (status, body) = get_json(&server.at("/v1/link?phone=%2B393331234567&text=Caf%C3%A9")).await;
    assert_eq!((status, body["url"].as_str()), (200, Some("https://wa.me/393331234567?text=Caf%C3%A9")), "{body}");
}

#[test]
fn cornetta_qr_writes_png_and_svg_files_offline() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("code.png");
    let out = cornetta_tests::cornetta(dir.path(), &["qr", "--phone", "+39 333 123 4567", "--text", "Ciao #1", "-o", png.to_str().unwrap(), "--size", "300"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(decode_png(&std::fs::read(&png).unwrap()), "https://wa.me/393331234567?text=Ciao%20%231");
    let svg = dir.path().join("code.svg");
    let out = cornetta_tests::cornetta(dir.path(), &["qr", "--phone", "+39 333 123 4567", "-o", svg.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let cases: [(&[&str], &str); 4] = [
        (&["qr", "--phone", "+39 12", "-o", "x.png"], "too short for region IT"),
        (&["qr", "--phone", "+393331234567", "-o", "x.gif"], "must end in .png or .svg"),
        (&["qr", "--phone", "+393331234567", "-o", "x.png", "--ecc", "X"], "ecc must be one of L, M, Q, H"),
        (&["qr", "--phone", "+393331234567", "-o", "x.png", "--size", "5"], "size must be 64 to 4096 pixels, not 5"),
    ];
    for (args, expected) in cases {
        let out = cornetta_tests::cornetta(dir.path(), args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_help_documents_every_flag_and_its_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = cornetta_tests::cornetta(dir.path(), &["serve", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [("--addr", "CORNETTA_ADDR"), ("--database-url", "CORNETTA_DATABASE_URL"), ("--data-dir", "CORNETTA_DATA_DIR")] {
        assert!(help.contains(flag) && help.contains(env), "{flag}/{env} missing from:\n{help}");
    }
}

#[tokio::test]
async fn the_first_start_creates_the_database_and_a_default_site_once() {
    let mut server = Server::start().unwrap();
    assert!(server.data_dir.join("cornetta.db").exists());
    assert!(server.site_key.as_deref().is_some_and(|k| k.starts_with("pk_")));
    server.restart().unwrap();
    assert!(server.site_key.is_none(), "a second start keeps the existing site");
    let listed = server.cli(&["site", "list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 1);
}

#[tokio::test]
async fn nul_characters_get_a_422_and_store_nothing() {
    let server = Server::start().unwrap();
    cornetta_tests::refusals::nul_characters_are_refused_and_store_nothing(&server).await;
}

#[tokio::test]
async fn an_admin_manages_a_site_over_the_api_and_the_auditor_reads_every_notice_version() {
    let server = Server::start().unwrap();
    cornetta_tests::site_admin::an_admin_manages_a_site_and_the_auditor_reads_its_notice_history(&server).await;
}

/// The benches' lean client (`bench::raw_http`, which times the status lookups) against the
/// real server: several answers on one kept-alive connection, each status and body exactly
/// as reqwest reads them, an error answer too.
#[tokio::test]
async fn the_bench_client_reads_each_answer_exactly_on_one_kept_alive_connection() {
    use cornetta_tests::bench::raw_http::Connection;
    let server = Server::start().unwrap();
    let mut connection = Connection::open(&server.at("")).await.unwrap();
    for path in ["/healthz", "/v1/link?phone=%2B393331234567&text=Hi%21", "/no-such-route", "/healthz"] {
        let ours = connection.get(path, "crn_unused").await.unwrap();
        let theirs = client().get(server.at(path)).bearer_auth("crn_unused").send().await.unwrap();
        assert_eq!(ours.status, theirs.status().as_u16(), "{path}");
        let (ours, theirs): (Value, Value) = (serde_json::from_slice(&ours.body).unwrap(), theirs.json().await.unwrap());
        // /healthz's answer is the same every time; the others are the same for both.
        assert_eq!(ours, theirs, "{path}");
    }
    let answer = connection.get("/no-such-route", "crn_unused").await.unwrap();
    assert_eq!(answer.status, 404);
    assert_eq!(serde_json::from_slice::<Value>(&answer.body).unwrap()["error"]["code"], "not_found");
}
