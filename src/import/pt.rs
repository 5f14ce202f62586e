//! PyTorch's own `torch.save` files (`.pt`, `.pth`), read without running them.
//!
//! Since PyTorch 1.6 such a file is a zip archive: `<name>/data.pkl` is a pickle program that
//! rebuilds the saved object, `<name>/data/<key>` holds each tensor storage's raw bytes and
//! `<name>/byteorder` says `little`. Unpickling runs whatever functions the program names, so
//! `torch.load` of a stranger's file can run code. Here a small interpreter runs only the opcodes a
//! `state_dict` needs (dicts, tuples, lists, strings, numbers, memo) and only these callables:
//! `collections.OrderedDict()`, `torch._utils._rebuild_tensor_v2` and
//! `torch._utils._rebuild_parameter`, with storages named by `torch.<Type>Storage`. Anything
//! else (a pickled `nn.Module`, another global, an opcode outside that set) is refused, naming it.
//! The archive is read by [`super::zip`].

use std::collections::HashMap;

use safetensors::Dtype;

use super::zip;

/// One tensor of the file: little-endian values, row-major.
pub struct PtTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// The tensors of a `torch.save`d state_dict (a dict of name → tensor), or why not.
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<PtTensor>, String> {
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
        return Err(format!("tensors stored in byte order '{}'; only little-endian files are read", lossy(order)));
    }
    let root = Unpickler::new(entries[&pkl]).run()?;
    let V::Dict(items) = root else {
        return Err(format!("the file holds {}, not a state_dict (a dict of tensors)", root.describe()));
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        let V::Str(name) = k else { return Err(format!("a state_dict key is {}, not a name", k.describe())) };
        let V::Tensor { storage, offset, shape, stride } = v else {
            return Err(format!("{name} is {}, not a tensor", v.describe()));
        };
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

/// A value the restricted unpickler builds.
#[derive(Clone, Debug)]
enum V {
    None,
    Bool,
    Int(i64),
    Float,
    Str(String),
    Tuple(Vec<V>),
    List(Vec<V>),
    Dict(Vec<(V, V)>),
    /// `module.name`, allowed as a callable or a storage type.
    Global(String),
    /// (dtype, key of its data file).
    Storage((Dtype, String)),
    Tensor {
        storage: (Dtype, String),
        offset: usize,
        shape: Vec<usize>,
        stride: Vec<usize>,
    },
}

impl V {
    fn describe(&self) -> String {
        match self {
            V::None => "None".into(),
            V::Bool => "a bool".into(),
            V::Int(_) => "an int".into(),
            V::Float => "a float".into(),
            V::Str(s) => format!("the string '{}'", lossy(s.as_bytes())),
            V::Tuple(_) => "a tuple".into(),
            V::List(_) => "a list".into(),
            V::Dict(_) => "a dict".into(),
            V::Global(g) => g.clone(),
            V::Storage(_) => "a storage".into(),
            V::Tensor { .. } => "a tensor".into(),
        }
    }

    /// Values in this one (a bound on what cloning it costs).
    fn weight(&self) -> usize {
        match self {
            V::Tuple(v) | V::List(v) => 1 + v.iter().map(V::weight).sum::<usize>(),
            V::Dict(v) => 1 + v.iter().map(|(k, v)| k.weight() + v.weight()).sum::<usize>(),
            V::Tensor { shape, .. } => 1 + shape.len(),
            _ => 1,
        }
    }
}

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

/// How deeply values may nest (a state_dict needs 4: dict, tensor arguments, size tuple); values
/// are dropped and measured recursively, so a hostile program must not nest them a million deep.
const MAX_DEPTH: usize = 32;

/// Whether `v` nests at most `limit` containers deep (looking no deeper than that).
fn depth_within(v: &V, limit: usize) -> bool {
    let children: Box<dyn Iterator<Item = &V>> = match v {
        V::Tuple(items) | V::List(items) => Box::new(items.iter()),
        V::Dict(items) => Box::new(items.iter().flat_map(|(k, v)| [k, v])),
        _ => return true,
    };
    limit > 0 && children.into_iter().all(|c| depth_within(c, limit - 1))
}

/// Fails unless `items` may go into a container.
fn nest(items: &[V]) -> Result<(), String> {
    if items.iter().all(|v| depth_within(v, MAX_DEPTH - 1)) {
        Ok(())
    } else {
        Err(format!("data.pkl nests values more than {MAX_DEPTH} deep; a state_dict does not"))
    }
}

/// The most values the program may build by copying memoised ones (a few per tensor in a
/// state_dict; a hostile program could otherwise double a value with each copy).
const MAX_COPIED: usize = 1 << 22;

struct Unpickler<'a> {
    b: &'a [u8],
    at: usize,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: HashMap<u32, V>,
    copied: usize,
}

impl<'a> Unpickler<'a> {
    fn new(b: &'a [u8]) -> Self {
        Unpickler { b, at: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), copied: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self.at.checked_add(n).and_then(|end| self.b.get(self.at..end)).ok_or("data.pkl ends early")?;
        self.at += n;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64))
    }
    fn pop(&mut self) -> Result<V, String> {
        self.stack.pop().ok_or_else(|| "data.pkl pops an empty stack".to_string())
    }
    fn pop_mark(&mut self) -> Result<Vec<V>, String> {
        let m = self.marks.pop().ok_or("data.pkl has no mark to pop to")?;
        if m > self.stack.len() {
            return Err("data.pkl's mark is above its stack".into());
        }
        Ok(self.stack.split_off(m))
    }
    fn string(&mut self, n: usize) -> Result<V, String> {
        let s = self.take(n)?;
        Ok(V::Str(String::from_utf8(s.to_vec()).map_err(|_| "a string in data.pkl is not UTF-8")?))
    }
    fn memo_get(&mut self, i: u32) -> Result<(), String> {
        let v = self.memo.get(&i).ok_or_else(|| format!("data.pkl reads memo {i}, which was never written"))?;
        self.copied += v.weight();
        if self.copied > MAX_COPIED {
            return Err("data.pkl copies more values than a state_dict has".into());
        }
        let v = v.clone();
        self.stack.push(v);
        Ok(())
    }
    fn memo_put(&mut self, i: u32) -> Result<(), String> {
        let top = self.stack.last().ok_or("data.pkl memoises an empty stack")?;
        self.copied += top.weight();
        if self.copied > MAX_COPIED {
            return Err("data.pkl copies more values than a state_dict has".into());
        }
        let top = top.clone();
        self.memo.insert(i, top);
        Ok(())
    }
    fn set_items(&mut self, items: Vec<V>) -> Result<(), String> {
        nest(&items)?;
        if !items.len().is_multiple_of(2) {
            return Err("data.pkl sets a key without a value".into());
        }
        let Some(V::Dict(d)) = self.stack.last_mut() else {
            return Err("data.pkl sets items on something that is not a dict".into());
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn run(mut self) -> Result<V, String> {
        loop {
            let at = self.at;
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    let proto = self.uint(1)?;
                    if proto > 5 {
                        return Err(format!("data.pkl uses pickle protocol {proto}"));
                    }
                }
                0x95 => drop(self.take(8)?), // FRAME: a length hint
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.stack.push(V::None),
                0x88 | 0x89 => self.stack.push(V::Bool),
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.stack.push(V::Int(v as i64))
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.stack.push(V::Int(v as i64))
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.stack.push(V::Int(v as i64))
                }
                0x8a => {
                    // LONG1: n bytes, little-endian two's complement; state_dicts need 8 at most.
                    let n = self.uint(1)? as usize;
                    if n > 8 {
                        return Err("data.pkl holds an integer wider than 64 bits".into());
                    }
                    let raw = self.uint(n)?;
                    let v = if n == 0 { 0 } else { ((raw << (64 - 8 * n)) as i64) >> (64 - 8 * n) };
                    self.stack.push(V::Int(v))
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(V::Float)
                }
                b'X' => {
                    let n = self.uint(4)? as usize;
                    let s = self.string(n)?;
                    self.stack.push(s)
                }
                0x8c => {
                    let n = self.uint(1)? as usize;
                    let s = self.string(n)?;
                    self.stack.push(s)
                }
                0x8d => {
                    let n = usize::try_from(self.uint(8)?).map_err(|_| "data.pkl ends early")?;
                    let s = self.string(n)?;
                    self.stack.push(s)
                }
                b')' => self.stack.push(V::Tuple(Vec::new())),
                b']' => self.stack.push(V::List(Vec::new())),
                b'}' => self.stack.push(V::Dict(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    nest(&items)?;
                    self.stack.push(V::Tuple(items))
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    nest(&items)?;
                    self.stack.push(V::List(items))
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(V::Dict(Vec::new()));
                    self.set_items(items)?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("data.pkl pops an empty stack".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    nest(&items)?;
                    self.stack.push(V::Tuple(items))
                }
                b'q' => {
                    let i = self.uint(1)? as u32;
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = self.uint(4)? as u32;
                    self.memo_put(i)?
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memo_put(i)?
                }
                b'h' => {
                    let i = self.uint(1)? as u32;
                    self.memo_get(i)?
                }
                b'j' => {
                    let i = self.uint(4)? as u32;
                    self.memo_get(i)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                b'a' | b'e' => {
                    let items = if op == b'a' { vec![self.pop()?] } else { self.pop_mark()? };
                    nest(&items)?;
                    let Some(V::List(l)) = self.stack.last_mut() else {
                        return Err("data.pkl appends to something that is not a list".into());
                    };
                    l.extend(items)
                }
                b'c' => {
                    let line = |s: &mut Self| -> Result<String, String> {
                        let rest = &s.b[s.at..];
                        let end = rest.iter().position(|&c| c == b'\n').ok_or("data.pkl ends early")?;
                        s.at += end + 1;
                        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
                    };
                    let (module, name) = (line(&mut self)?, line(&mut self)?);
                    self.global(format!("{module}.{name}"))?
                }
                0x93 => {
                    let (name, module) = (self.pop()?, self.pop()?);
                    let (V::Str(module), V::Str(name)) = (module, name) else {
                        return Err("data.pkl names a global with something other than strings".into());
                    };
                    self.global(format!("{module}.{name}"))?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = persistent(pid)?;
                    self.stack.push(storage)
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = reduce(f, args)?;
                    self.stack.push(v)
                }
                b'b' => {
                    // BUILD: the state of an OrderedDict (its `_metadata`, versions per module).
                    let _state = self.pop()?;
                    if !matches!(self.stack.last(), Some(V::Dict(_))) {
                        return Err("data.pkl sets the state of something that is not a dict".into());
                    }
                }
                _ => {
                    return Err(format!(
                        "data.pkl uses pickle opcode 0x{op:02x} at byte {at}, which a state_dict does not need; refused"
                    ));
                }
            }
        }
    }

    /// Pushes an allowed global; refuses every other.
    fn global(&mut self, name: String) -> Result<(), String> {
        let allowed = matches!(
            name.as_str(),
            "collections.OrderedDict" | "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_parameter"
        ) || storage_dtype(&name).is_some();
        if !allowed {
            return Err(format!(
                "data.pkl refers to {name}, which a state_dict does not need (a whole pickled model?); refused: \
                 save model.state_dict() instead"
            ));
        }
        self.stack.push(V::Global(name));
        Ok(())
    }
}

/// BINPERSID: `('storage', torch.<Type>Storage, key, location, numel)`.
fn persistent(pid: V) -> Result<V, String> {
    if let V::Tuple(t) = &pid
        && let [V::Str(kind), V::Global(ty), V::Str(key), _, _] = t.as_slice()
        && kind == "storage"
        && let Some(dtype) = storage_dtype(ty)
    {
        if key.contains('/') || key.contains("..") {
            return Err(format!("a storage key '{}' that is not a plain name", lossy(key.as_bytes())));
        }
        return Ok(V::Storage((dtype, key.clone())));
    }
    Err(format!("data.pkl refers to an outside object {}, not a tensor storage", pid.describe()))
}

fn usizes(v: &V, what: &str) -> Result<Vec<usize>, String> {
    let V::Tuple(items) = v else { return Err(format!("a tensor's {what} is {}, not a tuple", v.describe())) };
    items
        .iter()
        .map(|i| match i {
            V::Int(n) if *n >= 0 => Ok(*n as usize),
            _ => Err(format!("a tensor's {what} holds {}", i.describe())),
        })
        .collect()
}

/// REDUCE with the three allowed callables.
fn reduce(f: V, args: V) -> Result<V, String> {
    let V::Global(name) = f else { return Err(format!("data.pkl calls {}", f.describe())) };
    let V::Tuple(args) = args else { return Err(format!("data.pkl calls {name} with {}", args.describe())) };
    match name.as_str() {
        "collections.OrderedDict" if args.is_empty() => Ok(V::Dict(Vec::new())),
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        "torch._utils._rebuild_tensor_v2" if args.len() >= 4 => {
            let V::Storage(storage) = &args[0] else {
                return Err(format!("a tensor rebuilt from {}", args[0].describe()));
            };
            let V::Int(offset) = args[1] else { return Err("a tensor's storage offset is not an int".into()) };
            let offset = usize::try_from(offset).map_err(|_| "a negative storage offset")?;
            let (shape, stride) = (usizes(&args[2], "size")?, usizes(&args[3], "stride")?);
            Ok(V::Tensor { storage: storage.clone(), offset, shape, stride })
        }
        // nn.Parameter(data, requires_grad, hooks): the data.
        "torch._utils._rebuild_parameter" if !args.is_empty() => match args.into_iter().next() {
            Some(t @ V::Tensor { .. }) => Ok(t),
            _ => Err("a parameter rebuilt from something that is not a tensor".into()),
        },
        _ => Err(format!("data.pkl calls {name} with {} arguments; refused", args.len())),
    }
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

    #[test]
    fn refuses_globals_and_opcodes_a_state_dict_does_not_need() {
        // cos\nsystem\n(S'echo hi'\ntR.  (protocol 0's text opcodes and os.system)
        let e = Unpickler::new(b"cos\nsystem\n(S'echo hi'\ntR.").run().unwrap_err();
        assert!(e.contains("os.system") && e.contains("refused"), "{e}");
        let e = Unpickler::new(b"\x80\x02S'x'\n.").run().unwrap_err();
        assert!(e.contains("opcode 0x53"), "{e}");
        // A tuple doubled through the memo again and again is stopped.
        let mut bomb = b"\x80\x02K\x01q\x00".to_vec();
        for _ in 0..64 {
            bomb.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        bomb.push(b'.');
        assert!(Unpickler::new(&bomb).run().unwrap_err().contains("copies more values"));
        // A tuple in a tuple in a tuple ... a million deep is stopped at the limit.
        let mut deep = b"\x80\x02K\x01".to_vec();
        deep.extend(std::iter::repeat_n(0x85, 1_000_000));
        deep.push(b'.');
        assert!(Unpickler::new(&deep).run().unwrap_err().contains("nests values more than 32 deep"));
        assert!(zip::entries(b"PK\x03\x04 truncated").unwrap_err().contains("broken zip"));
    }
}
