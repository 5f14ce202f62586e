//! Model files: one `.safetensors` file whose tensors are named and shaped exactly as PyTorch's
//! `state_dict` of the equivalent `nn.Sequential` held in an attribute `layers` (`layers.0.weight`
//! [32, 1, 3, 3], Linear weights [out, in]), so `model.load_state_dict(load_file(path))` works.
//! Everything else, as JSON strings in `__metadata__`:
//!
//! | key        | value                                                            |
//! |------------|------------------------------------------------------------------|
//! | `format`   | `scratchnet/1`                                                   |
//! | `spec`     | the [`ModelSpec`] (layer list and input shape)                   |
//! | `classes`  | class names, in output order                                     |
//! | `dataset`  | `mnist` or `fashion-mnist` (decides picture preprocessing)        |
//! | `input`    | how pixels become inputs: `{"scale": 1/255, "offset": 0}`         |
//! | `training` | how it was trained ([`TrainingRecord`]), if known                 |
//! | `tta`      | how it predicts ([`Tta`]): `hflip` averages each picture with its mirror image; absent: `none` |
//! | `imported` | imported weights only: where they came from ([`ImportRecord`]) |
//! | `checkpoint` | checkpoints only: [`crate::train::TrainState`] and the config  |
//!
//! Checkpoints add the optimizer state as tensors `optimizer.<slot>.<param name>`.

use std::collections::{BTreeMap, HashMap};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{ModelSpec, Sequential, Tta};
use crate::tensor::Tensor;
use crate::train::TrainConfig;

pub use crate::data::InputNorm;

pub const FORMAT: &str = "scratchnet/1";

/// How a model was trained, recorded in its file for `inspect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    pub preset: Option<String>,
    pub command: String,
    pub config: TrainConfig,
    pub epochs: usize,
    pub dataset: String,
    pub train_examples: usize,
    pub final_train_accuracy: Option<f64>,
    pub final_test_accuracy: Option<f64>,
    /// On the split held out of the training set (`--validation`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_validation_accuracy: Option<f64>,
    pub wall_seconds: f64,
    /// The training passes alone (every epoch's, resumed runs included), without evaluations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_seconds: Option<f64>,
    pub threads: usize,
    pub machine: String,
    pub date: String,
}

/// Where imported weights came from (`scratchnet import`), recorded in the file for `inspect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// The weights file as given.
    pub source: String,
    pub bytes: u64,
    /// FNV-1a (64 bits, hex) of the weights file.
    pub fingerprint: String,
    /// How its tensors were named (`nn.Sequential numbering (1.weight)`, ...).
    pub naming: String,
    /// Its data types (converted to F32).
    pub dtypes: Vec<String>,
    /// The architecture it was mapped onto: a preset's name or a spec file.
    pub arch: String,
    pub command: String,
    pub date: String,
}

/// Everything in a model file besides the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub spec: ModelSpec,
    pub classes: Vec<String>,
    pub dataset: String,
    pub input: InputNorm,
    pub training: Option<TrainingRecord>,
    /// How predictions are made (test-time augmentation), chosen for this model.
    pub tta: Tta,
}

/// A decoded file: the model, its info, and any extra tensors / metadata (checkpoints).
pub struct Loaded {
    pub model: Sequential,
    pub info: ModelInfo,
    pub extra_tensors: HashMap<String, Tensor>,
    pub checkpoint: Option<String>,
    /// Imported models: where the weights came from.
    pub imported: Option<ImportRecord>,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

/// Serialises a model (plus optional extra tensors and checkpoint JSON) to safetensors bytes.
pub fn to_bytes(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
) -> Result<Vec<u8>> {
    to_bytes_imported(model, info, extra, checkpoint, None)
}

/// [`to_bytes`] for a browser, where a GPU's tensors are read back by awaiting.
pub async fn to_bytes_async(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
) -> Result<Vec<u8>> {
    to_bytes_core(model, info, extra, checkpoint, None).await
}

/// [`to_bytes`] with the record of where imported weights came from.
pub fn to_bytes_imported(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
    imported: Option<&ImportRecord>,
) -> Result<Vec<u8>> {
    crate::tensor::ready(to_bytes_core(model, info, extra, checkpoint, imported))
}

async fn to_bytes_core(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
    imported: Option<&ImportRecord>,
) -> Result<Vec<u8>> {
    let mut meta = HashMap::new();
    if let Some(r) = imported {
        meta.insert("imported".to_string(), json(r));
    }
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("spec".to_string(), json(&info.spec));
    meta.insert("classes".to_string(), json(&info.classes));
    meta.insert("dataset".to_string(), info.dataset.clone());
    meta.insert("input".to_string(), json(&info.input));
    if let Some(t) = &info.training {
        meta.insert("training".to_string(), json(t));
    }
    if info.tta != Tta::None {
        meta.insert("tta".to_string(), info.tta.name().to_string());
    }
    if let Some(c) = checkpoint {
        meta.insert("checkpoint".to_string(), c);
    }
    let named = model.named_state();
    let mut bytes: Vec<(String, Dtype, Vec<u8>, Vec<usize>)> = Vec::new();
    for (n, t) in named.iter().map(|(n, t)| (n.clone(), *t)).chain(extra.iter().map(|(n, t)| (n.clone(), *t))) {
        let values = t.to_vec_async().await?;
        // PyTorch keeps a batch norm's step counter as a 0-dimensional int64.
        let (dtype, b) = if is_counter(&n) {
            (Dtype::I64, values.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect())
        } else {
            (Dtype::F32, values.iter().flat_map(|v| v.to_le_bytes()).collect())
        };
        bytes.push((n, dtype, b, t.shape().to_vec()));
    }
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, d, b, s)| {
            Ok((n.clone(), TensorView::new(*d, s.clone(), b).map_err(|e| Error::model(n, e.to_string()))?))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::model("(serialise)", e.to_string()))
}

/// Whether a state_dict entry is a batch norm's step counter (int64 in the file).
pub fn is_counter(name: &str) -> bool {
    name.rsplit('.').next() == Some(crate::model::spec::BATCH_COUNT)
}

fn tensor_from(view: &TensorView<'_>, name: &str, source: &str) -> Result<Tensor> {
    if is_counter(name) && view.dtype() == Dtype::I64 {
        let data = view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32);
        return Tensor::from_vec(view.shape(), data.collect());
    }
    if view.dtype() != Dtype::F32 {
        return Err(Error::model(source, format!("tensor {name} has dtype {:?}; expected F32", view.dtype())));
    }
    let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Tensor::from_vec(view.shape(), data)
}

/// Decodes a model file. Every problem names the file and, where it applies, the tensor.
pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Loaded> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| {
        Error::model(source, format!("not a readable safetensors file ({e}); the file may be truncated or corrupt"))
    })?;
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| Error::model(source, format!("corrupt safetensors data ({e})")))?;
    let meta: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let get = |key: &str| {
        meta.get(key)
            .ok_or_else(|| Error::model(source, format!("metadata has no '{key}': not a scratchnet model file")))
    };
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        Some(f) => return Err(Error::model(source, format!("format '{f}'; this scratchnet reads '{FORMAT}'"))),
        None => {
            return Err(Error::model(
                source,
                "no scratchnet metadata: not a scratchnet model file (plain weights, such as a PyTorch state_dict, \
                 become one with `scratchnet import`)"
                    .to_string(),
            ));
        }
    }
    let bad_json = |key: &str, e: serde_json::Error| Error::model(source, format!("metadata '{key}' is invalid: {e}"));
    let spec: ModelSpec = serde_json::from_str(get("spec")?).map_err(|e| bad_json("spec", e))?;
    spec.shapes().map_err(|e| Error::model(source, e.to_string()))?;
    let classes: Vec<String> = serde_json::from_str(get("classes")?).map_err(|e| bad_json("classes", e))?;
    if classes.len() != spec.num_classes()? {
        return Err(Error::model(source, format!("{} class names for {} outputs", classes.len(), spec.num_classes()?)));
    }
    let input: InputNorm = serde_json::from_str(get("input")?).map_err(|e| bad_json("input", e))?;
    let training =
        meta.get("training").map(|t| serde_json::from_str(t).map_err(|e| bad_json("training", e))).transpose()?;
    let imported =
        meta.get("imported").map(|t| serde_json::from_str(t).map_err(|e| bad_json("imported", e))).transpose()?;
    let tta = match meta.get("tta") {
        None => Tta::None,
        Some(t) => Tta::from_name(t).ok_or_else(|| {
            Error::model(source, format!("metadata 'tta' is '{t}'; expected one of {}", Tta::NAMES.join(", ")))
        })?,
    };
    let info = ModelInfo { spec: spec.clone(), classes, dataset: get("dataset")?.clone(), input, training, tta };

    let mut values = Vec::new();
    for (name, shape) in spec.state_shapes() {
        let view = st.tensor(&name).map_err(|_| Error::model(source, format!("tensor {name} is missing")))?;
        if view.shape() != shape.as_slice() {
            return Err(Error::model(
                source,
                format!("tensor {name}: expected shape {shape:?}, found {:?}", view.shape()),
            ));
        }
        let t = tensor_from(&view, &name, source)?;
        if !t.all_finite() {
            return Err(Error::model(source, format!("tensor {name} holds NaN or infinite values")));
        }
        values.push(t);
    }
    let mut model = Sequential::new(spec, 0)?;
    model.set_state(values)?;
    let known: std::collections::HashSet<String> = model.named_state().into_iter().map(|(n, _)| n).collect();
    let mut extra_tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if !known.contains(&name) {
            extra_tensors.insert(name.clone(), tensor_from(&view, &name, source)?);
        }
    }
    Ok(Loaded { model, info, extra_tensors, checkpoint: meta.get("checkpoint").cloned(), imported })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed, then
/// renamed over the target, so an interrupted save never leaves a half-written model.
#[cfg(feature = "fs")]
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| Error::Io(format!("writing {}: {e}", path.display()));
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::Io(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads and decodes a model file.
#[cfg(feature = "fs")]
pub fn load(path: &std::path::Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    from_bytes(&bytes, &path.display().to_string())
}
