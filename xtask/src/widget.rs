//! Building the widget into widget/dist/: the wasm32 release build (size profile
//! `wasm-release`), wasm-bindgen `--target web`, wasm-metadce dropping wasm-streams' unused
//! exports, wasm-opt `-Oz` (npm binaryen: Debian's
//! wasm-opt 108 emits wasm Chromium rejects), terser for the glue and the loader,
//! content-hashed file names, and `widget.js` (the loader) naming them.
//!
//! Nothing is rebuilt when the inputs are unchanged: a fingerprint of every input (sources,
//! manifests, Cargo.lock, package-lock.json, tool versions) is kept in `dist/.inputs`, so
//! `cargo xtask test` on a warm machine skips this step in well under a second.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{Result, cargo, root, status, target_dir};

/// The fingerprint file (a dot file: the server does not serve it).
const STAMP: &str = ".inputs";
/// Bump when this build's steps change, so old outputs are not taken as fresh.
const RECIPE: &str = "widget-build-5";

/// Builds the widget into widget/dist; returns the dist directory.
pub(crate) fn build() -> Result<PathBuf> {
    let root = root();
    let dist = root.join("widget/dist");
    let fingerprint = fingerprint(&root)?;
    let stamp = dist.join(STAMP);
    if fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint) && dist.join("widget.js").exists() {
        eprintln!("xtask: widget is up to date ({})", dist.display());
        return Ok(dist);
    }
    crate::setup::widget_toolchain()?;
    let started = std::time::Instant::now();
    status(cargo().args(["build", "--package", "cornetta-widget", "--lib", "--target", "wasm32-unknown-unknown", "--profile", "wasm-release"]))?;
    let wasm = target_dir().join("wasm32-unknown-unknown/wasm-release/cornetta_widget.wasm");
    let work = target_dir().join("widget-work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    status(Command::new("wasm-bindgen").arg("--target").arg("web").arg("--no-typescript").arg("--out-dir").arg(&work).arg(&wasm))?;
    let bin = root.join("node_modules/.bin");
    let wasm_opt = bin.join("wasm-opt");
    let terser = bin.join("terser");
    for tool in [&wasm_opt, &terser] {
        if !tool.exists() {
            return Err(format!("{} is missing; run `cargo xtask setup` (it runs `npm ci` for package.json)", tool.display()));
        }
    }
    // Drop the exports nothing calls (see `unused_export`), so wasm-opt can remove what
    // only they reach.
    let bindgen_wasm = work.join("cornetta_widget_bg.wasm");
    let trimmed = work.join("trimmed.wasm");
    let graph = work.join("roots.json");
    let roots: Vec<String> = exports(&read(&bindgen_wasm)?)?
        .into_iter()
        .filter(|name| !unused_export(name))
        .enumerate()
        .map(|(i, name)| format!("{{\"name\":\"e{i}\",\"export\":\"{}\",\"root\":true}}", name.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    write(&graph, format!("[{}]", roots.join(",")).as_bytes())?;
    let metadce = Command::new(bin.join("wasm-metadce")).arg(&bindgen_wasm).arg("--graph-file").arg(&graph).arg("-o").arg(&trimmed).output();
    match metadce {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Err(format!("wasm-metadce failed: {}", String::from_utf8_lossy(&out.stderr))),
        Err(e) => return Err(format!("running wasm-metadce (npm binaryen): {e}")),
    }
    let optimized = work.join("opt.wasm");
    status(
        Command::new(&wasm_opt)
            // --converge repeats -Oz until nothing shrinks; memory is fresh (zero-filled)
            // and Rust keeps the lowest 1 KiB unused (the stack sits below the data), which
            // lets constant addresses fold. No -tnh: a trap is how a Rust panic ends here.
            .args(["-Oz", "--converge", "--zero-filled-memory", "--low-memory-unused"])
            .arg("--strip-debug")
            .arg("--strip-producers")
            .arg(&trimmed)
            .arg("-o")
            .arg(&optimized),
    )?;
    let glue_min = work.join("glue.min.js");
    status(Command::new(&terser).arg(work.join("cornetta_widget.js")).args(["--module", "--compress", "--mangle", "--output"]).arg(&glue_min))?;
    let loader_min = work.join("loader.min.js");
    status(
        Command::new(&terser)
            .arg(root.join("widget/loader.js"))
            // ES2020 output (arrow functions): every browser with Shadow DOM and
            // WebAssembly parses it; the 3 KB brotli budget is what this file costs.
            .args(["--compress", "passes=3,pure_getters=true,unsafe_arrows=true", "--mangle", "--ecma", "2020", "--output"])
            .arg(&loader_min),
    )?;

    let wasm_bytes = read(&optimized)?;
    let glue_bytes = read(&glue_min)?;
    let wasm_name = format!("cornetta-{}.wasm", short_hash(&wasm_bytes));
    let glue_name = format!("cornetta-{}.js", short_hash(&glue_bytes));
    let version = format!("{}+{}", env!("CARGO_PKG_VERSION"), &short_hash(&[wasm_bytes.as_slice(), glue_bytes.as_slice()].concat())[..8]);
    let loader = String::from_utf8(read(&loader_min)?).map_err(|e| format!("the minified loader is not UTF-8: {e}"))?;
    for placeholder in ["__CORNETTA_GLUE__", "__CORNETTA_WASM__", "__CORNETTA_VERSION__"] {
        if !loader.contains(placeholder) {
            return Err(format!("widget/loader.js lost its {placeholder} placeholder"));
        }
    }
    let loader = loader.replace("__CORNETTA_GLUE__", &glue_name).replace("__CORNETTA_WASM__", &wasm_name).replace("__CORNETTA_VERSION__", &version);

    // Replace the previous build's files (old hashed names would pile up otherwise).
    fs::create_dir_all(&dist).map_err(|e| format!("creating {}: {e}", dist.display()))?;
    for entry in fs::read_dir(&dist).map_err(|e| format!("reading {}: {e}", dist.display()))?.flatten() {
        if entry.path().is_file() {
            let _ = fs::remove_file(entry.path());
        }
    }
    write(&dist.join(&wasm_name), &wasm_bytes)?;
    write(&dist.join(&glue_name), &glue_bytes)?;
    write(&dist.join("widget.js"), loader.as_bytes())?;
    write(&stamp, fingerprint.as_bytes())?;
    eprintln!(
        "xtask: widget built in {:.0} s: widget.js {} B, {glue_name} {} B, {wasm_name} {} B (raw; `cargo xtask bench widget` measures what browsers download)",
        started.elapsed().as_secs_f64(),
        loader.len(),
        glue_bytes.len(),
        wasm_bytes.len()
    );
    Ok(dist)
}

/// Exports wasm-bindgen emits for wasm-streams' JS classes (`IntoUnderlyingSource`,
/// `IntoUnderlyingSink`, `IntoUnderlyingByteSource`): Leptos always links server_fn, and
/// server_fn wasm-streams, even in a client-side app that never streams a server function.
/// Nothing in the widget constructs them; their glue classes stay in the JS, unused.
fn unused_export(name: &str) -> bool {
    name.to_ascii_lowercase().contains("intounderlying")
}

/// The names in a wasm module's export section.
fn exports(wasm: &[u8]) -> Result<Vec<String>> {
    fn leb(bytes: &[u8], pos: &mut usize) -> Result<usize> {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = *bytes.get(*pos).ok_or("the wasm ends inside a number")?;
            *pos += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }
    if wasm.get(..4) != Some(b"\0asm") {
        return Err("not a wasm module".into());
    }
    let mut pos = 8;
    while pos < wasm.len() {
        let id = wasm[pos];
        pos += 1;
        let size = leb(wasm, &mut pos)?;
        let end = pos + size;
        if id == 7 {
            let count = leb(wasm, &mut pos)?;
            let mut names = Vec::with_capacity(count);
            for _ in 0..count {
                let len = leb(wasm, &mut pos)?;
                let name = wasm.get(pos..pos + len).ok_or("the wasm ends inside an export name")?;
                names.push(String::from_utf8_lossy(name).into_owned());
                pos += len + 1; // the name, then the export's kind
                leb(wasm, &mut pos)?; // and its index
            }
            return Ok(names);
        }
        pos = end;
    }
    Ok(Vec::new())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result {
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// A hash over everything the build reads.
fn fingerprint(root: &Path) -> Result<String> {
    let mut files = Vec::new();
    for dir in ["widget/src", "shared/src"] {
        collect(&root.join(dir), &mut files);
    }
    for file in ["widget/loader.js", "widget/Cargo.toml", "shared/Cargo.toml", "Cargo.toml", "Cargo.lock", "package-lock.json"] {
        files.push(root.join(file));
    }
    files.sort();
    let mut hasher = Sha256::new();
    hasher.update(RECIPE.as_bytes());
    for tool in [Command::new("wasm-bindgen").arg("--version"), Command::new("rustc").arg("--version")] {
        if let Ok(out) = tool.output() {
            hasher.update(&out.stdout);
        }
    }
    for file in &files {
        hasher.update(file.strip_prefix(root).unwrap_or(file).to_string_lossy().as_bytes());
        hasher.update(fs::read(file).unwrap_or_default());
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
