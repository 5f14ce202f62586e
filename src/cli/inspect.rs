//! `scratchnet inspect`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use scratchnet::model::spec::BATCH_COUNT;

use super::out::outln;
use super::percent;

#[derive(Args)]
pub struct InspectArgs {
    /// Model or checkpoint file (.safetensors; default: the built-in CNN for --dataset, Fashion-MNIST's without one)
    #[arg(conflicts_with = "model")]
    pub file: Option<PathBuf>,
    /// The same, as evaluate and predict take it
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Without a file: the built-in model for fashion-mnist (the default) or mnist
    #[arg(long, conflicts_with_all = ["file", "model"])]
    pub dataset: Option<String>,
    /// Print the metadata as one JSON object
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: InspectArgs) -> Result<()> {
    let file = a.file.or(a.model);
    let kind = super::default_model::kind_of(a.dataset.as_deref())?;
    let (loaded, name) = super::default_model::load_or_builtin(file.as_deref(), kind)?;
    let size = match &file {
        Some(f) => std::fs::metadata(f)?.len(),
        None => super::default_model::builtin(kind).bytes.len() as u64,
    };
    let info = &loaded.info;
    // Batch norms' buffers: (layer index, features, training steps counted).
    let state = loaded.model.named_state();
    let counter = |i: usize| {
        let name = format!("layers.{i}.{BATCH_COUNT}");
        state.iter().find(|(n, _)| *n == name).and_then(|(_, t)| t.to_vec().ok()).and_then(|v| v.first().copied())
    };
    let norms: Vec<(usize, usize, u64)> = info
        .spec
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let features = l.buffer_shapes().first().map(|(_, s)| s.iter().product::<usize>())?;
            Some((i, features, counter(i).unwrap_or(0.0) as u64))
        })
        .collect();
    if a.json {
        let out = serde_json::json!({
            "file": name,
            "bytes": size,
            "parameters": info.spec.num_params(),
            "running_statistics": norms
                .iter()
                .map(|&(i, features, batches)| serde_json::json!({
                    "layer": i,
                    "num_features": features,
                    "num_batches_tracked": batches,
                }))
                .collect::<Vec<_>>(),
            "spec": info.spec,
            "classes": info.classes,
            "dataset": info.dataset,
            "input": info.input,
            "training": info.training,
            "tta": info.tta.name(),
            "checkpoint": loaded.checkpoint.is_some(),
            "dtypes": loaded.stored.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "imported": loaded.imported,
        });
        outln!("{out}");
        return Ok(());
    }
    // Weights in another precision than f32 are named (converted to f32 on loading).
    let stored = match loaded.stored.as_slice() {
        [scratchnet::model_file::Precision::F32] | [] => String::new(),
        p => format!(", {} weights", p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("+")),
    };
    outln!(
        "{}  ({:.1} KiB{stored}{})",
        name,
        size as f64 / 1024.0,
        if loaded.checkpoint.is_some() { ", checkpoint" } else { "" }
    );
    outln!("dataset {}  classes {}", info.dataset, info.classes.join(", "));
    outln!("\narchitecture (input {:?}):", info.spec.input);
    let shapes = info.spec.shapes()?;
    for (i, (l, out)) in info.spec.layers.iter().zip(&shapes[1..]).enumerate() {
        let params: usize = l.param_shapes().iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        let mut p = if params > 0 { format!("{params} params") } else { String::new() };
        if let Some(&(_, _, batches)) = norms.iter().find(|n| n.0 == i) {
            let counted = if batches == 1 { "1 batch".to_string() } else { format!("{batches} batches") };
            p += &format!(" + running mean/var ({counted})");
        }
        outln!("  layers.{i:<3} {:<52} -> {:<14} {p}", l.describe(), format!("{out:?}"));
    }
    outln!("parameters: {}", info.spec.num_params());
    if !norms.is_empty() {
        let values: usize = norms.iter().map(|n| 2 * n.1).sum();
        outln!(
            "running statistics: {values} values in {} (buffers, not trained: running_mean, running_var, {BATCH_COUNT})",
            super::train::plural(norms.len(), "batch norm")
        );
    }
    if info.tta != scratchnet::model::Tta::None {
        outln!("predictions: test-time augmentation '{}' (each image averaged with its mirror image)", info.tta.name());
    }
    match &info.training {
        Some(t) => {
            outln!(
                "\ntrained {} on {} ({} images), {}, {:.0} s, {}",
                t.date,
                t.dataset,
                t.train_examples,
                super::train::plural(t.epochs, "epoch"),
                t.wall_seconds,
                super::train::plural(t.threads, "thread")
            );
            if let Some(secs) = t.training_seconds {
                outln!("training passes {secs:.0} s (without the per-epoch evaluations)");
            }
            outln!("preset {}", t.preset.as_deref().unwrap_or("(custom spec)"));
            outln!("recipe {}", serde_json::to_string(&t.config)?);
            if let Some(acc) = t.final_train_accuracy {
                outln!("final train accuracy {}", percent(acc));
            }
            if let Some(acc) = t.final_validation_accuracy {
                outln!("final validation accuracy {} ({} images held out)", percent(acc), t.config.validation);
            }
            if let Some(acc) = t.final_test_accuracy {
                outln!("final test accuracy {}", percent(acc));
            }
            outln!("machine {}", t.machine);
            outln!("command {}", t.command);
        }
        None => match &loaded.imported {
            Some(r) => {
                outln!(
                    "\nimported {} from {} ({} bytes, FNV-1a {}; {}, {}) onto {}",
                    r.date,
                    r.source,
                    r.bytes,
                    r.fingerprint,
                    r.naming,
                    r.dtypes.join("+"),
                    r.arch
                );
                outln!("command {}", r.command);
            }
            None => outln!("\nno training record"),
        },
    }
    Ok(())
}
