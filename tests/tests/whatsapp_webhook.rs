//! The WhatsApp Cloud API webhook end to end: the real `cornetta serve` process on a real
//! SQLite file, configured with the CLI, fed the fixtures in `tests/fixtures/whatsapp`
//! (written from Meta's documented payloads) signed as Meta signs them, and checked through
//! the auditor API and the stored log.

use std::time::Duration;

use cornetta_tests::pg::TestDatabase;
use cornetta_tests::{Builder, Server, client, repo_root, wait_for};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SECRET: &str = "test-app-secret-1";
const OTHER_SECRET: &str = "test-app-secret-2";
const VERIFY_TOKEN: &str = "cornetta-verify-7f3a";
/// The business number's id in the fixtures (Meta's example value).
const PNID: &str = "106540352242922";
const PNID_2: &str = "106540352242923";
const ORIGIN: &str = "http://127.0.0.1:8081";
/// The sender in the fixtures (Meta's example user), in E.164.
const SENDER: &str = "+16505551234";
const REF: &str = "K7QXM-2PA9R";
/// 1749416383, the fixtures' `timestamp`.
const FIXTURE_SENT_AT: &str = "2025-06-08T20:59:43Z";

fn fixture(name: &str) -> Vec<u8> {
    let path = repo_root().join("tests/fixtures/whatsapp").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `X-Hub-Signature-256` as Meta computes it: HMAC-SHA256 of the bytes, lower-case hex.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A server with the default site, one Meta app and the fixtures' number mapped to it.
struct Env {
    server: Server,
    site: String,
    auditor: String,
    admin: String,
    http: reqwest::Client,
}

impl Env {
    /// On a fresh SQLite file.
    async fn start() -> Env {
        Self::start_with(Server::builder()).await
    }

    async fn start_with(builder: Builder) -> Env {
        let server = builder.start().expect("the server starts");
        let site = server.site_key.clone().expect("a fresh server creates the default site");
        let env = Env { auditor: server.token("auditor"), admin: server.token("admin"), server, site, http: client() };
        env.add_app(SECRET);
        let site = env.site.clone();
        env.cli_ok(&["whatsapp", "number", "add", "--site", &site, "--phone-number-id", PNID, "--phone", "+39 333 123 4567"]);
        env
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        self.server.cli(args)
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "cornetta {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Adds a Meta app through the CLI (the secret in a file, as documented); returns its id.
    fn add_app(&self, secret: &str) -> String {
        let file = self.server.data_dir.join(format!("{secret}.txt"));
        std::fs::write(&file, format!("{secret}\n")).unwrap();
        let id = self.cli_ok(&["whatsapp", "app", "add", "--verify-token", VERIFY_TOKEN, "--app-secret-file", file.to_str().unwrap()]);
        assert!(id.starts_with("waa_"), "{id}");
        id
    }

    /// Records a widget grant with a chosen reference (optionally with the number known).
    async fn grant(&self, site: &str, reference: &str, purposes: &[&str], phone: Option<&str>) -> Value {
        let config: Value = self
            .http
            .get(self.server.at(&format!("/v1/sites/{site}/widget?lang=en")))
            .header("Origin", ORIGIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let notice = config["notice"]["id"].as_str().expect("the site has an English notice").to_owned();
        let mut body = json!({ "site": site, "notice": notice, "purposes": purposes, "reference": reference, "page_url": "https://shop.example/shoes" });
        if let Some(phone) = phone {
            body["phone"] = json!(phone);
        }
        let response = self.http.post(self.server.at("/v1/consents")).header("Origin", ORIGIN).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "grant: {}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    async fn deliver(&self, body: &[u8], signature: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.post(self.server.at("/v1/webhooks/whatsapp")).header("Content-Type", "application/json").body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Delivers a body signed with the app's secret, as Meta does; expects 200.
    async fn deliver_ok(&self, body: &[u8]) -> Value {
        let (status, answer) = self.deliver(body, Some(&sign(SECRET, body))).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    async fn events(&self, query: &str) -> Vec<Value> {
        let response = self.http.get(self.server.at(&format!("/v1/consents?{query}"))).bearer_auth(&self.auditor).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        page["events"].as_array().unwrap().clone()
    }

    async fn all_events(&self) -> Vec<Value> {
        self.events("limit=1000").await
    }

    async fn window(&self, phone: &str, site: &str) -> Value {
        let url = self.server.at(&format!("/v1/subjects/{}/window?site={site}", phone.replace('+', "%2B")));
        let response = self.http.get(url).bearer_auth(&self.auditor).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn get_as(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut request = self.http.get(self.server.at(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.json().await.unwrap_or(Value::Null))
    }

    async fn send_as(&self, method: reqwest::Method, token: Option<&str>, path: &str, body: Value) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.server.at(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.json().await.unwrap_or(Value::Null))
    }

    /// `cornetta ledger verify` (offline, against the database) still passes: every
    /// event's leaf recomputes, each site's log is gap-free, checkpoints verify.
    async fn assert_log_verifies(&self) {
        let signed = self.cli(&["ledger", "checkpoint"]);
        assert!(signed.status.success(), "ledger checkpoint: {}", String::from_utf8_lossy(&signed.stderr));
        let out = self.cli(&["ledger", "verify"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "ledger verify failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(": OK: "), "{stdout}");
    }

    /// No log line carries the sender's number (in any of its spellings).
    fn assert_log_has_no_numbers(&self) {
        let log = self.server.log();
        for spelling in ["16505551234", "393331234567", "16505559999"] {
            assert!(!log.contains(spelling), "the server log contains {spelling}:\n{log}");
        }
    }
}

fn actions(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["action"].as_str().unwrap()).collect()
}

#[test]
fn the_tests_hmac_matches_an_independent_one() {
    // Computed with Python's hmac module over the fixture's bytes (see the fixtures' README).
    assert_eq!(sign(SECRET, &fixture("text_with_reference.json")), "sha256=ca567f933c66d3ff0c75175467d0d558a6e5dba3389aa6d5ed2b1e5c70a3460d");
}

#[tokio::test]
async fn the_verification_handshake_echoes_the_challenge_only_for_a_configured_token() {
    let env = Env::start().await;
    let url = |query: &str| env.server.at(&format!("/v1/webhooks/whatsapp?{query}"));
    let ok = env.http.get(url(&format!("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}"))).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let refused = [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong".to_owned(),
        format!("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}x"),
        format!("hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}"),
        format!("hub.challenge=1158201444&hub.verify_token={VERIFY_TOKEN}"),
        "hub.mode=subscribe&hub.challenge=1158201444".to_owned(),
        String::new(),
    ];
    for query in refused {
        let response = env.http.get(url(&query)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{query}");
        assert!(!response.text().await.unwrap().contains("1158201444"), "{query}");
    }
    let no_challenge = env.http.get(url(&format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"))).send().await.unwrap();
    assert_eq!(no_challenge.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_text_with_a_reference_confirms_the_consent_for_the_senders_number() {
    let env = Env::start().await;
    let granted = env.grant(&env.site, REF, &["utility", "marketing"], None).await;
    let body = fixture("text_with_reference.json");
    let answer = env.deliver_ok(&body).await;
    assert_eq!((answer["recorded"].as_u64(), answer["outcomes"][0].as_str()), (Some(1), Some("confirmed")), "{answer}");

    let events = env.events(&format!("site={}&reference={REF}", env.site)).await;
    assert_eq!(actions(&events), ["granted", "confirmed"]);
    let confirmed = &events[1];
    assert_eq!(confirmed["method"], "whatsapp");
    assert_eq!(confirmed["actor"], "whatsapp");
    assert_eq!(confirmed["phone"], SENDER);
    assert_eq!(confirmed["purposes"], json!(["marketing", "utility"]));
    assert_eq!(confirmed["notice_sha256"], granted["notice_sha256"]);
    let evidence = &confirmed["whatsapp"];
    assert_eq!(evidence["message_id"], "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
    assert_eq!(evidence["sent_at"], FIXTURE_SENT_AT);
    assert_eq!(evidence["phone_number_id"], PNID);
    assert_eq!(evidence["body_sha256"], hex::encode(Sha256::digest(&body)));
    assert_eq!(evidence["text"], "Hi! I have a question about Shoes (ref K7QXM-2PA9R)");

    // The auditor finds the person's whole history by their number.
    let by_phone = env.events(&format!("site={}&phone=%2B16505551234", env.site)).await;
    assert_eq!(actions(&by_phone), ["granted", "confirmed"]);
    let window = env.window(SENDER, &env.site).await;
    let utility = &window["purposes"][0];
    assert_eq!((utility["purpose"].as_str(), utility["consented"].as_bool(), utility["confirmed"].as_bool()), (Some("utility"), Some(true), Some(true)));
    let proof: Vec<&Value> = utility["proof"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(proof, [&events[0]["id"], &events[1]["id"]]);
    assert_eq!(utility["since"], events[1]["recorded_at"], "a widget grant holds from its confirmation");
    assert_eq!(window["purposes"][2]["consented"], false);
    assert_eq!(window["known"], true);
    assert_eq!(window["window"], json!({ "open": false, "last_message_at": FIXTURE_SENT_AT, "open_until": "2025-06-09T20:59:43Z" }));
    env.assert_log_verifies().await;
    env.assert_log_has_no_numbers();
}

#[tokio::test]
async fn a_retry_of_the_same_message_id_records_once() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["utility"], None).await;
    let body = fixture("text_with_reference.json");
    // Meta retries a delivery it saw no 200 for, sometimes while the first is still running.
    let (a, b, c) = tokio::join!(env.deliver_ok(&body), env.deliver_ok(&body), env.deliver_ok(&body));
    let count = |key: &str| [&a, &b, &c].iter().map(|r| r[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!((count("recorded"), count("duplicates")), (1, 2), "{a} {b} {c}");
    let later = env.deliver_ok(&body).await;
    assert_eq!((later["recorded"].as_u64(), later["duplicates"].as_u64()), (Some(0), Some(1)), "{later}");
    assert_eq!(actions(&env.all_events().await), ["granted", "confirmed"]);
    // Another message with the same reference from the same number adds nothing either.
    let batch = env.deliver_ok(&fixture("batch_two_entries.json")).await;
    assert!(batch["outcomes"].as_array().unwrap().contains(&json!("already_confirmed")), "{batch}");
    assert_eq!(actions(&env.all_events().await), ["granted", "confirmed"]);
    env.assert_log_verifies().await;
}

#[tokio::test]
async fn a_reference_binds_only_the_first_number_that_sends_it() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["utility"], None).await;
    assert_eq!(env.deliver_ok(&fixture("text_with_reference.json")).await["outcomes"], json!(["confirmed"]));
    // Someone else sends the same prefilled message (a shared link, a forwarded text).
    let answer = env.deliver_ok(&fixture("text_with_reference_other_sender.json")).await;
    assert_eq!(answer["outcomes"], json!(["reference_taken"]), "{answer}");
    assert_eq!(actions(&env.all_events().await), ["granted", "confirmed"]);
    assert_eq!(env.window("+393331234567", &env.site).await["purposes"][0]["consented"], false);
    // A consent given for a number (a form, the API) is confirmed only from that number.
    env.grant(&env.site, "ABCDE-2345F", &["marketing"], Some("+393331234567")).await;
    let other_ref = String::from_utf8(fixture("text_with_reference.json")).unwrap().replace(REF, "ABCDE-2345F").replace("RgA=", "RwA=");
    let answer = env.deliver_ok(other_ref.as_bytes()).await;
    assert_eq!(answer["outcomes"], json!(["reference_taken"]), "{answer}");
    let events = env.events(&format!("site={}&reference=ABCDE-2345F", env.site)).await;
    assert_eq!(actions(&events), ["granted"]);
    // A message naming no consent of this site, or none at all, records nothing either.
    let unknown = String::from_utf8(fixture("text_with_reference.json")).unwrap().replace(REF, "ZZZZZ-22222").replace("RgA=", "RhA=");
    assert_eq!(env.deliver_ok(unknown.as_bytes()).await["outcomes"], json!(["unknown_reference"]));
    env.assert_log_verifies().await;
    env.assert_log_has_no_numbers();
}

#[tokio::test]
async fn erasing_the_person_unlinks_their_messages_and_the_log_still_verifies() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["utility"], None).await;
    env.deliver_ok(&fixture("text_with_reference.json")).await;
    env.deliver_ok(&fixture("image_message.json")).await;
    let before = env.window(SENDER, &env.site).await;
    assert_eq!((before["known"].as_bool(), before["window"]["last_message_at"].as_str()), (Some(true), Some("2025-06-08T21:08:20Z")));
    env.cli_ok(&["subject", "erase", SENDER, "--site", &env.site]);
    let after = env.window(SENDER, &env.site).await;
    assert_eq!(after["known"], false);
    assert_eq!(after["window"], json!({ "open": false, "last_message_at": null, "open_until": null }));
    // The evidence is unreadable now; the events, and their WhatsApp origin, stay.
    let events = env.events(&format!("site={}&reference={REF}", env.site)).await;
    assert_eq!(actions(&events), ["granted", "confirmed", "erased", "erased"]);
    assert_eq!((events[1]["method"].as_str(), events[1]["phone"].clone(), events[1]["whatsapp"].clone()), (Some("whatsapp"), Value::Null, Value::Null));
    // Meta retrying a message sent before the erasure does not bring it back.
    assert_eq!(env.deliver_ok(&fixture("text_with_reference.json")).await["duplicates"], 1);
    env.assert_log_verifies().await;
}

#[tokio::test]
async fn an_opt_out_withdraws_every_purpose_of_that_number_and_hands_back_the_reply() {
    let env = Env::start().await;
    let reply = "Ok, you will get no more messages from Acme Shop.";
    let shown = env.cli_ok(&["whatsapp", "opt-out", "--site", &env.site, "--reply", reply]);
    assert!(shown.contains("(built-in)") && shown.contains(reply), "{shown}");
    // A consent confirmed on WhatsApp, one given with the number typed in, one of someone else.
    env.grant(&env.site, REF, &["utility", "marketing"], None).await;
    env.deliver_ok(&fixture("text_with_reference.json")).await;
    env.grant(&env.site, "ABCDE-2345F", &["marketing"], Some(SENDER)).await;
    env.grant(&env.site, "ZZZZZ-22222", &["utility"], Some("+393331234567")).await;

    let answer = env.deliver_ok(&fixture("opt_out_stop.json")).await;
    assert_eq!(answer["outcomes"], json!(["withdrawn"]), "{answer}");
    assert_eq!(answer["replies"], json!([{ "phone_number_id": PNID, "text": reply }]));
    let mine = env.events(&format!("site={}&phone=%2B16505551234", env.site)).await;
    let withdrawn: Vec<&Value> = mine.iter().filter(|e| e["action"] == "withdrawn").collect();
    assert_eq!(withdrawn.len(), 2, "{mine:?}");
    for event in &withdrawn {
        assert_eq!((event["method"].as_str(), event["phone"].as_str()), (Some("whatsapp"), Some(SENDER)));
        assert_eq!(event["whatsapp"]["text"], "Stop");
    }
    let mut purposes: Vec<&Value> = withdrawn.iter().flat_map(|e| e["purposes"].as_array().unwrap()).collect();
    purposes.sort_by_key(|p| p.as_str().unwrap().to_owned());
    assert_eq!(purposes, [&json!("marketing"), &json!("marketing"), &json!("utility")]);
    let window = env.window(SENDER, &env.site).await;
    let consented: Vec<bool> = window["purposes"].as_array().unwrap().iter().map(|c| c["consented"].as_bool().unwrap()).collect();
    assert_eq!(consented, [false, false, false, false]);
    let withdrawal_ids: Vec<&Value> = withdrawn.iter().map(|e| &e["id"]).collect();
    for ended in [&window["purposes"][0]["ended_by"]["id"], &window["purposes"][1]["ended_by"]["id"]] {
        assert!(withdrawal_ids.contains(&ended), "{window}");
    }
    // The other person's consent is untouched.
    let theirs = env.events(&format!("site={}&reference=ZZZZZ-22222", env.site)).await;
    assert_eq!(actions(&theirs), ["granted"]);

    // Saying it again withdraws nothing more, but still confirms.
    let again = env.deliver_ok(&fixture("button_stop.json")).await;
    assert_eq!(again["outcomes"], json!(["nothing_to_withdraw"]), "{again}");
    assert_eq!(again["replies"].as_array().unwrap().len(), 1);
    env.assert_log_verifies().await;
    env.assert_log_has_no_numbers();
}

#[tokio::test]
async fn an_accented_opt_out_in_an_escaped_body_and_a_stop_button_are_honoured() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["marketing"], Some(SENDER)).await;
    let answer = env.deliver_ok(&fixture("opt_out_accented.json")).await;
    assert_eq!(answer["outcomes"], json!(["withdrawn"]), "{answer}");
    let events = env.events(&format!("site={}&reference={REF}", env.site)).await;
    assert_eq!(actions(&events), ["granted", "withdrawn"]);
    assert_eq!(events[1]["whatsapp"]["text"], "Désabonner !");
    assert_eq!(answer["replies"], json!([]), "no reply is configured");

    env.grant(&env.site, "ABCDE-2345F", &["utility"], Some(SENDER)).await;
    let tapped = env.deliver_ok(&fixture("button_stop.json")).await;
    assert_eq!(tapped["outcomes"], json!(["withdrawn"]), "{tapped}");
    // A site that replaces the keywords no longer honours the built-in ones.
    env.cli_ok(&["whatsapp", "opt-out", "--site", &env.site, "--keyword", "HALT"]);
    env.grant(&env.site, "ZZZZZ-22222", &["utility"], Some(SENDER)).await;
    let answer = env.deliver_ok(&fixture("opt_out_stop.json")).await;
    assert_eq!(answer["outcomes"], json!(["none"]), "{answer}");
    env.assert_log_verifies().await;
}

#[tokio::test]
async fn a_status_update_an_image_and_an_unknown_type_are_accepted_and_record_nothing_about_consent() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["utility"], None).await;
    let status = env.deliver_ok(&fixture("status_update.json")).await;
    assert_eq!((status["statuses"].as_u64(), status["messages"].as_u64(), status["recorded"].as_u64()), (Some(1), Some(0), Some(0)));
    // Only a text confirms: an image whose caption names the reference does not.
    let image = env.deliver_ok(&fixture("image_message.json")).await;
    assert_eq!(image["outcomes"], json!(["none"]), "{image}");
    let unsupported = env.deliver_ok(&fixture("unsupported_message.json")).await;
    assert_eq!(unsupported["outcomes"], json!(["none"]), "{unsupported}");
    assert_eq!(actions(&env.all_events().await), ["granted"]);
    // They are still messages from the person: the window knows the latest.
    let window = env.window(SENDER, &env.site).await;
    assert_eq!(window["window"]["last_message_at"], "2025-06-08T21:11:40Z");
    env.assert_log_verifies().await;
}

#[tokio::test]
async fn a_batch_with_two_entries_confirms_a_consent_on_each_site() {
    let env = Env::start().await;
    let out = env.cli_ok(&["site", "create", "--business", "Bottega Rossi", "--phone", "+39 02 1234 5678", "--origin", ORIGIN]);
    let second = out.lines().last().unwrap().to_owned();
    env.cli_ok(&["whatsapp", "number", "add", "--site", &second, "--phone-number-id", PNID_2, "--phone", "+390212345678"]);
    env.grant(&env.site, REF, &["utility"], None).await;
    env.grant(&second, "ABCDE-2345F", &["marketing"], None).await;
    // A reference of one site means nothing at the other.
    env.grant(&second, REF, &["utility"], None).await;

    let answer = env.deliver_ok(&fixture("batch_two_entries.json")).await;
    assert_eq!(answer["outcomes"], json!(["confirmed", "confirmed"]), "{answer}");
    let first_site = env.events(&format!("site={}", env.site)).await;
    assert_eq!(actions(&first_site), ["granted", "confirmed"]);
    assert_eq!(first_site[1]["phone"], SENDER);
    let second_site = env.events(&format!("site={second}")).await;
    assert_eq!(actions(&second_site), ["granted", "granted", "confirmed"]);
    assert_eq!((second_site[2]["reference"].as_str(), second_site[2]["phone"].as_str()), (Some("ABCDE-2345F"), Some("+393331234567")));
    env.assert_log_verifies().await;
    env.assert_log_has_no_numbers();
}

#[tokio::test]
async fn a_message_for_an_unknown_phone_number_id_records_nothing() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["utility"], None).await;
    let answer = env.deliver_ok(&fixture("unknown_phone_number_id.json")).await;
    assert_eq!((answer["ignored"].as_u64(), answer["recorded"].as_u64()), (Some(1), Some(0)), "{answer}");
    assert_eq!(actions(&env.all_events().await), ["granted"]);
    assert_eq!(env.window(SENDER, &env.site).await["window"]["last_message_at"], Value::Null);
}

#[tokio::test]
async fn unsigned_tampered_and_foreign_signatures_are_refused_and_record_nothing() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["utility"], None).await;
    let original = fixture("text_with_reference.json");
    let tampered = fixture("text_with_reference.tampered.json");
    assert_eq!(original.len(), tampered.len());
    let good = sign(SECRET, &original);
    let cases: [(&str, &[u8], Option<String>); 6] = [
        ("tampered body, original signature", &tampered, Some(good.clone())),
        ("no signature", &original, None),
        ("another app's secret", &original, Some(sign(OTHER_SECRET, &original))),
        ("upper-case prefix", &original, Some(good.replace("sha256=", "SHA256="))),
        ("sha1", &original, Some(format!("sha1={}", &good[7..47]))),
        ("signature of an empty body", &original, Some(sign(SECRET, b""))),
    ];
    for (what, body, signature) in cases {
        let (status, answer) = env.deliver(body, signature.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthorized", "{what}");
    }
    assert_eq!(actions(&env.all_events().await), ["granted"]);
    // Nothing was recorded for idempotency either: the genuine delivery still confirms.
    assert_eq!(env.deliver_ok(&original).await["outcomes"], json!(["confirmed"]));
    env.assert_log_verifies().await;
}

#[tokio::test]
async fn a_signature_over_the_unescaped_json_is_refused_and_the_raw_bytes_verify() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["utility"], None).await;
    let raw = fixture("text_with_reference_escaped.json");
    assert!(raw.windows(6).any(|w| w == br"\u00f9"), "the fixture keeps Meta's escapes");
    // The same JSON with its escapes decoded: what a server hashing decoded text would check.
    let decoded = String::from_utf8(raw.clone()).unwrap().replace(r"\u00f9", "ù").replace(r"\ud83d\udc5f", "👟").into_bytes();
    assert!(String::from_utf8(decoded.clone()).unwrap().contains("più sulle scarpe 👟"));
    assert_eq!(serde_json::from_slice::<Value>(&decoded).unwrap(), serde_json::from_slice::<Value>(&raw).unwrap());
    let (status, answer) = env.deliver(&raw, Some(&sign(SECRET, &decoded))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(actions(&env.all_events().await), ["granted"]);
    // Signed over the raw bytes, as Meta signs: accepted, and the text is decoded.
    let answer = env.deliver_ok(&raw).await;
    assert_eq!(answer["outcomes"], json!(["confirmed"]), "{answer}");
    let events = env.events(&format!("site={}&reference={REF}", env.site)).await;
    assert_eq!(events[1]["whatsapp"]["text"], "Ciao! Vorrei sapere di più sulle scarpe 👟 (ref K7QXM-2PA9R)");
    env.assert_log_verifies().await;
}

#[tokio::test]
async fn malformed_json_with_a_valid_signature_is_a_400_that_is_logged_and_records_nothing() {
    let env = Env::start().await;
    env.grant(&env.site, REF, &["utility"], None).await;
    for body in [fixture("malformed.json"), b"[]".to_vec(), Vec::new()] {
        let (status, answer) = env.deliver(&body, Some(&sign(SECRET, &body))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["code"], "malformed_notification");
    }
    assert_eq!(actions(&env.all_events().await), ["granted"]);
    wait_for(Duration::from_secs(5), || async { env.server.log().contains("a signed WhatsApp notification is malformed") }).await.unwrap();
    // Other objects and fields, signed, are fine: 200 and ignored.
    let page = br#"{"object":"page","entry":[{"id":"1","time":1,"changes":[{"field":"feed","value":{}}]}]}"#;
    let answer = env.deliver_ok(page).await;
    assert_eq!((answer["messages"].as_u64(), answer["skipped"].as_u64()), (Some(0), Some(1)));
}

#[tokio::test]
async fn several_apps_are_checked_and_a_number_counts_only_for_its_own_app() {
    let env = Env::start().await;
    let other = env.add_app(OTHER_SECRET);
    env.grant(&env.site, REF, &["utility"], None).await;
    let body = fixture("text_with_reference.json");
    // Signed by the second app: the signature holds, but the number belongs to the first.
    let (status, answer) = env.deliver(&body, Some(&sign(OTHER_SECRET, &body))).await;
    assert_eq!((status, answer["ignored"].as_u64()), (StatusCode::OK, Some(1)), "{answer}");
    assert_eq!(actions(&env.all_events().await), ["granted"]);
    // A number of the second app is accepted with its signature.
    let site = env.site.clone();
    env.cli_ok(&["whatsapp", "number", "remove", PNID]);
    let err = env.cli(&["whatsapp", "number", "add", "--site", &site, "--phone-number-id", PNID, "--phone", "+393331234567"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("2 Meta apps are configured"), "{}", String::from_utf8_lossy(&err.stderr));
    env.cli_ok(&["whatsapp", "number", "add", "--site", &site, "--phone-number-id", PNID, "--phone", "+393331234567", "--app", &other]);
    let (status, answer) = env.deliver(&body, Some(&sign(OTHER_SECRET, &body))).await;
    assert_eq!((status, answer["outcomes"].clone()), (StatusCode::OK, json!(["confirmed"])), "{answer}");
    env.assert_log_verifies().await;
}

#[tokio::test]
async fn the_window_is_open_for_24_hours_after_the_persons_last_message() {
    let env = Env::start().await;
    let before = env.window(SENDER, &env.site).await;
    assert_eq!(before["window"], json!({ "open": false, "last_message_at": null, "open_until": null }));
    assert_eq!(before["known"], false);
    let now = jiff::Timestamp::now().as_second();
    let body = String::from_utf8(fixture("text_now.template.json")).unwrap().replace("0000000000", &now.to_string());
    env.deliver_ok(body.as_bytes()).await;
    let window = env.window(SENDER, &env.site).await;
    let sent = jiff::Timestamp::from_second(now).unwrap();
    assert_eq!(window["window"]["open"], true, "{window}");
    assert_eq!(window["window"]["last_message_at"], sent.to_string());
    assert_eq!(window["window"]["open_until"], (sent + jiff::SignedDuration::from_hours(24)).to_string());
    assert_eq!(window["phone"], SENDER);
    // Only auditors and admins may ask; national numbers need a region.
    let path = format!("/v1/subjects/%2B16505551234/window?site={}", env.site);
    assert_eq!(env.get_as(None, &path).await.0, StatusCode::UNAUTHORIZED);
    let marketer = env.server.token("marketer");
    assert_eq!(env.get_as(Some(&marketer), &path).await.0, StatusCode::FORBIDDEN);
    assert_eq!(env.get_as(Some(&env.admin), &path).await.0, StatusCode::OK);
    let bad = [
        (format!("/v1/subjects/333%201234567/window?site={}", env.site), StatusCode::UNPROCESSABLE_ENTITY),
        ("/v1/subjects/%2B16505551234/window".to_owned(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/v1/subjects/%2B16505551234/window?site=pk_nosuchsite0000000000".to_owned(), StatusCode::NOT_FOUND),
        (format!("/v1/subjects/%2B16505551234/window?site={}&extra=1", env.site), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (path, want) in bad {
        let (status, answer) = env.get_as(Some(&env.auditor), &path).await;
        assert_eq!(status, want, "{path}: {answer}");
    }
    env.assert_log_has_no_numbers();
}

#[tokio::test]
async fn the_admin_api_configures_apps_numbers_and_opt_out_settings() {
    let env = Env::start().await;
    let admin = Some(env.admin.as_str());
    let post = reqwest::Method::POST;
    let (status, app) = env.send_as(post.clone(), admin, "/v1/whatsapp/apps", json!({ "name": "Second app", "verify_token": "tok-2", "app_secret": OTHER_SECRET })).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert!(app.get("app_secret").is_none() && app.get("verify_token").is_none());
    let (_, apps) = env.get_as(admin, "/v1/whatsapp/apps").await;
    assert_eq!(apps.as_array().unwrap().len(), 2);
    let app_id = app["id"].as_str().unwrap();
    let number = json!({ "site": env.site, "phone_number_id": PNID_2, "phone": "+39 333 123 4567", "app": app_id });
    let (status, created) = env.send_as(post.clone(), admin, "/v1/whatsapp/numbers", number.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["phone"], "+393331234567");
    let refused = [
        ("/v1/whatsapp/numbers", number.clone(), StatusCode::CONFLICT),
        ("/v1/whatsapp/numbers", json!({ "site": env.site, "phone_number_id": "777", "phone": "+390212345678", "app": app_id }), StatusCode::UNPROCESSABLE_ENTITY),
        ("/v1/whatsapp/numbers", json!({ "site": env.site, "phone_number_id": "12ab", "phone": "+393331234567" }), StatusCode::UNPROCESSABLE_ENTITY),
        ("/v1/whatsapp/numbers", json!({ "site": env.site, "phone_number_id": "777", "phone": "+393331234567" }), StatusCode::UNPROCESSABLE_ENTITY),
        ("/v1/whatsapp/numbers", json!({ "site": env.site, "phone_number_id": "777", "phone": "+393331234567", "app": "waa_nope" }), StatusCode::NOT_FOUND),
        ("/v1/whatsapp/apps", json!({ "verify_token": "", "app_secret": "x" }), StatusCode::UNPROCESSABLE_ENTITY),
        ("/v1/whatsapp/apps", json!({ "verify_token": "t", "app_secret": "x", "colour": "red" }), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (path, body, want) in refused {
        let (status, answer) = env.send_as(post.clone(), admin, path, body.clone()).await;
        assert_eq!(status, want, "{path} {body}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(env.send_as(post.clone(), None, "/v1/whatsapp/apps", json!({})).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(env.send_as(post.clone(), Some(&env.auditor), "/v1/whatsapp/apps", json!({ "verify_token": "t", "app_secret": "x" })).await.0, StatusCode::FORBIDDEN);
    let (status, _) = env.send_as(reqwest::Method::DELETE, admin, &format!("/v1/whatsapp/apps/{app_id}"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "an app still serving a number stays");

    let path = format!("/v1/sites/{}/whatsapp/opt-out", env.site);
    let (_, defaults) = env.get_as(admin, &path).await;
    assert_eq!(defaults["built_in"], true);
    assert!(defaults["keywords"].as_array().unwrap().contains(&json!("ARRET")));
    let put = reqwest::Method::PUT;
    let (status, set) = env.send_as(put.clone(), admin, &path, json!({ "keywords": ["Halt!", "Ferma"], "reply": "Fatto." })).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set, json!({ "site": env.site, "keywords": ["HALT", "FERMA"], "built_in": false, "reply": "Fatto." }));
    for bad in [json!({ "keywords": [] }), json!({ "keywords": ["!!"] }), json!({ "reply": " " }), json!({ "keyword": ["x"] })] {
        assert_eq!(env.send_as(put.clone(), admin, &path, bad.clone()).await.0, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let (_, back) = env.send_as(put, admin, &path, json!({})).await;
    assert_eq!((back["built_in"].as_bool(), back["reply"].clone()), (Some(true), Value::Null));
}

#[tokio::test]
async fn the_app_secret_is_stored_encrypted_and_the_cli_names_each_problem() {
    let env = Env::start().await;
    // The SQLite file and its WAL never hold the secret or the verify token in the clear.
    for file in ["cornetta.db", "cornetta.db-wal"] {
        let bytes = std::fs::read(env.server.data_dir.join(file)).unwrap_or_default();
        for secret in [SECRET, VERIFY_TOKEN] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{file} holds {secret} in the clear");
        }
    }
    let listed = env.cli_ok(&["whatsapp", "app", "list"]);
    assert!(listed.contains("numbers=1") && !listed.contains(SECRET), "{listed}");
    let site = env.site.clone();
    let missing = env.server.data_dir.join("no-such-file");
    let cases: [(Vec<&str>, &str); 6] = [
        (vec!["whatsapp", "app", "add", "--verify-token", "t", "--app-secret-file", missing.to_str().unwrap()], "cannot read it"),
        (vec!["whatsapp", "app", "add", "--verify-token", "has space", "--app-secret-file", missing.to_str().unwrap()], "--verify-token"),
        (vec!["whatsapp", "number", "add", "--site", &site, "--phone-number-id", "555", "--phone", "+390212345678"], "is not a number of site"),
        (vec!["whatsapp", "number", "add", "--site", "pk_nosuchsite0000000000", "--phone-number-id", "555", "--phone", "+393331234567"], "cornetta site list"),
        (vec!["whatsapp", "number", "add", "--site", &site, "--phone-number-id", PNID, "--phone", "+393331234567"], "already mapped"),
        (vec!["whatsapp", "opt-out", "--site", &site, "--remove-keyword", "x", "--keyword", "!!"], "--keyword"),
    ];
    for (args, want) in cases {
        let out = env.cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// The webhook's story on PostgreSQL: confirm, concurrent retries, opt-out, a second site,
/// the window, then `ledger verify`.
#[tokio::test]
async fn on_postgresql_the_webhook_confirms_dedupes_and_withdraws_the_same() {
    let db = TestDatabase::create().await.unwrap();
    let env = Env::start_with(Server::builder().args(["--database-url", db.url.as_str()])).await;
    env.grant(&env.site, REF, &["utility", "marketing"], None).await;
    let body = fixture("text_with_reference.json");
    let (a, b, c) = tokio::join!(env.deliver_ok(&body), env.deliver_ok(&body), env.deliver_ok(&body));
    let count = |key: &str| [&a, &b, &c].iter().map(|r| r[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!((count("recorded"), count("duplicates")), (1, 2), "{a} {b} {c}");
    let events = env.events(&format!("site={}&reference={REF}", env.site)).await;
    assert_eq!(actions(&events), ["granted", "confirmed"]);
    assert_eq!(events[1]["whatsapp"]["body_sha256"], hex::encode(Sha256::digest(&body)));
    assert_eq!(env.window(SENDER, &env.site).await["purposes"][1]["confirmed"], true);

    let out = env.cli_ok(&["site", "create", "--business", "Bottega Rossi", "--phone", "+39 02 1234 5678", "--origin", ORIGIN]);
    let second = out.lines().last().unwrap().to_owned();
    env.cli_ok(&["whatsapp", "number", "add", "--site", &second, "--phone-number-id", PNID_2, "--phone", "+390212345678"]);
    env.grant(&second, "ABCDE-2345F", &["marketing"], None).await;
    let batch = env.deliver_ok(&fixture("batch_two_entries.json")).await;
    assert_eq!(batch["outcomes"], json!(["already_confirmed", "confirmed"]), "{batch}");

    env.cli_ok(&["whatsapp", "opt-out", "--site", &env.site, "--reply", "Fatto."]);
    let stop = env.deliver_ok(&fixture("opt_out_accented.json")).await;
    assert_eq!((stop["outcomes"].clone(), stop["replies"][0]["text"].clone()), (json!(["withdrawn"]), json!("Fatto.")));
    let window = env.window(SENDER, &env.site).await;
    assert_eq!((window["purposes"][0]["consented"].as_bool(), window["purposes"][1]["consented"].as_bool()), (Some(false), Some(false)));
    assert_eq!(window["window"]["last_message_at"], "2025-06-08T21:10:00Z", "the batch came later");
    let (status, _) = env.deliver(&body, Some(&sign(OTHER_SECRET, &body))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A message type PostgreSQL cannot store (a NUL in it) is read as "unknown", not a 500
    // that Meta would retry for days.
    let text = String::from_utf8(body.clone()).unwrap();
    let odd = text.replace(r#""type":"text""#, r#""type":"te\u0000xt""#).replace("wamid.", "wamid.nul");
    assert_ne!(odd, text);
    let answer = env.deliver_ok(odd.as_bytes()).await;
    assert_eq!((answer["messages"].as_u64(), answer["duplicates"].as_u64()), (Some(1), Some(0)), "{answer}");
    env.assert_log_verifies().await;
    env.assert_log_has_no_numbers();
}

/// Two `cornetta serve` processes on one PostgreSQL database, Meta delivering the same
/// notification to both at once (a retry racing the original): it is recorded once.
#[tokio::test]
async fn two_processes_on_one_postgresql_record_a_delivery_once() {
    let db = TestDatabase::create().await.unwrap();
    let env = Env::start_with(Server::builder().args(["--database-url", db.url.as_str()])).await;
    // Processes sharing a database share its keys (the app secret, subject keys and number
    // lookups are all under the master key).
    let (master, signing) = (env.server.data_dir.join("master.key"), env.server.data_dir.join("ledger-signing.key"));
    let other = Server::builder()
        .args(["--database-url", db.url.as_str(), "--master-key-file", master.to_str().unwrap(), "--signing-key-file", signing.to_str().unwrap()])
        .start()
        .unwrap();
    env.grant(&env.site, REF, &["utility"], None).await;
    let body = fixture("text_with_reference.json");
    let signature = sign(SECRET, &body);
    let post = |url: String| {
        let http = env.http.clone();
        let (body, signature) = (body.clone(), signature.clone());
        async move {
            let response = http.post(url).header("X-Hub-Signature-256", signature).body(body).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let answers = futures::future::join_all((0..8).map(|i| post(if i % 2 == 0 { env.server.at("/v1/webhooks/whatsapp") } else { other.at("/v1/webhooks/whatsapp") }))).await;
    let recorded: u64 = answers.iter().map(|a| a["recorded"].as_u64().unwrap()).sum();
    let duplicates: u64 = answers.iter().map(|a| a["duplicates"].as_u64().unwrap()).sum();
    assert_eq!((recorded, duplicates), (1, 7), "{answers:?}");
    assert_eq!(actions(&env.all_events().await), ["granted", "confirmed"]);
    env.assert_log_verifies().await;
}
