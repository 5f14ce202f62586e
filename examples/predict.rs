//! Classifies pictures with a model file, as `scratchnet predict` does: the picture is made to look
//! like the dataset's images (grayscale, light on dark, framed and centred), then the model's
//! probabilities are ranked.
//!
//!     cargo run --release --example predict -- models/mnist-cnn.safetensors web/static/mnist/samples/70-seven.png
//!
//! prints `70-seven.png: 7 (90.4%), then 3 (1.2%), 2 (1.1%)` (trained with label smoothing, the
//! model keeps about a tenth of its belief for the other classes).

use scratchnet::classify;
use scratchnet::data::picture::{self, Style};
use scratchnet::model_file;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, pictures @ ..] = args.as_slice() else {
        return Err("usage: predict MODEL.safetensors PICTURE...".into());
    };
    let mut loaded = model_file::load(model_path.as_ref())?;
    let [_, h, w] = loaded.info.spec.input;
    // Digits or clothing, by the dataset the model was trained on.
    let style = Style::for_dataset(&loaded.info.dataset, false);
    for path in pictures {
        let pixels = picture::load(path.as_ref(), style, h, w)?;
        let probs = classify::probabilities(&mut loaded.model, &loaded.info, &pixels, loaded.info.tta)?;
        let top: Vec<String> = classify::ranked(&probs)
            .iter()
            .take(3)
            .map(|&i| format!("{} ({:.1}%)", loaded.info.classes[i], 100.0 * probs[i]))
            .collect();
        let name = std::path::Path::new(path).file_name().map_or(path.clone(), |n| n.to_string_lossy().into());
        println!("{name}: {}, then {}", top[0], top[1..].join(", "));
    }
    Ok(())
}
