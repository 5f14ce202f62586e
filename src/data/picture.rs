//! Users' own pictures to dataset-like 28x28 inputs: grayscale, light-on-dark, framed the way the
//! dataset was. MNIST digits were fitted into a 20x20 box and centred by centre of mass in 28x28;
//! Fashion-MNIST items fill the frame (longer side 28, aspect kept, centred).

#[cfg(feature = "images")]
use image::{DynamicImage, GrayImage};

use super::resample::{self, Filter};
use crate::error::{Error, Result};

/// Which preprocessing applies (follows the dataset the model was trained on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Digit,
    Clothing,
    /// Already dataset-like: only converted to grayscale and resized to the input size.
    Raw,
}

impl Style {
    /// The preprocessing for a model trained on `dataset` (`fashion-mnist`: clothing, otherwise
    /// digits), or `Raw` when the pictures are already dataset-like.
    pub fn for_dataset(dataset: &str, raw: bool) -> Style {
        if raw {
            Style::Raw
        } else if dataset == "fashion-mnist" {
            Style::Clothing
        } else {
            Style::Digit
        }
    }
}

/// A picture's pixels as a decoder or a browser canvas hands them over: 8 bits a channel,
/// row-major, no padding between rows.
#[derive(Clone, Copy, Debug)]
pub enum Pixels<'a> {
    /// Red, green, blue, alpha (straight alpha, as `getImageData` and `image` give it).
    Rgba(&'a [u8]),
    /// One gray byte a pixel.
    Gray(&'a [u8]),
}

/// Preprocesses a `width` x `height` picture to h x w bytes (row-major), light-on-dark and framed
/// like the dataset `style` names. The one implementation behind [`from_bytes`], [`load`] and the
/// browser demo.
pub fn preprocess_pixels(
    pixels: Pixels<'_>,
    width: usize,
    height: usize,
    style: Style,
    h: usize,
    w: usize,
) -> Result<Vec<u8>> {
    let (bytes, per_pixel, kind) = match pixels {
        Pixels::Rgba(b) => (b, 4, "RGBA"),
        Pixels::Gray(b) => (b, 1, "gray"),
    };
    let expected = width.checked_mul(height).and_then(|n| n.checked_mul(per_pixel));
    if expected != Some(bytes.len()) {
        return Err(Error::Data(format!(
            "a {width}x{height} {kind} picture needs {} bytes; {} given",
            expected.map_or("more than usize::MAX".to_string(), |n| n.to_string()),
            bytes.len()
        )));
    }
    if h == 0 || w == 0 {
        return Err(Error::Data(format!("cannot preprocess a picture to {w}x{h}")));
    }
    let gray = match pixels {
        Pixels::Rgba(b) => b.chunks_exact(4).map(|p| gray_over_white(p[0], p[1], p[2], p[3])).collect(),
        Pixels::Gray(b) => b.iter().map(|&v| gray_over_white(v, v, v, 255)).collect(),
    };
    Ok(preprocess_gray(gray, width, height, style, h, w))
}

/// Grayscale with transparency composited onto white (a drawing on a transparent canvas is
/// dark-on-light).
fn gray_over_white(r: u8, g: u8, b: u8, a: u8) -> u8 {
    let luma = 0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32;
    let alpha = a as f32 / 255.0;
    (luma * alpha + 255.0 * (1.0 - alpha)).round() as u8
}

/// `g`: gw x gh gray bytes. Returns h x w bytes (h, w > 0).
fn preprocess_gray(mut g: Vec<u8>, gw: usize, gh: usize, style: Style, h: usize, w: usize) -> Vec<u8> {
    debug_assert_eq!(g.len(), gw * gh);
    // The datasets are light strokes on black: invert pictures whose border is mostly light.
    let border: Vec<u8> = (0..gh)
        .flat_map(|y| (0..gw).map(move |x| (x, y)))
        .filter(|&(x, y)| x == 0 || y == 0 || x == gw - 1 || y == gh - 1)
        .map(|(x, y)| g[y * gw + x])
        .collect();
    let border_mean = border.iter().map(|&v| v as f32).sum::<f32>() / border.len().max(1) as f32;
    if border_mean > 127.0 {
        for v in &mut g {
            *v = 255 - *v;
        }
    }
    if style == Style::Raw {
        return resample::resize(&g, gw, gh, w, h, Filter::Triangle);
    }
    stretch_levels(&mut g, &border_after(&border, border_mean > 127.0));
    // Crop to the content: pixels clearly above the background level.
    let max = g.iter().copied().max().unwrap_or(0);
    let threshold = (max as f32 * 0.2).max(20.0) as u8;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, &p) in g.iter().enumerate() {
        if p > threshold {
            let (x, y) = (i % gw, i / gw);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    if x0 > x1 {
        // Blank picture: nothing to frame.
        return vec![0; h * w];
    }
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop: Vec<u8> = (y0..=y1).flat_map(|y| g[y * gw + x0..=y * gw + x1].iter().copied()).collect();
    let box_side = if style == Style::Digit { (20 * w.min(h)) / 28 } else { w.min(h) };
    let scale = box_side as f32 / cw.max(ch) as f32;
    let (nw, nh) =
        (((cw as f32 * scale).round() as usize).clamp(1, w), ((ch as f32 * scale).round() as usize).clamp(1, h));
    let fitted = resample::resize(&crop, cw, ch, nw, nh, Filter::Lanczos3);
    let (ox, oy) = if style == Style::Digit {
        // Centre of mass to the frame centre, as MNIST did.
        let (mut sx, mut sy, mut s) = (0.0f32, 0.0f32, 0.0f32);
        for (i, &p) in fitted.iter().enumerate() {
            let (x, y, v) = (i % nw, i / nw, p as f32);
            (sx, sy, s) = (sx + v * x as f32, sy + v * y as f32, s + v);
        }
        let (cx, cy) = if s > 0.0 { (sx / s, sy / s) } else { (nw as f32 / 2.0, nh as f32 / 2.0) };
        let ox = (w as f32 / 2.0 - cx).round().clamp(0.0, (w - nw) as f32);
        let oy = (h as f32 / 2.0 - cy).round().clamp(0.0, (h - nh) as f32);
        (ox as usize, oy as usize)
    } else {
        ((w - nw) / 2, (h - nh) / 2)
    };
    let mut out = vec![0u8; h * w];
    for (y, row) in fitted.chunks_exact(nw).enumerate() {
        out[(oy + y) * w + ox..(oy + y) * w + ox + nw].copy_from_slice(row);
    }
    out
}

/// The least difference between the paper and the brightest stroke that [`stretch_levels`]
/// takes for a subject (the crop's own threshold for faint pictures).
const MIN_CONTRAST: u8 = 20;

/// The border pixels as they are after the inversion (when `inverted`).
fn border_after(border: &[u8], inverted: bool) -> Vec<u8> {
    border.iter().map(|&v| if inverted { 255 - v } else { v }).collect()
}

/// Spreads light-on-dark levels over 0-255: the background (the median of the picture's border)
/// to 0, the brightest pixel to 255, as in the datasets, whose backgrounds are black. Paper in a
/// photo is gray and pencil is not black; a network trained on MNIST reads a digit on a gray
/// ground poorly. Pictures already at 0 and 255 are unchanged.
fn stretch_levels(g: &mut [u8], border: &[u8]) {
    let mut sorted = border.to_vec();
    sorted.sort_unstable();
    // The inversion made the border mostly dark (its mean at most 127); a median above that is
    // content touching the border, not paper.
    let background = sorted.get(sorted.len() / 2).copied().unwrap_or(0).min(127);
    let top = g.iter().copied().max().unwrap_or(0);
    // Specks and sensor noise on empty paper stay below the crop's threshold instead of being
    // spread into a subject.
    if (background, top) == (0, 255) || top < background.saturating_add(MIN_CONTRAST) {
        return;
    }
    let scale = 255.0 / (top - background) as f32;
    for v in g.iter_mut() {
        *v = ((v.saturating_sub(background)) as f32 * scale).round().min(255.0) as u8;
    }
}

/// Decodes an image file's bytes and preprocesses it to h x w bytes (row-major).
#[cfg(feature = "images")]
pub fn from_bytes(bytes: &[u8], source: &str, style: Style, h: usize, w: usize) -> Result<Vec<u8>> {
    let img =
        image::load_from_memory(bytes).map_err(|e| Error::Data(format!("{source}: not a readable picture ({e})")))?;
    Ok(preprocess(&img, style, h as u32, w as u32).into_raw())
}

#[cfg(all(feature = "images", feature = "fs"))]
pub fn load(path: &std::path::Path, style: Style, h: usize, w: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    from_bytes(&bytes, &path.display().to_string(), style, h, w)
}

/// [`preprocess_pixels`] for a decoded picture (any colour type, through 8-bit RGBA).
#[cfg(feature = "images")]
pub fn preprocess(img: &DynamicImage, style: Style, h: u32, w: u32) -> GrayImage {
    let rgba = img.to_rgba8();
    let gray = rgba.pixels().map(|p| gray_over_white(p.0[0], p.0[1], p.0[2], p.0[3])).collect();
    let (gw, gh) = (rgba.width() as usize, rgba.height() as usize);
    let px = if h == 0 || w == 0 { Vec::new() } else { preprocess_gray(gray, gw, gh, style, h as usize, w as usize) };
    GrayImage::from_raw(w, h, px).expect("preprocess_gray returns h x w bytes")
}

#[cfg(all(test, feature = "images"))]
mod tests {
    use super::*;
    use image::imageops::FilterType;

    /// A dark 30x60 block on a white 200x100 canvas, off-centre: what a photo of a drawing looks like.
    fn drawing() -> DynamicImage {
        let mut img = image::RgbImage::from_pixel(200, 100, image::Rgb([255, 255, 255]));
        for y in 10..70 {
            for x in 20..50 {
                img.put_pixel(x, y, image::Rgb([10, 10, 10]));
            }
        }
        DynamicImage::ImageRgb8(img)
    }

    fn content_box(g: &GrayImage) -> (u32, u32, u32, u32) {
        let on: Vec<(u32, u32)> = g.enumerate_pixels().filter(|p| p.2.0[0] > 60).map(|p| (p.0, p.1)).collect();
        let xs = on.iter().map(|p| p.0);
        let ys = on.iter().map(|p| p.1);
        (xs.clone().min().unwrap(), ys.clone().min().unwrap(), xs.max().unwrap(), ys.max().unwrap())
    }

    #[test]
    fn digits_are_inverted_fitted_to_20_pixels_and_centred_by_mass() {
        let g = preprocess(&drawing(), Style::Digit, 28, 28);
        assert_eq!(g.dimensions(), (28, 28));
        let (x0, y0, x1, y1) = content_box(&g);
        assert_eq!(y1 - y0 + 1, 20, "height fitted to the 20-pixel box");
        assert!((9..=11).contains(&(x1 - x0 + 1)), "aspect kept: width {}", x1 - x0 + 1);
        let (mut sx, mut sy, mut s) = (0.0, 0.0, 0.0);
        for (x, y, p) in g.enumerate_pixels() {
            let v = p.0[0] as f64;
            (sx, sy, s) = (sx + v * x as f64, sy + v * y as f64, s + v);
        }
        assert!((sx / s - 14.0).abs() < 1.0 && (sy / s - 14.0).abs() < 1.0, "centre of mass ({}, {})", sx / s, sy / s);
        assert_eq!(g.get_pixel(0, 0).0[0], 0, "background is dark after inversion");
    }

    #[test]
    fn gray_paper_and_pencil_are_spread_to_black_and_white() {
        // A pencil stroke (gray) on gray paper, as a photo gives it: without spreading the levels
        // the paper itself passes the crop's threshold and the digit shrinks in a gray frame.
        let mut img = image::RgbImage::from_pixel(60, 60, image::Rgb([200, 200, 190]));
        for y in 10..50 {
            for x in 28..33 {
                img.put_pixel(x, y, image::Rgb([110, 110, 110]));
            }
        }
        let g = preprocess(&DynamicImage::ImageRgb8(img), Style::Digit, 28, 28);
        let (_, y0, _, y1) = content_box(&g);
        assert_eq!(y1 - y0 + 1, 20, "the stroke, not the page, fitted to the 20-pixel box");
        assert_eq!(g.pixels().map(|p| p.0[0]).max(), Some(255), "the stroke's core is white");
        assert_eq!(g.get_pixel(0, 0).0[0], 0, "the paper is black");
    }

    #[test]
    fn a_speck_on_empty_paper_stays_blank() {
        let mut img = image::GrayImage::from_pixel(28, 28, image::Luma([250]));
        img.put_pixel(9, 9, image::Luma([240]));
        let g = preprocess(&DynamicImage::ImageLuma8(img), Style::Digit, 28, 28);
        assert!(g.pixels().all(|p| p.0[0] == 0), "nothing drawn, nothing to read");
    }

    #[test]
    fn clothing_fills_the_frame_and_raw_only_resizes() {
        let g = preprocess(&drawing(), Style::Clothing, 28, 28);
        let (_, y0, _, y1) = content_box(&g);
        assert_eq!((y0, y1), (0, 27), "longer side fills the frame");
        let raw = preprocess(&drawing(), Style::Raw, 28, 28);
        assert_eq!(raw.dimensions(), (28, 28));
        assert!(from_bytes(b"not an image", "x.png", Style::Raw, 28, 28).unwrap_err().to_string().contains("x.png"));
    }

    /// The implementation `predict` used before preprocessing moved off the `image` crate, kept
    /// verbatim as the reference the raw-pixel core must match byte for byte.
    fn reference(img: &DynamicImage, style: Style, h: u32, w: u32) -> GrayImage {
        let rgba = img.to_rgba8();
        let mut g = GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let [r, g, b, a] = rgba.get_pixel(x, y).0;
            let luma = 0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32;
            let alpha = a as f32 / 255.0;
            image::Luma([(luma * alpha + 255.0 * (1.0 - alpha)).round() as u8])
        });
        let (gw, gh) = g.dimensions();
        let border: Vec<u8> = g
            .enumerate_pixels()
            .filter(|(x, y, _)| *x == 0 || *y == 0 || *x == gw - 1 || *y == gh - 1)
            .map(|(_, _, p)| p.0[0])
            .collect();
        let border_mean = border.iter().map(|&v| v as f32).sum::<f32>() / border.len().max(1) as f32;
        if border_mean > 127.0 {
            image::imageops::invert(&mut g);
        }
        if style == Style::Raw {
            return if g.dimensions() == (w, h) { g } else { image::imageops::resize(&g, w, h, FilterType::Triangle) };
        }
        // Added since: the levels spread over 0-255 (the one step not from the image crate).
        stretch_levels(&mut g, &border_after(&border, border_mean > 127.0));
        let max = g.pixels().map(|p| p.0[0]).max().unwrap_or(0);
        let threshold = (max as f32 * 0.2).max(20.0) as u8;
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in g.enumerate_pixels() {
            if p.0[0] > threshold {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
        if x0 > x1 {
            return GrayImage::new(w, h);
        }
        let crop = image::imageops::crop_imm(&g, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
        let box_side = if style == Style::Digit { (20 * w.min(h)) / 28 } else { w.min(h) };
        let (cw, ch) = crop.dimensions();
        let scale = box_side as f32 / cw.max(ch) as f32;
        let (nw, nh) =
            (((cw as f32 * scale).round() as u32).clamp(1, w), ((ch as f32 * scale).round() as u32).clamp(1, h));
        let fitted = image::imageops::resize(&crop, nw, nh, FilterType::Lanczos3);
        let (ox, oy) = if style == Style::Digit {
            let (mut sx, mut sy, mut s) = (0.0f32, 0.0f32, 0.0f32);
            for (x, y, p) in fitted.enumerate_pixels() {
                let v = p.0[0] as f32;
                (sx, sy, s) = (sx + v * x as f32, sy + v * y as f32, s + v);
            }
            let (cx, cy) = if s > 0.0 { (sx / s, sy / s) } else { (nw as f32 / 2.0, nh as f32 / 2.0) };
            let ox = (w as f32 / 2.0 - cx).round().clamp(0.0, (w - nw) as f32);
            let oy = (h as f32 / 2.0 - cy).round().clamp(0.0, (h - nh) as f32);
            (ox as i64, oy as i64)
        } else {
            (((w - nw) / 2) as i64, ((h - nh) / 2) as i64)
        };
        let mut out = GrayImage::new(w, h);
        image::imageops::overlay(&mut out, &fitted, ox, oy);
        out
    }

    /// Random pictures: noise, blobs on light or dark ground, some transparency.
    fn random_picture(rng: &mut crate::Rng, w: u32, h: u32) -> DynamicImage {
        let light = rng.below(2) == 1;
        let (bx0, by0) = (rng.below(w as usize) as u32, rng.below(h as usize) as u32);
        let (bx1, by1) = (bx0 + rng.below((w - bx0) as usize) as u32, by0 + rng.below((h - by0) as usize) as u32);
        let noise = rng.below(60) as u32;
        let translucent = rng.below(3) == 0;
        let mut img = image::RgbaImage::new(w, h);
        for (x, y, p) in img.enumerate_pixels_mut() {
            let inside = (bx0..=bx1).contains(&x) && (by0..=by1).contains(&y);
            let base = if inside != light { 230u32 } else { 15 };
            let mut c = [0u8; 4];
            for v in &mut c[..3] {
                *v = (base + rng.below(noise as usize + 1) as u32).saturating_sub(noise / 2).min(255) as u8;
            }
            c[3] = if translucent { rng.below(256) as u8 } else { 255 };
            *p = image::Rgba(c);
        }
        DynamicImage::ImageRgba8(img)
    }

    #[test]
    fn resample_matches_image_crate_resize_byte_for_byte() {
        let mut rng = crate::Rng::new(5);
        for (w, h, nw, nh) in [(1, 1, 28, 28), (3, 7, 28, 13), (28, 28, 20, 20), (100, 37, 28, 10), (5, 300, 1, 28)] {
            let px: Vec<u8> = (0..w * h).map(|_| rng.below(256) as u8).collect();
            let img = GrayImage::from_raw(w as u32, h as u32, px.clone()).unwrap();
            for (ours, theirs) in [(Filter::Triangle, FilterType::Triangle), (Filter::Lanczos3, FilterType::Lanczos3)] {
                let want = image::imageops::resize(&img, nw as u32, nh as u32, theirs).into_raw();
                assert_eq!(resample::resize(&px, w, h, nw, nh, ours), want, "{w}x{h} -> {nw}x{nh} {ours:?}");
            }
        }
    }

    #[test]
    fn raw_pixel_core_matches_the_image_crate_implementation() {
        let mut rng = crate::Rng::new(11);
        for i in 0..300 {
            let (w, h) = (1 + rng.below(90) as u32, 1 + rng.below(90) as u32);
            let img = random_picture(&mut rng, w, h);
            for style in [Style::Digit, Style::Clothing, Style::Raw] {
                let want = reference(&img, style, 28, 28);
                assert_eq!(preprocess(&img, style, 28, 28), want, "picture {i} ({w}x{h}), {style:?}");
                let rgba = img.to_rgba8();
                let core = preprocess_pixels(Pixels::Rgba(rgba.as_raw()), w as usize, h as usize, style, 28, 28);
                assert_eq!(core.unwrap(), want.into_raw());
            }
            let gray = img.to_luma8();
            let as_gray = DynamicImage::ImageLuma8(gray.clone());
            let core = preprocess_pixels(Pixels::Gray(gray.as_raw()), w as usize, h as usize, Style::Clothing, 28, 28);
            assert_eq!(core.unwrap(), reference(&as_gray, Style::Clothing, 28, 28).into_raw());
        }
    }

    #[test]
    fn raw_pixels_of_the_wrong_length_are_refused() {
        let e = preprocess_pixels(Pixels::Rgba(&[0; 15]), 2, 2, Style::Clothing, 28, 28).unwrap_err();
        assert!(e.to_string().contains("needs 16 bytes; 15 given"), "{e}");
        assert!(preprocess_pixels(Pixels::Gray(&[0; 4]), 2, 2, Style::Clothing, 0, 28).is_err());
        assert_eq!(preprocess_pixels(Pixels::Gray(&[]), 0, 0, Style::Digit, 28, 28).unwrap(), vec![0; 784]);
    }
}
