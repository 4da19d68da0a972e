//! Print options of a code, parsed once from text (query string, form or CLI flags):
//! format, size in pixels or physical units at a DPI, error correction, quiet zone,
//! colours with a contrast check, and the centre label area.
//!
//! Contrast: scanners binarise the image, so dark modules must be clearly darker than the
//! light ones. We use WCAG 2.x relative luminance and contrast ratio
//! (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio) and require at least
//! [`MIN_CONTRAST`] (4.5:1, WCAG's AA level for text) with dark modules on a light
//! background. Inverted codes (light modules on dark) are allowed by ISO/IEC 18004:2015
//! §6.2 ("reflectance reversal") but not every reader tries them, so they need
//! [`MIN_CONTRAST_INVERTED`] (7:1, WCAG's AAA level).

use qrcode::EcLevel;

use super::{DEFAULT_MARGIN, DEFAULT_SIZE_PX, MAX_MARGIN, MAX_SIZE_PX, MIN_SIZE_PX, Matrix, QrError, ecc_name, parse_ecc, render};

/// Least contrast ratio for dark modules on a light background.
pub const MIN_CONTRAST: f64 = 4.5;
/// Least contrast ratio for light modules on a dark background.
pub const MIN_CONTRAST_INVERTED: f64 = 7.0;
/// DPI when a physical size names none: common print resolution.
pub const DEFAULT_DPI: u32 = 300;
pub const MIN_DPI: u32 = 72;
pub const MAX_DPI: u32 = 2400;
/// Physical sizes, in micrometres: 5 mm to 2 m.
const MIN_PHYSICAL_UM: u32 = 5_000;
const MAX_PHYSICAL_UM: u32 = 2_000_000;
/// Share of the code's width the label area takes (its area is about 6%, well inside the
/// ~30% of codewords that level H restores).
const LABEL_SHARE: f64 = 0.25;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// An sRGB colour, `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colour([u8; 3]);

impl Colour {
    pub const BLACK: Colour = Colour([0, 0, 0]);
    pub const WHITE: Colour = Colour([255, 255, 255]);

    /// `#rgb`, `#rrggbb`, with or without `#`.
    pub fn parse(input: &str) -> Result<Self, String> {
        let hex = input.trim().trim_start_matches('#');
        let expand = |s: &str| -> Option<[u8; 3]> {
            match s.len() {
                3 => {
                    let mut out = [0u8; 3];
                    for (i, c) in s.chars().enumerate() {
                        let v = c.to_digit(16)? as u8;
                        out[i] = v * 17;
                    }
                    Some(out)
                }
                6 if s.is_ascii() => {
                    let mut out = [0u8; 3];
                    for (i, slot) in out.iter_mut().enumerate() {
                        *slot = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
                    }
                    Some(out)
                }
                _ => None,
            }
        };
        expand(hex).map(Colour).ok_or_else(|| {
            format!("colour {:?} is not a hex colour; expected #rrggbb or #rgb, e.g. #075e54", input.chars().take(20).collect::<String>())
        })
    }

    pub fn rgb(self) -> [u8; 3] {
        self.0
    }

    /// `#rrggbb`, or `#rgb` when that is the same colour (smaller SVG).
    pub fn css(self) -> String {
        let [r, g, b] = self.0;
        if r % 17 == 0 && g % 17 == 0 && b % 17 == 0 {
            format!("#{:x}{:x}{:x}", r / 17, g / 17, b / 17)
        } else {
            format!("#{r:02x}{g:02x}{b:02x}")
        }
    }

    /// Relative luminance, WCAG 2.x (sRGB channels linearised).
    pub fn luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * lin(self.0[0]) + 0.7152 * lin(self.0[1]) + 0.0722 * lin(self.0[2])
    }
}

/// WCAG contrast ratio of two colours, 1 to 21.
pub fn contrast_ratio(a: Colour, b: Colour) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// Colours, quiet zone and label area: how the modules are drawn. Valid by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Style {
    fg: Colour,
    bg: Colour,
    margin: u32,
    label: bool,
}

impl Style {
    /// Black on white, no label.
    pub fn plain(margin: u32) -> Self {
        Self { fg: Colour::BLACK, bg: Colour::WHITE, margin: margin.min(MAX_MARGIN), label: false }
    }

    /// Checks contrast (see the module comment), the quiet zone range, and that a label
    /// area comes with error correction H.
    pub fn new(fg: Colour, bg: Colour, margin: u32, label: bool, ecc: EcLevel) -> Result<Self, ParamError> {
        if margin > MAX_MARGIN {
            return Err(ParamError::new("margin", format!("margin must be 0 to {MAX_MARGIN} modules, not {margin} (4 is what ISO/IEC 18004 asks for)")));
        }
        let ratio = contrast_ratio(fg, bg);
        let inverted = fg.luminance() > bg.luminance();
        if !inverted && ratio < MIN_CONTRAST {
            return Err(ParamError::new(
                "fg",
                format!(
                    "foreground {} on background {} has a contrast ratio of {:.1}:1; scanners need at least {MIN_CONTRAST}:1: darken the foreground or lighten the background",
                    fg.css(),
                    bg.css(),
                    ratio
                ),
            ));
        }
        if inverted && ratio < MIN_CONTRAST_INVERTED {
            return Err(ParamError::new(
                "fg",
                format!(
                    "foreground {} is lighter than background {} (an inverted code) with a contrast ratio of {:.1}:1; inverted codes need at least {MIN_CONTRAST_INVERTED}:1 and not every scanner reads them: use a dark foreground on a light background",
                    fg.css(),
                    bg.css(),
                    ratio
                ),
            ));
        }
        if label && ecc != EcLevel::H {
            return Err(ParamError::new(
                "label",
                format!("a centre label area hides modules, so it needs error correction H (ecc=H), not {}", ecc_name(ecc)),
            ));
        }
        Ok(Self { fg, bg, margin, label })
    }

    pub fn fg(&self) -> Colour {
        self.fg
    }
    pub fn bg(&self) -> Colour {
        self.bg
    }
    pub fn margin(&self) -> u32 {
        self.margin
    }
    pub fn label(&self) -> bool {
        self.label
    }
    /// Black on white: the PNG can be 1-bit grayscale without a palette.
    pub fn is_black_on_white(&self) -> bool {
        self.fg == Colour::BLACK && self.bg == Colour::WHITE
    }
}

/// The side, in modules, of the centre label area of a code `width` modules wide: a
/// quarter of the width, with the width's parity so it sits exactly in the middle.
pub fn label_side(width: usize) -> usize {
    let mut side = (width as f64 * LABEL_SHARE).round() as usize;
    if side % 2 != width % 2 {
        side += 1;
    }
    side
}

/// How big the image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeSpec {
    /// Edge in pixels.
    Pixels(u32),
    /// Edge in micrometres, printed at `dpi`.
    Physical { micrometres: u32, dpi: u32 },
}

impl SizeSpec {
    /// `512`, `512px`, `3cm`, `30mm`, `1.5in`; `dpi` only with a physical unit.
    pub fn parse(size: Option<&str>, dpi: Option<&str>) -> Result<Self, ParamError> {
        let dpi = match dpi.map(str::trim).filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => match d.trim_end_matches("dpi").parse::<u32>() {
                Ok(n) if (MIN_DPI..=MAX_DPI).contains(&n) => Some(n),
                _ => return Err(ParamError::new("dpi", format!("dpi must be a whole number from {MIN_DPI} to {MAX_DPI}, not {:?}", clip(d)))),
            },
        };
        let Some(size) = size.map(str::trim).filter(|s| !s.is_empty()) else {
            return match dpi {
                Some(_) => Err(ParamError::new("dpi", "dpi needs a physical size, e.g. size=3cm&dpi=300")),
                None => Ok(Self::Pixels(DEFAULT_SIZE_PX)),
            };
        };
        let lower = size.to_ascii_lowercase();
        let split = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
        let (number, unit) = lower.split_at(split);
        let unit = unit.trim();
        let bad = || {
            ParamError::new(
                "size",
                format!("size must be pixels ({MIN_SIZE_PX}-{MAX_SIZE_PX}, e.g. 512) or a length in mm, cm or in (e.g. 3cm), not {:?}", clip(size)),
            )
        };
        match unit {
            "" | "px" => {
                if dpi.is_some() {
                    return Err(ParamError::new("dpi", "dpi needs a physical size (mm, cm or in), not pixels"));
                }
                match number.parse::<u32>() {
                    Ok(n) if (MIN_SIZE_PX..=MAX_SIZE_PX).contains(&n) => Ok(Self::Pixels(n)),
                    Ok(n) => Err(ParamError::new("size", format!("size must be {MIN_SIZE_PX} to {MAX_SIZE_PX} pixels, not {n}"))),
                    Err(_) => Err(bad()),
                }
            }
            "mm" | "cm" | "in" => {
                let value: f64 = number.parse().map_err(|_| bad())?;
                let per_unit = match unit {
                    "mm" => 1_000.0,
                    "cm" => 10_000.0,
                    _ => 25_400.0,
                };
                let um = value * per_unit;
                if !(f64::from(MIN_PHYSICAL_UM)..=f64::from(MAX_PHYSICAL_UM)).contains(&um) {
                    return Err(ParamError::new("size", format!("a printed size must be 5 mm to 2 m, not {}", clip(size))));
                }
                Ok(Self::Physical { micrometres: um.round() as u32, dpi: dpi.unwrap_or(DEFAULT_DPI) })
            }
            _ => Err(bad()),
        }
    }

    /// The PNG edge in pixels: a physical size converted at its DPI (1 in = 25.4 mm).
    pub fn pixels(self) -> Result<u32, ParamError> {
        match self {
            Self::Pixels(n) => Ok(n),
            Self::Physical { micrometres, dpi } => {
                let px = (f64::from(micrometres) / 25_400.0 * f64::from(dpi)).round() as u32;
                if (MIN_SIZE_PX..=MAX_SIZE_PX).contains(&px) {
                    Ok(px)
                } else {
                    Err(ParamError::new(
                        "size",
                        format!(
                            "{} at {dpi} dpi is {px} px; a PNG must be {MIN_SIZE_PX} to {MAX_SIZE_PX} px: change the size or dpi, or use the SVG (it scales to any size)",
                            self.describe()
                        ),
                    ))
                }
            }
        }
    }

    /// `512px`, `3cm@300dpi`: for file names and cache keys.
    pub fn describe(self) -> String {
        match self {
            Self::Pixels(n) => format!("{n}px"),
            Self::Physical { micrometres, dpi } => {
                let mm = f64::from(micrometres) / 1000.0;
                if micrometres % 10_000 == 0 {
                    format!("{}cm-{dpi}dpi", micrometres / 10_000)
                } else {
                    format!("{mm}mm-{dpi}dpi")
                }
            }
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(20).collect()
}

/// A parameter that is wrong, and why: `param` names it as the API and the CLI spell it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

impl ParamError {
    pub fn new(param: &'static str, message: impl Into<String>) -> Self {
        Self { param, message: message.into() }
    }
}

/// The textual options, as a query string, a form or flags give them.
#[derive(Debug, Clone, Default)]
pub struct RawOptions<'a> {
    pub format: Option<&'a str>,
    pub size: Option<&'a str>,
    pub dpi: Option<&'a str>,
    pub margin: Option<&'a str>,
    pub ecc: Option<&'a str>,
    pub fg: Option<&'a str>,
    pub bg: Option<&'a str>,
    pub label: Option<&'a str>,
}

/// Everything needed to draw a code, valid by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    pub format: Format,
    pub size: SizeSpec,
    pub ecc: EcLevel,
    pub style: Style,
}

/// A drawn code.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub format: Format,
}

impl RenderOptions {
    /// Parses the options; `default_format` when none is named.
    pub fn parse(raw: &RawOptions<'_>, default_format: Format) -> Result<Self, ParamError> {
        let format = match raw.format.map(str::trim).filter(|s| !s.is_empty()) {
            None => default_format,
            Some(f) => Format::parse(f).ok_or_else(|| ParamError::new("format", format!("format must be svg or png, not {:?}", clip(f))))?,
        };
        let ecc = match raw.ecc.map(str::trim).filter(|s| !s.is_empty()) {
            None => {
                // A label area needs H; asking for a label alone implies it.
                if parse_flag(raw.label)? { EcLevel::H } else { EcLevel::M }
            }
            Some(e) => parse_ecc(e).ok_or_else(|| ParamError::new("ecc", format!("ecc must be one of L, M, Q, H, not {:?}", clip(e))))?,
        };
        let margin = match raw.margin.map(str::trim).filter(|s| !s.is_empty()) {
            None => DEFAULT_MARGIN,
            Some(m) => m.parse::<u32>().ok().filter(|m| *m <= MAX_MARGIN).ok_or_else(|| {
                ParamError::new("margin", format!("margin must be a whole number from 0 to {MAX_MARGIN}, not {:?}", clip(m)))
            })?,
        };
        let colour = |param: &'static str, value: Option<&str>, default: Colour| match value.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(v) => Colour::parse(v).map_err(|m| ParamError::new(param, format!("{param}: {m}"))),
        };
        let fg = colour("fg", raw.fg, Colour::BLACK)?;
        let bg = colour("bg", raw.bg, Colour::WHITE)?;
        let style = Style::new(fg, bg, margin, parse_flag(raw.label)?, ecc)?;
        let size = SizeSpec::parse(raw.size, raw.dpi)?;
        if format == Format::Png {
            size.pixels()?;
        }
        Ok(Self { format, size, ecc, style })
    }

    /// A stable text naming every option (for ETags and file names).
    pub fn cache_key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.format.extension(),
            self.size.describe(),
            ecc_name(self.ecc),
            self.style.margin,
            self.style.fg.css(),
            self.style.bg.css(),
            u8::from(self.style.label)
        )
    }

    /// Encodes `data` and draws it.
    pub fn render(&self, data: &str) -> Result<Rendered, QrError> {
        let mut matrix = Matrix::encode(data, self.ecc)?;
        if self.style.label {
            let side = label_side(matrix.width());
            matrix.clear_centre(side);
        }
        let bytes = match self.format {
            Format::Svg => {
                let size = match self.size {
                    SizeSpec::Pixels(px) => render::SvgSize::Pixels(px),
                    SizeSpec::Physical { micrometres, .. } => render::SvgSize::Millimetres(f64::from(micrometres) / 1000.0),
                };
                render::svg(&matrix, &self.style, &size).into_bytes()
            }
            Format::Png => {
                let px = self.size.pixels().map_err(|e| QrError::Png(e.message))?;
                let dpi = match self.size {
                    SizeSpec::Physical { dpi, .. } => Some(dpi),
                    SizeSpec::Pixels(_) => None,
                };
                render::png(&matrix, &self.style, px, dpi)?
            }
        };
        Ok(Rendered { bytes, format: self.format })
    }
}

/// `1/true/yes/on` or `0/false/no/off`; absent is false.
fn parse_flag(value: Option<&str>) -> Result<bool, ParamError> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("0") | Some("false") | Some("no") | Some("off") => Ok(false),
        Some("1") | Some("true") | Some("yes") | Some("on") => Ok(true),
        Some(other) => Err(ParamError::new("label", format!("label must be true or false, not {:?}", clip(other)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luminance_and_contrast_follow_wcag() {
        assert!((contrast_ratio(Colour::BLACK, Colour::WHITE) - 21.0).abs() < 1e-9);
        assert!((contrast_ratio(Colour::WHITE, Colour::WHITE) - 1.0).abs() < 1e-9);
        // #777 on white is WCAG's classic 4.48:1.
        let grey = Colour::parse("#777").unwrap();
        assert!((contrast_ratio(grey, Colour::WHITE) - 4.48).abs() < 0.01);
    }

    #[test]
    fn colours_that_scanners_cannot_read_are_refused() {
        let cases = [
            ("#ccc", "#fff", Some("contrast ratio of 1.6:1")), // light on light
            ("#25d366", "#fff", Some("scanners need")),        // WhatsApp green on white
            ("#777", "#fff", Some("scanners need")),           // just under 4.5
            ("#fff", "#666", Some("inverted")),                 // inverted, 5.7:1
            ("#ccc", "#555", Some("inverted")),                 // inverted, 4.6:1
            ("#000", "#fff", None),
            ("#075e54", "#ffffff", None),
            ("#000", "#ffd700", None), // black on gold
            ("#fff", "#000", None),    // inverted with 21:1
            ("#fff", "#555", None),    // inverted with 7.5:1
        ];
        for (fg, bg, want) in cases {
            let got = Style::new(Colour::parse(fg).unwrap(), Colour::parse(bg).unwrap(), 4, false, EcLevel::M);
            match want {
                None => assert!(got.is_ok(), "{fg} on {bg}: {got:?}"),
                Some(text) => {
                    let err = got.expect_err(&format!("{fg} on {bg} must be refused"));
                    assert!(err.message.contains(text), "{fg} on {bg}: {}", err.message);
                    assert_eq!(err.param, "fg");
                }
            }
        }
    }

    #[test]
    fn bad_option_text_names_the_parameter() {
        let cases: [(RawOptions<'_>, &str); 12] = [
            (RawOptions { format: Some("gif"), ..Default::default() }, "format"),
            (RawOptions { size: Some("10"), ..Default::default() }, "size"),
            (RawOptions { size: Some("99999"), ..Default::default() }, "size"),
            (RawOptions { size: Some("3 parsecs"), ..Default::default() }, "size"),
            (RawOptions { size: Some("1mm"), ..Default::default() }, "size"),
            (RawOptions { size: Some("1m"), ..Default::default() }, "size"),
            (RawOptions { size: Some("512"), dpi: Some("300"), ..Default::default() }, "dpi"),
            (RawOptions { size: Some("3cm"), dpi: Some("5"), ..Default::default() }, "dpi"),
            (RawOptions { format: Some("png"), size: Some("50cm"), dpi: Some("600"), ..Default::default() }, "size"),
            (RawOptions { ecc: Some("X"), ..Default::default() }, "ecc"),
            (RawOptions { label: Some("true"), ecc: Some("M"), ..Default::default() }, "label"),
            (RawOptions { fg: Some("red"), ..Default::default() }, "fg"),
        ];
        for (raw, param) in cases {
            let err = RenderOptions::parse(&raw, Format::Svg).expect_err(&format!("{raw:?}"));
            assert_eq!(err.param, param, "{raw:?}: {}", err.message);
        }
    }

    #[test]
    fn physical_sizes_convert_at_their_dpi() {
        assert_eq!(SizeSpec::parse(Some("3cm"), Some("300")).unwrap().pixels().unwrap(), 354);
        assert_eq!(SizeSpec::parse(Some("1in"), None).unwrap().pixels().unwrap(), 300);
        assert_eq!(SizeSpec::parse(Some("25.4mm"), Some("600")).unwrap().pixels().unwrap(), 600);
        assert_eq!(SizeSpec::parse(None, None).unwrap(), SizeSpec::Pixels(DEFAULT_SIZE_PX));
        assert_eq!(SizeSpec::parse(Some("3cm"), Some("300")).unwrap().describe(), "3cm-300dpi");
    }

    #[test]
    fn a_label_alone_implies_error_correction_h() {
        let o = RenderOptions::parse(&RawOptions { label: Some("1"), ..Default::default() }, Format::Png).unwrap();
        assert_eq!(o.ecc, EcLevel::H);
        assert!(o.style.label());
    }
}
