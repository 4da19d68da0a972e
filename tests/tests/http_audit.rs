//! Receipts, status at a moment, erasure and exports, end to end against the real binary
//! and a real SQLite file.

use std::sync::Arc;
use std::time::Duration;

use cornetta_server::keys::Keyring;
use cornetta_server::store::sqlite::{SqliteSettings, SqliteStore};
use cornetta_server::store::{DynStore, NewEvent, Subject};
use cornetta_shared::{Action, Method, PhoneNumber, Reference};
use cornetta_tests::{Server, client};
use serde_json::{Value, json};

const ORIGIN: &str = "http://127.0.0.1:8081";
const PHONE: &str = "+393331112222";

struct Shop {
    server: Server,
    site: String,
    notice: String,
    auditor: String,
    admin: String,
}

impl Shop {
    async fn start() -> Shop {
        let server = Server::builder().args(["--public-writes-per-minute", "100000", "--checkpoint-interval", "0"]).start().unwrap();
        let site = server.site_key.clone().unwrap();
        let auditor = server.token("auditor");
        let admin = server.token("admin");
        let config: Value =
            client().get(server.at(&format!("/v1/sites/{site}/widget?lang=en"))).header("Origin", ORIGIN).send().await.unwrap().json().await.unwrap();
        let notice = config["notice"]["id"].as_str().unwrap().to_owned();
        Shop { server, site, notice, auditor, admin }
    }

    async fn grant(&self, purposes: &[&str], phone: Option<&str>, page_url: &str) -> Value {
        let mut body = json!({"site": self.site, "notice": self.notice, "purposes": purposes, "page_url": page_url});
        if let Some(phone) = phone {
            body["phone"] = json!(phone);
        }
        let response = client().post(self.server.at("/v1/consents")).header("Origin", ORIGIN).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn withdraw(&self, reference: &str, purposes: &[&str]) -> Value {
        let body = json!({"site": self.site, "purposes": purposes});
        let response = client().post(self.server.at(&format!("/v1/consents/{reference}/withdraw"))).header("Origin", ORIGIN).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = client().get(self.server.at(path)).bearer_auth(token).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn text(&self, path: &str) -> (u16, String, String) {
        let response = client().get(self.server.at(path)).bearer_auth(&self.auditor).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    }

    async fn status(&self, phone: &str, at: Option<&str>) -> Value {
        let mut path = format!("/v1/subjects/{phone}/status?site={}", self.site);
        if let Some(at) = at {
            path.push_str(&format!("&at={at}"));
        }
        let (status, body) = self.get(&path, &self.auditor).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The server's store and keys, opened next to it (WAL lets a second process write):
    /// what the WhatsApp webhook will do, to record a `confirmed` event.
    async fn confirm(&self, reference: &str, phone: &str) -> String {
        let store: DynStore = Arc::new(SqliteStore::open(&self.server.data_dir.join("cornetta.db"), SqliteSettings::default()).await.unwrap());
        let (master, signing) = cornetta_server::keys::default_paths(&self.server.data_dir);
        let keys = Keyring::load_or_create(&master, &signing).unwrap();
        let site = store.site_by_key(&cornetta_shared::SiteKey::parse(&self.site).unwrap()).await.unwrap().unwrap();
        let phone = PhoneNumber::from_e164(phone).unwrap();
        let id = format!("sub_{}", uuid_like());
        let (_, wrapped) = keys.new_subject_key(&id);
        let subject = store
            .subject_for_lookup(Subject {
                id,
                site_id: site.id.clone(),
                lookup: Some(keys.phone_lookup(&phone)),
                wrapped_key: Some(wrapped),
                created_at: cornetta_server::consents::now(),
                erased_at: None,
            })
            .await
            .unwrap();
        let event_id = cornetta_server::consents::new_event_id();
        let key = keys.unwrap_subject_key(&subject.id, subject.wrapped_key.as_ref().unwrap()).unwrap();
        let evidence = serde_json::to_vec(&json!({"phone": phone.to_string()})).unwrap();
        let event = store
            .append(NewEvent {
                id: event_id.clone(),
                site_id: site.id,
                action: Action::Confirmed,
                method: Method::Whatsapp,
                reference: Reference::parse(reference).unwrap(),
                subject_id: subject.id,
                new_subject: None,
                purposes: Vec::new(),
                notice_id: None,
                notice_sha256: None,
                personal: Some(key.seal(&evidence, event_id.as_str().as_bytes())),
                details: "{}".into(),
                actor: "whatsapp".into(),
                recorded_at: cornetta_server::consents::now(),
            })
            .await
            .unwrap();
        event.id.to_string()
    }
}

fn uuid_like() -> String {
    format!("{:032x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

fn purpose<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["purposes"].as_array().unwrap().iter().find(|p| p["purpose"] == name).unwrap()
}

async fn fetch_receipt(shop: &Shop, id: &str) -> (Value, std::path::PathBuf) {
    let (status, receipt) = shop.get(&format!("/v1/consents/{id}/receipt"), &shop.auditor).await;
    assert_eq!(status, 200, "{receipt}");
    let path = shop.server.data_dir.join(format!("receipt-{id}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&receipt).unwrap()).unwrap();
    (receipt, path)
}

async fn public_key(shop: &Shop) -> String {
    let (_, key) = shop.get("/v1/ledger/public-key", "none").await;
    key["verifier_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_receipt_carries_the_consent_and_verifies_offline() {
    let shop = Shop::start().await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(shop.grant(&["utility", "marketing"], Some(PHONE), &format!("https://shop.example/{i}")).await["id"].as_str().unwrap().to_owned());
    }
    let (receipt, path) = fetch_receipt(&shop, &ids[2]).await;
    assert_eq!(receipt["consent_receipt_id"], ids[2].as_str());
    assert_eq!(receipt["pii_controllers"][0]["pii_controller"], "Acme Shop");
    assert_eq!(receipt["pii_principal_id"], PHONE);
    assert_eq!(receipt["jurisdiction"], "EU");
    assert_eq!(receipt["collection_method"], "widget");
    assert!(receipt["notice"]["text"].as_str().unwrap().contains("Acme Shop"));
    assert!(receipt["withdrawal"]["endpoint"].as_str().unwrap().ends_with("/withdraw"));
    let categories: Vec<&str> = receipt["services"][0]["purposes"].as_array().unwrap().iter().map(|p| p["purpose_category"][0].as_str().unwrap()).collect();
    assert_eq!(categories, ["marketing", "utility"]);
    assert!(receipt["checkpoint"].as_str().unwrap().contains("\n6\n"), "a checkpoint over the 6 events was signed for it");
    let key = public_key(&shop).await;
    let out = shop.server.cli(&["receipt", "verify", path.to_str().unwrap(), "--public-key", &key]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("OK: event {} (granted) is entry 2", ids[2])));
    // The key can also be given as a file.
    let key_file = shop.server.data_dir.join("ledger.pub");
    std::fs::write(&key_file, &key).unwrap();
    assert!(shop.server.cli(&["receipt", "verify", path.to_str().unwrap(), "--public-key", key_file.to_str().unwrap()]).status.success());
}

#[tokio::test]
async fn a_visitor_downloads_their_own_receipt_by_its_reference_and_it_verifies_offline_without_their_number() {
    let shop = Shop::start().await;
    let created = shop.grant(&["utility"], Some(PHONE), "https://shop.example/cart").await;
    let (id, reference) = (created["id"].as_str().unwrap(), created["reference"].as_str().unwrap());
    // No token and no Origin: it is opened as a link, the reference is the credential.
    let response = client().get(shop.server.at(&format!("/v1/receipts/{reference}?site={}", shop.site))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-disposition"], format!("attachment; filename=\"consent-receipt-{reference}.json\"").as_str());
    assert_eq!(response.headers()["cache-control"], "no-store");
    let receipt: Value = response.json().await.unwrap();
    assert_eq!((receipt["consent_receipt_id"].as_str(), receipt["reference"].as_str()), (Some(id), Some(reference)));
    assert_eq!(receipt["pii_principal_id"], Value::Null, "the number stays out of a receipt fetched by reference");
    assert!(!receipt.to_string().contains(&PHONE[1..]), "no trace of the number: {receipt}");
    assert!(receipt["notice"]["text"].as_str().unwrap().contains("Acme Shop"), "the notice the visitor saw");
    let path = shop.server.data_dir.join("visitor-receipt.json");
    std::fs::write(&path, serde_json::to_vec(&receipt).unwrap()).unwrap();
    let out = shop.server.cli(&["receipt", "verify", path.to_str().unwrap(), "--public-key", &public_key(&shop).await]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    for (path, status, code) in [
        (format!("/v1/receipts/{reference}"), 422, "missing_site"),
        (format!("/v1/receipts/not-a-ref?site={}", shop.site), 422, "invalid_reference"),
        (format!("/v1/receipts/{}?site={}", Reference::from_random([3; 10]), shop.site), 404, "not_found"),
        (format!("/v1/receipts/{reference}?site=pk_000000000000000000000000"), 404, "not_found"),
        (format!("/v1/receipts/{reference}?site={}&phone=1", shop.site), 422, "invalid_query"),
    ] {
        let response = client().get(shop.server.at(&path)).send().await.unwrap();
        let got = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_visitor_who_comes_back_withdraws_on_the_withdrawal_page_with_their_reference() {
    let shop = Shop::start().await;
    let created = shop.grant(&["utility", "marketing"], None, "https://shop.example/cart").await;
    let reference = created["reference"].as_str().unwrap().to_owned();
    let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = shop.server.at("/withdraw");

    // The page, linked from the receipt, with the reference filled in; plain HTML, no script.
    let (_, receipt) = shop.get(&format!("/v1/consents/{}/receipt", created["id"].as_str().unwrap()), &shop.auditor).await;
    let method = receipt["withdrawal"]["method"].as_str().unwrap();
    assert!(method.contains(&format!("/withdraw?site={}", shop.site)), "the receipt names the page: {method}");
    let res = http.get(format!("{page}?site={}&ref={reference}", shop.site)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-security-policy"].to_str().unwrap().contains("form-action 'self'"));
    let html = res.text().await.unwrap();
    assert!(html.contains("Withdraw your consent to Acme Shop") && html.contains(&format!(r#"value="{reference}""#)) && !html.contains("<script"), "{html}");
    assert_eq!(http.get(format!("{page}?site=pk_000000000000000000000000")).send().await.unwrap().status(), 404);

    let post = |origin: &str, reference: &str| {
        let (http, page, origin, form) = (http.clone(), page.clone(), origin.to_owned(), [("site", shop.site.clone()), ("reference", reference.to_owned())]);
        async move {
            let res = http.post(page).header("origin", origin).form(&form).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    // Refused, saying why, and nothing is recorded.
    let own = shop.server.url.clone();
    assert_eq!(post("https://evil.example", &reference).await.0, 403, "only a form on Cornetta's own page");
    let (status, html) = post(&own, "K7QXM").await;
    assert!(status == 422 && html.contains("That is not a reference"), "{status}: {html}");
    let (status, html) = post(&own, &Reference::from_random([5; 10]).to_string()).await;
    assert!(status == 404 && html.contains("Acme Shop has no consent with the reference"), "{status}: {html}");
    let (_, events) = shop.get(&format!("/v1/consents?reference={reference}"), &shop.auditor).await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(1), "only the grant: {events}");

    // Withdrawn: every purpose, recorded as a web form with the visitor's evidence.
    let (status, html) = post(&own, &reference.to_lowercase()).await;
    assert!(status == 200 && html.contains(&format!("Your consent with the reference {reference} was withdrawn on")), "{status}: {html}");
    let (_, events) = shop.get(&format!("/v1/consents?reference={reference}"), &shop.auditor).await;
    let withdrawn = &events["events"][1];
    assert_eq!((withdrawn["action"].as_str(), withdrawn["method"].as_str()), (Some("withdrawn"), Some("form")), "{events}");
    assert_eq!(withdrawn["purposes"], json!(["marketing", "utility"]), "{events}");
    assert_eq!(withdrawn["ip"], "127.0.0.0/24");
    assert!(!shop.server.log().contains(&reference), "the reference stays out of the log");
}

#[tokio::test]
async fn a_modified_receipt_fails_and_says_what_does_not_hold() {
    let shop = Shop::start().await;
    let id = shop.grant(&["utility"], Some(PHONE), "https://shop.example/").await["id"].as_str().unwrap().to_owned();
    shop.grant(&["marketing"], None, "https://shop.example/2").await;
    let (receipt, _) = fetch_receipt(&shop, &id).await;
    let key = public_key(&shop).await;
    type Tamper = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        ("a purpose added", Box::new(|r: &mut Value| r["services"][0]["purposes"][0]["purpose_category"] = json!(["marketing"])), "services.purposes"),
        ("the time moved", Box::new(|r: &mut Value| r["consent_timestamp"] = json!("2020-01-01T00:00:00Z")), "consent_timestamp"),
        ("the stored purposes changed", Box::new(|r: &mut Value| r["event"]["purposes"] = json!("marketing")), "services.purposes"),
        ("the actor changed", Box::new(|r: &mut Value| r["event"]["actor"] = json!("admin")), "leaf hash"),
        ("the notice text changed", Box::new(|r: &mut Value| r["notice"]["text"] = json!("We may message you about anything.")), "notice text"),
        ("a proof hash changed", Box::new(|r: &mut Value| r["inclusion_proof"]["hashes"][0] = json!("00".repeat(32))), "inclusion proof"),
        ("the checkpoint re-sized", Box::new(|r: &mut Value| r["checkpoint"] = json!(r["checkpoint"].as_str().unwrap().replacen("\n2\n", "\n3\n", 1))), "checkpoint"),
    ];
    for (name, change, why) in cases {
        let mut modified = receipt.clone();
        change(&mut modified);
        let path = shop.server.data_dir.join("modified.json");
        std::fs::write(&path, serde_json::to_vec(&modified).unwrap()).unwrap();
        let out = shop.server.cli(&["receipt", "verify", path.to_str().unwrap(), "--public-key", &key]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: must fail");
        assert!(stderr.contains("does not verify") && stderr.contains(why), "{name}: {stderr}");
    }
    let other_key = cornetta_server::ledger::checkpoint::verifier_key(&Keyring::from_secrets([1; 32], [2; 32]).verifying_key());
    let path = shop.server.data_dir.join("receipt.json");
    std::fs::write(&path, serde_json::to_vec(&receipt).unwrap()).unwrap();
    let out = shop.server.cli(&["receipt", "verify", path.to_str().unwrap(), "--public-key", &other_key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signature by key"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn status_follows_grant_confirmation_and_withdrawal_over_time() {
    let shop = Shop::start().await;
    let before_anything = cornetta_server::consents::now().to_string();
    // A widget grant: nobody's until the WhatsApp message with its reference arrives.
    let widget = shop.grant(&["utility", "marketing"], None, "https://shop.example/w").await;
    let reference = widget["reference"].as_str().unwrap().to_owned();
    let unconfirmed = shop.status(PHONE, None).await;
    assert_eq!(unconfirmed["known"], false);
    assert_eq!(purpose(&unconfirmed, "marketing")["consented"], false);
    let confirmation = shop.confirm(&reference, PHONE).await;
    let after_confirmation = cornetta_server::consents::now().to_string();
    let confirmed = shop.status(PHONE, None).await;
    let marketing = purpose(&confirmed, "marketing");
    assert_eq!(marketing["consented"], true, "{confirmed}");
    let proof: Vec<&str> = marketing["proof"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(proof, [widget["id"].as_str().unwrap(), confirmation.as_str()]);
    assert_eq!(purpose(&confirmed, "support")["consented"], false);
    // Withdraw marketing in the widget.
    tokio::time::sleep(Duration::from_millis(2)).await; // distinct microsecond timestamps
    let withdrawal = shop.withdraw(&reference, &["marketing"]).await;
    let now = shop.status(PHONE, None).await;
    assert_eq!(purpose(&now, "marketing")["consented"], false);
    assert_eq!(purpose(&now, "marketing")["ended_by"]["id"], withdrawal["id"]);
    assert_eq!(purpose(&now, "utility")["consented"], true);
    // The past is still answered from the events.
    assert_eq!(purpose(&shop.status(PHONE, Some(&after_confirmation)).await, "marketing")["consented"], true);
    assert_eq!(purpose(&shop.status(PHONE, Some(&before_anything)).await, "utility")["consented"], false);
    // One purpose only.
    let (_, one) = shop.get(&format!("/v1/subjects/{PHONE}/status?site={}&purpose=utility", shop.site), &shop.auditor).await;
    assert_eq!(one["purposes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn status_refuses_bad_input_with_a_reason() {
    let shop = Shop::start().await;
    let cases = [
        (format!("/v1/subjects/{PHONE}/status?site={}&at=yesterday", shop.site), 422),
        (format!("/v1/subjects/{PHONE}/status?site={}&purpose=promo", shop.site), 422),
        (format!("/v1/subjects/12/status?site={}", shop.site), 422),
        (format!("/v1/subjects/{PHONE}/status?site={}&colour=red", shop.site), 422),
        (format!("/v1/subjects/{PHONE}/status"), 422),
    ];
    for (path, want) in cases {
        let (status, body) = shop.get(&path, &shop.auditor).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, _) = shop.get(&format!("/v1/subjects/{PHONE}/status?site={}", shop.site), "crn_wrong").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn erasure_makes_personal_data_unreadable_and_the_log_still_verifies() {
    let shop = Shop::start().await;
    let form = shop.grant(&["utility"], Some(PHONE), "https://shop.example/form").await;
    let widget = shop.grant(&["marketing"], None, "https://shop.example/widget").await;
    shop.confirm(widget["reference"].as_str().unwrap(), PHONE).await;
    let bystander = shop.grant(&["utility"], Some("+393339998888"), "https://shop.example/other").await;
    let (_, before) = shop.get(&format!("/v1/consents/{}", widget["id"].as_str().unwrap()), &shop.auditor).await;
    assert_eq!(before["page_url"], "https://shop.example/widget");

    let out = shop.server.cli(&["subject", "erase", "+39 333 111 2222"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Erased 2 subject key(s); recorded 2 erased event(s)"), "{}", String::from_utf8_lossy(&out.stdout));

    for id in [&form["id"], &widget["id"]] {
        let (_, view) = shop.get(&format!("/v1/consents/{}", id.as_str().unwrap()), &shop.auditor).await;
        assert_eq!(view["phone"], Value::Null, "{view}");
        assert_eq!(view["page_url"], Value::Null, "{view}");
        assert_eq!(view["ip"], Value::Null);
    }
    let (_, other) = shop.get(&format!("/v1/consents/{}", bystander["id"].as_str().unwrap()), &shop.auditor).await;
    assert_eq!(other["phone"], "+393339998888", "another person's data is untouched");
    let (_, erased) = shop.get(&format!("/v1/consents?site={}&action=erased", shop.site), &shop.auditor).await;
    let erased = erased["events"].as_array().unwrap();
    assert_eq!(erased.len(), 2);
    assert!(erased.iter().all(|e| e["recorded_at"].as_str().is_some() && e["phone"].is_null()));
    let status = shop.status(PHONE, None).await;
    assert_eq!(status["known"], false, "the number no longer finds the erased records");
    let out = shop.server.cli(&["ledger", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Again: nothing left to erase.
    let out = shop.server.cli(&["subject", "erase", PHONE]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no records"));
}

#[tokio::test]
async fn the_admin_api_erases_and_other_roles_may_not() {
    let shop = Shop::start().await;
    let grant = shop.grant(&["utility"], Some(PHONE), "https://shop.example/").await;
    let url = shop.server.at(&format!("/v1/subjects/{PHONE}/erase?site={}", shop.site));
    let response = client().post(&url).bearer_auth(&shop.auditor).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let response = client().post(&url).bearer_auth(&shop.admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["subjects_erased"], 1);
    let (_, view) = shop.get(&format!("/v1/consents/{}", grant["id"].as_str().unwrap()), &shop.auditor).await;
    assert_eq!(view["phone"], Value::Null);
    let (_, event) = shop.get(&format!("/v1/consents/{}", answer["events"][0].as_str().unwrap()), &shop.auditor).await;
    assert_eq!(event["action"], "erased");
    assert_eq!(event["reference"], grant["reference"]);
    let response = client().post(&url).bearer_auth(&shop.admin).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let (_, report) = shop.get(&format!("/v1/ledger/verify?site={}", shop.site), &shop.auditor).await;
    assert_eq!(report["ok"], true, "{report}");
    // The erasure is logged, inside the request's span; the number in the path is not.
    let log = shop.server.log();
    assert!(log.contains("subject erased"), "{log}");
    assert!(log.contains("/v1/subjects/{phone}/erase"), "the span names the route: {log}");
    assert!(!log.contains(&PHONE[1..]), "the server log contains the erased number:\n{log}");
}

#[tokio::test]
async fn the_csv_export_has_one_header_and_quotes_every_awkward_field() {
    let shop = Shop::start().await;
    let awkward = "https://shop.example/a,b?q=\"quoted\"&x=1";
    let mut ids = Vec::new();
    for i in 0..25 {
        let url = if i == 7 { awkward.to_owned() } else { format!("https://shop.example/{i}") };
        ids.push(shop.grant(&["utility", "marketing"], Some(PHONE), &url).await["id"].as_str().unwrap().to_owned());
    }
    let (status, content_type, body) = shop.text(&format!("/v1/consents/export?format=csv&site={}", shop.site)).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, cornetta_server::export::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 25);
    assert_eq!(rows.iter().map(|r| r[0].to_owned()).collect::<Vec<_>>(), ids, "in id order");
    assert_eq!(&rows[7][10], awkward, "the page URL survives CSV quoting");
    assert_eq!(&rows[7][7], "marketing,utility");
    assert_eq!(&rows[7][6], PHONE);
    assert_eq!(body.matches("id,site,seq").count(), 1, "one header row");
    // JSON Lines, filtered.
    let (status, content_type, body) = shop.text(&format!("/v1/consents/export?format=jsonl&site={}&purpose=marketing&to=2999-01-01T00:00:00Z", shop.site)).await;
    assert_eq!((status, content_type.as_str()), (200, "application/x-ndjson"));
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 25);
    assert_eq!(lines[7]["page_url"], awkward);
    // Both formats say the same, field for field (the CSV writes each field itself).
    for (row, line) in rows.iter().zip(&lines) {
        for (i, column) in cornetta_server::export::CSV_COLUMNS.iter().enumerate() {
            let want = match &line[*column] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(items) => items.iter().map(|v| v.as_str().unwrap().to_owned()).collect::<Vec<_>>().join(","),
                other => other.to_string(),
            };
            assert_eq!(&row[i], want, "column {column} of {}", &row[0]);
        }
    }
}

#[tokio::test]
async fn exports_refuse_bad_parameters_and_missing_tokens() {
    let shop = Shop::start().await;
    for (path, want) in [("/v1/consents/export?format=xml", 422), ("/v1/consents/export?from=soon", 422), ("/v1/consents/export?limit=5", 422)] {
        let (status, body) = shop.get(path, &shop.auditor).await;
        assert_eq!(status, want, "{path}: {body}");
    }
    let response = client().get(shop.server.at("/v1/consents/export")).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn pagination_walks_every_event_once_in_a_stable_order() {
    let shop = Shop::start().await;
    let mut ids = Vec::new();
    for i in 0..23 {
        ids.push(shop.grant(&["utility"], None, &format!("https://shop.example/{i}")).await["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut path = format!("/v1/consents?site={}&limit=5", shop.site);
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = shop.get(&path, &shop.auditor).await;
        assert_eq!(status, 200);
        seen.extend(page["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let event_id_cursor = format!("cursor={}", ids[0]);
    for bad in ["cursor=nonsense", "limit=0", "limit=1001", "limit=ten", event_id_cursor.as_str()] {
        let (status, _) = shop.get(&format!("/v1/consents?site={}&{bad}", shop.site), &shop.auditor).await;
        assert_eq!(status, 422, "{bad}");
    }
}

#[tokio::test]
async fn a_visitor_withdraws_on_the_withdrawal_page_in_their_language() {
    let server = Server::builder().args(["--checkpoint-interval", "0"]).start().unwrap();
    cornetta_tests::withdrawal::a_visitor_withdraws_on_the_page_in_their_language(&server).await;
    cornetta_tests::withdrawal::withdrawals_sent_at_once_end_each_purpose_once(&server).await;
}
