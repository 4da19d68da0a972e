//! The scripts in examples/ are what users copy: each runs here against the real server
//! process, and what it prints and writes is checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cornetta_tests::{Server, client, cornetta_bin};
use serde_json::{Value, json};

const ORIGIN: &str = "http://127.0.0.1:8081";

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(path)
}

/// `bash examples/<script> <args>` against `server`, writing into `out`.
fn script(script: &str, server: &Server, token: &str, out: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(example(script))
        .args(args)
        .env("CORNETTA_URL", &server.url)
        .env("CORNETTA_TOKEN", token)
        .env("CORNETTA_BIN", cornetta_bin())
        .env("OUT", out)
        .output()
        .expect("bash runs the example")
}

/// Runs an example that must succeed.
fn run(name: &str, server: &Server, token: &str, out: &Path, args: &[&str]) -> Output {
    let output = script(name, server, token, out, args);
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test]
async fn the_auditor_example_answers_from_the_ledger_and_verifies_the_receipt_offline() {
    let server = Server::builder().args(["--checkpoint-interval", "0"]).start().unwrap();
    let site = server.site_key.clone().unwrap();
    let config: Value = client().get(server.at(&format!("/v1/sites/{site}/widget?lang=en"))).header("Origin", ORIGIN).send().await.unwrap().json().await.unwrap();
    let notice = config["notice"]["id"].as_str().unwrap();
    let body = json!({"site": site, "notice": notice, "purposes": ["utility"], "page_url": "http://127.0.0.1:8081/", "phone": "+39 333 765 4321"});
    let response = client().post(server.at("/v1/consents")).header("Origin", ORIGIN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let granted: Value = response.json().await.unwrap();
    let id = granted["id"].as_str().unwrap();
    let admin = server.token("admin");
    let signed = client().post(server.at(&format!("/v1/ledger/checkpoints?site={site}"))).bearer_auth(&admin).send().await.unwrap();
    assert!(signed.status().is_success(), "{:?}", signed.text().await);

    let out = tempfile::tempdir().unwrap();
    let auditor = server.token("auditor");
    let output = run("auditor/queries.sh", &server, &auditor, out.path(), &["+39 333 765 4321", &site]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(id), "the person's event is listed:\n{stdout}");
    assert!(stdout.contains("utility        consented=true"), "consent now:\n{stdout}");
    assert!(stdout.contains("utility        consented=false"), "no consent in 2020:\n{stdout}");
    assert!(stdout.contains("ok=true: 1 events recomputed"), "the log verifies:\n{stdout}");
    let notices: Vec<&str> = stdout.lines().filter(|l| l.contains("sha256 ")).collect();
    assert_eq!(notices.len(), 7, "one notice version per built-in language:\n{stdout}");
    assert!(notices.iter().all(|l| l.contains("sha256 ok") && l.ends_with("current")), "each hash recomputed from its text:\n{stdout}");
    let receipt: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("receipt.json")).unwrap()).unwrap();
    assert!(receipt.to_string().contains(id), "the receipt is the event's");
    let csv = std::fs::read_to_string(out.path().join("consents.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "a header and the one event:\n{csv}");

    // A person with no records: the script says so and fails.
    let none = script("auditor/queries.sh", &server, &auditor, out.path(), &["+39 333 000 0000", &site]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no events"));
}

#[tokio::test]
async fn the_qr_campaign_example_makes_codes_counts_a_scan_and_batches_offline() {
    let server = Server::start().unwrap();
    let marketer = server.token("marketer");
    let out = tempfile::tempdir().unwrap();
    let output = run("qr-campaign/campaign.sh", &server, &marketer, out.path(), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("302 -> https://wa.me/393331234567?text=Hi%21%20I%20saw%20your%20spring%20poster%20%28ref%20"), "the scan is redirected:\n{stdout}");

    let png = std::fs::read(out.path().join("poster-3cm-300dpi.png")).unwrap();
    let decoded = cornetta_tests::qr::decode_png(&png).unwrap();
    let campaign: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("campaign.json")).unwrap()).unwrap();
    assert_eq!(decoded, campaign["short_url"].as_str().unwrap(), "the printed code holds the short link");
    let (_, info) = cornetta_tests::qr::png_to_gray(&png).unwrap();
    assert_eq!((info.width, info.height), (354, 354), "3 cm at 300 dpi is 354 px");
    assert!(std::fs::read_to_string(out.path().join("poster.svg")).unwrap().starts_with("<svg"));

    let stats = std::fs::read_to_string(out.path().join("stats.csv")).unwrap();
    assert_eq!(stats.lines().next(), Some("day,ios,android,desktop,other,bot,total"), "{stats}");
    let today = stats.lines().last().unwrap();
    assert!(today.ends_with(",1,0,0,0,0,1"), "today's one iPhone scan is counted:\n{stats}");
    assert!(stdout.contains("302 -> https://wa.me/393331234567?text=Hi%21%20I%20saw%20your%20summer%20poster%20%28ref%20"), "the edited text:\n{stdout}");
    assert!(stdout.contains("   410 (the scanner sees"), "the ended campaign's code:\n{stdout}");

    let zip = std::fs::read(out.path().join("codes.zip")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let names: Vec<String> = archive.file_names().map(|n| n.unwrap().into_owned()).collect();
    for name in ["codes/shop-window.png", "codes/receipt.png", "codes/flyer-es.png", "links.csv"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    let mut links = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("links.csv").unwrap(), &mut links).unwrap();
    assert!(links.contains("https://wa.me/34612345678?text=%C2%A1Hola%21%20Vi%20su%20folleto"), "{links}");
}
