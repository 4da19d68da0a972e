//! The ledger on PostgreSQL (127.0.0.1:5432, user postgres): the same checkpoints,
//! verification, receipts, status, export and erasure as on SQLite, each test on a database
//! of its own that it creates and drops.

use cornetta_tests::{Server, client};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

const ORIGIN: &str = "http://127.0.0.1:8081";
const PHONE: &str = "+393335556666";
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped when the test ends.
struct Database {
    name: String,
}

impl Database {
    async fn create() -> Database {
        let name = format!("cornetta_ledger_{}", std::process::id()) + &format!("_{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 0xffff_ffff);
        let mut conn = PgConnection::connect(ADMIN_URL).await.expect("PostgreSQL runs on 127.0.0.1:5432");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
        Database { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(ADMIN_URL).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn the_ledger_works_the_same_on_postgresql() {
    let db = Database::create().await;
    let server = Server::builder()
        .args(["--database-url", &db.url(), "--public-writes-per-minute", "100000", "--checkpoint-interval", "0"])
        .start()
        .unwrap();
    let site = server.site_key.clone().unwrap();
    let auditor = server.token("auditor");
    let admin = server.token("admin");
    let config: Value = client().get(server.at(&format!("/v1/sites/{site}/widget?lang=en"))).header("Origin", ORIGIN).send().await.unwrap().json().await.unwrap();
    let notice = config["notice"]["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for i in 0..270 {
        let phone = if i % 3 == 0 { Some(PHONE) } else { None };
        let body = json!({"site": site, "notice": notice, "purposes": ["utility", "marketing"], "page_url": format!("https://shop.example/{i},\"x\""), "phone": phone});
        let response = client().post(server.at("/v1/consents")).header("Origin", ORIGIN).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201);
        ids.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let get = |path: String| {
        let auditor = auditor.clone();
        let url = server.at(&path);
        async move {
            let response = client().get(url).bearer_auth(auditor).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Checkpoint, verify, receipt.
    let response = client().post(server.at(&format!("/v1/ledger/checkpoints?site={site}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let (_, report) = get(format!("/v1/ledger/verify?site={site}")).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], 270);
    let (status, receipt) = get(format!("/v1/consents/{}/receipt", ids[261])).await;
    assert_eq!(status, 200, "{receipt}");
    let path = server.data_dir.join("receipt.json");
    std::fs::write(&path, receipt.to_string()).unwrap();
    let (_, key) = get("/v1/ledger/public-key".into()).await;
    // Offline: no database at all.
    let out = cornetta_tests::cornetta(&server.data_dir, &["receipt", "verify", path.to_str().unwrap(), "--public-key", key["verifier_key"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, proof) = get(format!("/v1/ledger/consistency?site={site}&from=100&to=270")).await;
    assert_eq!(status, 200, "{proof}");
    // Status and export.
    let (_, status_now) = get(format!("/v1/subjects/{PHONE}/status?site={site}&purpose=marketing")).await;
    assert_eq!(status_now["purposes"][0]["consented"], true, "{status_now}");
    assert_eq!(status_now["purposes"][0]["proof"].as_array().unwrap().len(), 90);
    let csv_text = client().get(server.at(&format!("/v1/consents/export?site={site}"))).bearer_auth(&auditor).send().await.unwrap().text().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 270);
    assert_eq!(&rows[5][10], "https://shop.example/5,\"x\"");
    // Erasure keeps the log verifiable.
    let response = client().post(server.at(&format!("/v1/subjects/{PHONE}/erase?site={site}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, view) = get(format!("/v1/consents/{}", ids[0])).await;
    assert_eq!(view["phone"], Value::Null);
    let out = server.cli(&["ledger", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Tampering as a database owner is named.
    server.kill();
    let mut conn = PgConnection::connect(&db.url()).await.unwrap();
    sqlx::query("ALTER TABLE consent_events DISABLE TRIGGER consent_events_are_append_only").execute(&mut conn).await.unwrap();
    sqlx::query("UPDATE consent_events SET actor = 'admin' WHERE seq = 17").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let out = server.cli(&["ledger", "verify", "--json"]);
    assert!(!out.status.success());
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["first_problem"]["kind"], "edited");
    assert_eq!(reports[0]["first_problem"]["event"], ids[17].as_str());
}
