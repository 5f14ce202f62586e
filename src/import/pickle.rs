//! A pickle reader that runs nothing: Python's `pickle` is a small stack machine whose programs
//! name functions to call (`os.system` as easily as `numpy.dtype`), so loading a stranger's pickle
//! runs whatever it names. This interpreter builds plain values (numbers, strings, bytes, tuples,
//! lists, dicts, instances of allowed classes with their attribute dicts) and leaves every name to
//! a [`Policy`]: which globals a program may refer to, what the allowed functions return (computed
//! here, never called), what `BUILD` does to the policy's own values, and what persistent ids
//! mean. `torch.save`'s `data.pkl` ([`super::pt`]) and the original project's pickled networks
//! ([`super::pkl`]) are two policies.
//!
//! Programs of protocols 0 to 5 are read. Values are shared as Python shares them (a memo entry
//! and the stack hold one list, so a later `BUILD` or `APPEND` shows through both), and strings
//! and bytes are slices of the input, decoded only when a policy asks: a 132 MB pickle of cached
//! activations is not copied. A refused global does not end the reading at once: the rest of the
//! program is read for other globals (nothing is called), so a file that also names `os.system`
//! is reported as one that tries to run code ([`Failure::runs_code`]).
//!
//! Bounds for hostile input: every read is checked against the input's length, at most
//! [`MAX_VALUES`] values are made, tuples nest at most [`MAX_DEPTH`] deep, and lists, dicts and
//! objects (which can hold themselves) are emptied one by one when the reader is done, so nothing
//! is freed recursively.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Why a program was not read. `runs_code`: it names a function that runs code (a shell
/// command, `eval`, an import, an attribute lookup on something other than an allowed object),
/// so nothing that loads it in Python may be advised.
#[derive(Clone, Debug)]
pub struct Failure {
    pub message: String,
    pub runs_code: bool,
}

impl Failure {
    pub fn code(message: String) -> Self {
        Failure { message, runs_code: true }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, runs_code: false }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A result whose error is a [`Failure`].
pub type Res<T> = std::result::Result<T, Failure>;

/// A `str` as the program holds it: UTF-8 (binary opcodes) or protocol 0's raw-unicode-escape.
#[derive(Clone, Copy)]
pub struct Text<'a> {
    raw: &'a [u8],
    escaped: bool,
}

impl<'a> Text<'a> {
    /// The string, or why it is not one.
    pub fn decode(&self) -> Result<Cow<'a, str>, String> {
        if !self.escaped {
            return std::str::from_utf8(self.raw).map(Cow::Borrowed).map_err(|_| "a string that is not UTF-8".into());
        }
        let mut out = String::with_capacity(self.raw.len());
        let mut i = 0;
        while i < self.raw.len() {
            let b = self.raw[i];
            let width = match (b, self.raw.get(i + 1)) {
                (b'\\', Some(b'u')) => 4,
                (b'\\', Some(b'U')) => 8,
                _ => 0,
            };
            if width == 0 {
                out.push(b as char); // latin-1
                i += 1;
                continue;
            }
            let hex = self.raw.get(i + 2..i + 2 + width).and_then(|h| std::str::from_utf8(h).ok());
            let c = hex.and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32);
            out.push(c.ok_or("a string with a broken \\u escape")?);
            i += 2 + width;
        }
        Ok(Cow::Owned(out))
    }

    /// Whether the string is `s`.
    pub fn is(&self, s: &str) -> bool {
        if !self.escaped {
            return self.raw == s.as_bytes();
        }
        self.decode().is_ok_and(|d| d == s)
    }

    /// The bytes a latin-1 string stands for (`_codecs.encode(s, "latin1")`, how protocols 0-2
    /// hold `bytes`).
    fn latin1(&self) -> Result<Cow<'a, [u8]>, String> {
        if !self.escaped && self.raw.is_ascii() {
            return Ok(Cow::Borrowed(self.raw));
        }
        let s = self.decode()?;
        s.chars()
            .map(|c| u8::try_from(c as u32).map_err(|_| "bytes encoded as latin-1 hold a character above 255".into()))
            .collect::<Result<Vec<u8>, String>>()
            .map(Cow::Owned)
    }
}

/// A `bytes` (or `bytearray`) value: a slice of the input, or a latin-1 string decoded on use.
#[derive(Clone, Copy)]
pub enum Blob<'a> {
    Raw(&'a [u8]),
    Latin1(Text<'a>),
}

impl<'a> Blob<'a> {
    pub fn bytes(&self) -> Result<Cow<'a, [u8]>, String> {
        match self {
            Blob::Raw(b) => Ok(Cow::Borrowed(b)),
            Blob::Latin1(t) => t.latin1(),
        }
    }
    /// The length when known without decoding.
    pub fn raw_len(&self) -> Option<usize> {
        match self {
            Blob::Raw(b) => Some(b.len()),
            Blob::Latin1(_) => None,
        }
    }
}

/// What a global name is to the interpreter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A class whose instances are made without running it (`NEWOBJ`, `copyreg._reconstructor`)
    /// and get their attributes by `BUILD`.
    Class,
    /// A function the policy evaluates itself ([`Policy::call`]), or a name passed as data.
    Function,
    /// `copyreg._reconstructor(cls, object, None)`: protocols 0 and 1's way to make an instance.
    Reconstructor,
    /// `builtins.object`, the base `_reconstructor` names.
    Object,
}

/// `copyreg._reconstructor` and `builtins.object` under their Python 3 and Python 2 names, for
/// policies that allow instances of classes.
pub fn object_machinery(name: &str) -> Option<Kind> {
    match name {
        "copyreg._reconstructor" | "copy_reg._reconstructor" => Some(Kind::Reconstructor),
        "builtins.object" | "__builtin__.object" => Some(Kind::Object),
        _ => None,
    }
}

pub struct Global {
    pub name: String,
    pub kind: Kind,
}

pub struct Tuple<'a, M> {
    pub items: Vec<Value<'a, M>>,
    depth: usize,
}

/// An instance of an allowed class and the attributes `BUILD` gave it.
pub struct Object<'a, M> {
    pub class: String,
    pub attrs: RefCell<Vec<(Value<'a, M>, Value<'a, M>)>>,
}

impl<'a, M: Clone> Object<'a, M> {
    /// The attribute `name`, if set.
    pub fn attr(&self, name: &str) -> Option<Value<'a, M>> {
        self.attrs.borrow().iter().rev().find(|(k, _)| matches!(k, Value::Str(t) if t.is(name))).map(|(_, v)| v.clone())
    }
}

pub type List<'a, M> = Rc<RefCell<Vec<Value<'a, M>>>>;
pub type Dict<'a, M> = Rc<RefCell<Vec<(Value<'a, M>, Value<'a, M>)>>>;

/// A value the program builds; `M` is what the policy's functions make (arrays, tensors).
pub enum Value<'a, M> {
    None,
    Bool(bool),
    Int(i64),
    /// An int wider than 64 bits (PyTorch's legacy magic number), its value not kept.
    Long,
    Float(f64),
    Str(Text<'a>),
    Bytes(Blob<'a>),
    Tuple(Rc<Tuple<'a, M>>),
    List(List<'a, M>),
    Dict(Dict<'a, M>),
    Global(Rc<Global>),
    Object(Rc<Object<'a, M>>),
    /// A value of the policy's, changed in place by `BUILD`.
    Made(Rc<RefCell<M>>),
    /// What a refused global would have given, while the rest of the program is read.
    Refused,
}

// Not derived: that would ask M: Clone of the Rc'd values too.
impl<M> Clone for Value<'_, M> {
    fn clone(&self) -> Self {
        match self {
            Value::None => Value::None,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Long => Value::Long,
            Value::Float(f) => Value::Float(*f),
            Value::Str(t) => Value::Str(*t),
            Value::Bytes(b) => Value::Bytes(*b),
            Value::Tuple(t) => Value::Tuple(t.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::Dict(d) => Value::Dict(d.clone()),
            Value::Global(g) => Value::Global(g.clone()),
            Value::Object(o) => Value::Object(o.clone()),
            Value::Made(m) => Value::Made(m.clone()),
            Value::Refused => Value::Refused,
        }
    }
}

impl<M> Value<'_, M> {
    /// "a tuple", "the string 'x'", ... for messages.
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the bool {}", if *b { "True" } else { "False" }),
            Value::Int(i) => format!("the int {i}"),
            Value::Long => "an int wider than 64 bits".into(),
            Value::Float(f) => format!("the float {f}"),
            Value::Str(t) => match t.decode() {
                Ok(s) => format!("the string '{}'", s.chars().take(40).collect::<String>().escape_debug()),
                Err(_) => "a string".into(),
            },
            Value::Bytes(_) => "a bytes value".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global(g) => g.name.clone(),
            Value::Object(o) => format!("a {} object", o.class),
            Value::Made(_) => "an array or storage".into(),
            Value::Refused => "a refused value".into(),
        }
    }

    /// The string, if this is one.
    pub fn str(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(t) => t.decode().ok(),
            _ => None,
        }
    }
}

/// What a program may name and what the names do.
pub trait Policy<'a> {
    type Made: Clone + 'a;
    /// The program's name in messages ("data.pkl").
    fn file(&self) -> &str;
    /// What the program is expected to hold, in messages ("a state_dict").
    fn holds(&self) -> &str;
    /// The kind of an allowed global (`module.name`), None for a refused one.
    fn global(&self, name: &str) -> Option<Kind>;
    /// Why a refused global that does not run code is refused, and what to do instead.
    fn refuse(&self, name: &str) -> String;
    /// What the allowed function `f` gives for `args` (never calling anything).
    fn call(&self, f: &str, args: &[Value<'a, Self::Made>]) -> Res<Value<'a, Self::Made>>;
    /// `BUILD` on one of the policy's values.
    fn build(&self, _target: &mut Self::Made, state: &Value<'a, Self::Made>) -> Res<()> {
        Err(format!("{} sets the state of an array with {}", self.file(), state.describe()).into())
    }
    /// A persistent id (`BINPERSID`): a reference to something outside the program.
    fn persistent(&self, pid: &Value<'a, Self::Made>) -> Res<Value<'a, Self::Made>> {
        Err(format!("{} refers to an outside object {}", self.file(), pid.describe()).into())
    }
}

/// Whether the global `name` is one whose call runs code: processes and shells, `eval`, imports,
/// attribute lookups and other gadgets a hostile pickle chains, other deserialisers.
pub fn runs_code(name: &str) -> bool {
    let (module, attr) = name.rsplit_once('.').unwrap_or(("", name));
    let root = module.split('.').next().unwrap_or("");
    let modules = "os posix nt posixpath subprocess _posixsubprocess sys pty shutil socket importlib imp runpy \
        code codeop ctypes commands popen2 webbrowser pickle _pickle cPickle marshal shelve dill cloudpickle joblib \
        multiprocessing asyncio threading _thread pdb bdb timeit trace profile cProfile pydoc platform signal types \
        operator functools inspect io _io tempfile urllib http ftplib smtplib telnetlib pip setuptools distutils \
        ensurepip venv zipimport site gc";
    let builtins = "eval exec execfile compile __import__ getattr setattr delattr open input breakpoint globals \
        locals vars apply file reload help exit quit memoryview classmethod staticmethod property super type";
    // Process, shell and deserialiser entry points under any module (nt.system, dill.loads, ...).
    let calls = ["system", "popen", "run", "call", "check_call", "check_output", "load", "loads"];
    modules.split_whitespace().any(|m| m == root)
        || (matches!(module, "builtins" | "__builtin__") && builtins.split_whitespace().any(|b| b == attr))
        || calls.iter().any(|c| attr == *c || attr.starts_with(&format!("{c}_")))
        || ["spawn", "exec", "eval", "fork"].iter().any(|p| attr.starts_with(p))
        || name.starts_with("numpy.testing")
        || name.starts_with("numpy.f2py")
        || name.starts_with("numpy.distutils")
}

/// The most values one program may make (a pickled network or state_dict makes a few per array);
/// a file of a million `EMPTY_LIST` opcodes must not cost gigabytes.
pub const MAX_VALUES: usize = 1 << 21;

/// The longest `module.name` of a global taken (Python's own are far shorter).
const MAX_NAME: usize = 256;

/// How deeply tuples may nest (arrays' state tuples nest 3 deep); they are freed recursively.
pub const MAX_DEPTH: usize = 32;

/// Runs the program in `bytes` under `policy` and hands its value to `convert`, which turns it
/// into plain data while the reader still holds everything (it is emptied afterwards).
pub fn load<'a, P: Policy<'a>, T>(
    bytes: &'a [u8],
    policy: &P,
    convert: impl FnOnce(&Value<'a, P::Made>) -> Res<T>,
) -> Res<T> {
    let mut u = Unpickler::new(bytes, policy);
    let root = u.run()?;
    convert(&root)
}

/// The code-running globals named by a file of consecutive pickles (PyTorch's format before 1.6
/// is several), read without allowing anything; empty when none is found.
pub fn code_globals(bytes: &[u8]) -> Vec<String> {
    struct Nothing;
    impl<'a> Policy<'a> for Nothing {
        type Made = ();
        fn file(&self) -> &str {
            "the pickle"
        }
        fn holds(&self) -> &str {
            "data"
        }
        fn global(&self, _: &str) -> Option<Kind> {
            None
        }
        fn refuse(&self, name: &str) -> String {
            name.to_string()
        }
        fn call(&self, f: &str, _: &[Value<'a, ()>]) -> Res<Value<'a, ()>> {
            Err(f.into())
        }
    }
    let mut found = Vec::new();
    let mut at = 0;
    for _ in 0..8 {
        let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) else { break };
        let mut u = Unpickler::new(rest, &Nothing);
        let done = u.exec().is_ok();
        found.extend(u.refused.iter().filter(|n| runs_code(n)).cloned());
        if !done {
            break;
        }
        at += u.at;
    }
    found
}

/// A list, dict or object the reader made: emptied when it is done (see [`Unpickler::drop`]).
enum Container<'a, M> {
    List(List<'a, M>),
    Dict(Dict<'a, M>),
    Object(Rc<Object<'a, M>>),
}

struct Unpickler<'a, 'p, P: Policy<'a>> {
    b: &'a [u8],
    at: usize,
    policy: &'p P,
    stack: Vec<Value<'a, P::Made>>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value<'a, P::Made>>,
    made: usize,
    containers: Vec<Container<'a, P::Made>>,
    /// Globals refused so far, in order; once there is one, nothing more is called.
    refused: Vec<String>,
}

impl<'a, P: Policy<'a>> Drop for Unpickler<'a, '_, P> {
    /// Lists, dicts and objects can hold each other in cycles and chains of any length: each is
    /// emptied into one heap, which is then freed while every container is still held here, so
    /// no value is freed recursively through more than [`MAX_DEPTH`] tuples.
    fn drop(&mut self) {
        let mut heap = Vec::new();
        for c in &self.containers {
            match c {
                Container::List(l) => heap.append(&mut l.borrow_mut()),
                Container::Dict(d) => heap.extend(d.borrow_mut().drain(..).flat_map(|(k, v)| [k, v])),
                Container::Object(o) => heap.extend(o.attrs.borrow_mut().drain(..).flat_map(|(k, v)| [k, v])),
            }
        }
        heap.append(&mut self.stack);
        heap.extend(self.memo.drain().map(|(_, v)| v));
        drop(heap);
    }
}

impl<'a, 'p, P: Policy<'a>> Unpickler<'a, 'p, P> {
    fn new(b: &'a [u8], policy: &'p P) -> Self {
        Unpickler {
            b,
            at: 0,
            policy,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            made: 0,
            containers: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn file(&self) -> &'p str {
        self.policy.file()
    }

    fn count(&mut self) -> Res<()> {
        self.made += 1;
        if self.made > MAX_VALUES {
            return Err(format!(
                "{} makes more than {MAX_VALUES} values; {} has far fewer",
                self.file(),
                self.policy.holds()
            )
            .into());
        }
        Ok(())
    }

    fn push(&mut self, v: Value<'a, P::Made>) -> Res<()> {
        self.count()?;
        self.stack.push(v);
        Ok(())
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let b = self.b;
        let s = self.at.checked_add(n).and_then(|end| b.get(self.at..end));
        let s = s.ok_or_else(|| format!("{} ends early (a truncated file?)", self.file()))?;
        self.at += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Res<u64> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64))
    }

    fn len(&mut self, n: usize) -> Res<usize> {
        let v = self.uint(n)?;
        usize::try_from(v).map_err(|_| format!("{} ends early (a truncated file?)", self.file()).into())
    }

    /// Protocol 0's argument: the bytes up to the next newline.
    fn line(&mut self) -> Res<&'a [u8]> {
        let b = self.b;
        let rest = b.get(self.at..).unwrap_or_default();
        let end = rest.iter().position(|&c| c == b'\n');
        let end = end.ok_or_else(|| format!("{} ends early (a truncated file?)", self.file()))?;
        self.at += end + 1;
        Ok(&rest[..end])
    }

    fn line_number<T: std::str::FromStr>(&mut self, what: &str) -> Res<T> {
        let line = self.line()?;
        let text = std::str::from_utf8(line).ok().map(|s| s.trim_end_matches('L'));
        text.and_then(|t| t.parse().ok()).ok_or_else(|| {
            format!("{} holds {what} '{}' that is not a number", self.file(), String::from_utf8_lossy(line)).into()
        })
    }

    fn pop(&mut self) -> Res<Value<'a, P::Made>> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(format!("{} pops past a mark", self.file()).into());
        }
        self.stack.pop().ok_or_else(|| format!("{} pops an empty stack", self.file()).into())
    }

    fn pop_mark(&mut self) -> Res<Vec<Value<'a, P::Made>>> {
        let m = self.marks.pop().ok_or_else(|| format!("{} has no mark to pop to", self.file()))?;
        if m > self.stack.len() {
            return Err(format!("{}'s mark is above its stack", self.file()).into());
        }
        Ok(self.stack.split_off(m))
    }

    fn tuple(&mut self, items: Vec<Value<'a, P::Made>>) -> Res<Value<'a, P::Made>> {
        let depth = 1 + items.iter().map(|v| if let Value::Tuple(t) = v { t.depth } else { 0 }).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(format!(
                "{} nests values more than {MAX_DEPTH} deep; {} does not",
                self.file(),
                self.policy.holds()
            )
            .into());
        }
        Ok(Value::Tuple(Rc::new(Tuple { items, depth })))
    }

    fn list(&mut self, items: Vec<Value<'a, P::Made>>) -> Value<'a, P::Made> {
        let l = Rc::new(RefCell::new(items));
        self.containers.push(Container::List(l.clone()));
        Value::List(l)
    }

    fn dict(&mut self) -> (Dict<'a, P::Made>, Value<'a, P::Made>) {
        let d: Dict<'a, P::Made> = Rc::new(RefCell::new(Vec::new()));
        self.containers.push(Container::Dict(d.clone()));
        (d.clone(), Value::Dict(d))
    }

    fn object(&mut self, class: &str) -> Value<'a, P::Made> {
        let o = Rc::new(Object { class: class.to_string(), attrs: RefCell::new(Vec::new()) });
        self.containers.push(Container::Object(o.clone()));
        Value::Object(o)
    }

    fn memo_put(&mut self, i: u32) -> Res<()> {
        let top = self.stack.last().ok_or_else(|| format!("{} memoises an empty stack", self.file()))?.clone();
        self.count()?;
        self.memo.insert(i, top);
        Ok(())
    }

    fn memo_get(&mut self, i: u32) -> Res<()> {
        let v = self.memo.get(&i).ok_or_else(|| format!("{} reads memo {i}, which was never written", self.file()))?;
        let v = v.clone();
        self.push(v)
    }

    fn set_items(&mut self, items: Vec<Value<'a, P::Made>>) -> Res<()> {
        if !items.len().is_multiple_of(2) {
            return Err(format!("{} sets a key without a value", self.file()).into());
        }
        let Some(Value::Dict(d)) = self.stack.last() else {
            return Err(format!("{} sets items on something that is not a dict", self.file()).into());
        };
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value<'a, P::Made>>) -> Res<()> {
        match self.stack.last() {
            Some(Value::List(l)) => l.borrow_mut().extend(items),
            Some(Value::Refused) => {}
            _ => return Err(format!("{} appends to something that is not a list", self.file()).into()),
        }
        Ok(())
    }

    /// Pushes an allowed global, or notes a refused one and reads on.
    fn global(&mut self, module: &str, name: &str) -> Res<()> {
        if module.len() + name.len() > MAX_NAME {
            return Err(format!(
                "{} names a global of {} bytes; no module or class name is that long",
                self.file(),
                module.len() + name.len()
            )
            .into());
        }
        // Escaped: the name goes into a one-line message.
        let full = format!("{}.{}", module.escape_debug(), name.escape_debug());
        match self.policy.global(&full) {
            Some(kind) => self.push(Value::Global(Rc::new(Global { name: full, kind }))),
            None => {
                if !self.refused.contains(&full) {
                    self.refused.push(full);
                }
                self.push(Value::Refused)
            }
        }
    }

    /// The failure the refused globals make: code-running ones named first.
    fn refusal(&self) -> Failure {
        let code: Vec<&String> = self.refused.iter().filter(|n| runs_code(n)).collect();
        if let Some(first) = code.first() {
            let mut names: Vec<&str> = code.iter().map(|s| s.as_str()).collect();
            names.dedup();
            return Failure::code(format!(
                "{} tries to run code: it calls {}; refused, and nothing in it was run",
                self.file(),
                if names.len() > 1 { names.join(", ") } else { first.to_string() }
            ));
        }
        self.policy.refuse(&self.refused[0]).into()
    }

    fn run(&mut self) -> Res<Value<'a, P::Made>> {
        let result = self.exec();
        if !self.refused.is_empty() {
            return Err(self.refusal());
        }
        result
    }

    fn exec(&mut self) -> Res<Value<'a, P::Made>> {
        let file = self.file();
        loop {
            let at = self.at;
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    let proto = self.uint(1)?;
                    if proto > 5 {
                        return Err(format!("{file} uses pickle protocol {proto}; 0 to 5 are read").into());
                    }
                }
                0x95 => drop(self.take(8)?), // FRAME: a length hint
                b'.' => return self.pop(),
                b'(' => {
                    self.count()?;
                    self.marks.push(self.stack.len())
                }
                b'0' => {
                    if self.marks.last().is_some_and(|&m| m == self.stack.len()) {
                        self.pop_mark()?;
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => drop(self.pop_mark()?),
                b'2' => {
                    let top = self.stack.last().ok_or_else(|| format!("{file} duplicates an empty stack"))?.clone();
                    self.push(top)?
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'I' => {
                    let line = self.line()?;
                    let v = match line {
                        b"01" => Value::Bool(true),
                        b"00" => Value::Bool(false),
                        _ => {
                            let n = std::str::from_utf8(line).ok().and_then(|s| s.parse().ok());
                            Value::Int(n.ok_or_else(|| format!("{file} holds an int that is not a number"))?)
                        }
                    };
                    self.push(v)?
                }
                b'L' => {
                    let line = self.line()?;
                    let digits = line.strip_suffix(b"L").unwrap_or(line);
                    let digits = digits.strip_prefix(b"-").unwrap_or(digits);
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        return Err(format!("{file} holds an int that is not a number").into());
                    }
                    let v = std::str::from_utf8(line).ok().and_then(|s| s.trim_end_matches('L').parse().ok());
                    self.push(v.map_or(Value::Long, Value::Int))?
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(Value::Int(v as i64))?
                }
                0x8a | 0x8b => {
                    // LONG1, LONG4: n bytes, little-endian two's complement.
                    let n = if op == 0x8a { self.len(1)? } else { self.len(4)? };
                    if n > 8 {
                        self.take(n)?;
                        self.push(Value::Long)?;
                        continue;
                    }
                    let raw = self.uint(n)?;
                    let v = if n == 0 { 0 } else { ((raw << (64 - 8 * n)) as i64) >> (64 - 8 * n) };
                    self.push(Value::Int(v))?
                }
                b'F' => {
                    let v = self.line_number("a float")?;
                    self.push(Value::Float(v))?
                }
                b'G' => {
                    let v = f64::from_bits(u64::from_be_bytes(self.take(8)?.try_into().unwrap()));
                    self.push(Value::Float(v))?
                }
                b'V' => {
                    let raw = self.line()?;
                    self.push(Value::Str(Text { raw, escaped: true }))?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.len(4)?,
                        0x8c => self.len(1)?,
                        _ => self.len(8)?,
                    };
                    let raw = self.take(n)?;
                    self.push(Value::Str(Text { raw, escaped: false }))?
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.len(4)?,
                        b'C' => self.len(1)?,
                        _ => self.len(8)?,
                    };
                    let raw = self.take(n)?;
                    self.push(Value::Bytes(Blob::Raw(raw)))?
                }
                b')' => {
                    let t = self.tuple(Vec::new())?;
                    self.push(t)?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let t = self.tuple(items)?;
                    self.push(t)?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let floor = self.marks.last().copied().unwrap_or(0);
                    if self.stack.len() < floor + n {
                        return Err(format!("{file} pops an empty stack").into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let t = self.tuple(items)?;
                    self.push(t)?
                }
                b']' => {
                    let l = self.list(Vec::new());
                    self.push(l)?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let l = self.list(items);
                    self.push(l)?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                b'}' => {
                    let (_, d) = self.dict();
                    self.push(d)?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let (_, d) = self.dict();
                    self.push(d)?;
                    self.set_items(items)?
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
                b'p' => {
                    let i = self.line_number("a memo index")?;
                    self.memo_put(i)?
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
                    let i = u32::try_from(self.memo.len()).map_err(|_| format!("{file} memoises too much"))?;
                    self.memo_put(i)?
                }
                b'g' => {
                    let i = self.line_number("a memo index")?;
                    self.memo_get(i)?
                }
                b'h' => {
                    let i = self.uint(1)? as u32;
                    self.memo_get(i)?
                }
                b'j' => {
                    let i = self.uint(4)? as u32;
                    self.memo_get(i)?
                }
                b'c' => {
                    let module = String::from_utf8_lossy(self.line()?).into_owned();
                    let name = String::from_utf8_lossy(self.line()?).into_owned();
                    self.global(&module, &name)?
                }
                0x93 => {
                    let (name, module) = (self.pop()?, self.pop()?);
                    let (Some(module), Some(name)) = (module.str(), name.str()) else {
                        return Err(format!("{file} names a global with something other than strings").into());
                    };
                    let (module, name) = (module.into_owned(), name.into_owned());
                    self.global(&module, &name)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = if matches!(&pid, Value::Tuple(t) if t.items.iter().any(|v| matches!(v, Value::Refused))) {
                        Value::Refused
                    } else {
                        self.policy.persistent(&pid)?
                    };
                    self.push(v)?
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(f, args)?;
                    self.push(v)?
                }
                0x81 | 0x92 => {
                    if op == 0x92 {
                        self.pop()?; // NEWOBJ_EX's keyword arguments
                    }
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    let v = match &cls {
                        Value::Global(g) if g.kind == Kind::Class => self.object(&g.name),
                        Value::Refused => Value::Refused,
                        _ => return Err(format!("{file} makes an instance of {}", cls.describe()).into()),
                    };
                    self.push(v)?
                }
                b'b' => {
                    let state = self.pop()?;
                    self.build(state)?
                }
                _ => {
                    return Err(format!(
                        "{file} uses pickle opcode 0x{op:02x} at byte {at}, which {} does not need; refused",
                        self.policy.holds()
                    )
                    .into());
                }
            }
        }
    }

    /// REDUCE: `f(*args)` for the functions the policy evaluates, instances for
    /// `_reconstructor`; anything else named is refused.
    fn reduce(&mut self, f: Value<'a, P::Made>, args: Value<'a, P::Made>) -> Res<Value<'a, P::Made>> {
        let file = self.file();
        let g = match &f {
            Value::Refused => return Ok(Value::Refused),
            Value::Global(g) => g.clone(),
            other => return Err(Failure::code(format!("{file} tries to run code: it calls {}", other.describe()))),
        };
        let args = match &args {
            Value::Tuple(t) => t.clone(),
            Value::Refused => return Ok(Value::Refused),
            other => return Err(format!("{file} calls {} with {}", g.name, other.describe()).into()),
        };
        if args.items.iter().any(|a| matches!(a, Value::Refused)) {
            return Ok(Value::Refused);
        }
        match g.kind {
            Kind::Function => {
                let v = self.policy.call(&g.name, &args.items)?;
                // A container the policy made (OrderedDict()) is emptied with the others.
                match &v {
                    Value::List(l) => self.containers.push(Container::List(l.clone())),
                    Value::Dict(d) => self.containers.push(Container::Dict(d.clone())),
                    Value::Object(o) => self.containers.push(Container::Object(o.clone())),
                    _ => {}
                }
                Ok(v)
            }
            Kind::Reconstructor => match args.items.as_slice() {
                [Value::Global(cls), Value::Global(base), Value::None]
                    if cls.kind == Kind::Class && base.kind == Kind::Object =>
                {
                    Ok(self.object(&cls.name))
                }
                _ => Err(format!("{file} calls {} with arguments other than (a class, object, None)", g.name).into()),
            },
            Kind::Class | Kind::Object => {
                Err(Failure::code(format!("{file} tries to run code: it calls the class {}", g.name)))
            }
        }
    }

    /// BUILD: an object's attributes, a policy value's state; a dict's (an OrderedDict's
    /// attributes) is dropped.
    fn build(&mut self, state: Value<'a, P::Made>) -> Res<()> {
        let file = self.file();
        let target = self.stack.last().ok_or_else(|| format!("{file} sets the state of an empty stack"))?.clone();
        if matches!(state, Value::Refused) {
            return Ok(());
        }
        match target {
            Value::Object(o) => {
                // A dict, or (dict or None, slots dict).
                let dicts: Vec<Value<'a, P::Made>> = match &state {
                    Value::Dict(_) => vec![state.clone()],
                    Value::Tuple(t) if t.items.len() == 2 => t.items.clone(),
                    _ => return Err(format!("{file} sets the state of a {} with {}", o.class, state.describe()).into()),
                };
                for d in dicts {
                    match d {
                        Value::Dict(d) => {
                            // Every attribute set counts, or one memoised dict built again and
                            // again would grow an object without bound.
                            for _ in 0..d.borrow().len() {
                                self.count()?;
                            }
                            o.attrs.borrow_mut().extend(d.borrow().iter().cloned())
                        }
                        Value::None => {}
                        other => {
                            return Err(
                                format!("{file} sets the state of a {} with {}", o.class, other.describe()).into()
                            );
                        }
                    }
                }
                Ok(())
            }
            Value::Made(m) => {
                // On a copy: the state may hold the value itself, which the policy then reads.
                let mut copy = m.borrow().clone();
                self.policy.build(&mut copy, &state)?;
                *m.borrow_mut() = copy;
                Ok(())
            }
            Value::Dict(_) | Value::Refused => Ok(()),
            other => Err(format!("{file} sets the state of {}", other.describe()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allows `m.C` as a class and `m.f` (which gives its first argument).
    struct Test;
    impl<'a> Policy<'a> for Test {
        type Made = ();
        fn file(&self) -> &str {
            "t.pkl"
        }
        fn holds(&self) -> &str {
            "a test"
        }
        fn global(&self, name: &str) -> Option<Kind> {
            object_machinery(name).or(match name {
                "m.C" => Some(Kind::Class),
                "m.f" => Some(Kind::Function),
                _ => None,
            })
        }
        fn refuse(&self, name: &str) -> String {
            format!("t.pkl refers to {name}")
        }
        fn call(&self, _: &str, args: &[Value<'a, ()>]) -> Res<Value<'a, ()>> {
            Ok(args.first().cloned().unwrap_or(Value::None))
        }
    }

    fn run(b: &[u8]) -> Res<String> {
        load(b, &Test, |v| {
            Ok(match v {
                Value::List(l) => format!("list of {}", l.borrow().len()),
                Value::Object(o) => format!("{} with {} attributes", o.class, o.attrs.borrow().len()),
                other => other.describe(),
            })
        })
    }

    #[test]
    fn shared_values_show_changes_through_the_memo() {
        // x = []; y = [x]; x.append(1); return y[0]  →  the memo's x has the append.
        // ] q0  ( h0 l  q1  K1 ... : EMPTY_LIST BINPUT0 MARK BINGET0 LIST BINPUT1, then BINGET0 K1 APPEND POP BINGET1
        let p = b"\x80\x02]q\x00(h\x00lq\x01h\x00K\x01a0h\x01.";
        assert_eq!(run(p).unwrap(), "list of 1");
        // An object made by NEWOBJ, memoised, then built: the memo copy has the attributes.
        let p = b"\x80\x02cm\nC\n)\x81q\x00}(X\x01\x00\x00\x00aK\x01ub0h\x00.";
        assert_eq!(run(p).unwrap(), "m.C with 1 attributes");
        // Protocol 0: copy_reg._reconstructor(m.C, object, None), BUILD with a dict.
        let p = b"ccopy_reg\n_reconstructor\n(cm\nC\nc__builtin__\nobject\nNtR(dVa\nF0.5\nsb.";
        assert_eq!(run(p).unwrap(), "m.C with 1 attributes");
    }

    #[test]
    fn latin1_strings_decode_to_bytes() {
        let t = Text { raw: "a\u{f0}\u{ff}".as_bytes(), escaped: false };
        assert_eq!(&*t.latin1().unwrap(), b"a\xf0\xff");
        let t = Text { raw: b"\xf0\\u000a\\u005c", escaped: true };
        assert_eq!(&*t.latin1().unwrap(), b"\xf0\n\\");
        assert!(Text { raw: "\u{100}".as_bytes(), escaped: false }.latin1().is_err());
        assert!(Text { raw: b"\\u12", escaped: true }.decode().is_err());
    }

    #[test]
    fn code_running_globals_are_named_even_after_another_refusal() {
        let e = run(b"cos\nsystem\n(S'echo hi'\ntR.").unwrap_err();
        assert!(e.runs_code && e.message.contains("tries to run code: it calls os.system"), "{e}");
        // A harmless-looking refusal first, then posix.system: still code.
        let e = run(b"\x80\x02cm\nOther\n)\x81cposix\nsystem\nX\x02\x00\x00\x00lsq\x00\x85R.").unwrap_err();
        assert!(e.runs_code && e.message.contains("posix.system"), "{e}");
        let e = run(b"\x80\x02cm\nOther\n)\x81.").unwrap_err();
        assert!(!e.runs_code && e.message == "t.pkl refers to m.Other", "{e}");
        // Calling a class runs its constructor.
        let e = run(b"\x80\x02cm\nC\n)R.").unwrap_err();
        assert!(e.runs_code, "{e}");
        assert_eq!(code_globals(b"\x80\x02K\x01.\x80\x02cos\nsystem\n."), ["os.system"]);
        for name in [
            "builtins.eval",
            "__builtin__.getattr",
            "subprocess.Popen",
            "nt.system",
            "pty.spawn",
            "operator.attrgetter",
        ] {
            assert!(runs_code(name), "{name}");
        }
        for name in ["numpy.dtype", "collections.OrderedDict", "torch.nn.modules.linear.Linear", "__main__.Net"] {
            assert!(!runs_code(name), "{name}");
        }
    }

    #[test]
    fn hostile_programs_are_bounded() {
        // A tuple in a tuple ... a million deep is stopped at the limit.
        let mut deep = b"\x80\x02K\x01".to_vec();
        deep.extend(std::iter::repeat_n(0x85, 1_000_000));
        deep.push(b'.');
        assert!(run(&deep).unwrap_err().message.contains("nests values more than 32 deep"));
        // A list holding a list ... 300,000 deep (each appended to the last) frees without recursion.
        let mut chain = b"\x80\x02]q\x00".to_vec();
        const N: u32 = 300_000;
        for _ in 0..N {
            chain.extend_from_slice(b"]\x94"); // a new list, memoised
        }
        for i in 0..N - 1 {
            chain.push(b'j');
            chain.extend_from_slice(&(i + 1).to_le_bytes());
            chain.push(b'j');
            chain.extend_from_slice(&(i + 2).to_le_bytes());
            chain.extend_from_slice(b"a0");
        }
        chain.extend_from_slice(b"0h\x00.");
        let _ = run(&chain);
        // A list that holds itself.
        assert_eq!(run(b"\x80\x02]q\x00h\x00a.").unwrap(), "list of 1");
        // Too many values.
        let mut many = b"\x80\x02(".to_vec();
        many.extend(std::iter::repeat_n(b'N', MAX_VALUES + 1));
        assert!(run(&many).unwrap_err().message.contains("makes more than"));
        assert!(run(b"\x80\x02X\xff\xff\xff\x7f").unwrap_err().message.contains("ends early"));
        assert!(run(b"").unwrap_err().message.contains("ends early"));
        // Marks count as values: a file of '(' does not grow the mark stack without bound.
        let mut marks = b"\x80\x02".to_vec();
        marks.extend(std::iter::repeat_n(b'(', MAX_VALUES + 1));
        assert!(run(&marks).unwrap_err().message.contains("makes more than"));
        // A huge global name (a memoised string used as module and name) is refused at once.
        let mut long = b"\x80\x04\x8c\x00\x94X".to_vec();
        long.extend_from_slice(&1000u32.to_le_bytes());
        long.extend(std::iter::repeat_n(b'a', 1000));
        long.extend_from_slice(b"\x94h\x01h\x01\x93.");
        let e = run(&long).unwrap_err().message;
        assert!(e.contains("names a global of 2000 bytes"), "{e}");
    }
}
