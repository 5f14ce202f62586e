//! The original NumPy/CuPy project's saved networks, read without running them.
//!
//! The original saves a network with `pickle.dump(network, f)`: the Python list of its layer
//! objects, each an instance of a class of its modules (`convolution.Convolution`, `dense.Dense`,
//! `pooling.MaxPooling`, `dropout.Dropout`, `reshape.Reshape`, `activation_functions.Leaky_ReLU`,
//! `activation_functions.Softmax`) made by `NEWOBJ` or `copyreg._reconstructor`, its attributes
//! set by `BUILD`. Arrays are NumPy's pickles (`numpy.core.multiarray._reconstruct` or, protocol
//! 5, `numpy.core.numeric._frombuffer`; `numpy._core` in NumPy 2), or CuPy's
//! (`cupy._core.core.array` applied to a NumPy array); a Leaky_ReLU's `activation` is a bound
//! method, pickled as `builtins.getattr(layer, "leaky_relu")`. [`super::pickle`] reads the
//! program with exactly these names allowed, evaluating them itself; any other global is refused
//! by name.
//!
//! The attributes that carry the network are read: Convolution `kernels` (depth, in, k, k),
//! `biases` (depth, 1), `input_shape`, `kernel_size`, `depth` (stride 1, no padding); Dense
//! `weights` (out, in), `bias` (out, 1); MaxPooling `pool_size`, `stride`; Dropout `rate`; Reshape
//! `input_shape`, `output_shape` (a flatten in (C, H, W) order); Leaky_ReLU `a`. The rest
//! (cached `input`, `output`, `input_col`, `mask`, momentum buffers `v_k`, `v_w`, `v_b`, ...) is
//! skipped: those arrays stay slices of the file's bytes and are never decoded. Shapes must chain
//! from the data set's images to the last layer, a Softmax; scratchnet's classifiers end in one.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use super::pickle::{self, Blob, Failure, Kind, Object, Policy, Res, Value};
use crate::error::{Error, Result};
use crate::model::{LayerSpec, ModelSpec};
use crate::tensor::Tensor;

const CONVOLUTION: &str = "convolution.Convolution";
const DENSE: &str = "dense.Dense";
const POOLING: &str = "pooling.MaxPooling";
const DROPOUT: &str = "dropout.Dropout";
const RESHAPE: &str = "reshape.Reshape";
const LEAKY_RELU: &str = "activation_functions.Leaky_ReLU";
const SOFTMAX: &str = "activation_functions.Softmax";

/// The original's layer classes.
pub const LAYERS: [&str; 7] = [CONVOLUTION, DENSE, POOLING, DROPOUT, RESHAPE, LEAKY_RELU, SOFTMAX];

/// A network read from the original's pickle.
pub struct Original {
    pub spec: ModelSpec,
    /// The parameters in the spec's order ([`ModelSpec::param_shapes`]), as f32.
    pub params: Vec<Tensor>,
    /// The arrays' types (`F64`, `F32`, `F16`).
    pub dtypes: Vec<String>,
    /// The original's layers, in order ("Convolution", "Leaky_ReLU(0.01)", ...).
    pub layers: Vec<String>,
}

/// Reads the original project's pickled network `bytes` for images of shape `input` (channels,
/// height, width). `source` names the file in errors.
pub fn read_original(bytes: &[u8], source: &str, input: [usize; 3]) -> Result<Original> {
    // Every weight takes at least 2 bytes of the file (float16): more means layers share arrays,
    // which would make one f32 copy per layer.
    let max_weights = bytes.len() / 2;
    pickle::load(bytes, &Network, |root| network(root, input, max_weights)).map_err(|e| {
        let advice = if e.runs_code { format!(". {}", super::CODE_WARNING) } else { String::new() };
        Error::Data(format!("{source}: {e}{advice}"))
    })
}

// ---- What the pickle may name ----

#[derive(Clone, Copy)]
struct Dtype {
    /// NumPy's kind letter: b'f' float, b'i' int, b'u' unsigned, b'b' bool, ...
    kind: u8,
    size: usize,
    big_endian: bool,
}

impl Dtype {
    fn name(&self) -> String {
        match self.kind {
            b'f' => format!("float{}", self.size * 8),
            b'i' => format!("int{}", self.size * 8),
            b'u' => format!("uint{}", self.size * 8),
            b'b' => "bool".into(),
            k => format!("'{}{}'", k as char, self.size),
        }
    }
}

/// An array: `data` holds a C-order array of shape `stored`, whose axes `axes` picks in order
/// (C order: 0, 1, ...; Fortran order: reversed; NumPy's 'K' order: any permutation).
#[derive(Clone)]
struct Array<'a> {
    shape: Vec<usize>,
    stored: Vec<usize>,
    axes: Vec<usize>,
    dtype: Dtype,
    data: Blob<'a>,
}

/// What the allowed functions make.
#[derive(Clone)]
enum Np<'a> {
    Dtype(Dtype),
    /// An array; None between `_reconstruct` and its `BUILD`.
    Array(Option<Array<'a>>),
    /// A layer's bound method (`getattr(layer, "leaky_relu")`), kept as a name only.
    Method,
}

type V<'a> = Value<'a, Np<'a>>;

fn made<'a>(np: Np<'a>) -> V<'a> {
    Value::Made(Rc::new(RefCell::new(np)))
}

struct Network;

/// A function name under each module NumPy has kept it in.
fn numpy(name: &str, module: &str, f: &str) -> bool {
    name.strip_suffix(f)
        .and_then(|m| m.strip_suffix('.'))
        .is_some_and(|m| m == format!("numpy.core.{module}") || m == format!("numpy._core.{module}"))
}

impl<'a> Policy<'a> for Network {
    type Made = Np<'a>;
    fn file(&self) -> &str {
        "the pickle"
    }
    fn holds(&self) -> &str {
        "a network of the original project"
    }
    fn global(&self, name: &str) -> Option<Kind> {
        if LAYERS.contains(&name) {
            return Some(Kind::Class);
        }
        let function = numpy(name, "multiarray", "_reconstruct")
            || numpy(name, "numeric", "_frombuffer")
            || numpy(name, "multiarray", "scalar")
            || matches!(
                name,
                "numpy.ndarray"
                    | "numpy.dtype"
                    | "cupy._core.core.array"
                    | "cupy.core.core.array"
                    | "_codecs.encode"
                    | "builtins.bytes"
                    | "__builtin__.bytes"
                    | "builtins.bytearray"
                    | "__builtin__.bytearray"
                    | "builtins.getattr"
                    | "__builtin__.getattr"
            );
        if function { Some(Kind::Function) } else { pickle::object_machinery(name) }
    }

    fn refuse(&self, name: &str) -> String {
        format!(
            "the pickle refers to {name}, which is not one of the original project's layers ({}) nor a NumPy or \
             CuPy array; refused",
            LAYERS.join(", ")
        )
    }

    fn call(&self, f: &str, args: &[V<'a>]) -> Res<V<'a>> {
        let bad = || -> Failure {
            let args: Vec<String> = args.iter().map(Value::describe).collect();
            format!("the pickle calls {f}({})", args.join(", ")).into()
        };
        if numpy(f, "multiarray", "_reconstruct") {
            return match args {
                [Value::Global(g), _, _] if g.name == "numpy.ndarray" => Ok(made(Np::Array(None))),
                _ => Err(bad()),
            };
        }
        if numpy(f, "numeric", "_frombuffer") {
            // (buffer, dtype, shape, order[, axis order]): protocol 5's arrays.
            let (Some(Value::Bytes(data)), Some(dtype), Some(shape)) =
                (args.first(), args.get(1).and_then(dtype_of), args.get(2).and_then(dims))
            else {
                return Err(bad());
            };
            let n = shape.len();
            let axes = match (args.get(3).and_then(Value::str).as_deref(), args.get(4)) {
                (Some("C" | "K"), None | Some(Value::None)) => (0..n).collect(),
                (Some("F"), None | Some(Value::None)) => (0..n).rev().collect(),
                (Some("K"), Some(axes)) => dims(axes).ok_or_else(bad)?,
                _ => return Err(bad()),
            };
            // 'F': the buffer is the C order of the reversed shape.
            let stored = if matches!(args.get(3).and_then(Value::str).as_deref(), Some("F")) {
                shape.iter().rev().copied().collect()
            } else {
                shape
            };
            return Ok(made(Np::Array(Some(array(stored, axes, dtype, *data)?))));
        }
        if numpy(f, "multiarray", "scalar") {
            let [dtype, Value::Bytes(b)] = args else { return Err(bad()) };
            let dtype = dtype_of(dtype).ok_or_else(bad)?;
            return scalar(dtype, &b.bytes()?).ok_or_else(bad);
        }
        match f {
            "numpy.dtype" => {
                let code = args.first().and_then(Value::str).ok_or_else(bad)?;
                let code = code.trim_start_matches(['<', '>', '|', '=']);
                let kind = *code.as_bytes().first().ok_or_else(bad)?;
                let size =
                    code.get(1..).and_then(|s| s.parse().ok()).filter(|s| (1..=16).contains(s)).ok_or_else(bad)?;
                Ok(made(Np::Dtype(Dtype { kind, size, big_endian: false })))
            }
            "cupy._core.core.array" | "cupy.core.core.array" => match args {
                [a @ Value::Made(m)] if matches!(&*m.borrow(), Np::Array(_)) => Ok(a.clone()),
                _ => Err(bad()),
            },
            "_codecs.encode" => match args {
                [Value::Str(t), enc] if matches!(enc.str().as_deref(), Some("latin1" | "latin-1")) => {
                    Ok(Value::Bytes(Blob::Latin1(*t)))
                }
                _ => Err(bad()),
            },
            "builtins.bytes" | "__builtin__.bytes" | "builtins.bytearray" | "__builtin__.bytearray" => match args {
                [] => Ok(Value::Bytes(Blob::Raw(&[]))),
                [b @ Value::Bytes(_)] => Ok(b.clone()),
                _ => Err(bad()),
            },
            "builtins.getattr" | "__builtin__.getattr" => match args {
                // A layer's own method, as data: nothing calls it.
                [Value::Object(o), name]
                    if LAYERS.contains(&o.class.as_str())
                        && name.str().is_some_and(|n| !n.starts_with('_') && !n.is_empty()) =>
                {
                    Ok(made(Np::Method))
                }
                _ => {
                    let args: Vec<String> = args.iter().map(Value::describe).collect();
                    Err(Failure::code(format!(
                        "the pickle tries to run code: it calls {f}({}); refused, and nothing in it was run",
                        args.join(", ")
                    )))
                }
            },
            _ => Err(bad()),
        }
    }

    fn build(&self, target: &mut Np<'a>, state: &V<'a>) -> Res<()> {
        let Value::Tuple(t) = state else {
            return Err(format!("the pickle sets the state of an array with {}", state.describe()).into());
        };
        match target {
            // (version, byte order, subarray, names, fields, element size, alignment, flags)
            Np::Dtype(d) => {
                match t.items.get(1).and_then(Value::str).as_deref() {
                    Some(">") => d.big_endian = true,
                    Some("<" | "|" | "=") => d.big_endian = false,
                    _ => return Err("the pickle gives a NumPy dtype a byte order other than <, >, | or =".into()),
                }
                if t.items.get(2..5).is_some_and(|s| s.iter().any(|v| !matches!(v, Value::None))) {
                    return Err("the pickle holds an array of a structured dtype (records or subarrays)".into());
                }
                Ok(())
            }
            // ([version,] shape, dtype, is_fortran, raw data)
            Np::Array(a @ None) => {
                let items = if t.items.len() == 5 { &t.items[1..] } else { &t.items[..] };
                let [shape, dtype, fortran, data] = items else {
                    return Err(format!("an array's state holds {} values, not 5", t.items.len()).into());
                };
                let shape = dims(shape).ok_or("an array's shape is not a tuple of sizes")?;
                let dtype = dtype_of(dtype).ok_or("an array's dtype is not a NumPy dtype")?;
                let fortran = match fortran {
                    Value::Bool(b) => *b,
                    Value::Int(i) => *i != 0,
                    _ => return Err("an array's order flag is not a bool".into()),
                };
                let data = match data {
                    Value::Bytes(b) => *b,
                    Value::List(_) => return Err("the pickle holds an array of Python objects".into()),
                    other => return Err(format!("an array's data is {}", other.describe()).into()),
                };
                let n = shape.len();
                *a = Some(match fortran {
                    true => array(shape.into_iter().rev().collect(), (0..n).rev().collect(), dtype, data)?,
                    false => array(shape, (0..n).collect(), dtype, data)?,
                });
                Ok(())
            }
            Np::Array(Some(_)) | Np::Method => Err("the pickle sets the state of an array twice".into()),
        }
    }
}

fn dtype_of(v: &V<'_>) -> Option<Dtype> {
    match v {
        Value::Made(m) => match &*m.borrow() {
            Np::Dtype(d) => Some(*d),
            _ => None,
        },
        _ => None,
    }
}

fn dims(v: &V<'_>) -> Option<Vec<usize>> {
    let items: Vec<V<'_>> = match v {
        Value::Tuple(t) => t.items.clone(),
        Value::List(l) => l.borrow().clone(),
        _ => return None,
    };
    items.iter().map(|i| if let Value::Int(n) = i { usize::try_from(*n).ok() } else { None }).collect()
}

/// An array stored in C order as `stored`, viewed with its axes in the order `axes`; its size
/// checked against its data where that is known without decoding.
fn array<'a>(stored: Vec<usize>, axes: Vec<usize>, dtype: Dtype, data: Blob<'a>) -> Res<Array<'a>> {
    let mut seen = vec![false; stored.len()];
    if axes.len() != stored.len() || !axes.iter().all(|&a| a < seen.len() && !std::mem::replace(&mut seen[a], true)) {
        return Err(format!("an array of shape {stored:?} with axis order {axes:?}").into());
    }
    let size = stored.iter().try_fold(dtype.size, |n, &d| n.checked_mul(d));
    let size = size.ok_or_else(|| format!("an array of shape {stored:?} is larger than memory"))?;
    if let Some(len) = data.raw_len()
        && len != size
    {
        return Err(format!("an array of shape {stored:?} ({}) holds {len} bytes, not {size}", dtype.name()).into());
    }
    let shape = axes.iter().map(|&a| stored[a]).collect();
    Ok(Array { shape, stored, axes, dtype, data })
}

/// A NumPy scalar (`numpy.float64(0.01)`) as a plain number.
fn scalar<'a>(dtype: Dtype, b: &[u8]) -> Option<V<'a>> {
    if b.len() != dtype.size || dtype.size > 8 {
        return None;
    }
    let mut le = [0u8; 8];
    le[..b.len()].copy_from_slice(b);
    if dtype.big_endian {
        le[..b.len()].reverse();
    }
    let bits = u64::from_le_bytes(le);
    Some(match (dtype.kind, dtype.size) {
        (b'f', 8) => Value::Float(f64::from_bits(bits)),
        (b'f', 4) => Value::Float(f32::from_bits(bits as u32) as f64),
        (b'b', 1) => Value::Bool(bits != 0),
        (b'u', _) => Value::Int(i64::try_from(bits).ok()?),
        (b'i', n) => Value::Int(((bits << (64 - 8 * n)) as i64) >> (64 - 8 * n)),
        _ => return None,
    })
}

/// The values of a float array as f32, in C order.
fn floats(a: &Array<'_>) -> std::result::Result<Vec<f32>, String> {
    let d = a.dtype;
    if d.kind != b'f' || !matches!(d.size, 2 | 4 | 8) {
        return Err(format!("an array of {}; float16, float32 or float64 expected", d.name()));
    }
    let bytes: Cow<'_, [u8]> = a.data.bytes()?;
    let n: usize = a.shape.iter().product();
    if bytes.len() != n * d.size {
        return Err(format!(
            "an array of shape {:?} ({}) holds {} bytes, not {}",
            a.shape,
            d.name(),
            bytes.len(),
            n * d.size
        ));
    }
    let value = |c: &[u8]| {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        if d.big_endian {
            b[..c.len()].reverse();
        }
        match d.size {
            8 => f64::from_le_bytes(b) as f32,
            4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            _ => crate::half::f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
        }
    };
    let values: Vec<f32> = bytes.chunks_exact(d.size).map(value).collect();
    if a.axes.iter().enumerate().all(|(i, &k)| i == k) {
        return Ok(values);
    }
    // The stored array's C-order strides, taken in the view's axis order.
    let mut c_strides = vec![1usize; a.stored.len()];
    for k in (0..a.stored.len().saturating_sub(1)).rev() {
        c_strides[k] = c_strides[k + 1] * a.stored[k + 1];
    }
    let strides: Vec<usize> = a.axes.iter().map(|&k| c_strides[k]).collect();
    let mut index = vec![0usize; a.shape.len()];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(values[index.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for k in (0..a.shape.len()).rev() {
            index[k] += 1;
            if index[k] < a.shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    Ok(out)
}

// ---- The layer list to a network ----

/// What flows between layers: an image (channels, height, width) or a vector.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Image([usize; 3]),
    Flat(usize),
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Image([c, h, w]) => write!(f, "({c}, {h}, {w})"),
            Shape::Flat(n) => write!(f, "{n} values"),
        }
    }
}

/// One layer object, for reading its attributes.
struct Layer<'r, 'a> {
    index: usize,
    object: &'r Object<'a, Np<'a>>,
}

impl<'a> Layer<'_, 'a> {
    fn name(&self) -> String {
        let class = self.object.class.rsplit('.').next().unwrap_or_default();
        format!("layer {} ({class})", self.index)
    }
    fn err(&self, msg: impl std::fmt::Display) -> Failure {
        format!("{}: {msg}", self.name()).into()
    }
    fn get(&self, attr: &str) -> Res<V<'a>> {
        self.object.attr(attr).ok_or_else(|| self.err(format_args!("has no attribute {attr}")))
    }
    fn size(&self, attr: &str) -> Res<usize> {
        match self.get(attr)? {
            Value::Int(n) if n > 0 => Ok(n as usize),
            v => Err(self.err(format_args!("{attr} is {}, not a positive int", v.describe()))),
        }
    }
    fn number(&self, attr: &str) -> Res<f64> {
        match self.get(attr)? {
            Value::Float(f) if f.is_finite() => Ok(f),
            Value::Int(i) => Ok(i as f64),
            v => Err(self.err(format_args!("{attr} is {}, not a number", v.describe()))),
        }
    }
    fn dims(&self, attr: &str) -> Res<Vec<usize>> {
        let v = self.get(attr)?;
        dims(&v).ok_or_else(|| self.err(format_args!("{attr} is {}, not a tuple of sizes", v.describe())))
    }
    fn image(&self, attr: &str) -> Res<[usize; 3]> {
        let d = self.dims(attr)?;
        <[usize; 3]>::try_from(d.as_slice())
            .ok()
            .filter(|s| s.iter().all(|&x| x > 0))
            .ok_or_else(|| self.err(format_args!("{attr} is {d:?}, not (channels, height, width)")))
    }
    fn array(&self, attr: &str) -> Res<Array<'a>> {
        match self.get(attr)? {
            Value::Made(m) => match &*m.borrow() {
                Np::Array(Some(a)) => Ok(a.clone()),
                _ => Err(self.err(format_args!("{attr} is not an array"))),
            },
            other => Err(self.err(format_args!("{attr} is {}, not an array", other.describe()))),
        }
    }
    fn array_shape(&self, attr: &str) -> Res<Vec<usize>> {
        Ok(self.array(attr)?.shape)
    }
    /// A float array attribute whose shape must be one of `shapes`; its values in C order.
    fn floats(&self, attr: &str, shapes: &[Vec<usize>], dtypes: &mut Vec<String>) -> Res<Vec<f32>> {
        let a = self.array(attr)?;
        if !shapes.contains(&a.shape) {
            return Err(self.err(format_args!("{attr} has shape {:?}; expected {:?}", a.shape, shapes[0])));
        }
        let values = floats(&a).map_err(|e| self.err(format_args!("{attr}: {e}")))?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(self.err(format_args!("{attr} holds NaN or infinite values")));
        }
        let d = format!("F{}", a.dtype.size * 8);
        if !dtypes.contains(&d) {
            dtypes.push(d);
        }
        Ok(values)
    }
    /// Fails unless the layer's input (from the one before it) is `want` (its own record of it).
    fn takes(&self, shape: Shape, want: Shape, before: &str) -> Res<()> {
        if shape == want {
            return Ok(());
        }
        Err(self.err(format_args!("takes input {want}, but {before} gives {shape}: the layers do not chain")))
    }
}

fn network(root: &V<'_>, input: [usize; 3], max_weights: usize) -> Res<Original> {
    let items: Vec<V<'_>> = match root {
        Value::List(l) => l.borrow().clone(),
        Value::Tuple(t) => t.items.clone(),
        other => {
            return Err(
                format!("the pickle holds {}, not a network (a list of layer objects)", other.describe()).into()
            );
        }
    };
    if items.is_empty() {
        return Err("the pickle holds an empty list of layers".into());
    }
    let mut shape = Shape::Image(input);
    let mut before = "the data set's images".to_string();
    let (mut layers, mut params, mut dtypes, mut names) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let last = items.len() - 1;
    for (index, item) in items.iter().enumerate() {
        let Value::Object(object) = item else {
            return Err(format!("item {index} of the layer list is {}, not a layer object", item.describe()).into());
        };
        let l = Layer { index, object };
        let class = object.class.as_str();
        names.push(class.rsplit('.').next().unwrap_or_default().to_string());
        match class {
            CONVOLUTION => {
                let ([c, h, w], k, depth) = (l.image("input_shape")?, l.size("kernel_size")?, l.size("depth")?);
                l.takes(shape, Shape::Image([c, h, w]), &before)?;
                if k > h || k > w {
                    return Err(l.err(format_args!("a {k}x{k} kernel is larger than its input {shape}")));
                }
                params.push(l.floats("kernels", &[vec![depth, c, k, k]], &mut dtypes)?);
                params.push(l.floats("biases", &[vec![depth, 1], vec![depth]], &mut dtypes)?);
                layers.push(LayerSpec::Conv2d {
                    in_channels: c,
                    out_channels: depth,
                    kernel_size: k,
                    stride: 1,
                    padding: 0,
                });
                shape = Shape::Image([depth, h - k + 1, w - k + 1]);
            }
            DENSE => {
                let [out, inp] = match l.array_shape("weights")?.as_slice() {
                    &[out, inp] if out > 0 && inp > 0 => [out, inp],
                    other => return Err(l.err(format_args!("weights has shape {other:?}, not (out, in)"))),
                };
                match shape {
                    // The MLPs take each image as a column of pixels.
                    Shape::Image([c, h, w]) if layers.is_empty() && c * h * w == inp => layers.push(LayerSpec::Flatten),
                    _ => l.takes(shape, Shape::Flat(inp), &before)?,
                }
                params.push(l.floats("weights", &[vec![out, inp]], &mut dtypes)?);
                params.push(l.floats("bias", &[vec![out, 1], vec![out]], &mut dtypes)?);
                layers.push(LayerSpec::Linear { in_features: inp, out_features: out });
                shape = Shape::Flat(out);
            }
            POOLING => {
                let (p, s) = (l.size("pool_size")?, l.size("stride")?);
                if let Ok(own) = l.image("input_shape") {
                    l.takes(shape, Shape::Image(own), &before)?;
                }
                let Shape::Image([c, h, w]) = shape else {
                    return Err(l.err(format_args!("pools {shape}, not an image")));
                };
                if p != s {
                    // The original pools windows of `stride` and sizes the output by `pool_size`.
                    return Err(l.err(format_args!(
                        "pool_size {p} with stride {s}: the original pools only windows as wide as their stride"
                    )));
                }
                if p > h || p > w {
                    return Err(l.err(format_args!("a {p}x{p} window is larger than its input {shape}")));
                }
                layers.push(LayerSpec::MaxPool2d { kernel_size: p, stride: Some(s) });
                shape = Shape::Image([c, (h - p) / s + 1, (w - p) / s + 1]);
            }
            DROPOUT => {
                let rate = l.number("rate")?;
                if !(0.0..1.0).contains(&rate) {
                    return Err(l.err(format_args!("rate {rate} is not in [0, 1)")));
                }
                layers.push(LayerSpec::Dropout { p: rate as f32 });
            }
            RESHAPE => {
                let own = l.image("input_shape")?;
                l.takes(shape, Shape::Image(own), &before)?;
                let out = l.dims("output_shape")?;
                let n: usize = own.iter().product();
                // At most one size other than 1 first: the product of the rest could overflow.
                if out.iter().filter(|&&d| d != 1).count() > 1 || out.iter().product::<usize>() != n {
                    return Err(l.err(format_args!("reshapes {shape} to {out:?}; only a flatten to ({n}, 1) is read")));
                }
                layers.push(LayerSpec::Flatten);
                shape = Shape::Flat(n);
            }
            LEAKY_RELU => {
                let a = l.number("a")?;
                layers.push(LayerSpec::LeakyRelu { negative_slope: a as f32 });
                *names.last_mut().unwrap() = format!("Leaky_ReLU({a})");
            }
            SOFTMAX => {
                if index != last {
                    return Err(l.err(format_args!(
                        "is not the last layer; scratchnet's classifiers end in their only softmax"
                    )));
                }
                if !matches!(shape, Shape::Flat(_)) {
                    return Err(l.err(format_args!("takes {shape}; a softmax over classes takes a vector")));
                }
            }
            other => {
                return Err(format!("item {index} of the layer list is a {other} object, which is not a layer").into());
            }
        }
        if params.iter().map(Vec::len).sum::<usize>() > max_weights {
            return Err(l.err(format_args!(
                "brings the weights to more values than the file could hold: its layers share arrays"
            )));
        }
        before = l.name();
    }
    if !items.last().is_some_and(|v| matches!(v, Value::Object(o) if o.class == SOFTMAX)) {
        return Err("the network does not end in a Softmax layer, as the original's classifiers do".into());
    }
    if !layers.iter().any(|l| matches!(l, LayerSpec::Linear { .. })) {
        return Err("the network has no Dense layer to give class scores".into());
    }
    let spec = ModelSpec { input, layers };
    let shapes = spec.param_shapes();
    let params = params
        .into_iter()
        .zip(shapes)
        .map(|(v, (_, s))| Tensor::from_vec(&s, v))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| format!("{e}"))?;
    Ok(Original { spec, params, dtypes, layers: names })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_arrays_come_out_in_c_order() {
        // [[0, 1, 2], [3, 4, 5]] stored column by column: the C order of its transpose.
        let data: Vec<u8> = [0f32, 3., 1., 4., 2., 5.].iter().flat_map(|v| v.to_le_bytes()).collect();
        let dtype = Dtype { kind: b'f', size: 4, big_endian: false };
        let a = array(vec![3, 2], vec![1, 0], dtype, Blob::Raw(&data)).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(floats(&a).unwrap(), [0., 1., 2., 3., 4., 5.]);
        // NumPy's 'K' order: (2, 3, 4) stored, viewed as its transpose (2, 0, 1).
        let data: Vec<u8> = (0..24).flat_map(|v| (v as f32).to_le_bytes()).collect();
        let a = array(vec![2, 3, 4], vec![2, 0, 1], dtype, Blob::Raw(&data)).unwrap();
        assert_eq!(a.shape, [4, 2, 3]);
        assert_eq!(floats(&a).unwrap()[..7], [0., 4., 8., 12., 16., 20., 1.]);
        let be: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let a = array(vec![2], vec![0], Dtype { kind: b'f', size: 8, big_endian: true }, Blob::Raw(&be)).unwrap();
        assert_eq!(floats(&a).unwrap(), [1.5, -2.0]);
        assert!(array(vec![5], vec![0], dtype, Blob::Raw(&data)).is_err());
        assert!(array(vec![usize::MAX, 4], vec![0, 1], dtype, Blob::Raw(&data)).is_err());
        assert!(array(vec![4, 6], vec![0, 0], dtype, Blob::Raw(&data)).is_err());
        let ints = Dtype { kind: b'i', size: 4, big_endian: false };
        assert!(floats(&array(vec![24], vec![0], ints, Blob::Raw(&data)).unwrap()).unwrap_err().contains("int32"));
    }

    #[test]
    fn an_array_built_from_itself_is_refused() {
        // _reconstruct(ndarray, (0,), b'b'), then BUILD (1, (2,), <the array itself>, False, b'').
        let p = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87Rq\x00\
                  (K\x01K\x02\x85h\x00\x89C\x00tb\x85.";
        let e = read_original(p, "self.pkl", [1, 6, 6]).err().unwrap().to_string();
        assert!(e.contains("self.pkl: an array's dtype is not a NumPy dtype"), "{e}");
    }
}
