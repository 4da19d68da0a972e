//! The consent ledger end to end against the real `cornetta` binary and a real SQLite file:
//! checkpoints, proofs, verification after tampering with the file the way someone with
//! database access would, receipts, status, erasure and exports.

use std::path::PathBuf;
use std::time::Duration;

use cornetta_server::ledger::LeafFields;
use cornetta_server::ledger::checkpoint::{Checkpoint, parse_public_key};
use cornetta_server::ledger::merkle;
use cornetta_tests::{Server, client, wait_for};
use serde_json::{Value, json};
use sqlx::{Connection, Row, SqliteConnection};

/// The default site allows this origin (the example shop's).
const ORIGIN: &str = "http://127.0.0.1:8081";

struct Shop {
    server: Server,
    site: String,
    notice: String,
    auditor: String,
    admin: String,
}

impl Shop {
    fn start(extra: &[&str]) -> Shop {
        let mut args = vec!["--public-writes-per-minute", "100000"];
        if !extra.contains(&"--checkpoint-interval") {
            args.extend_from_slice(&["--checkpoint-interval", "0"]);
        }
        args.extend_from_slice(extra);
        let server = Server::builder().args(args).start().expect("the server starts");
        let site = server.site_key.clone().expect("a fresh database gets a default site");
        let auditor = server.token("auditor");
        let admin = server.token("admin");
        Shop { server, site, notice: String::new(), auditor, admin }
    }

    async fn with_notice(mut self) -> Shop {
        let config: Value = client()
            .get(self.server.at(&format!("/v1/sites/{}/widget?lang=en", self.site)))
            .header("Origin", ORIGIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.notice = config["notice"]["id"].as_str().expect("the default site has an English notice").to_owned();
        self
    }

    async fn grant(&self, purposes: &[&str], phone: Option<&str>, page_url: &str) -> Value {
        let mut body = json!({"site": self.site, "notice": self.notice, "purposes": purposes, "page_url": page_url});
        if let Some(phone) = phone {
            body["phone"] = json!(phone);
        }
        let response = client().post(self.server.at("/v1/consents")).header("Origin", ORIGIN).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = client().get(self.server.at(path)).bearer_auth(token).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn checkpoint(&self) -> Value {
        let response = client().post(self.server.at(&format!("/v1/ledger/checkpoints?site={}", self.site))).bearer_auth(&self.admin).send().await.unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    fn db_path(&self) -> PathBuf {
        self.server.data_dir.join("cornetta.db")
    }

    /// `cornetta ledger verify --json`: (exit status, the site's report).
    fn verify_offline(&self) -> (bool, Value) {
        let out = self.server.cli(&["ledger", "verify", "--json"]);
        let reports: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("verify printed JSON: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.success(), reports[0].clone())
    }

    async fn public_key(&self) -> String {
        let (status, key) = self.get("/v1/ledger/public-key", "none").await;
        assert_eq!(status, 200);
        key["verifier_key"].as_str().unwrap().to_owned()
    }
}

/// A shop with `n` consents and a checkpoint over them.
async fn shop_with_events(n: usize) -> (Shop, Vec<String>) {
    let shop = Shop::start(&[]).with_notice().await;
    let mut ids = Vec::new();
    for i in 0..n {
        let purposes: &[&str] = if i % 2 == 0 { &["utility"] } else { &["utility", "marketing"] };
        ids.push(shop.grant(purposes, None, &format!("https://shop.example/p/{i}")).await["id"].as_str().unwrap().to_owned());
    }
    shop.checkpoint().await;
    (shop, ids)
}

/// Opens the stopped server's database as an attacker would and removes the append-only
/// triggers first.
async fn attacker(shop: &Shop) -> SqliteConnection {
    shop.server.kill();
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", shop.db_path().display())).await.unwrap();
    for trigger in ["consent_events_are_append_only", "consent_events_are_kept", "notices_are_immutable"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {trigger}"))).execute(&mut conn).await.unwrap();
    }
    conn
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) {
    sqlx::query(sql).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn a_checkpoint_is_signed_on_demand_and_opens_with_the_published_key() {
    let (shop, _) = shop_with_events(5).await;
    let key = parse_public_key(&shop.public_key().await).unwrap();
    let (status, page) = shop.get(&format!("/v1/ledger/checkpoints?site={}", shop.site), &shop.auditor).await;
    assert_eq!(status, 200);
    let note = page["checkpoints"][0]["note"].as_str().unwrap();
    let checkpoint = Checkpoint::open(note, &key).unwrap();
    assert_eq!(checkpoint.size, 5);
    assert_eq!(checkpoint.origin, format!("cornetta/{}", shop.site));
    assert_eq!(hex::encode(checkpoint.root), page["checkpoints"][0]["root_hash"].as_str().unwrap());
    let (status, report) = shop.get(&format!("/v1/ledger/verify?site={}", shop.site), &shop.auditor).await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checkpoints_verified"], 1);
    assert_eq!(report["root"], page["checkpoints"][0]["root_hash"]);
}

#[tokio::test]
async fn ledger_routes_refuse_missing_tokens_and_bad_parameters() {
    let (shop, _) = shop_with_events(2).await;
    let cases: [(&str, &str, u16); 7] = [
        ("/v1/ledger/checkpoints", "", 401),
        ("/v1/ledger/verify?site=pk_0000000000000000", &shop.auditor, 404),
        ("/v1/ledger/verify?site=nonsense", &shop.auditor, 422),
        ("/v1/ledger/verify", &shop.auditor, 422),
        ("/v1/ledger/consistency?site=SITE&from=0&to=2", &shop.auditor, 422),
        ("/v1/ledger/consistency?site=SITE&from=1&to=99", &shop.auditor, 422),
        ("/v1/ledger/inclusion?event=evt_nope", &shop.auditor, 422),
    ];
    for (path, token, want) in cases {
        let path = path.replace("SITE", &shop.site);
        let mut request = client().get(shop.server.at(&path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), want, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}: {body}");
    }
    let marketer = shop.server.token("marketer");
    let response = client().post(shop.server.at(&format!("/v1/ledger/checkpoints?site={}", shop.site))).bearer_auth(marketer).send().await.unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn inclusion_and_consistency_proofs_verify_against_signed_roots() {
    let (shop, ids) = shop_with_events(7).await;
    let first: Value = shop.checkpoint().await;
    for i in 7..300 {
        shop.grant(&["utility"], None, &format!("https://shop.example/more/{i}")).await;
    }
    let second = shop.checkpoint().await;
    let key = parse_public_key(&shop.public_key().await).unwrap();
    let old = Checkpoint::open(first["note"].as_str().unwrap(), &key).unwrap();
    let new = Checkpoint::open(second["note"].as_str().unwrap(), &key).unwrap();
    assert_eq!((old.size, new.size), (7, 300));
    let hashes = |v: &Value| -> Vec<merkle::Hash> {
        v["proof"].as_array().unwrap().iter().map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect()
    };
    let (status, proof) = shop.get(&format!("/v1/ledger/consistency?site={}&from=7&to=300", shop.site), &shop.auditor).await;
    assert_eq!(status, 200, "{proof}");
    merkle::verify_consistency(7, &old.root, 300, &new.root, &hashes(&proof)).unwrap();
    let (_, view) = shop.get(&format!("/v1/consents/{}", ids[3]), &shop.auditor).await;
    let (status, proof) = shop.get(&format!("/v1/ledger/inclusion?event={}&size=300", ids[3]), &shop.auditor).await;
    assert_eq!(status, 200, "{proof}");
    assert_eq!(proof["leaf_index"], 3);
    // The proof is over the leaf hash; rebuild the root from it by hand (RFC 9162 §2.1.3.2).
    let leaf: merkle::Hash = hex::decode(view["leaf_hash"].as_str().unwrap()).unwrap().try_into().unwrap();
    let (mut fn_, mut sn, mut r) = (3u64, 299u64, leaf);
    for p in hashes(&proof) {
        if fn_ & 1 == 1 || fn_ == sn {
            r = merkle::node_hash(&p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = merkle::node_hash(&r, &p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    assert_eq!(r, new.root);
}

#[tokio::test]
async fn checkpoints_are_made_on_the_schedule_while_serving() {
    let shop = Shop::start(&["--checkpoint-interval", "1"]).with_notice().await;
    shop.grant(&["utility"], None, "https://shop.example/").await;
    let path = format!("/v1/ledger/checkpoints?site={}", shop.site);
    wait_for(Duration::from_secs(20), || async { shop.get(&path, &shop.auditor).await.1["checkpoints"].as_array().is_some_and(|c| !c.is_empty()) })
        .await
        .expect("a scheduled checkpoint appears");
    let (_, page) = shop.get(&path, &shop.auditor).await;
    assert_eq!(page["checkpoints"][0]["tree_size"], 1);
}

#[tokio::test]
async fn the_cli_signs_a_checkpoint_and_verifies_an_untouched_log() {
    let (shop, _) = shop_with_events(3).await;
    let out = shop.server.cli(&["ledger", "checkpoint"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("cornetta/{}\n3\n", shop.site)));
    let (ok, report) = shop.verify_offline();
    assert!(ok, "{report}");
    assert_eq!(report["checkpoints_verified"], 2);
    let out = shop.server.cli(&["ledger", "verify"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK: 3 events"), "{}", String::from_utf8_lossy(&out.stdout));
}

/// One tampering of the stopped server's database, and what verification must name.
struct Tamper {
    name: &'static str,
    sql: &'static [&'static str],
    kind: &'static str,
    seq: u64,
    /// Index (original seq) of the event that must be named.
    named: usize,
}

#[tokio::test]
async fn verification_names_the_first_event_that_no_longer_matches() {
    let cases = [
        Tamper { name: "an edited field", sql: &["UPDATE consent_events SET purposes = 'marketing,utility' WHERE seq = 4"], kind: "edited", seq: 4, named: 4 },
        Tamper { name: "an edited time", sql: &["UPDATE consent_events SET recorded_at = recorded_at - 1 WHERE seq = 6"], kind: "edited", seq: 6, named: 6 },
        Tamper { name: "a deleted row", sql: &["DELETE FROM consent_events WHERE seq = 4"], kind: "deleted", seq: 4, named: 5 },
        Tamper {
            name: "a deleted row with the later ones renumbered",
            sql: &["DELETE FROM consent_events WHERE seq = 4", "UPDATE consent_events SET seq = seq + 1000000 WHERE seq > 4", "UPDATE consent_events SET seq = seq - 1000001 WHERE seq > 1000000"],
            kind: "deleted",
            seq: 4,
            named: 5,
        },
        Tamper {
            name: "two rows swapped",
            sql: &["UPDATE consent_events SET seq = 1000000 WHERE seq = 3", "UPDATE consent_events SET seq = 3 WHERE seq = 4", "UPDATE consent_events SET seq = 4 WHERE seq = 1000000"],
            kind: "reordered",
            seq: 3,
            named: 4,
        },
        Tamper {
            name: "a row moved far",
            sql: &["UPDATE consent_events SET seq = 1000000 WHERE seq = 1", "UPDATE consent_events SET seq = 1 WHERE seq = 8", "UPDATE consent_events SET seq = 8 WHERE seq = 1000000"],
            kind: "reordered",
            seq: 1,
            named: 8,
        },
    ];
    for case in cases {
        let (shop, ids) = shop_with_events(10).await;
        let mut conn = attacker(&shop).await;
        for sql in case.sql {
            exec(&mut conn, sql).await;
        }
        conn.close().await.unwrap();
        let (ok, report) = shop.verify_offline();
        assert!(!ok, "{}: verify must fail", case.name);
        let problem = &report["first_problem"];
        assert_eq!(problem["kind"], case.kind, "{}: {report}", case.name);
        assert_eq!(problem["seq"], case.seq, "{}: {report}", case.name);
        assert_eq!(problem["event"], ids[case.named].as_str(), "{}: {report}", case.name);
        assert!(!report["checkpoints_failed"].as_array().unwrap().is_empty(), "{}: the checkpoint over 10 events no longer verifies", case.name);
    }
}

#[tokio::test]
async fn verification_names_an_inserted_row_even_with_a_valid_leaf_hash() {
    let (shop, ids) = shop_with_events(8).await;
    let mut conn = attacker(&shop).await;
    // Make room at seq 3 and forge a grant there whose leaf hash is computed correctly.
    exec(&mut conn, "UPDATE consent_events SET seq = seq + 1000000 WHERE seq >= 3").await;
    exec(&mut conn, "UPDATE consent_events SET seq = seq - 999999 WHERE seq >= 1000000").await;
    let row = sqlx::query("SELECT * FROM consent_events WHERE seq = 4").fetch_one(&mut conn).await.unwrap();
    let forged_id = "evt_0000000000000000000000000000f0f0";
    let (site_id, subject_id, purposes, notice_id, notice_sha, details, actor): (String, String, String, Option<String>, Option<String>, String, String) = (
        row.get("site_id"),
        row.get("subject_id"),
        "marketing,utility".into(),
        row.get("notice_id"),
        row.get("notice_sha256"),
        row.get("details"),
        row.get("actor"),
    );
    let recorded_at: i64 = row.get("recorded_at");
    let leaf = LeafFields {
        id: forged_id,
        site_id: &site_id,
        seq: 3,
        action: "granted",
        method: "widget",
        reference: "ZZZZZ99999",
        subject_id: &subject_id,
        purposes: &purposes,
        notice_id: notice_id.as_deref(),
        notice_sha256: notice_sha.as_deref(),
        personal: None,
        details: &details,
        actor: &actor,
        recorded_at_micros: recorded_at,
    }
    .leaf_hash();
    sqlx::query(
        "INSERT INTO consent_events (id, site_id, seq, action, method, reference, subject_id, purposes, notice_id, notice_sha256,
             personal, details, actor, recorded_at, leaf_hash) VALUES (?, ?, 3, 'granted', 'widget', 'ZZZZZ99999', ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
    )
    .bind(forged_id)
    .bind(&site_id)
    .bind(&subject_id)
    .bind(&purposes)
    .bind(&notice_id)
    .bind(&notice_sha)
    .bind(&details)
    .bind(&actor)
    .bind(recorded_at)
    .bind(hex::encode(leaf))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let (ok, report) = shop.verify_offline();
    assert!(!ok);
    assert_eq!(report["first_problem"]["kind"], "inserted", "{report}");
    assert_eq!(report["first_problem"]["seq"], 3);
    assert_eq!(report["first_problem"]["event"], forged_id);
    assert!(report["first_problem"]["message"].as_str().unwrap().contains(&ids[3]), "{report}");
}

#[tokio::test]
async fn rewriting_leaf_hashes_too_is_caught_by_the_signed_checkpoints() {
    let (shop, _) = shop_with_events(6).await;
    let early = shop.checkpoint().await; // size 6 again: two checkpoints over 6
    for i in 0..4 {
        shop.grant(&["utility"], None, &format!("https://shop.example/later/{i}")).await;
    }
    shop.checkpoint().await; // size 10
    let mut conn = attacker(&shop).await;
    // Edit seq 8 and give it a correct leaf hash for its new content.
    exec(&mut conn, "UPDATE consent_events SET purposes = 'marketing,utility' WHERE seq = 8").await;
    let row = sqlx::query("SELECT * FROM consent_events WHERE seq = 8").fetch_one(&mut conn).await.unwrap();
    let get = |c: &str| -> String { row.get(c) };
    let (id, site_id, action, method, reference, subject_id, purposes, details, actor) =
        (get("id"), get("site_id"), get("action"), get("method"), get("reference"), get("subject_id"), get("purposes"), get("details"), get("actor"));
    let notice_id: Option<String> = row.get("notice_id");
    let notice_sha: Option<String> = row.get("notice_sha256");
    let personal: Option<Vec<u8>> = row.get("personal");
    let leaf = LeafFields {
        id: &id,
        site_id: &site_id,
        seq: 8,
        action: &action,
        method: &method,
        reference: &reference,
        subject_id: &subject_id,
        purposes: &purposes,
        notice_id: notice_id.as_deref(),
        notice_sha256: notice_sha.as_deref(),
        personal: personal.as_deref(),
        details: &details,
        actor: &actor,
        recorded_at_micros: row.get("recorded_at"),
    }
    .leaf_hash();
    sqlx::query("UPDATE consent_events SET leaf_hash = ? WHERE seq = 8").bind(hex::encode(leaf)).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let (ok, report) = shop.verify_offline();
    assert!(!ok);
    assert_eq!(report["first_problem"], Value::Null, "every row matches its (rewritten) leaf hash: {report}");
    let failed = report["checkpoints_failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "only the checkpoint over 10 fails: {report}");
    assert_eq!(failed[0]["tree_size"], 10);
    assert!(failed[0]["reason"].as_str().unwrap().contains("between tree size 6"), "{report}");
    assert_eq!(report["checkpoints_verified"], 2, "both checkpoints over 6 still hold ({early})");
}

#[tokio::test]
async fn a_changed_notice_text_and_a_forged_checkpoint_are_reported() {
    let (shop, _) = shop_with_events(3).await;
    let mut conn = attacker(&shop).await;
    exec(&mut conn, "UPDATE notices SET canonical_text = canonical_text || ' (amended)' WHERE lang = 'en'").await;
    exec(&mut conn, "DROP TRIGGER ledger_checkpoints_are_append_only").await;
    exec(&mut conn, "UPDATE ledger_checkpoints SET note = replace(note, char(10) || '3' || char(10), char(10) || '2' || char(10))").await;
    conn.close().await.unwrap();
    let (ok, report) = shop.verify_offline();
    assert!(!ok);
    assert_eq!(report["first_problem"], Value::Null);
    assert!(report["notices_failed"][0]["reason"].as_str().unwrap().contains("text was changed"), "{report}");
    assert!(report["checkpoints_failed"][0]["reason"].as_str().unwrap().contains("signature"), "{report}");
    // The running server's auditor view says the same.
    let mut shop = shop;
    shop.server.restart().unwrap();
    let (status, online) = shop.get(&format!("/v1/ledger/verify?site={}", shop.site), &shop.auditor).await;
    assert_eq!(status, 200);
    assert_eq!(online["ok"], false);
    assert_eq!(online["notices_failed"], report["notices_failed"]);
}
