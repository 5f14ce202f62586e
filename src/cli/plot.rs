//! PNG charts: training curves and the confusion-matrix heat map (plotters, bitmap backend, with
//! an embedded DejaVu Sans so text renders on machines without system fonts).

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use scratchnet::train::EpochStats;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn init_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws a picture of `size` in memory and writes it to `path` as PNG, atomically (a temporary
/// file renamed), so a failed write never leaves half a picture and always names the file.
fn render(size: (u32, u32), path: &Path, draw: impl FnOnce(&Area) -> Result<()>) -> Result<()> {
    init_font();
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(&root).with_context(|| format!("drawing {}", path.display()))?;
        root.present().map_err(err)?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buf).context("picture buffer size")?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .with_context(|| format!("encoding {}", path.display()))?;
    scratchnet::model_file::write_atomic(path, &png)?;
    Ok(())
}

/// Loss (left) and accuracy (right) per epoch.
pub fn curves(history: &[EpochStats], title: &str, path: &Path) -> Result<()> {
    anyhow::ensure!(!history.is_empty(), "no finished epoch to plot");
    render((1200, 480), path, |root| draw_curves(root, history, title))
}

fn draw_curves(root: &Area, history: &[EpochStats], title: &str) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&format!("scratchnet: {title}"), ("sans-serif", 24)).map_err(err)?;
    let (left, right) = root.split_horizontally(600);
    let n = history.last().unwrap().epoch as f64;
    let losses = history.iter().flat_map(|s| [Some(s.train_loss), s.test_loss, s.validation_loss]).flatten();
    let max_loss = losses.fold(0.0, f64::max) * 1.05;
    let mut c = ChartBuilder::on(&left)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .caption("training loss", ("sans-serif", 18))
        .build_cartesian_2d(0.5..n + 0.5, 0.0..max_loss)
        .map_err(err)?;
    c.configure_mesh().x_desc("epoch").y_desc("cross-entropy").draw().map_err(err)?;
    c.draw_series(LineSeries::new(history.iter().map(|s| (s.epoch as f64, s.train_loss)), BLUE.stroke_width(2)))
        .map_err(err)?
        .label("train loss")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    let test: Vec<(f64, f64)> = history.iter().filter_map(|s| s.test_loss.map(|l| (s.epoch as f64, l))).collect();
    if !test.is_empty() {
        c.draw_series(LineSeries::new(test, RED.stroke_width(2)))
            .map_err(err)?
            .label("test loss")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    }
    let green = RGBColor(0, 150, 60);
    let val: Vec<(f64, f64)> = history.iter().filter_map(|s| s.validation_loss.map(|l| (s.epoch as f64, l))).collect();
    if !val.is_empty() {
        c.draw_series(LineSeries::new(val, green.stroke_width(2)))
            .map_err(err)?
            .label("validation loss")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], green));
    }
    c.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(err)?;

    let accs = history.iter().flat_map(|s| [Some(s.train_accuracy), s.test_accuracy, s.validation_accuracy]).flatten();
    let lo = accs.fold(1.0, f64::min).min(0.95) * 100.0 - 1.0;
    let mut c = ChartBuilder::on(&right)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .caption("accuracy", ("sans-serif", 18))
        .build_cartesian_2d(0.5..n + 0.5, lo.max(0.0)..100.0)
        .map_err(err)?;
    c.configure_mesh().x_desc("epoch").y_desc("%").draw().map_err(err)?;
    c.draw_series(LineSeries::new(
        history.iter().map(|s| (s.epoch as f64, 100.0 * s.train_accuracy)),
        BLUE.stroke_width(2),
    ))
    .map_err(err)?
    .label("train (running, dropout on)")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    let test: Vec<(f64, f64)> =
        history.iter().filter_map(|s| s.test_accuracy.map(|a| (s.epoch as f64, 100.0 * a))).collect();
    if !test.is_empty() {
        c.draw_series(LineSeries::new(test, RED.stroke_width(2)))
            .map_err(err)?
            .label("test")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    }
    let validation: Vec<(f64, f64)> =
        history.iter().filter_map(|s| s.validation_accuracy.map(|a| (s.epoch as f64, 100.0 * a))).collect();
    let green = RGBColor(0, 150, 60);
    if !validation.is_empty() {
        c.draw_series(LineSeries::new(validation, green.stroke_width(2)))
            .map_err(err)?
            .label("validation (held out of training)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], green));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Row-normalised confusion matrix as a heat map, with class names and per-cell percentages.
pub fn confusion(counts: &[Vec<u64>], classes: &[String], accuracy: f64, path: &Path) -> Result<()> {
    let k = classes.len();
    let cell = 64i32;
    let (left, top) = (130i32, 70i32);
    let size = (left as u32 + cell as u32 * k as u32 + 30, top as u32 + cell as u32 * k as u32 + 110);
    render(size, path, |root| {
        root.fill(&WHITE).map_err(err)?;
        draw_confusion(root, counts, classes, accuracy, size, (left, top, cell))
    })
}

fn draw_confusion(
    root: &Area,
    counts: &[Vec<u64>],
    classes: &[String],
    accuracy: f64,
    size: (u32, u32),
    (left, top, cell): (i32, i32, i32),
) -> Result<()> {
    let k = classes.len();
    let title = format!("confusion matrix (row-normalised), accuracy {:.2}%", 100.0 * accuracy);
    root.draw(&Text::new(title, (20, 20), ("sans-serif", 20).into_font())).map_err(err)?;
    for (i, row) in counts.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        for (j, &v) in row.iter().enumerate() {
            let f = v as f64 / total;
            // White to dark blue.
            let shade = |c: u8| (255.0 - f * (255.0 - c as f64)) as u8;
            let color = RGBColor(shade(8), shade(48), shade(107));
            let (x, y) = (left + j as i32 * cell, top + i as i32 * cell);
            root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], color.filled())).map_err(err)?;
            root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], RGBColor(220, 220, 220))).map_err(err)?;
            if v > 0 {
                let text_color = if f > 0.5 { WHITE } else { BLACK };
                let label = format!("{:.0}", 100.0 * f);
                let style = ("sans-serif", 15).into_font().color(&text_color);
                root.draw(&Text::new(label, (x + cell / 2 - 9, y + cell / 2 - 8), style)).map_err(err)?;
            }
        }
        root.draw(&Text::new(
            classes[i].clone(),
            (8, top + i as i32 * cell + cell / 2 - 8),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(err)?;
    }
    for (j, name) in classes.iter().enumerate() {
        let style = ("sans-serif", 14).into_font().transform(FontTransform::Rotate90);
        root.draw(&Text::new(name.clone(), (left + j as i32 * cell + cell / 2 + 7, top + k as i32 * cell + 8), style))
            .map_err(err)?;
    }
    let axis = ("sans-serif", 15).into_font();
    root.draw(&Text::new("predicted class", (left + k as i32 * cell / 2 - 50, size.1 as i32 - 22), axis.clone()))
        .map_err(err)?;
    root.draw(&Text::new("true class (rows), % of row", (8, top - 22), axis)).map_err(err)?;
    Ok(())
}
