//! Drawing a matrix: SVG as one stroked path (a horizontal line per run of dark modules,
//! relative moves between runs) and PNG as a 1-bit image (grayscale for black on white, a
//! two-entry palette otherwise) with its physical resolution in a `pHYs` chunk.

use std::fmt::Write as _;

use super::options::Style;
use super::{Matrix, QrError};

/// The SVG's declared size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SvgSize {
    Pixels(u32),
    /// Printed size; SVG lengths accept `mm` (https://www.w3.org/TR/SVG11/coords.html#Units).
    Millimetres(f64),
}

/// The SVG document: a background rectangle and one path for every dark module.
///
/// Each run of dark modules in a row is a horizontal line of stroke width 1 through the
/// row's middle (`y + .5`), so a run costs `m<dx> <dy>h<len>` instead of a rectangle.
pub fn svg(matrix: &Matrix, style: &Style, size: &SvgSize) -> String {
    let margin = style.margin() as i64;
    let total = matrix.width() as i64 + 2 * margin;
    let mut d = String::with_capacity(matrix.width() * matrix.width() / 2);
    // The pen's position after the last run: (x, y) in module units, y on the row.
    let mut pen: Option<(i64, i64)> = None;
    for y in 0..matrix.width() {
        let mut x = 0;
        while x < matrix.width() {
            if !matrix.is_dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < matrix.width() && matrix.is_dark(x, y) {
                x += 1;
            }
            let (sx, sy) = (start as i64 + margin, y as i64 + margin);
            match pen {
                None => {
                    let _ = write!(d, "M{sx} {sy}.5");
                }
                Some((px, py)) => {
                    let mut relative = String::new();
                    let _ = write!(relative, "m{} {}", sx - px, sy - py);
                    let mut absolute = String::new();
                    let _ = write!(absolute, "M{sx} {sy}.5");
                    d.push_str(if relative.len() <= absolute.len() { &relative } else { &absolute });
                }
            }
            let _ = write!(d, "h{}", x - start);
            pen = Some((x as i64 + margin, sy));
        }
    }
    let (w, h) = match size {
        SvgSize::Pixels(px) => (px.to_string(), px.to_string()),
        SvgSize::Millimetres(mm) => (format!("{mm}mm"), format!("{mm}mm")),
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {total} {total}\" shape-rendering=\"crispEdges\"><rect width=\"{total}\" height=\"{total}\" fill=\"{bg}\"/><path stroke=\"{fg}\" d=\"{d}\"/></svg>\n",
        bg = style.bg().css(),
        fg = style.fg().css(),
    )
}

/// A `size`×`size` 1-bit PNG. Modules are whole pixels (the largest integer scale that
/// fits); what is left over widens the quiet zone evenly, so a code asked for at 3 cm is
/// 3 cm wide with crisp modules. With `dpi`, a `pHYs` chunk tells print software the size.
pub fn png(matrix: &Matrix, style: &Style, size: u32, dpi: Option<u32>) -> Result<Vec<u8>, QrError> {
    let margin = style.margin();
    let total = matrix.width() as u32 + 2 * margin;
    if size < total {
        return Err(QrError::TooSmall { size, min: total, modules: total });
    }
    let scale = size / total;
    let offset = (size - scale * total) / 2 + margin * scale;
    let row_bytes = size.div_ceil(8) as usize;
    // Bit 1 = light (white in grayscale, palette entry 1 = background).
    let mut pixels = vec![0xFFu8; row_bytes * size as usize];
    let code_px = matrix.width() as u32 * scale;
    let mut line = vec![0xFFu8; row_bytes];
    for y in 0..matrix.width() {
        line.fill(0xFF);
        for x in 0..matrix.width() {
            if matrix.is_dark(x, y) {
                let from = (offset + x as u32 * scale) as usize;
                for col in from..from + scale as usize {
                    line[col / 8] &= !(0x80 >> (col % 8));
                }
            }
        }
        let first = (offset + y as u32 * scale) as usize;
        for py in first..first + scale as usize {
            pixels[py * row_bytes..][..row_bytes].copy_from_slice(&line);
        }
    }
    debug_assert!(offset + code_px <= size);
    let mut out = Vec::with_capacity(1024);
    {
        let mut encoder = png::Encoder::new(&mut out, size, size);
        if style.is_black_on_white() {
            encoder.set_color(png::ColorType::Grayscale);
        } else {
            encoder.set_color(png::ColorType::Indexed);
            let [fr, fg, fb] = style.fg().rgb();
            let [br, bgc, bb] = style.bg().rgb();
            // Index 0 (bit 0) is a dark module, index 1 the background.
            encoder.set_palette(vec![fr, fg, fb, br, bgc, bb]);
        }
        encoder.set_depth(png::BitDepth::One);
        encoder.set_compression(png::Compression::Best);
        encoder.set_filter(png::FilterType::NoFilter);
        encoder.set_adaptive_filter(png::AdaptiveFilterType::NonAdaptive);
        if let Some(dpi) = dpi {
            // pHYs is in pixels per metre (PNG spec §11.3.5.3).
            let ppm = (f64::from(dpi) / 0.0254).round() as u32;
            encoder.set_pixel_dims(Some(png::PixelDimensions { xppu: ppm, yppu: ppm, unit: png::Unit::Meter }));
        }
        let mut writer = encoder.write_header().map_err(|e| QrError::Png(e.to_string()))?;
        writer.write_image_data(&pixels).map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}
