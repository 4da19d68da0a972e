//! `cornetta serve --database-url postgres://…`: the whole consent path over HTTP against a
//! fresh PostgreSQL database, and the CLI's answer when PostgreSQL cannot be reached.

use cornetta_shared::api::ConsentPage;
use cornetta_tests::load::ConsentTarget;
use cornetta_tests::pg::{TestDatabase, admin_url, with_database};
use cornetta_tests::{Server, client, cornetta};

#[tokio::test]
async fn serve_on_postgres_records_lists_and_withdraws_a_consent_and_keeps_it_across_restarts() {
    let db = TestDatabase::create().await.unwrap();
    let mut server = Server::builder().args(["--database-url", db.url.as_str()]).start().unwrap();
    let http = client();
    let health: serde_json::Value = http.get(server.at("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["store"], "postgres");

    let site_key = server.site_key.clone().expect("an empty database gets the default site");
    let target = ConsentTarget::discover(&http, &server.url, &site_key).await.unwrap();
    let created = target.post(&http).await.unwrap();
    assert!(created.link.starts_with("https://wa.me/393331234567?text="), "{}", created.link);

    let auditor = server.token("auditor");
    let page: ConsentPage = http
        .get(server.at("/v1/consents"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    let event = &page.events[0];
    assert_eq!((event.id.clone(), event.seq, event.reference.clone()), (created.id.clone(), 0, created.reference.clone()));
    assert_eq!(event.notice_sha256.as_deref(), Some(created.notice_sha256.as_str()));
    assert_eq!(event.page_url.as_deref(), Some("https://shop.example/checkout"), "evidence decrypts");
    assert_eq!(event.ip.as_deref(), Some("127.0.0.0/24"));

    let withdrawn = http
        .post(server.at(&format!("/v1/consents/{}/withdraw", created.reference)))
        .header("Origin", &target.origin)
        .json(&serde_json::json!({ "site": site_key }))
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), 200, "{}", withdrawn.text().await.unwrap_or_default());

    let reused = http
        .post(server.at("/v1/consents"))
        .header("Origin", &target.origin)
        .json(&serde_json::json!({
            "site": site_key, "notice": target.notice_id, "purposes": ["utility"], "reference": created.reference,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), 409, "a reference is granted once");

    server.restart().unwrap();
    assert_eq!(server.site_key, None, "the restart finds the default site");
    let page: ConsentPage =
        http.get(server.at("/v1/consents")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
    let seqs: Vec<(u64, String)> = page.events.iter().map(|e| (e.seq, e.action.to_string())).collect();
    assert_eq!(seqs, vec![(0, "granted".to_owned()), (1, "withdrawn".to_owned())]);
}

#[test]
fn the_cli_names_the_problem_when_postgres_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let missing_database = with_database(&admin_url(), "cornetta_no_such_database");
    let cases = [
        ("nothing listens on the port", "postgres://postgres@127.0.0.1:1/test".to_owned()),
        ("the database does not exist", missing_database),
    ];
    for (what, url) in cases {
        let out = cornetta(dir.path(), &["site", "list", "--database-url", &url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: site list must fail");
        assert!(stderr.contains("connecting to PostgreSQL"), "{what}: {stderr}");
        assert!(!stderr.contains("not yet supported"), "{what}: {stderr}");
    }
}

#[tokio::test]
async fn nul_characters_get_a_422_and_store_nothing_on_postgres() {
    let db = TestDatabase::create().await.unwrap();
    let server = Server::builder().args(["--database-url", db.url.as_str()]).start().unwrap();
    cornetta_tests::refusals::nul_characters_are_refused_and_store_nothing(&server).await;
}

#[tokio::test]
async fn an_admin_manages_a_site_over_the_api_and_the_auditor_reads_every_notice_version_on_postgres() {
    let db = TestDatabase::create().await.unwrap();
    let server = Server::builder().args(["--database-url", db.url.as_str()]).start().unwrap();
    cornetta_tests::site_admin::an_admin_manages_a_site_and_the_auditor_reads_its_notice_history(&server).await;
}

#[tokio::test]
async fn a_visitor_withdraws_on_the_withdrawal_page_in_their_language_on_postgres() {
    let db = TestDatabase::create().await.unwrap();
    let server = Server::builder().args(["--database-url", db.url.as_str(), "--checkpoint-interval", "0"]).start().unwrap();
    cornetta_tests::withdrawal::a_visitor_withdraws_on_the_page_in_their_language(&server).await;
    cornetta_tests::withdrawal::withdrawals_sent_at_once_end_each_purpose_once(&server).await;
}
