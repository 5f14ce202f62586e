//! `scratchnet evaluate`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use scratchnet::data::discover;
use scratchnet::train::evaluate;

use super::{DataArgs, percent};

#[derive(Args)]
pub struct EvaluateArgs {
    /// Model file (.safetensors; default: the built-in Fashion-MNIST CNN)
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dataset (default: the one the model was trained on)
    #[command(flatten)]
    pub data: DataArgs,
    /// Print one JSON object instead of tables
    #[arg(long)]
    pub json: bool,
    /// Draw the row-normalised confusion matrix to this PNG
    #[arg(long, value_name = "PNG")]
    pub confusion: Option<PathBuf>,
    /// Evaluate the first N test images only
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long)]
    pub threads: Option<usize>,
    /// Compute every convolution by im2col + GEMM, the original's algorithm (slower; the reference)
    #[arg(long)]
    pub im2col: bool,
}

pub fn run(a: EvaluateArgs) -> Result<()> {
    super::init_threads(a.threads)?;
    super::set_im2col(a.im2col);
    let (mut loaded, model_name) = super::default_model::load_or_builtin(a.model.as_deref())?;
    let dataset = a.data.dataset.clone().unwrap_or_else(|| loaded.info.dataset.clone());
    let splits = discover::load(&dataset, a.data.data_dir.as_deref())?;
    let mut test = splits.test()?.clone();
    if let Some(n) = a.limit {
        test = test.take(n);
    }
    super::ensure_fits(&loaded.info.spec, &test, &splits.origin)?;
    if splits.kind.name() != loaded.info.dataset {
        eprintln!("note: the model was trained on {}, this is {}", loaded.info.dataset, splits.kind.name());
    }
    let ev = evaluate(&mut loaded.model, &test, scratchnet::train::EVAL_BATCH)?;
    let classes = &loaded.info.classes;
    if a.json {
        let per_class: serde_json::Map<String, serde_json::Value> =
            classes.iter().zip(&ev.per_class).map(|(c, v)| (c.clone(), (*v).into())).collect();
        let out = serde_json::json!({
            "model": model_name,
            "dataset": splits.origin,
            "examples": test.len(),
            "accuracy": ev.accuracy,
            "loss": ev.loss,
            "per_class": per_class,
            "classes": classes,
            "confusion": ev.confusion,
        });
        println!("{out}");
    } else {
        println!("{model_name} on {} ({} images)", splits.origin, test.len());
        println!("accuracy {}   mean loss {:.4}\n", percent(ev.accuracy), ev.loss);
        println!("{:<14} accuracy", "class");
        for (c, v) in classes.iter().zip(&ev.per_class) {
            println!("{c:<14} {}", percent(*v));
        }
        println!("\nconfusion matrix (rows: true class, columns: predicted)");
        let short: Vec<String> = classes.iter().map(|c| c.chars().take(6).collect()).collect();
        print!("{:<14}", "");
        for s in &short {
            print!("{s:>7}");
        }
        println!();
        for (c, row) in classes.iter().zip(&ev.confusion) {
            print!("{c:<14}");
            for v in row {
                print!("{v:>7}");
            }
            println!();
        }
    }
    if let Some(p) = &a.confusion {
        super::plot::confusion(&ev.confusion, classes, ev.accuracy, p)?;
        eprintln!("confusion matrix written to {}", p.display());
    }
    Ok(())
}
