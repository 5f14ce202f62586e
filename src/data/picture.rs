//! Users' own pictures to dataset-like 28x28 inputs: grayscale, light-on-dark, framed the way the
//! dataset was. MNIST digits were fitted into a 20x20 box and centred by centre of mass in 28x28;
//! Fashion-MNIST items fill the frame (longer side 28, aspect kept, centred).

use image::{DynamicImage, GrayImage, imageops::FilterType};

use crate::error::{Error, Result};

/// Which preprocessing applies (follows the dataset the model was trained on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Digit,
    Clothing,
    /// Already dataset-like: only converted to grayscale and resized to the input size.
    Raw,
}

/// Decodes an image file's bytes and preprocesses it to h x w bytes (row-major).
pub fn from_bytes(bytes: &[u8], source: &str, style: Style, h: usize, w: usize) -> Result<Vec<u8>> {
    let img =
        image::load_from_memory(bytes).map_err(|e| Error::Data(format!("{source}: not a readable picture ({e})")))?;
    Ok(preprocess(&img, style, h as u32, w as u32).into_raw())
}

#[cfg(feature = "fs")]
pub fn load(path: &std::path::Path, style: Style, h: usize, w: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    from_bytes(&bytes, &path.display().to_string(), style, h, w)
}

/// Grayscale with transparency composited onto white (a drawing on a transparent canvas is dark-on-light).
fn to_gray(img: &DynamicImage) -> GrayImage {
    let rgba = img.to_rgba8();
    GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let luma = 0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32;
        let alpha = a as f32 / 255.0;
        image::Luma([(luma * alpha + 255.0 * (1.0 - alpha)).round() as u8])
    })
}

pub fn preprocess(img: &DynamicImage, style: Style, h: u32, w: u32) -> GrayImage {
    let mut g = to_gray(img);
    // The datasets are light strokes on black: invert pictures whose border is mostly light.
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
    // Crop to the content: pixels clearly above the background level.
    let max = g.pixels().map(|p| p.0[0]).max().unwrap_or(0);
    let threshold = (max as f32 * 0.2).max(20.0) as u8;
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in g.enumerate_pixels() {
        if p.0[0] > threshold {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    if x0 > x1 {
        // Blank picture: nothing to frame.
        return GrayImage::new(w, h);
    }
    let crop = image::imageops::crop_imm(&g, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    let box_side = if style == Style::Digit { (20 * w.min(h)) / 28 } else { w.min(h) };
    let (cw, ch) = crop.dimensions();
    let scale = box_side as f32 / cw.max(ch) as f32;
    let (nw, nh) = (((cw as f32 * scale).round() as u32).clamp(1, w), ((ch as f32 * scale).round() as u32).clamp(1, h));
    let fitted = image::imageops::resize(&crop, nw, nh, FilterType::Lanczos3);
    let (ox, oy) = if style == Style::Digit {
        // Centre of mass to the frame centre, as MNIST did.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn clothing_fills_the_frame_and_raw_only_resizes() {
        let g = preprocess(&drawing(), Style::Clothing, 28, 28);
        let (_, y0, _, y1) = content_box(&g);
        assert_eq!((y0, y1), (0, 27), "longer side fills the frame");
        let raw = preprocess(&drawing(), Style::Raw, 28, 28);
        assert_eq!(raw.dimensions(), (28, 28));
        assert!(from_bytes(b"not an image", "x.png", Style::Raw, 28, 28).unwrap_err().to_string().contains("x.png"));
    }
}
