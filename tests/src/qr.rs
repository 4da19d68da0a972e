//! Reading QR codes back, with decoders independent of Cornetta's generator: PNG pixels via
//! the `png` crate, SVG rasterised by `resvg`, modules found and decoded by `rqrr`.

use anyhow::{Context, bail};

/// Grayscale pixels of an image.
#[derive(Debug, Clone)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Gray {
    fn inverted(&self) -> Gray {
        Gray { width: self.width, height: self.height, pixels: self.pixels.iter().map(|p| 255 - p).collect() }
    }
}

/// PNG metadata that print cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngInfo {
    pub width: u32,
    pub height: u32,
    pub bit_depth: u8,
    pub indexed: bool,
    /// Pixels per metre from `pHYs`, when present.
    pub pixels_per_metre: Option<u32>,
}

/// Decodes a PNG (any colour type) to grayscale (ITU-R BT.601 luma).
pub fn png_to_gray(bytes: &[u8]) -> anyhow::Result<(Gray, PngInfo)> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().context("not a PNG")?;
    let info = reader.info();
    let meta = PngInfo {
        width: info.width,
        height: info.height,
        bit_depth: info.bit_depth as u8,
        indexed: info.color_type == png::ColorType::Indexed,
        pixels_per_metre: info.pixel_dims.filter(|d| d.unit == png::Unit::Meter).map(|d| d.xppu),
    };
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf)?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let channels = frame.color_type.samples();
    let data = &buf[..frame.buffer_size()];
    let mut pixels = Vec::with_capacity(w * h);
    for px in data.chunks(channels) {
        let v = match channels {
            1 | 2 => px[0],
            _ => ((299 * u32::from(px[0]) + 587 * u32::from(px[1]) + 114 * u32::from(px[2])) / 1000) as u8,
        };
        pixels.push(v);
    }
    Ok((Gray { width: w, height: h, pixels }, meta))
}

/// Rasterises an SVG at `px` × `px` onto white and returns grayscale.
pub fn svg_to_gray(svg: &str, px: u32) -> anyhow::Result<Gray> {
    let tree = resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default()).context("resvg cannot parse the SVG")?;
    let size = tree.size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(px, px).context("pixmap")?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    let scale = px as f32 / size.width().max(size.height());
    resvg::render(&tree, resvg::tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    let pixels = pixmap
        .data()
        .chunks(4)
        .map(|p| ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000) as u8)
        .collect();
    Ok(Gray { width: px as usize, height: px as usize, pixels })
}

fn decode_gray(img: &Gray) -> Vec<String> {
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(img.width, img.height, |x, y| img.pixels[y * img.width + x]);
    prepared.detect_grids().into_iter().filter_map(|g| g.decode().ok().map(|(_, text)| text)).collect()
}

/// The one text a picture's QR code holds. Like ZXing's "try inverted", a code drawn light
/// on dark is read from the inverted picture when the direct read finds nothing.
pub fn decode(img: &Gray) -> anyhow::Result<String> {
    let mut found = decode_gray(img);
    if found.is_empty() {
        found = decode_gray(&img.inverted());
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("no QR code could be decoded from the {}×{} image", img.width, img.height),
        n => bail!("{n} QR codes found, expected one"),
    }
}

/// Decodes a PNG's code.
pub fn decode_png(bytes: &[u8]) -> anyhow::Result<String> {
    decode(&png_to_gray(bytes)?.0)
}

/// Decodes an SVG's code, rasterised at 600 px.
pub fn decode_svg(svg: &str) -> anyhow::Result<String> {
    decode(&svg_to_gray(svg, 600)?)
}
