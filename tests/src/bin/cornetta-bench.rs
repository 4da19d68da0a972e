//! `cornetta-bench <area>`: measures and prints figures (never asserted in tests).
//! Areas: `qr` (QR generation against Node's qrcode and Python's segno, and short-link
//! redirects under load).

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let area = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match area.as_str() {
        "qr" => cornetta_tests::bench::qr::run(&rest),
        _ => anyhow::bail!(
            "usage: cornetta-bench <area> [options]\nareas:\n  qr [--quick]   QR codes per second (SVG, PNG) vs Node qrcode and Python segno; /q/ redirects per second"
        ),
    }
}
