//! PyTorch's own `torch.save` files (`.pt`, `.pth`), read without running them.
//!
//! Since PyTorch 1.6 such a file is a zip archive: `<name>/data.pkl` is a pickle program that
//! rebuilds the saved object, `<name>/data/<key>` holds each tensor storage's raw bytes and
//! `<name>/byteorder` says `little`. Unpickling runs whatever functions the program names, so
//! `torch.load` of a stranger's file can run code. Here [`super::pickle`] reads the program,
//! allowing only what a `state_dict` needs: `collections.OrderedDict()`,
//! `torch._utils._rebuild_tensor_v2` and `torch._utils._rebuild_parameter`, with storages named by
//! `torch.<Type>Storage`. Anything else (a pickled `nn.Module`, another global) is refused, naming
//! it; a function that runs code is reported as such. The archive is read by [`super::zip`].

use std::cell::RefCell;
use std::rc::Rc;

use safetensors::Dtype;

use super::pickle::{self, Failure, Kind, Policy, Res, Value};
use super::zip;

/// One tensor of the file: little-endian values, row-major.
pub struct PtTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// The tensors of a `torch.save`d state_dict (a dict of name → tensor), or why not
/// ([`Failure::runs_code`] when its pickle names code-running functions).
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<PtTensor>, Failure> {
    let entries = zip::entries(bytes)?;
    let pkl = entries
        .keys()
        .filter(|n| n.ends_with("/data.pkl") || *n == "data.pkl")
        .min_by_key(|n| n.len())
        .ok_or("a zip archive without data.pkl: not a torch.save file")?
        .clone();
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    if let Some(order) = entries.get(&format!("{prefix}byteorder"))
        && *order != b"little"
    {
        let order = lossy(order);
        return Err(format!("tensors stored in byte order '{order}'; only little-endian files are read").into());
    }
    let items = state_dict_entries(entries[&pkl])?;
    let mut out = Vec::with_capacity(items.len());
    for (name, storage, offset, shape, stride) in items {
        let (dtype, key) = storage;
        let file = format!("{prefix}data/{key}");
        let data = entries.get(&file).ok_or_else(|| format!("tensor {name}: its storage {file} is missing"))?;
        let data = gather(data, (dtype.bitsize() / 8).max(1), offset, &shape, &stride)
            .map_err(|e| format!("tensor {name}: {e}"))?;
        out.push(PtTensor { name, dtype, shape, data });
    }
    Ok(out)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned()
}

/// The bytes of a strided view (`offset`, `shape`, `stride` in elements of `size` bytes) of
/// `storage`, row-major; every index is checked against the storage.
fn gather(storage: &[u8], size: usize, offset: usize, shape: &[usize], stride: &[usize]) -> Result<Vec<u8>, String> {
    if shape.len() != stride.len() {
        return Err(format!("shape {shape:?} with stride {stride:?}"));
    }
    let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or("its size overflows")?;
    let elements = storage.len() / size;
    if numel == 0 {
        return Ok(Vec::new());
    }
    // Views repeat elements only when expanded (stride 0), which a state_dict does not need; a
    // view larger than its storage could otherwise ask for any amount of memory.
    if numel > elements {
        return Err(format!(
            "a view of {numel} values on a storage of {elements} (an expanded tensor); save tensor.contiguous()"
        ));
    }
    // The largest element index the view reads.
    let last = shape
        .iter()
        .zip(stride)
        .try_fold(offset, |i, (&d, &s)| (d - 1).checked_mul(s).and_then(|x| x.checked_add(i)))
        .ok_or("its strides overflow")?;
    if last >= elements {
        return Err(format!("reads element {last} of a storage of {elements}"));
    }
    let mut out = Vec::with_capacity(numel * size);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let e: usize = offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(&storage[e * size..(e + 1) * size]);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

// ---- pickle ----

/// What the state_dict policy's functions make.
#[derive(Clone)]
enum Made {
    /// (dtype, key of its data file).
    Storage(Dtype, String),
    Tensor {
        storage: (Dtype, String),
        offset: usize,
        shape: Vec<usize>,
        stride: Vec<usize>,
    },
}

type V<'a> = Value<'a, Made>;

/// The storage classes a state_dict's tensors use, and their element types.
fn storage_dtype(global: &str) -> Option<Dtype> {
    Some(match global {
        "torch.FloatStorage" => Dtype::F32,
        "torch.DoubleStorage" => Dtype::F64,
        "torch.HalfStorage" => Dtype::F16,
        "torch.BFloat16Storage" => Dtype::BF16,
        "torch.LongStorage" => Dtype::I64,
        "torch.IntStorage" => Dtype::I32,
        "torch.ShortStorage" => Dtype::I16,
        "torch.CharStorage" => Dtype::I8,
        "torch.ByteStorage" => Dtype::U8,
        "torch.BoolStorage" => Dtype::BOOL,
        _ => return None,
    })
}

/// A state_dict's pickle: dicts, tuples, numbers, strings and three callables,
/// `collections.OrderedDict()`, `torch._utils._rebuild_tensor_v2` and
/// `torch._utils._rebuild_parameter`, with storages named by `torch.<Type>Storage`.
struct StateDict;

impl<'a> Policy<'a> for StateDict {
    type Made = Made;
    fn file(&self) -> &str {
        "data.pkl"
    }
    fn holds(&self) -> &str {
        "a state_dict"
    }
    fn global(&self, name: &str) -> Option<Kind> {
        let allowed = matches!(
            name,
            "collections.OrderedDict" | "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_parameter"
        ) || storage_dtype(name).is_some();
        allowed.then_some(Kind::Function)
    }
    fn refuse(&self, name: &str) -> String {
        format!("data.pkl refers to {name}, which a state_dict does not need (a whole pickled model?); refused")
    }

    fn call(&self, name: &str, args: &[V<'a>]) -> Res<V<'a>> {
        let made = |m| Ok(Value::Made(Rc::new(RefCell::new(m))));
        match name {
            "collections.OrderedDict" if args.is_empty() => Ok(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            "torch._utils._rebuild_tensor_v2" if args.len() >= 4 => {
                let storage = match &args[0] {
                    Value::Made(m) => match &*m.borrow() {
                        Made::Storage(dtype, key) => (*dtype, key.clone()),
                        Made::Tensor { .. } => return Err("a tensor rebuilt from a tensor".into()),
                    },
                    other => return Err(format!("a tensor rebuilt from {}", other.describe()).into()),
                };
                let Value::Int(offset) = args[1] else { return Err("a tensor's storage offset is not an int".into()) };
                let offset = usize::try_from(offset).map_err(|_| "a negative storage offset")?;
                let (shape, stride) = (usizes(&args[2], "size")?, usizes(&args[3], "stride")?);
                made(Made::Tensor { storage, offset, shape, stride })
            }
            // nn.Parameter(data, requires_grad, hooks): the data.
            "torch._utils._rebuild_parameter" if !args.is_empty() => match &args[0] {
                t @ Value::Made(m) if matches!(&*m.borrow(), Made::Tensor { .. }) => Ok(t.clone()),
                _ => Err("a parameter rebuilt from something that is not a tensor".into()),
            },
            _ => Err(format!("data.pkl calls {name} with {} arguments; refused", args.len()).into()),
        }
    }

    /// `('storage', torch.<Type>Storage, key, location, numel)`.
    fn persistent(&self, pid: &V<'a>) -> Res<V<'a>> {
        if let Value::Tuple(t) = pid
            && let [kind, Value::Global(ty), key, _, _] = t.items.as_slice()
            && kind.str().as_deref() == Some("storage")
            && let Some(dtype) = storage_dtype(&ty.name)
            && let Some(key) = key.str()
        {
            if key.contains('/') || key.contains("..") {
                return Err(format!("a storage key '{}' that is not a plain name", lossy(key.as_bytes())).into());
            }
            return Ok(Value::Made(Rc::new(RefCell::new(Made::Storage(dtype, key.into_owned())))));
        }
        Err(format!("data.pkl refers to an outside object {}, not a tensor storage", pid.describe()).into())
    }
}

fn usizes(v: &V<'_>, what: &str) -> Result<Vec<usize>, String> {
    let Value::Tuple(t) = v else { return Err(format!("a tensor's {what} is {}, not a tuple", v.describe())) };
    t.items
        .iter()
        .map(|i| match i {
            Value::Int(n) if *n >= 0 => Ok(*n as usize),
            _ => Err(format!("a tensor's {what} holds {}", i.describe())),
        })
        .collect()
}

/// The (name, storage, offset, shape, stride) of each entry of the state_dict `data.pkl` holds.
type Entry = (String, (Dtype, String), usize, Vec<usize>, Vec<usize>);

fn state_dict_entries(pkl: &[u8]) -> Result<Vec<Entry>, Failure> {
    pickle::load(pkl, &StateDict, |root| {
        let Value::Dict(items) = root else {
            return Err(format!("the file holds {}, not a state_dict (a dict of tensors)", root.describe()).into());
        };
        let mut out = Vec::new();
        for (k, v) in items.borrow().iter() {
            let Some(name) = k.str() else {
                return Err(format!("a state_dict key is {}, not a name", k.describe()).into());
            };
            let tensor = match v {
                Value::Made(m) => m.borrow().clone(),
                other => return Err(format!("{name} is {}, not a tensor", other.describe()).into()),
            };
            let Made::Tensor { storage, offset, shape, stride } = tensor else {
                return Err(format!("{name} is a storage, not a tensor").into());
            };
            out.push((name.into_owned(), storage, offset, shape, stride));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_follows_strides_and_checks_bounds() {
        let storage: Vec<u8> = (0..6u8).collect();
        // A 2x3 storage viewed transposed (3x2, strides 1, 3).
        assert_eq!(gather(&storage, 1, 0, &[3, 2], &[1, 3]).unwrap(), [0, 3, 1, 4, 2, 5]);
        assert_eq!(gather(&storage, 2, 1, &[2], &[1]).unwrap(), [2, 3, 4, 5]);
        assert!(gather(&storage, 1, 1, &[2, 3], &[3, 1]).unwrap_err().contains("reads element 6"));
        assert!(gather(&storage, 1, 0, &[2, usize::MAX], &[usize::MAX, 1]).is_err());
        assert!(gather(&storage, 1, 0, &[1 << 40], &[0]).unwrap_err().contains("expanded tensor"));
    }

    fn run(b: &[u8]) -> Result<usize, Failure> {
        state_dict_entries(b).map(|e| e.len())
    }

    #[test]
    fn refuses_globals_and_opcodes_a_state_dict_does_not_need() {
        // cos\nsystem\n(S'echo hi'\ntR.  (protocol 0's text opcodes and os.system)
        let e = run(b"cos\nsystem\n(S'echo hi'\ntR.").unwrap_err();
        assert!(e.runs_code && e.message.contains("data.pkl tries to run code: it calls os.system"), "{e}");
        let e = run(b"\x80\x02S'x'\n.").unwrap_err();
        assert!(e.message.contains("opcode 0x53"), "{e}");
        // A whole pickled module: refused, not as code.
        let e = run(b"\x80\x02ctorch.nn.modules.linear\nLinear\n)\x81.").unwrap_err();
        assert!(!e.runs_code && e.message.contains("torch.nn.modules.linear.Linear, which a state_dict does not need"));
        // A tuple doubled through the memo again and again (2^30 ints) costs one value per copy.
        let mut bomb = b"\x80\x02}K\x01q\x00".to_vec();
        for _ in 0..30 {
            bomb.extend_from_slice(b"h\x00h\x00\x86q\x000");
        }
        bomb.extend_from_slice(b"0.");
        assert_eq!(run(&bomb).unwrap(), 0);
        // A tuple in a tuple in a tuple ... a million deep is stopped at the limit.
        let mut deep = b"\x80\x02K\x01".to_vec();
        deep.extend(std::iter::repeat_n(0x85, 1_000_000));
        deep.push(b'.');
        assert!(run(&deep).unwrap_err().message.contains("nests values more than 32 deep"));
        assert!(zip::entries(b"PK\x03\x04 truncated").unwrap_err().contains("broken zip"));
    }
}
