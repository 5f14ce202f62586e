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
//!
//! Weights, biases and running statistics are F32, or F16 / BF16 in a half-precision file
//! ([`to_bytes_as`]; `scratchnet export --format safetensors --dtype f16`), converted to f32 on
//! loading; batch norms' step counters are I64.

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
    /// How the model's floating-point tensors were stored (one precision, in files scratchnet
    /// writes), each converted to f32 on loading.
    pub stored: Vec<Precision>,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

/// How a model file stores its floating-point tensors. Loading converts each to f32 (exactly);
/// writing in half precision rounds to nearest, ties to even. Step counters stay I64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    /// 32-bit IEEE floats (safetensors `F32`): what scratchnet computes in.
    F32,
    /// 16-bit IEEE floats (`F16`, PyTorch's `torch.half`): half the size, 11 significant bits,
    /// values up to 65504.
    F16,
    /// bfloat16 (`BF16`): half the size, 8 significant bits, f32's range.
    Bf16,
}

impl Precision {
    /// The names the command line takes.
    pub const NAMES: [&'static str; 3] = ["f32", "f16", "bf16"];

    /// From a name of [`Self::NAMES`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "f32" => Some(Self::F32),
            "f16" => Some(Self::F16),
            "bf16" => Some(Self::Bf16),
            _ => None,
        }
    }

    /// The safetensors dtype: `F32`, `F16` or `BF16`.
    pub fn dtype(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::F16 => Dtype::F16,
            Self::Bf16 => Dtype::BF16,
        }
    }

    fn of(dtype: Dtype) -> Option<Self> {
        [Self::F32, Self::F16, Self::Bf16].into_iter().find(|p| p.dtype() == dtype)
    }

    /// Little-endian bytes of `values` in this precision; a finite value too large for it (beyond
    /// 65504 for F16) is refused, naming the tensor.
    fn encode(self, name: &str, values: &[f32]) -> Result<Vec<u8>> {
        use crate::half::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
        type Narrow = fn(f32) -> u16;
        type Widen = fn(u16) -> f32;
        let (narrow, widen): (Narrow, Widen) = match self {
            Self::F32 => return Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Self::F16 => (f32_to_f16, f16_to_f32),
            Self::Bf16 => (f32_to_bf16, bf16_to_f32),
        };
        let mut out = Vec::with_capacity(2 * values.len());
        for &v in values {
            let h = narrow(v);
            if v.is_finite() && !widen(h).is_finite() {
                return Err(Error::model(
                    "(writing)",
                    format!(
                        "tensor {name}: value {v} is too large for {self} (the largest is {}); keep F32 or use BF16",
                        self.max()
                    ),
                ));
            }
            out.extend_from_slice(&h.to_le_bytes());
        }
        Ok(out)
    }

    /// The largest finite value.
    fn max(self) -> f32 {
        match self {
            Self::F32 => f32::MAX,
            Self::F16 => 65504.0,
            Self::Bf16 => crate::half::bf16_to_f32(0x7f7f),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.dtype())
    }
}

/// Serialises a model (plus optional extra tensors and checkpoint JSON) to safetensors bytes.
pub fn to_bytes(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
) -> Result<Vec<u8>> {
    serialise(model, info, extra, checkpoint, None, Precision::F32)
}

/// [`to_bytes`] for a browser, where a GPU's tensors are read back by awaiting.
pub async fn to_bytes_async(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
) -> Result<Vec<u8>> {
    to_bytes_core(model, info, extra, checkpoint, None, Precision::F32).await
}

/// [`to_bytes`] with the record of where imported weights came from.
pub fn to_bytes_imported(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
    imported: Option<&ImportRecord>,
) -> Result<Vec<u8>> {
    serialise(model, info, extra, checkpoint, imported, Precision::F32)
}

/// A model file (no checkpoint state) whose weights, biases and batch norms' running statistics
/// are stored in `precision`: [`Precision::F16`] halves the file. The rounding changes the
/// outputs slightly; measure the accuracy of the result (the training record keeps the figures
/// measured in f32). A value out of the precision's range is refused.
pub fn to_bytes_as(
    model: &Sequential,
    info: &ModelInfo,
    imported: Option<&ImportRecord>,
    precision: Precision,
) -> Result<Vec<u8>> {
    serialise(model, info, &[], None, imported, precision)
}

fn serialise(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
    imported: Option<&ImportRecord>,
    precision: Precision,
) -> Result<Vec<u8>> {
    crate::tensor::ready(to_bytes_core(model, info, extra, checkpoint, imported, precision))
}

async fn to_bytes_core(
    model: &Sequential,
    info: &ModelInfo,
    extra: &[(String, &Tensor)],
    checkpoint: Option<String>,
    imported: Option<&ImportRecord>,
    precision: Precision,
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
            (precision.dtype(), precision.encode(&n, &values)?)
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
    if Precision::of(view.dtype()).is_none() {
        return Err(Error::model(
            source,
            format!("tensor {name} has dtype {:?}; expected F32, F16 or BF16", view.dtype()),
        ));
    }
    let data = crate::half::to_f32(view.dtype(), view.data()).expect("a floating-point dtype");
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

    let (mut values, mut stored) = (Vec::new(), Vec::new());
    for (name, shape) in spec.state_shapes() {
        let view = st.tensor(&name).map_err(|_| Error::model(source, format!("tensor {name} is missing")))?;
        if view.shape() != shape.as_slice() {
            return Err(Error::model(
                source,
                format!("tensor {name}: expected shape {shape:?}, found {:?}", view.shape()),
            ));
        }
        let t = tensor_from(&view, &name, source)?;
        if let Some(p) = Precision::of(view.dtype()).filter(|p| !is_counter(&name) && !stored.contains(p)) {
            stored.push(p);
        }
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
    stored.sort();
    Ok(Loaded { model, info, extra_tensors, checkpoint: meta.get("checkpoint").cloned(), imported, stored })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets;

    fn info(model: &Sequential) -> ModelInfo {
        ModelInfo {
            spec: model.spec().clone(),
            classes: (0..10).map(|i| i.to_string()).collect(),
            dataset: "fashion-mnist".into(),
            input: InputNorm::default(),
            training: None,
            tta: Tta::HFlip,
        }
    }

    /// A batch-norm network: weights, running statistics and step counters all make the trip.
    fn model() -> Sequential {
        let mut m = Sequential::new(presets::cnn_fast_spec(), 3).unwrap();
        let state: Vec<Tensor> = m
            .named_state()
            .into_iter()
            .map(|(n, t)| {
                let v = t.to_vec().unwrap();
                let v = if is_counter(&n) { vec![1234.0] } else { v.iter().map(|x| x + 0.3).collect() };
                Tensor::from_vec(t.shape(), v).unwrap()
            })
            .collect();
        m.set_state(state).unwrap();
        m
    }

    fn stored(bytes: &[u8]) -> Vec<(String, Dtype)> {
        let st = SafeTensors::deserialize(bytes).unwrap();
        st.tensors().into_iter().map(|(n, v)| (n, v.dtype())).collect()
    }

    #[test]
    fn half_precision_files_load_as_the_rounded_weights() {
        let m = model();
        let f32_bytes = to_bytes(&m, &info(&m), &[], None).unwrap();
        for (p, round) in [
            (Precision::F16, (|x| crate::half::f16_to_f32(crate::half::f32_to_f16(x))) as fn(f32) -> f32),
            (Precision::Bf16, |x| crate::half::bf16_to_f32(crate::half::f32_to_bf16(x))),
        ] {
            let bytes = to_bytes_as(&m, &info(&m), None, p).unwrap();
            assert!(bytes.len() < f32_bytes.len() * 52 / 100, "{p}: {} vs {} bytes", bytes.len(), f32_bytes.len());
            for (name, dtype) in stored(&bytes) {
                assert_eq!(dtype, if is_counter(&name) { Dtype::I64 } else { p.dtype() }, "{name}");
            }
            let back = from_bytes(&bytes, "half.safetensors").unwrap();
            assert_eq!(back.stored, [p]);
            assert_eq!(back.info, info(&m));
            for ((n, a), (_, b)) in m.named_state().into_iter().zip(back.model.named_state()) {
                let want: Vec<f32> =
                    a.to_vec().unwrap().into_iter().map(|x| if is_counter(&n) { x } else { round(x) }).collect();
                assert_eq!(b.to_vec().unwrap(), want, "{p} {n}");
            }
        }
        assert_eq!(from_bytes(&f32_bytes, "m").unwrap().stored, [Precision::F32]);
    }

    #[test]
    fn values_beyond_half_precision_and_other_dtypes_are_refused_by_name() {
        let mut m = Sequential::new(presets::mlp_spec(0.0), 1).unwrap();
        let mut state: Vec<Tensor> = m.named_state().into_iter().map(|(_, t)| t.clone()).collect();
        let mut w = state[0].to_vec().unwrap();
        w[5] = 70000.0;
        state[0] = Tensor::from_vec(state[0].shape(), w).unwrap();
        m.set_state(state).unwrap();
        let e = to_bytes_as(&m, &info(&m), None, Precision::F16).unwrap_err().to_string();
        assert!(e.contains("tensor layers.1.weight: value 70000 is too large for F16 (the largest is 65504)"), "{e}");
        assert!(to_bytes_as(&m, &info(&m), None, Precision::Bf16).is_ok());

        // A weight stored as I32 (a hand-made file).
        let good = to_bytes(&m, &info(&m), &[], None).unwrap();
        let st = SafeTensors::deserialize(&good).unwrap();
        let (_, header) = SafeTensors::read_metadata(&good).unwrap();
        let zeros = vec![0u8; 4 * 10];
        let views: Vec<(String, TensorView<'_>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| {
                if n == "layers.5.bias" { (n, TensorView::new(Dtype::I32, vec![10], &zeros).unwrap()) } else { (n, v) }
            })
            .collect();
        let bad = safetensors::serialize(views, header.metadata().clone()).unwrap();
        let e = from_bytes(&bad, "odd.safetensors").err().unwrap().to_string();
        assert_eq!(e, "model file odd.safetensors: tensor layers.5.bias has dtype I32; expected F32, F16 or BF16");
    }

    #[test]
    fn precision_names() {
        for n in Precision::NAMES {
            assert_eq!(Precision::from_name(n).unwrap().to_string().to_lowercase(), n);
        }
        assert_eq!(Precision::from_name("f64"), None);
    }
}
