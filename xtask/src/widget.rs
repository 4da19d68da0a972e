//! Building the widget: wasm32 release build, wasm-bindgen, wasm-opt, content-hashed names,
//! and the loader, into widget/dist/. (Owned by the widget work.)

use crate::Result;

/// Builds the widget into widget/dist; returns the dist directory.
pub(crate) fn build() -> Result<std::path::PathBuf> {
    Err("the widget build is not written yet".into())
}

/// Runs the widget's own wasm tests.
pub(crate) fn test() -> Result {
    Ok(())
}
