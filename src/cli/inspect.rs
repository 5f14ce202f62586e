//! `scratchnet inspect`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::percent;

#[derive(Args)]
pub struct InspectArgs {
    /// Model or checkpoint file (.safetensors; default: the built-in Fashion-MNIST CNN)
    pub file: Option<PathBuf>,
    /// Print the metadata as one JSON object
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: InspectArgs) -> Result<()> {
    let (loaded, name) = super::default_model::load_or_builtin(a.file.as_deref())?;
    let size = match &a.file {
        Some(f) => std::fs::metadata(f)?.len(),
        None => super::default_model::BYTES.len() as u64,
    };
    let info = &loaded.info;
    if a.json {
        let out = serde_json::json!({
            "file": name,
            "bytes": size,
            "parameters": info.spec.num_params(),
            "spec": info.spec,
            "classes": info.classes,
            "dataset": info.dataset,
            "input": info.input,
            "training": info.training,
            "tta": info.tta.name(),
            "checkpoint": loaded.checkpoint.is_some(),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{}  ({:.1} KiB{})",
        name,
        size as f64 / 1024.0,
        if loaded.checkpoint.is_some() { ", checkpoint" } else { "" }
    );
    println!("dataset {}  classes {}", info.dataset, info.classes.join(", "));
    println!("\narchitecture (input {:?}):", info.spec.input);
    let shapes = info.spec.shapes()?;
    for (i, (l, out)) in info.spec.layers.iter().zip(&shapes[1..]).enumerate() {
        let params: usize = l.param_shapes().iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        let p = if params > 0 { format!("{params} params") } else { String::new() };
        println!("  layers.{i:<3} {:<52} -> {:<14} {p}", l.describe(), format!("{out:?}"));
    }
    println!("parameters: {}", info.spec.num_params());
    if info.tta != scratchnet::model::Tta::None {
        println!(
            "predictions: test-time augmentation '{}' (each image averaged with its mirror image)",
            info.tta.name()
        );
    }
    match &info.training {
        Some(t) => {
            println!(
                "\ntrained {} on {} ({} images), {} epochs, {:.0} s, {} threads",
                t.date, t.dataset, t.train_examples, t.epochs, t.wall_seconds, t.threads
            );
            println!("preset {}", t.preset.as_deref().unwrap_or("(custom spec)"));
            println!("recipe {}", serde_json::to_string(&t.config)?);
            if let Some(acc) = t.final_train_accuracy {
                println!("final train accuracy {}", percent(acc));
            }
            if let Some(acc) = t.final_validation_accuracy {
                println!("final validation accuracy {} ({} images held out)", percent(acc), t.config.validation);
            }
            if let Some(acc) = t.final_test_accuracy {
                println!("final test accuracy {}", percent(acc));
            }
            println!("machine {}", t.machine);
            println!("command {}", t.command);
        }
        None => println!("\nno training record"),
    }
    Ok(())
}
