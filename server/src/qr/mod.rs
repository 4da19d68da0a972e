//! QR codes of links: the matrix, rendered by `render` as one compact SVG path or a 1-bit
//! PNG, with the print options of `options`.
//!
//! The matrix comes from the `fast_qr` crate: the design named `qrcode`, and the QR studio
//! issue asked to keep it if it reaches 3× the faster of Node's `qrcode` and `segno`. It
//! does not: its own mask choice scores the eight masks per module (~1.5 ms a code here),
//! and even with the mask chosen here over a flat grid (`encode_qrcode`, kept for the
//! bench and its tests) it gives ~8,000 matrices/s, 2.3× Node for SVG. `fast_qr` makes
//! ~13,000/s with the standard's four penalty rules; `cornetta-bench qr` prints all of them.
//! Every code either path makes is decoded back by an independent decoder in the tests.

pub mod batch;
pub mod options;
pub mod render;

use qrcode::canvas::{Canvas, Module};
use qrcode::{EcLevel, bits, ec};

pub use options::{Colour, Format, RenderOptions, SizeSpec, Style};

/// Smallest and largest image edge we render, in pixels.
pub const MIN_SIZE_PX: u32 = 64;
pub const MAX_SIZE_PX: u32 = 4096;
/// Largest quiet zone, in modules. ISO/IEC 18004 asks for 4.
pub const MAX_MARGIN: u32 = 16;
pub const DEFAULT_MARGIN: u32 = 4;
pub const DEFAULT_SIZE_PX: u32 = 512;

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
    #[error("the PNG encoder failed: {0}")]
    Png(String),
}

/// The modules of a code, row by row, `true` for dark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    width: usize,
    dark: Vec<bool>,
}

/// The eight data masks of ISO/IEC 18004 §7.8.2, `x` the column and `y` the row, in the
/// order of their 3-bit pattern references.
const MASKS: [fn(usize, usize) -> bool; 8] = [
    |x, y| (x + y) % 2 == 0,
    |_, y| y % 2 == 0,
    |x, _| x % 3 == 0,
    |x, y| (x + y) % 3 == 0,
    |x, y| (y / 2 + x / 3) % 2 == 0,
    |x, y| (x * y) % 2 + (x * y) % 3 == 0,
    |x, y| ((x * y) % 2 + (x * y) % 3) % 2 == 0,
    |x, y| ((x + y) % 2 + (x * y) % 3) % 2 == 0,
];

/// Where the 15 format bits go, most significant first (§7.9.1, figure 25), as (x, y);
/// negative coordinates count from the far edge. The same table as `qrcode`'s canvas.
const FORMAT_MAIN: [(i32, i32); 15] =
    [(0, 8), (1, 8), (2, 8), (3, 8), (4, 8), (5, 8), (7, 8), (8, 8), (8, 7), (8, 5), (8, 4), (8, 3), (8, 2), (8, 1), (8, 0)];
const FORMAT_SIDE: [(i32, i32); 15] =
    [(8, -1), (8, -2), (8, -3), (8, -4), (8, -5), (8, -6), (8, -7), (-8, 8), (-7, 8), (-6, 8), (-5, 8), (-4, 8), (-3, 8), (-2, 8), (-1, 8)];

/// The format information of §7.9.1: 2 bits of error-correction level and 3 of mask, a
/// BCH(15,5) remainder with generator 0x537, XORed with 0x5412.
fn format_bits(ecc: EcLevel, mask: usize) -> u32 {
    let level = match ecc {
        EcLevel::L => 0b01,
        EcLevel::M => 0b00,
        EcLevel::Q => 0b11,
        EcLevel::H => 0b10,
    };
    let data = (level << 3 | mask as u32) << 10;
    let mut rem = data;
    for i in (0..5).rev() {
        if rem & (1 << (i + 10)) != 0 {
            rem ^= 0x537 << i;
        }
    }
    (data | rem) ^ 0x5412
}

impl Matrix {
    /// Encodes `data` at the smallest version that holds it, at level `ecc`, with the mask
    /// of lowest ISO/IEC 18004 penalty (`fast_qr`).
    pub fn encode(data: &str, ecc: EcLevel) -> Result<Self, QrError> {
        let level = match ecc {
            EcLevel::L => fast_qr::ECL::L,
            EcLevel::M => fast_qr::ECL::M,
            EcLevel::Q => fast_qr::ECL::Q,
            EcLevel::H => fast_qr::ECL::H,
        };
        let code = fast_qr::QRBuilder::new(data.as_bytes())
            .ecl(level)
            .build()
            .map_err(|_| QrError::TooLong { bytes: data.len(), ecc: ecc_name(ecc) })?;
        let width = code.size;
        // Row-major, as here: `data[row * size + column]`.
        let dark = code.data[..width * width].iter().map(|m| m.value()).collect();
        Ok(Self { width, dark })
    }

    /// The same with `qrcode`'s bit stream (optimal segmentation), Reed–Solomon blocks and
    /// placement, and the mask chosen here; slower than `encode` (see the module doc).
    pub fn encode_qrcode(data: &str, ecc: EcLevel) -> Result<Self, QrError> {
        let too_long = || QrError::TooLong { bytes: data.len(), ecc: ecc_name(ecc) };
        let bits = bits::encode_auto(data.as_bytes(), ecc).map_err(|_| too_long())?;
        let version = bits.version();
        let (data_words, ec_words) = ec::construct_codewords(&bits.into_bytes(), version, ecc).map_err(|_| too_long())?;
        let mut canvas = Canvas::new(version, ecc);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&data_words, &ec_words);
        let width = version.width() as usize;
        // Unmasked grid: colour and whether the module carries data (masks apply to data
        // only). The format areas are reserved as light functional modules here.
        let mut base = vec![0u8; width * width];
        let mut is_data = vec![false; width * width];
        for y in 0..width {
            for x in 0..width {
                let module = canvas.get(x as i16, y as i16);
                base[y * width + x] = u8::from(module.is_dark());
                is_data[y * width + x] = !matches!(module, Module::Masked(_));
            }
        }
        let mut best: Option<(u32, Vec<u8>)> = None;
        let mut grid = vec![0u8; width * width];
        for (mask, function) in MASKS.iter().enumerate() {
            for y in 0..width {
                for x in 0..width {
                    let i = y * width + x;
                    grid[i] = base[i] ^ u8::from(is_data[i] && function(x, y));
                }
            }
            draw_format(&mut grid, width, format_bits(ecc, mask));
            let score = penalty(&grid, width);
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                best = Some((score, grid.clone()));
            }
        }
        let grid = best.map(|(_, g)| g).unwrap_or(base);
        Ok(Self { width, dark: grid.into_iter().map(|m| m == 1).collect() })
    }

    /// The same code with the mask `qrcode` itself picks (its `QrCode`), for comparisons.
    pub fn encode_with_qrcode_mask(data: &str, ecc: EcLevel) -> Result<Self, QrError> {
        let code = qrcode::QrCode::with_error_correction_level(data.as_bytes(), ecc)
            .map_err(|_| QrError::TooLong { bytes: data.len(), ecc: ecc_name(ecc) })?;
        let width = code.width();
        let dark = code.into_colors().into_iter().map(|c| c == qrcode::Color::Dark).collect();
        Ok(Self { width, dark })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.width + x]
    }

    /// Clears (makes light) a centred square of `side` modules: the label area.
    fn clear_centre(&mut self, side: usize) {
        let start = (self.width - side) / 2;
        for y in start..start + side {
            for x in start..start + side {
                self.dark[y * self.width + x] = false;
            }
        }
    }

    /// The foundation's renderers, kept for callers that only know size and margin.
    pub fn to_svg(&self, margin: u32, size: u32) -> String {
        let style = Style::plain(margin);
        render::svg(self, &style, &render::SvgSize::Pixels(size))
    }

    pub fn to_png(&self, margin: u32, size: u32) -> Result<Vec<u8>, QrError> {
        render::png(self, &Style::plain(margin), size, None)
    }
}

fn draw_format(grid: &mut [u8], width: usize, format: u32) {
    let w = width as i32;
    for table in [&FORMAT_MAIN, &FORMAT_SIDE] {
        for (bit, &(x, y)) in table.iter().enumerate() {
            let x = if x < 0 { x + w } else { x } as usize;
            let y = if y < 0 { y + w } else { y } as usize;
            grid[y * width + x] = ((format >> (14 - bit)) & 1) as u8;
        }
    }
}

/// The penalty of ISO/IEC 18004:2015 §7.8.3.1: N1 = 3 for each run of 5 same-coloured
/// modules in a row or column (+1 per extra module), N2 = 3 per 2×2 same-coloured block,
/// N3 = 40 per 1:1:3:1:1 finder-like pattern with 4 light modules on a side (outside
/// the symbol counts as light), N4 = 10 per 5% the dark share strays from 50%.
fn penalty(grid: &[u8], width: usize) -> u32 {
    let mut score = 0u32;
    // Rows and columns: runs (N1) and finder-like patterns (N3) with an 11-module window.
    // The finder-like run 1011101 next to its 4 light modules, grouped as such.
    #[expect(clippy::unusual_byte_groupings, reason = "grouped as the pattern and its light side")]
    const FINDER_A: u32 = 0b1011101_0000;
    const FINDER_B: u32 = 0b0000_1011101;
    for line in 0..width {
        for horizontal in [true, false] {
            let at = |k: usize| if horizontal { grid[line * width + k] } else { grid[k * width + line] };
            let mut run_colour = 2u8;
            let mut run = 0u32;
            let mut window = 0u32;
            for k in 0..width + 4 {
                let m = if k < width { at(k) } else { 0 };
                if k < width {
                    if m == run_colour {
                        run += 1;
                    } else {
                        if run >= 5 {
                            score += run - 2;
                        }
                        run_colour = m;
                        run = 1;
                    }
                }
                window = ((window << 1) | u32::from(m)) & 0x7FF;
                // The window starts with 4 virtual light modules (a fresh zero window), so
                // patterns touching the left/top edge count; 4 trailing ones cover the other.
                if k >= 6 && (window == FINDER_A || window == FINDER_B) {
                    score += 40;
                }
            }
            if run >= 5 {
                score += run - 2;
            }
        }
    }
    // N2: 2×2 blocks.
    for y in 0..width - 1 {
        let row = &grid[y * width..][..width];
        let next = &grid[(y + 1) * width..][..width];
        for x in 0..width - 1 {
            let c = row[x];
            if row[x + 1] == c && next[x] == c && next[x + 1] == c {
                score += 3;
            }
        }
    }
    // N4: balance.
    let total = (width * width) as u32;
    let dark: u32 = grid.iter().map(|&m| u32::from(m)).sum();
    let k = (dark * 20).abs_diff(total * 10).div_ceil(total).saturating_sub(1);
    score + k * 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_bits_match_the_standard_table() {
        // ISO/IEC 18004 table C.1: M with mask 0 is 101010000010010, L mask 0 111011111000100.
        assert_eq!(format_bits(EcLevel::M, 0), 0b101010000010010);
        assert_eq!(format_bits(EcLevel::L, 0), 0b111011111000100);
    }

    #[test]
    fn every_mask_gives_the_same_modules_as_qrcode_would() {
        // Our masking and format drawing, checked module for module against `qrcode`'s own
        // `apply_mask` for each of the eight patterns and four levels.
        use qrcode::canvas::MaskPattern as P;
        let patterns = [P::Checkerboard, P::HorizontalLines, P::VerticalLines, P::DiagonalLines, P::LargeCheckerboard, P::Fields, P::Diamonds, P::Meadow];
        for ecc in [EcLevel::L, EcLevel::M, EcLevel::Q, EcLevel::H] {
            let data = "https://wa.me/393331234567?text=Ciao%20dal%20poster%20%F0%9F%91%8B%20numero%2042%20e%20tanto%20altro%20testo";
            let bits = bits::encode_auto(data.as_bytes(), ecc).unwrap();
            let version = bits.version();
            let (d, e) = ec::construct_codewords(&bits.into_bytes(), version, ecc).unwrap();
            let mut canvas = Canvas::new(version, ecc);
            canvas.draw_all_functional_patterns();
            canvas.draw_data(&d, &e);
            let width = version.width() as usize;
            for (mask, pattern) in patterns.into_iter().enumerate() {
                let mut theirs = canvas.clone();
                theirs.apply_mask(pattern);
                let mut ours = vec![0u8; width * width];
                for y in 0..width {
                    for x in 0..width {
                        let m = canvas.get(x as i16, y as i16);
                        let data = !matches!(m, Module::Masked(_));
                        ours[y * width + x] = u8::from(m.is_dark()) ^ u8::from(data && MASKS[mask](x, y));
                    }
                }
                draw_format(&mut ours, width, format_bits(ecc, mask));
                let theirs: Vec<u8> = theirs.into_colors().into_iter().map(|c| u8::from(c == qrcode::Color::Dark)).collect();
                assert_eq!(ours, theirs, "ecc {} mask {mask}", ecc_name(ecc));
            }
        }
    }

    #[test]
    fn svg_is_one_path_not_a_rect_per_module() {
        let m = Matrix::encode("https://wa.me/393331234567?text=Hi", EcLevel::M).unwrap();
        let svg = m.to_svg(4, 256);
        assert_eq!(svg.matches("<path").count(), 1);
        assert_eq!(svg.matches("<rect").count(), 1);
        assert!(svg.len() < 3000, "{} bytes", svg.len());
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
