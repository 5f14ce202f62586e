//! Weights trained elsewhere onto a scratchnet network: a plain `state_dict` saved as safetensors
//! (PyTorch: `safetensors.torch.save_file(model.state_dict(), "w.safetensors")`) or by
//! `torch.save(model.state_dict(), "w.pt")` (read without running its pickle program: [`pt`]).
//!
//! Names: an `nn.Sequential`'s own numbering (`1.weight`), ours (`layers.1.weight`), or the same
//! numbering under any one prefix (`features.1.weight`, `module.layers.1.weight`), the layer index
//! counting every module of the sequence as the spec's layer list does (Flatten, ReLU and Dropout
//! included). Every tensor is checked: a name the network does not have, a missing one, a shape
//! that differs (the error names the tensor, the layer, the expected and the found shape), values
//! that are not finite. F32 is taken as is; F64, F16 and BF16 are converted to f32.
//!
//! Batch norms bring buffers besides their `weight` and `bias`: `running_mean` and `running_var`
//! (checked like parameters; a variance must not be negative) and `num_batches_tracked`, a
//! 0-dimensional int64 in PyTorch (`I64` in safetensors, a `LongStorage` in `torch.save` files;
//! other integer or float types holding a whole number >= 0 are taken too). A state_dict without
//! the counter (PyTorch before 0.4.1) is accepted with the counter 0 ([`Mapped::counters_defaulted`]):
//! it counts training steps and changes no output. Running statistics are required: a
//! `track_running_stats=False` batch norm has none to predict with.
//!
//! A `torch.save` file that holds anything but a state_dict of tensors (a whole pickled model,
//! another global), or the pre-1.6 format (a bare pickle), is refused with the two lines of
//! Python that convert it (`torch.load(..., weights_only=True)`, which refuses code); one whose
//! pickle names a function that runs code (`os.system`, `eval`, ...) is refused as such, with no
//! advice that would load it.
//!
//! The original NumPy/CuPy project's pickled networks (`pickle.dump(network, f)`: the list of its
//! layer objects) are read by [`pkl`] without running them, the network worked out from the layers;
//! both readers share the restricted interpreter of [`pickle`].
//!
//! ```
//! use scratchnet::import::map_state_dict;
//! use scratchnet::model::{LayerSpec, ModelSpec};
//! use safetensors::{Dtype, tensor::TensorView};
//!
//! let spec = ModelSpec {
//!     input: [1, 2, 2],
//!     layers: vec![LayerSpec::Flatten, LayerSpec::Linear { in_features: 4, out_features: 2 }],
//! };
//! let (w, b) = (vec![0u8; 4 * 8], vec![0u8; 4 * 2]);
//! let views = vec![
//!     ("1.weight", TensorView::new(Dtype::F32, vec![2, 4], &w).unwrap()),
//!     ("1.bias", TensorView::new(Dtype::F32, vec![2], &b).unwrap()),
//! ];
//! let bytes = safetensors::serialize(views, None).unwrap();
//! let mapped = map_state_dict(&bytes, "w.safetensors", &spec)?;
//! assert_eq!(mapped.naming, "nn.Sequential numbering (1.weight)");
//! assert_eq!(mapped.values[0].shape(), [2, 4]);
//! # Ok::<(), scratchnet::Error>(())
//! ```

use std::collections::BTreeMap;

pub mod pickle;
pub mod pkl;
pub mod pt;
pub mod zip;

pub use pkl::{Original, read_original};

use std::borrow::Cow;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::half::to_f32;
use crate::model::ModelSpec;
use crate::model::spec::BATCH_COUNT;
use crate::tensor::Tensor;

/// What PyTorch users run to turn a `.pt`/`.pth` file into one scratchnet imports. Only
/// `weights_only=True`: PyTorch's own restricted unpickler, which refuses what runs code (a plain
/// `torch.load` of a stranger's file runs whatever its pickle names, on PyTorch before 2.6).
pub const CONVERT_HINT: &str = "Convert it in Python (pip install safetensors):\n    \
     from safetensors.torch import save_file\n    \
     save_file(torch.load(\"model.pt\", map_location=\"cpu\", weights_only=True), \"model.safetensors\")\n\
     (this gives the state_dict when the file was saved with torch.save(model.state_dict(), ...); a whole \
     pickled model is refused by weights_only=True too: whoever saved it can save model.state_dict() instead)";

/// Said of a file whose pickle names functions that run code: nothing that loads it is advised.
pub const CODE_WARNING: &str = "Do not load this file in Python (torch.load or pickle.load would run that code); \
     ask its author for the weights as safetensors";

/// A state_dict mapped onto a spec.
pub struct Mapped {
    /// One tensor per state_dict entry, parameters and buffers, in the spec's order
    /// ([`ModelSpec::state_shapes`], for [`crate::model::Sequential::set_state`]).
    pub values: Vec<Tensor>,
    /// How the file named its tensors, for the record.
    pub naming: String,
    /// The file's data types (e.g. `F32`, or `F16` when converted; `I64` for step counters).
    pub dtypes: Vec<String>,
    /// Batch norms' step counters (`num_batches_tracked`, file names) the file lacks, set to 0:
    /// state_dicts of PyTorch before 0.4.1 have none.
    pub counters_defaulted: Vec<String>,
}

/// Whether `bytes` look like a bare pickle (`torch.save` before PyTorch 1.6, or
/// `_use_new_zipfile_serialization=False`).
fn is_bare_pickle(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1])
}

/// One tensor as a file holds it.
struct Named<'a> {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

/// The tensors of a safetensors file or a `torch.save` zip archive.
fn read_tensors<'a>(bytes: &'a [u8], err: &dyn Fn(String) -> Error) -> Result<Vec<Named<'a>>> {
    if zip::is_zip(bytes) {
        let tensors = pt::read_state_dict(bytes).map_err(|e| match e.runs_code {
            true => err(format!("{e}. {CODE_WARNING}")),
            false => err(format!("a torch.save file that scratchnet cannot read: {e}. {CONVERT_HINT}")),
        })?;
        return Ok(tensors
            .into_iter()
            .map(|t| Named { name: t.name, dtype: t.dtype, shape: t.shape, data: Cow::Owned(t.data) })
            .collect());
    }
    if is_bare_pickle(bytes) {
        let code = pickle::code_globals(bytes);
        if !code.is_empty() {
            return Err(err(format!(
                "a bare pickle that tries to run code: it calls {}; refused, and nothing in it was run. {CODE_WARNING}",
                code.join(", ")
            )));
        }
        return Err(err(format!(
            "a torch.save file in the format before PyTorch 1.6 (a bare pickle), which scratchnet does not read \
             (unpickling runs code from the file). {CONVERT_HINT}"
        )));
    }
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| err(format!("not a readable safetensors file ({e}); the file may be truncated or corrupt")))?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(name, v)| Named { name, dtype: v.dtype(), shape: v.shape().to_vec(), data: Cow::Borrowed(v.data()) })
        .collect())
}

/// Maps the tensors of a safetensors file (or a `torch.save`d state_dict) onto `spec`'s
/// parameters and buffers (a batch norm's `running_mean`, `running_var` and
/// `num_batches_tracked`). `source` names the file in errors.
pub fn map_state_dict(bytes: &[u8], source: &str, spec: &ModelSpec) -> Result<Mapped> {
    let err = |msg: String| Error::Data(format!("{source}: {msg}"));
    let tensors = read_tensors(bytes, &err)?;
    let expected = spec.state_shapes();
    if spec.param_shapes().is_empty() {
        return Err(err("the network has no parameters to import".into()));
    }
    let by_name: BTreeMap<&str, &Named<'_>> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    if by_name.len() != tensors.len() {
        return Err(err("holds two tensors of the same name".into()));
    }
    let names: Vec<String> = by_name.keys().map(|n| n.to_string()).collect();
    if names.is_empty() {
        return Err(err("holds no tensors".into()));
    }
    let (prefix, naming) = naming(&names).map_err(&err)?;
    let ours = |name: &str| format!("layers.{}", &name[prefix.len()..]);
    let theirs = |ours: &str| format!("{prefix}{}", &ours["layers.".len()..]);

    // Every name in the file must be one of the network's.
    let wanted: BTreeMap<&str, &Vec<usize>> = expected.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let what = if expected.len() > spec.param_shapes().len() { "a parameter or buffer" } else { "a parameter" };
    let mut sorted = names.clone();
    sorted.sort();
    for name in &sorted {
        if !name.starts_with(&prefix) || !wanted.contains_key(ours(name).as_str()) {
            let list: Vec<String> = expected.iter().map(|(n, _)| theirs(n)).collect();
            return Err(err(format!(
                "tensor {name} is not {what} of this network; it expects {} ({})",
                list.join(", "),
                layer_list(spec)
            )));
        }
    }
    let mut values = Vec::with_capacity(expected.len());
    let mut dtypes = Vec::new();
    let mut counters_defaulted = Vec::new();
    for (name, shape) in &expected {
        let file_name = theirs(name);
        let layer = &spec.layers[layer_index(name)];
        let entry = param_of(name);
        let counter = entry == BATCH_COUNT;
        let Some(view) = by_name.get(file_name.as_str()) else {
            if counter {
                // PyTorch before 0.4.1 kept no counter; it only counts training steps (used
                // by momentum=None, which scratchnet does not have), so 0 changes no output.
                counters_defaulted.push(file_name);
                values.push(Tensor::zeros(shape));
                continue;
            }
            let hint = if entry.starts_with("running_") {
                " (a BatchNorm made with track_running_stats=False has no running statistics; scratchnet's \
                 batch norms predict with them, as PyTorch's eval mode does)"
            } else {
                ""
            };
            return Err(err(format!("tensor {file_name} ({entry} of {}) is missing{hint}", layer.describe())));
        };
        if view.shape != *shape {
            let transposed = view.shape.len() == 2 && view.shape.iter().rev().eq(shape.iter());
            return Err(err(format!(
                "tensor {file_name} ({entry} of {}): expected shape {shape:?}, found {:?}{}",
                layer.describe(),
                view.shape,
                if transposed { " (transposed? Linear weights are [out_features, in_features])" } else { "" }
            )));
        }
        let data = if counter {
            to_count(view.dtype, &view.data).ok_or_else(|| {
                err(format!(
                    "tensor {file_name} has dtype {:?}; expected I64 (PyTorch's step counter), another integer \
                     type, or a float",
                    view.dtype
                ))
            })?
        } else {
            to_f32(view.dtype, &view.data).ok_or_else(|| {
                err(format!("tensor {file_name} has dtype {:?}; expected F32, F64, F16 or BF16", view.dtype))
            })?
        };
        let t = Tensor::from_vec(shape, data)?;
        if !t.all_finite() {
            return Err(err(format!("tensor {file_name} holds NaN or infinite values")));
        }
        let values_of = || t.data().iter().copied();
        if counter && values_of().any(|v| v < 0.0 || v.fract() != 0.0) {
            let v = values_of().next().unwrap_or_default();
            return Err(err(format!(
                "tensor {file_name} ({entry} of {}) holds {v}; a count of training steps is a whole number >= 0",
                layer.describe()
            )));
        }
        if entry == "running_var" && values_of().any(|v| v < 0.0) {
            return Err(err(format!(
                "tensor {file_name} (running_var of {}) holds negative values; a variance is >= 0",
                layer.describe()
            )));
        }
        let d = format!("{:?}", view.dtype);
        if !dtypes.contains(&d) {
            dtypes.push(d);
        }
        values.push(t);
    }
    debug_assert_eq!(values.len(), expected.len());
    Ok(Mapped { values, naming, dtypes, counters_defaulted })
}

/// The prefix before the layer index shared by every name, and how to describe the naming.
fn naming(names: &[String]) -> std::result::Result<(String, String), String> {
    let prefix_of = |name: &str| -> Option<String> {
        // <prefix><index>.<param>: the index is the last-but-one part.
        let mut parts = name.rsplitn(3, '.');
        let (_param, index) = (parts.next()?, parts.next()?);
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(parts.next().map(|p| format!("{p}.")).unwrap_or_default())
    };
    let mut prefixes = BTreeMap::new();
    for n in names {
        let p = prefix_of(n).ok_or_else(|| {
            format!("tensor {n} is not named <index>.<parameter> (as nn.Sequential's 1.weight) or layers.<index>.<parameter>")
        })?;
        prefixes.entry(p).or_insert_with(|| n.clone());
    }
    if prefixes.len() > 1 {
        let seen: Vec<String> = prefixes.iter().map(|(p, n)| format!("'{p}' ({n})")).collect();
        return Err(format!(
            "the tensors come from {} different modules: {}; scratchnet maps the numbering of one nn.Sequential \
             (1.weight or layers.1.weight); save that module's state_dict, or rename the tensors to number the \
             layers in one sequence",
            prefixes.len(),
            seen.join(", ")
        ));
    }
    let prefix = prefixes.into_keys().next().unwrap_or_default();
    let naming = match prefix.as_str() {
        "" => "nn.Sequential numbering (1.weight)".to_string(),
        "layers." => "scratchnet / state_dict names (layers.1.weight)".to_string(),
        p => format!("nn.Sequential numbering under '{p}' ({p}1.weight)"),
    };
    Ok((prefix, naming))
}

/// `layers.3.weight` → 3.
fn layer_index(name: &str) -> usize {
    name.split('.').nth(1).and_then(|i| i.parse().ok()).expect("spec names are layers.<i>.<param>")
}

fn param_of(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// "0 Flatten(), 1 Linear(784, 128), ..." for errors.
fn layer_list(spec: &ModelSpec) -> String {
    let layers: Vec<String> = spec.layers.iter().enumerate().map(|(i, l)| format!("{i} {}", l.describe())).collect();
    format!("its layers: {}", layers.join(", "))
}

/// A step counter's little-endian values (any integer or float type) as f32, None for other
/// types (bool, 8-bit floats). Counts beyond 2^24 lose their last digits, which only matters to
/// PyTorch's momentum=None, not to any output scratchnet computes.
fn to_count(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let ints = |size: usize, f: fn(&[u8]) -> f32| Some(data.chunks_exact(size).map(f).collect());
    match dtype {
        Dtype::I64 => ints(8, |b| i64::from_le_bytes(b.try_into().unwrap()) as f32),
        Dtype::U64 => ints(8, |b| u64::from_le_bytes(b.try_into().unwrap()) as f32),
        Dtype::I32 => ints(4, |b| i32::from_le_bytes(b.try_into().unwrap()) as f32),
        Dtype::U32 => ints(4, |b| u32::from_le_bytes(b.try_into().unwrap()) as f32),
        Dtype::I16 => ints(2, |b| i16::from_le_bytes(b.try_into().unwrap()) as f32),
        Dtype::U16 => ints(2, |b| u16::from_le_bytes(b.try_into().unwrap()) as f32),
        Dtype::I8 => ints(1, |b| b[0] as i8 as f32),
        Dtype::U8 => ints(1, |b| b[0] as f32),
        _ => to_f32(dtype, data),
    }
}

/// FNV-1a (64 bits) of a file's bytes, hex: identifies the weights an import came from.
pub fn fingerprint(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets;
    use safetensors::tensor::TensorView;

    fn file(tensors: &[(&str, Vec<usize>)], dtype: Dtype) -> Vec<u8> {
        let size = dtype.bitsize() / 8;
        let data: Vec<Vec<u8>> = tensors.iter().map(|(_, s)| vec![0u8; s.iter().product::<usize>() * size]).collect();
        let views: Vec<(&str, TensorView<'_>)> =
            tensors.iter().zip(&data).map(|((n, s), d)| (*n, TensorView::new(dtype, s.clone(), d).unwrap())).collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn mlp(prefix: &str) -> Vec<(String, Vec<usize>)> {
        presets::mlp_spec(0.0).param_shapes().into_iter().map(|(n, s)| (n.replacen("layers.", prefix, 1), s)).collect()
    }

    fn map(tensors: &[(String, Vec<usize>)], dtype: Dtype) -> Result<Mapped> {
        let t: Vec<(&str, Vec<usize>)> = tensors.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
        map_state_dict(&file(&t, dtype), "w.safetensors", &presets::mlp_spec(0.0))
    }

    #[test]
    fn every_naming_maps() {
        for (prefix, naming) in [
            ("", "nn.Sequential numbering (1.weight)"),
            ("layers.", "scratchnet / state_dict names (layers.1.weight)"),
            ("module.net.", "nn.Sequential numbering under 'module.net.' (module.net.1.weight)"),
        ] {
            let m = map(&mlp(prefix), Dtype::F32).unwrap();
            assert_eq!(m.naming, naming);
            assert_eq!(m.values.len(), 6);
        }
        assert_eq!(map(&mlp(""), Dtype::F16).unwrap().dtypes, ["F16"]);
    }

    #[test]
    fn misfits_are_named() {
        let e = |t: &[(String, Vec<usize>)]| map(t, Dtype::F32).err().unwrap().to_string();
        let mut t = mlp("");
        t[0].1 = vec![784, 128];
        let m = e(&t);
        assert!(
            m.contains(
                "tensor 1.weight (weight of Linear(784, 128)): expected shape [128, 784], found [784, 128] (transposed?"
            ),
            "{m}"
        );
        let mut t = mlp("");
        t.pop();
        assert!(e(&t).contains("tensor 5.bias (bias of Linear(64, 10)) is missing"), "{}", e(&t));
        let mut t = mlp("");
        t.push(("7.weight".into(), vec![2]));
        let m = e(&t);
        assert!(m.contains("tensor 7.weight is not a parameter of this network; it expects 1.weight, 1.bias"), "{m}");
        // A network whose Sequential has no Flatten in front numbers its Linears 0, 2, 4.
        let t: Vec<_> = mlp("").into_iter().map(|(n, s)| (n.replacen('1', "0", 1), s)).collect();
        assert!(e(&t).contains("tensor 0.bias is not a parameter") && e(&t).contains("its layers: 0 Flatten()"));
        let t = vec![("features.0.weight".to_string(), vec![2]), ("classifier.1.weight".to_string(), vec![2])];
        assert!(e(&t).contains("2 different modules"), "{}", e(&t));
        let t = vec![("fc.weight".to_string(), vec![2])];
        assert!(e(&t).contains("tensor fc.weight is not named <index>.<parameter>"), "{}", e(&t));
        let m = map(&mlp(""), Dtype::I32).err().unwrap().to_string();
        assert!(m.contains("dtype I32; expected F32"), "{m}");
        let spec = presets::mlp_spec(0.0);
        let m = map_state_dict(b"PK\x03\x04rest", "m.pt", &spec).err().unwrap().to_string();
        assert!(
            m.contains("torch.save file that scratchnet cannot read") && m.contains("save_file(torch.load("),
            "{m}"
        );
        let m = map_state_dict(b"\x80\x02}q\x00.", "old.pt", &spec).err().unwrap().to_string();
        assert!(m.contains("before PyTorch 1.6"), "{m}");
        let m = map_state_dict(b"not a file", "x", &spec).err().unwrap().to_string();
        assert!(m.starts_with("x: not a readable safetensors file"), "{m}");
    }

    /// conv → batch_norm2d → relu → flatten → linear → batch_norm1d → linear.
    fn bn_spec() -> ModelSpec {
        use crate::model::LayerSpec::*;
        ModelSpec {
            input: [1, 4, 4],
            layers: vec![
                Conv2d { in_channels: 1, out_channels: 2, kernel_size: 3, stride: 1, padding: 1 },
                BatchNorm2d { num_features: 2, eps: 1e-5, momentum: 0.1 },
                Relu,
                Flatten,
                Linear { in_features: 32, out_features: 3 },
                BatchNorm1d { num_features: 3, eps: 1e-3, momentum: 0.01 },
                Linear { in_features: 3, out_features: 2 },
            ],
        }
    }

    /// A state_dict of [`bn_spec`] named as nn.Sequential's: values i·0.5 (i counting each
    /// tensor's values), counters `count` as I64.
    fn bn_state(count: i64) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
        bn_spec()
            .state_shapes()
            .into_iter()
            .map(|(n, s)| {
                let n = n.replacen("layers.", "", 1);
                let len: usize = s.iter().product();
                if n.ends_with(BATCH_COUNT) {
                    (n, Dtype::I64, s, count.to_le_bytes().to_vec())
                } else {
                    (n, Dtype::F32, s, (0..len).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect())
                }
            })
            .collect()
    }

    fn map_bn(t: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> Result<Mapped> {
        let views: Vec<(&str, TensorView<'_>)> =
            t.iter().map(|(n, d, s, b)| (n.as_str(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
        map_state_dict(&safetensors::serialize(views, None).unwrap(), "bn.safetensors", &bn_spec())
    }

    #[test]
    fn batch_norm_buffers_map_in_state_dict_order() {
        let m = map_bn(&bn_state(7)).unwrap();
        let shapes: Vec<Vec<usize>> = m.values.iter().map(|t| t.shape().to_vec()).collect();
        let expected: Vec<Vec<usize>> = bn_spec().state_shapes().into_iter().map(|(_, s)| s).collect();
        assert_eq!(shapes, expected);
        assert_eq!(m.dtypes, ["F32", "I64"]);
        assert!(m.counters_defaulted.is_empty());
        // layers.1: weight, bias, running_mean, running_var, num_batches_tracked.
        assert_eq!(m.values[4].data(), [0.0, 0.5]);
        assert_eq!(m.values[5].data(), [0.0, 0.5]);
        assert_eq!(m.values[6].shape(), [0usize; 0]);
        assert_eq!(m.values[6].data(), [7.0]);
        let mut model = crate::model::Sequential::new(bn_spec(), 0).unwrap();
        model.set_state(m.values).unwrap();
        let state = model.named_state();
        assert_eq!(state[5].0, "layers.1.running_var");
        assert_eq!(state[5].1.data(), [0.0, 0.5]);
        assert_eq!(state[6].1.data(), [7.0]);

        // Without counters (PyTorch before 0.4.1): 0, and said so.
        let old: Vec<_> = bn_state(7).into_iter().filter(|t| !t.0.ends_with(BATCH_COUNT)).collect();
        let m = map_bn(&old).unwrap();
        assert_eq!(m.counters_defaulted, ["1.num_batches_tracked", "5.num_batches_tracked"]);
        assert_eq!(m.values[6].data(), [0.0]);
        assert_eq!(m.values.len(), bn_spec().state_shapes().len());

        // Another integer type, or a float holding a whole number, counts too.
        let mut t = bn_state(7);
        t[6] = (t[6].0.clone(), Dtype::I32, vec![], 9i32.to_le_bytes().to_vec());
        t[13] = (t[13].0.clone(), Dtype::F32, vec![], 3f32.to_le_bytes().to_vec());
        let m = map_bn(&t).unwrap();
        assert_eq!((m.values[6].data()[0], m.values[13].data()[0]), (9.0, 3.0));
    }

    #[test]
    fn batch_norm_misfits_are_named() {
        let e = |t: &[(String, Dtype, Vec<usize>, Vec<u8>)]| map_bn(t).err().unwrap().to_string();
        let mut t = bn_state(1);
        t.retain(|t| t.0 != "1.running_var");
        let m = e(&t);
        assert!(
            m.contains("tensor 1.running_var (running_var of BatchNorm2d(2, eps=0.00001, momentum=0.1)) is missing")
                && m.contains("track_running_stats=False"),
            "{m}"
        );
        let mut t = bn_state(1);
        t[5].2 = vec![3];
        t[5].3 = vec![0; 12];
        let m = e(&t);
        assert!(m.contains("tensor 1.running_var (running_var of BatchNorm2d(2, eps=0.00001, momentum=0.1)): expected shape [2], found [3]"), "{m}");
        let mut t = bn_state(1);
        t[6].2 = vec![1];
        assert!(e(&t).contains("tensor 1.num_batches_tracked (num_batches_tracked of BatchNorm2d(2"), "{}", e(&t));
        assert!(e(&t).contains("expected shape [], found [1]"), "{}", e(&t));
        let mut t = bn_state(1);
        t[6] = (t[6].0.clone(), Dtype::BOOL, vec![], vec![1]);
        assert!(e(&t).contains("tensor 1.num_batches_tracked has dtype BOOL; expected I64"), "{}", e(&t));
        let mut t = bn_state(1);
        t[5] = (t[5].0.clone(), Dtype::I64, vec![2], vec![0; 16]);
        assert!(e(&t).contains("tensor 1.running_var has dtype I64; expected F32, F64, F16 or BF16"), "{}", e(&t));
        assert!(e(&bn_state(-2)).contains("tensor 1.num_batches_tracked (num_batches_tracked of BatchNorm2d(2"));
        assert!(e(&bn_state(-2)).contains("holds -2; a count of training steps is a whole number >= 0"));
        let mut t = bn_state(1);
        t[13] = (t[13].0.clone(), Dtype::F32, vec![], 2.5f32.to_le_bytes().to_vec());
        assert!(e(&t).contains(
            "5.num_batches_tracked (num_batches_tracked of BatchNorm1d(3, eps=0.001, momentum=0.01)) holds 2.5"
        ));
        let mut t = bn_state(1);
        t[5].3 = [1f32, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = e(&t);
        assert!(
            m.contains("tensor 1.running_var (running_var of BatchNorm2d(2") && m.contains("holds negative values"),
            "{m}"
        );
        let mut t = bn_state(1);
        t[4].3 = [1f32, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(e(&t).contains("tensor 1.running_mean holds NaN or infinite values"), "{}", e(&t));
        // A buffer on a layer that has none.
        let mut t = bn_state(1);
        t.push(("4.running_mean".into(), Dtype::F32, vec![3], vec![0; 12]));
        let m = e(&t);
        assert!(
            m.contains("tensor 4.running_mean is not a parameter or buffer of this network; it expects 0.weight, 0.bias, 1.weight, 1.bias, 1.running_mean, 1.running_var, 1.num_batches_tracked, 4.weight"),
            "{m}"
        );
    }
}
