//! `cornetta-bench qr`: QR codes per second and output bytes, SVG and PNG, for Cornetta's
//! generator next to Node's `qrcode` (npm) and Python's `segno` (PyPI), on the same wa.me
//! payloads (distinct per iteration, ECC M, quiet zone 4, PNG at 8 px per module), one
//! core each, in one run; then short-link redirects per second with latency percentiles
//! against the real server on 127.0.0.1.
//!
//! Node and Python packages are installed by this command into a cache directory
//! (`CORNETTA_BENCH_CACHE`, default `~/.cache/cornetta-bench`) with npm and pip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cornetta_server::qr::{Matrix, Style, render};
use qrcode::EcLevel;

const NODE_QRCODE: &str = "qrcode@1.5.4";
const SEGNO: &str = "segno==1.6.6";
const SCALE: u32 = 8;
const MARGIN: u32 = 4;

fn payload(i: usize) -> String {
    format!("https://wa.me/393331234567?text=Hello%20from%20poster%20number%20{i:06}")
}

/// One generator's figures.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct Figures {
    name: String,
    matrices_per_s: Option<f64>,
    svg_per_s: f64,
    png_per_s: f64,
    svg_bytes: f64,
    png_bytes: f64,
}

fn cache_dir() -> PathBuf {
    std::env::var_os("CORNETTA_BENCH_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        home.join(".cache/cornetta-bench")
    })
}

fn run_ok(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_node(dir: &Path) -> anyhow::Result<PathBuf> {
    let prefix = dir.join("node");
    if !prefix.join("node_modules/qrcode/package.json").exists() {
        eprintln!("installing {NODE_QRCODE} with npm into {}", prefix.display());
        run_ok(Command::new("npm").args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"]).arg(&prefix).arg(NODE_QRCODE), "npm install")?;
    }
    Ok(prefix.join("node_modules"))
}

fn ensure_segno(dir: &Path) -> anyhow::Result<PathBuf> {
    let target = dir.join("py");
    if !target.join("segno/__init__.py").exists() {
        eprintln!("installing {SEGNO} with pip into {}", target.display());
        run_ok(Command::new("python3").args(["-m", "pip", "install", "--quiet", "--target"]).arg(&target).arg(SEGNO), "pip install")?;
    }
    Ok(target)
}

const NODE_SCRIPT: &str = r#"
const path = require('path');
const mods = process.argv[2];
const n = parseInt(process.argv[3], 10);
const core = require(path.join(mods, 'qrcode/lib/core/qrcode'));
const svgTag = require(path.join(mods, 'qrcode/lib/renderer/svg-tag'));
const pngR = require(path.join(mods, 'qrcode/lib/renderer/png'));
const { PNG } = require(path.join(mods, 'pngjs'));
const payload = (i) => 'https://wa.me/393331234567?text=Hello%20from%20poster%20number%20' + String(i).padStart(6, '0');
const opts = { errorCorrectionLevel: 'M', margin: 4, scale: 8 };
function time(f) { const t = process.hrtime.bigint(); const r = f(); return [Number(process.hrtime.bigint() - t) / 1e9, r]; }
let base = 1000000;
const [tm] = time(() => { for (let i = 0; i < n; i++) core.create(payload(base + i), opts); });
base += n;
let svgBytes = 0, pngBytes = 0;
const [ts] = time(() => { for (let i = 0; i < n; i++) { const q = core.create(payload(base + i), opts); svgBytes += Buffer.byteLength(svgTag.render(q, opts)); } });
base += n;
const [tp] = time(() => { for (let i = 0; i < n; i++) { const q = core.create(payload(base + i), opts); pngBytes += PNG.sync.write(pngR.render(q, opts)).length; } });
console.log(JSON.stringify({ name: 'Node qrcode 1.5.4', matrices_per_s: n / tm, svg_per_s: n / ts, png_per_s: n / tp, svg_bytes: svgBytes / n, png_bytes: pngBytes / n }));
"#;

const PY_SCRIPT: &str = r#"
import io, json, sys, time
import segno
n = int(sys.argv[1])
def payload(i): return 'https://wa.me/393331234567?text=Hello%20from%20poster%20number%20' + str(i).zfill(6)
base = 2000000
t = time.perf_counter()
for i in range(n): segno.make_qr(payload(base + i), error='m', boost_error=False)
tm = time.perf_counter() - t
base += n
svg = 0
t = time.perf_counter()
for i in range(n):
    b = io.BytesIO(); segno.make_qr(payload(base + i), error='m', boost_error=False).save(b, kind='svg', border=4); svg += len(b.getvalue())
ts = time.perf_counter() - t
base += n
png = 0
t = time.perf_counter()
for i in range(n):
    b = io.BytesIO(); segno.make_qr(payload(base + i), error='m', boost_error=False).save(b, kind='png', scale=8, border=4); png += len(b.getvalue())
tp = time.perf_counter() - t
print(json.dumps({'name': 'Python segno 1.6.6', 'matrices_per_s': n / tm, 'svg_per_s': n / ts, 'png_per_s': n / tp, 'svg_bytes': svg / n, 'png_bytes': png / n}))
"#;

fn node_figures(dir: &Path, n: usize) -> anyhow::Result<Figures> {
    let modules = ensure_node(dir)?;
    let script = dir.join("bench-qrcode.js");
    std::fs::write(&script, NODE_SCRIPT)?;
    let out = run_ok(Command::new("node").arg(&script).arg(&modules).arg(n.to_string()), "node")?;
    Ok(serde_json::from_str(out.trim())?)
}

fn segno_figures(dir: &Path, n: usize) -> anyhow::Result<Figures> {
    let target = ensure_segno(dir)?;
    let script = dir.join("bench-segno.py");
    std::fs::write(&script, PY_SCRIPT)?;
    let out = run_ok(Command::new("python3").arg(&script).arg(n.to_string()).env("PYTHONPATH", &target), "python3")?;
    Ok(serde_json::from_str(out.trim())?)
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn cornetta_figures(n: usize) -> anyhow::Result<(Figures, [f64; 3], f64)> {
    let style = Style::plain(MARGIN);
    let mut base = 3_000_000;
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(Matrix::encode(&payload(base + i), EcLevel::M)?);
    }
    let matrices = per_second(n, t.elapsed());
    base += n;
    let mut svg_bytes = 0usize;
    let t = Instant::now();
    for i in 0..n {
        let m = Matrix::encode(&payload(base + i), EcLevel::M)?;
        let size = (m.width() as u32 + 2 * MARGIN) * SCALE;
        svg_bytes += render::svg(&m, &style, &render::SvgSize::Pixels(size)).len();
    }
    let svg = per_second(n, t.elapsed());
    base += n;
    let mut png_bytes = 0usize;
    let t = Instant::now();
    for i in 0..n {
        let m = Matrix::encode(&payload(base + i), EcLevel::M)?;
        let size = (m.width() as u32 + 2 * MARGIN) * SCALE;
        png_bytes += render::png(&m, &style, size, None)?.len();
    }
    let png = per_second(n, t.elapsed());
    base += n;
    // The `qrcode` crate with its own mask choice (its stock path), and `fast_qr`.
    let stock_n = n / 10;
    let t = Instant::now();
    for i in 0..stock_n {
        std::hint::black_box(qrcode::QrCode::with_error_correction_level(payload(base + i).as_bytes(), EcLevel::M)?);
    }
    let stock = per_second(stock_n, t.elapsed());
    base += stock_n;
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(fast_qr::QRBuilder::new(payload(base + i).as_bytes()).ecl(fast_qr::ECL::M).build().map_err(|e| anyhow::anyhow!("{e:?}"))?);
    }
    let fast = per_second(n, t.elapsed());
    base += n;
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(Matrix::encode_qrcode(&payload(base + i), EcLevel::M)?);
    }
    let own_mask = per_second(n, t.elapsed());
    // The same matrix rendered at the same size as the others, for a like-for-like check.
    let m = Matrix::encode(&payload(0), EcLevel::M)?;
    let same = Matrix::encode_with_qrcode_mask(&payload(0), EcLevel::M)?;
    let same_width = m.width() == same.width();
    let figures = Figures {
        name: "Cornetta (fast_qr matrix, own renderers)".into(),
        matrices_per_s: Some(matrices),
        svg_per_s: svg,
        png_per_s: png,
        svg_bytes: svg_bytes as f64 / n as f64,
        png_bytes: png_bytes as f64 / n as f64,
    };
    Ok((figures, [stock, own_mask, fast], if same_width { m.width() as f64 } else { -1.0 }))
}

fn print_row(f: &Figures) {
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10} {:>10}",
        f.name,
        f.matrices_per_s.map_or("-".to_owned(), |m| format!("{m:.0}")),
        format!("{:.0}", f.svg_per_s),
        format!("{:.0}", f.png_per_s),
        format!("{:.0}", f.svg_bytes),
        format!("{:.0}", f.png_bytes)
    );
}

/// Runs the generator comparison and the redirect load test.
pub async fn run(quick: bool) -> anyhow::Result<()> {
    let n = if quick { 500 } else { 3000 };
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)?;
    println!("QR generation, one core, distinct payloads like {:?} ({} bytes), ECC M, quiet zone 4, PNG at {SCALE} px/module", payload(0), payload(0).len());
    let (ours, [stock, own_mask, fast], width) = cornetta_figures(n)?;
    let node = node_figures(&dir, n)?;
    let segno = segno_figures(&dir, (n / 10).max(100))?;
    println!("{:<44} {:>10} {:>10} {:>10} {:>10} {:>10}", "generator", "matrix/s", "SVG/s", "PNG/s", "SVG bytes", "PNG bytes");
    for f in [&ours, &node, &segno] {
        print_row(f);
    }
    println!("{:<44} {:>10.0}", "qrcode crate 0.14 with its own mask choice", stock);
    println!("{:<44} {:>10.0}", "qrcode crate 0.14 + Cornetta's mask choice", own_mask);
    println!("{:<44} {:>10.0}", "fast_qr crate 0.14 (alone)", fast);
    println!("(code width {width} modules)");
    let faster_svg = node.svg_per_s.max(segno.svg_per_s);
    let faster_png = node.png_per_s.max(segno.png_per_s);
    println!(
        "Cornetta vs the faster of Node/segno: SVG {:.1}x, PNG {:.1}x; bytes SVG {:.2}x of the smaller, PNG {:.2}x of the smaller",
        ours.svg_per_s / faster_svg,
        ours.png_per_s / faster_png,
        ours.svg_bytes / node.svg_bytes.min(segno.svg_bytes),
        ours.png_bytes / node.png_bytes.min(segno.png_bytes)
    );
    let secs = if quick { 3 } else { 10 };
    redirects(Duration::from_secs(secs), 200_000, 32).await
}

/// Short-link redirects against the real server (release build) on 127.0.0.1: `conns`
/// concurrent keep-alive connections for at most `time` or `limit` requests.
async fn redirects(time: Duration, limit: usize, conns: usize) -> anyhow::Result<()> {
    let server = crate::Server::builder().args(["--public-reads-per-minute", "100000000"]).env("CORNETTA_LOG", "warn").start()?;
    let token = server.token("marketer");
    let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(conns).build()?;
    let created: serde_json::Value = client
        .post(server.at("/v1/campaigns"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "bench", "text": "Hi {ref}"}))
        .send()
        .await?
        .json()
        .await?;
    let url = created["short_url"].as_str().context("short_url")?.to_owned();
    let deadline = Instant::now() + time;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, count) = (client.clone(), url.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline && count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < limit {
                let t = Instant::now();
                match client.get(&url).header("user-agent", "Mozilla/5.0 (Linux; Android 14) Mobile").send().await {
                    Ok(r) if r.status() == 302 => lat.push(t.elapsed().as_micros() as u64),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "Short-link redirects (GET /q/<code> → 302, {conns} connections, client and server on the same 2 cores): {} in {:.1} s = {:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {errors} errors",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        all.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    let stats: serde_json::Value = client
        .get(server.at(&format!("/v1/campaigns/{}/stats", created["id"].as_str().unwrap_or(""))))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    println!("Scans counted by the server: {}", stats["total"]);
    Ok(())
}
