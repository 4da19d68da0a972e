//! QR codes of links: the matrix from the `qrcode` crate, rendered here as one compact SVG
//! path (a run of dark modules per segment, not a rect per module) or as a 1-bit PNG.

use qrcode::{Color, EcLevel, QrCode};

/// Smallest and largest image edge we render, in pixels.
pub const MIN_SIZE_PX: u32 = 64;
pub const MAX_SIZE_PX: u32 = 4096;
/// Largest quiet zone, in modules. ISO/IEC 18004 asks for 4.
pub const MAX_MARGIN: u32 = 16;
pub const DEFAULT_MARGIN: u32 = 4;
pub const DEFAULT_SIZE_PX: u32 = 512;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    pub fn parse(input: &str) -> Option<Self> {
        match input.to_ascii_lowercase().as_str() {
            "svg" => Some(Self::Svg),
            "png" => Some(Self::Png),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Svg => "image/svg+xml",
            Self::Png => "image/png",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Svg => "svg",
            Self::Png => "png",
        }
    }
}

/// Error-correction level, `L|M|Q|H`.
pub fn parse_ecc(input: &str) -> Option<EcLevel> {
    match input.to_ascii_uppercase().as_str() {
        "L" => Some(EcLevel::L),
        "M" => Some(EcLevel::M),
        "Q" => Some(EcLevel::Q),
        "H" => Some(EcLevel::H),
        _ => None,
    }
}

pub fn ecc_name(ecc: EcLevel) -> &'static str {
    match ecc {
        EcLevel::L => "L",
        EcLevel::M => "M",
        EcLevel::Q => "Q",
        EcLevel::H => "H",
    }
}

/// Why a code could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("the link is {bytes} bytes long, too long for a QR code at error correction {ecc}; shorten the text or use a lower error correction")]
    TooLong { bytes: usize, ecc: &'static str },
    #[error("size {size} px is too small for this code: it needs at least {min} px ({modules} modules with the quiet zone)")]
    TooSmall { size: u32, min: u32, modules: u32 },
}

/// The modules of a code, row by row, `true` for dark.
#[derive(Debug, Clone)]
pub struct Matrix {
    width: usize,
    dark: Vec<bool>,
}

impl Matrix {
    pub fn encode(data: &str, ecc: EcLevel) -> Result<Self, QrError> {
        let code = QrCode::with_error_correction_level(data.as_bytes(), ecc)
            .map_err(|_| QrError::TooLong { bytes: data.len(), ecc: ecc_name(ecc) })?;
        let width = code.width();
        let dark = code.into_colors().into_iter().map(|c| c == Color::Dark).collect();
        Ok(Self { width, dark })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.width + x]
    }

    /// The SVG document: a white square and one black path, `size` px wide.
    pub fn to_svg(&self, margin: u32, size: u32) -> String {
        let margin = margin as usize;
        let total = self.width + 2 * margin;
        let mut path = String::with_capacity(self.width * self.width);
        for y in 0..self.width {
            let mut x = 0;
            while x < self.width {
                if !self.is_dark(x, y) {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < self.width && self.is_dark(x, y) {
                    x += 1;
                }
                let run = x - start;
                path.push_str(&format!("M{} {}h{}v1h-{}z", start + margin, y + margin, run, run));
            }
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {total} {total}\" shape-rendering=\"crispEdges\"><rect width=\"{total}\" height=\"{total}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>\n"
        )
    }

    /// A `size`×`size` 1-bit grayscale PNG. Modules are whole pixels (nearest integer scale);
    /// what is left over widens the quiet zone evenly.
    pub fn to_png(&self, margin: u32, size: u32) -> Result<Vec<u8>, QrError> {
        let total = self.width as u32 + 2 * margin;
        if size < total {
            return Err(QrError::TooSmall { size, min: total, modules: total });
        }
        let scale = size / total;
        let offset = (size - scale * total) / 2 + margin * scale;
        let row_bytes = size.div_ceil(8) as usize;
        let mut pixels = vec![0xFFu8; row_bytes * size as usize];
        let code_px = self.width as u32 * scale;
        for py in 0..code_px {
            let y = (py / scale) as usize;
            let row = &mut pixels[(offset + py) as usize * row_bytes..][..row_bytes];
            for px in 0..code_px {
                if self.is_dark((px / scale) as usize, y) {
                    let col = (offset + px) as usize;
                    row[col / 8] &= !(0x80 >> (col % 8));
                }
            }
        }
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, size, size);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::One);
            encoder.set_compression(png::Compression::Best);
            let mut writer = encoder.write_header().map_err(|_| QrError::TooSmall { size, min: total, modules: total })?;
            writer.write_image_data(&pixels).map_err(|_| QrError::TooSmall { size, min: total, modules: total })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_is_one_path_not_a_rect_per_module() {
        let m = Matrix::encode("https://wa.me/393331234567?text=Hi", EcLevel::M).unwrap();
        let svg = m.to_svg(4, 256);
        assert_eq!(svg.matches("<path").count(), 1);
        assert_eq!(svg.matches("<rect").count(), 1);
        assert!(svg.len() < 6000, "{} bytes", svg.len());
    }

    #[test]
    fn png_has_the_requested_size_and_refuses_too_small() {
        let m = Matrix::encode("https://wa.me/393331234567", EcLevel::M).unwrap();
        let png = m.to_png(4, 300).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (300, 300));
        assert!(matches!(m.to_png(4, 20), Err(QrError::TooSmall { .. })));
    }

    #[test]
    fn data_too_long_for_any_version_is_an_error() {
        let long = "a".repeat(3000);
        assert!(matches!(Matrix::encode(&long, EcLevel::H), Err(QrError::TooLong { .. })));
    }
}
