//! `scratchnet._native`: the Python package's native module (PyO3, NumPy). It holds a model and
//! its training run ([`Trainer`], the model file's [`ModelInfo`], the CLI's [`RunSettings`]) and
//! runs training, evaluation and prediction with the GIL released; the pure-Python layer
//! (`python/scratchnet/`) checks arrays and arguments and gives the API its shape.
//!
//! Long work runs on a scoped thread while the calling thread waits with the GIL released, waking
//! every [`POLL`] to run Python's signal handlers (Ctrl-C raises `KeyboardInterrupt` there) and to
//! report progress; an interrupted fit stops at the next batch boundary, so the model is always
//! as of a finished batch. Nothing Python is touched per batch.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use numpy::ndarray::{Array1, Array2, Array3, ArrayD, ArrayViewD, Axis, IxDyn};
use numpy::{PyArray, PyReadonlyArray1, PyReadonlyArrayDyn};
use pyo3::exceptions::{
    PyFileNotFoundError, PyFloatingPointError, PyKeyError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use scratchnet::checkpoint::{self, DataIdentity, RunSettings};
use scratchnet::data::{Dataset, DatasetKind};
use scratchnet::model::{ModelSpec, Sequential, Tta};
use scratchnet::model_file::{self, InputNorm, ModelInfo, TrainingRecord};
use scratchnet::tensor::{Device, Tensor};
use scratchnet::train::{EVAL_BATCH, EpochStats, EvalOptions, Evaluation, TrainConfig, Trainer, evaluate};

/// How often the waiting thread runs signal handlers and reports progress.
const POLL: Duration = Duration::from_millis(100);
/// Images per evaluation call inside `fit` and `evaluate`: a Ctrl-C waits for at most one.
const EVAL_CHUNK: usize = 2048;

// ---------------------------------------------------------------------------------------------
// Errors

fn to_py(e: scratchnet::Error) -> PyErr {
    use scratchnet::Error as E;
    let msg = e.to_string();
    match e {
        E::Io(_) => PyOSError::new_err(msg),
        E::Diverged { .. } => PyFloatingPointError::new_err(msg),
        E::Gpu(_) => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

fn value_err(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

fn json_err(e: serde_json::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

// ---------------------------------------------------------------------------------------------
// Threads, devices, interruptible work

/// Thread pools by size, made once (a rayon pool's threads live as long as it does).
static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

/// The pool of `threads` threads, or None for rayon's global pool (all cores).
fn pool(threads: Option<usize>) -> PyResult<Option<Arc<rayon::ThreadPool>>> {
    let Some(t) = threads else { return Ok(None) };
    if t == 0 {
        return Err(value_err("threads must be at least 1"));
    }
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == t) {
        return Ok(Some(p.clone()));
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .thread_name(|i| format!("scratchnet-{i}"))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("starting {t} threads: {e}")))?,
    );
    pools.push((t, p.clone()));
    Ok(Some(p))
}

fn in_pool<R: Send>(pool: &Option<Arc<rayon::ThreadPool>>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

fn threads_of(pool: &Option<Arc<rayon::ThreadPool>>) -> usize {
    match pool {
        Some(p) => p.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

/// `device=`: cpu, gpu (an error without one) or auto (a real GPU if there is one).
fn pick_device(name: &str) -> PyResult<Device> {
    use scratchnet::ops::gpu::Gpu;
    match name {
        "cpu" => Ok(Device::Cpu),
        "gpu" => Ok(Device::Gpu(Gpu::new().map_err(to_py)?)),
        "auto" => Ok(match Gpu::new() {
            Ok(g) if !g.summary().emulated => Device::Gpu(g),
            _ => Device::Cpu,
        }),
        other => Err(value_err(format!("device must be 'cpu', 'gpu' or 'auto', not {other:?}"))),
    }
}

/// What the worker reports to the waiting thread: the phase (0: training, 1: evaluating), batches
/// or images done of a total, and the running loss and accuracy.
#[derive(Clone, Copy, Default, PartialEq)]
struct Tick {
    phase: u8,
    done: usize,
    total: usize,
    loss: f64,
    accuracy: f64,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    tick: Mutex<Option<Tick>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn report(&self, t: Tick) {
        *self.tick.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }
}

/// Runs `work` on a new thread with the GIL released. The calling thread wakes every [`POLL`] to
/// run Python's signal handlers and the `progress` callback; an exception from either sets the
/// stop flag (which `work` checks between batches) and is returned beside `work`'s result.
fn run_detached<R: Send>(
    py: Python<'_>,
    shared: &Shared,
    progress: Option<&Py<PyAny>>,
    work: impl FnOnce() -> R + Send,
) -> PyResult<(R, Option<PyErr>)> {
    let (result, pending) = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel::<()>();
            let handle = s.spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(work));
                let _ = tx.send(());
                r
            });
            let mut pending: Option<PyErr> = None;
            let mut shown: Option<Tick> = None;
            loop {
                let finished = !matches!(rx.recv_timeout(POLL), Err(mpsc::RecvTimeoutError::Timeout));
                let tick = *shared.tick.lock().unwrap_or_else(|p| p.into_inner());
                Python::attach(|py| {
                    if pending.is_none()
                        && let Err(e) = py.check_signals()
                    {
                        pending = Some(e);
                    }
                    if pending.is_none()
                        && let (Some(cb), Some(t)) = (progress, tick)
                        && shown != Some(t)
                    {
                        shown = Some(t);
                        if let Err(e) = cb.call1(py, (t.phase, t.done, t.total, t.loss, t.accuracy)) {
                            pending = Some(e);
                        }
                    }
                });
                if pending.is_some() {
                    shared.stop.store(true, Ordering::SeqCst);
                }
                if finished {
                    break;
                }
            }
            (handle.join(), pending)
        })
    });
    match result {
        Ok(Ok(r)) => Ok((r, pending)),
        Ok(Err(panic)) | Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!("scratchnet failed internally (a bug; please report it): {what}")))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arrays

/// A uint8 array's pixels in C order (the Python layer has checked its shape): borrowed when the
/// array is C-contiguous, else gathered in its logical order.
fn pixels_vec(x: &ArrayViewD<'_, u8>) -> Vec<u8> {
    match x.as_slice() {
        Some(s) => s.to_vec(),
        None => x.iter().copied().collect(),
    }
}

fn dataset(x: &ArrayViewD<'_, u8>, y: &[u8], spec: &ModelSpec, classes: &[String]) -> PyResult<Dataset> {
    let [_, h, w] = spec.input;
    Dataset::new(pixels_vec(x), y.to_vec(), h, w, classes.to_vec()).map_err(to_py)
}

fn labels_slice<'a>(y: &'a PyReadonlyArray1<'_, u8>) -> PyResult<std::borrow::Cow<'a, [u8]>> {
    Ok(match y.as_slice() {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(y.as_array().iter().copied().collect()),
    })
}

/// Splits a dataset into chunks of [`EVAL_CHUNK`] images (copies: evaluation sets are small).
fn chunks(d: &Dataset) -> Vec<Dataset> {
    let per = d.pixels_per_image();
    d.labels
        .chunks(EVAL_CHUNK)
        .zip(d.images.chunks(EVAL_CHUNK * per))
        .map(|(l, i)| Dataset {
            images: i.to_vec(),
            labels: l.to_vec(),
            height: d.height,
            width: d.width,
            classes: d.classes.clone(),
        })
        .collect()
}

/// [`evaluate`] over chunks, checking the stop flag between them: None when stopped. Accuracy and
/// confusion are exactly those of one call; the loss is the same mean up to f64 rounding.
fn evaluate_chunked(
    model: &mut Sequential,
    parts: &[Dataset],
    options: &EvalOptions,
    shared: &Shared,
) -> scratchnet::Result<Option<Evaluation>> {
    let total: usize = parts.iter().map(|d| d.len()).sum();
    let k = model.num_classes();
    let mut confusion = vec![vec![0u64; k]; k];
    let (mut loss_sum, mut done) = (0.0, 0);
    for part in parts {
        if shared.stopped() {
            return Ok(None);
        }
        let ev = evaluate(model, part, options)?;
        loss_sum += ev.loss * part.len() as f64;
        for (row, r) in confusion.iter_mut().zip(&ev.confusion) {
            for (c, v) in row.iter_mut().zip(r) {
                *c += v;
            }
        }
        done += part.len();
        let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
        shared.report(Tick {
            phase: 1,
            done,
            total,
            loss: loss_sum / done as f64,
            accuracy: correct as f64 / done as f64,
        });
    }
    let n = total.max(1) as f64;
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let per_class =
        confusion.iter().enumerate().map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>().max(1) as f64).collect();
    Ok(Some(Evaluation { accuracy: correct as f64 / n, loss: loss_sum / n, per_class, confusion }))
}

fn tta_arg(name: Option<&str>, default: Tta) -> PyResult<Tta> {
    match name {
        None => Ok(default),
        Some(n) => Tta::from_name(n)
            .ok_or_else(|| value_err(format!("tta must be one of {}, not {n:?}", Tta::NAMES.join(", ")))),
    }
}

// ---------------------------------------------------------------------------------------------
// The model

struct Inner {
    trainer: Trainer,
    info: ModelInfo,
    run: RunSettings,
    /// Wall seconds of the training the loaded file records (added to this session's).
    prior_seconds: f64,
    /// The training data of an epoch that was interrupted, to refuse finishing it on other data.
    epoch_data: Option<DataIdentity>,
    /// Checkpoint files written this far hold a record of the call that wrote them.
    command: String,
}

impl Inner {
    fn new(trainer: Trainer, info: ModelInfo, run: RunSettings) -> Self {
        let prior_seconds = info.training.as_ref().map_or(0.0, |r| r.wall_seconds);
        Inner { trainer, info, run, prior_seconds, epoch_data: None, command: String::new() }
    }

    fn kind(&self) -> DatasetKind {
        DatasetKind::from_name(&self.info.dataset).unwrap_or(DatasetKind::FashionMnist)
    }

    fn record(&self, started: Instant, train_examples: usize, threads: usize) -> TrainingRecord {
        let last = self.trainer.state.history.last();
        TrainingRecord {
            preset: self.run.preset.clone(),
            command: self.command.clone(),
            config: self.trainer.config.clone(),
            epochs: self.trainer.state.epoch,
            dataset: self.info.dataset.clone(),
            train_examples,
            final_train_accuracy: last.map(|s| s.train_accuracy),
            final_test_accuracy: last.and_then(|s| s.test_accuracy),
            final_validation_accuracy: last.and_then(|s| s.validation_accuracy),
            wall_seconds: self.prior_seconds + started.elapsed().as_secs_f64(),
            training_seconds: Some(self.trainer.state.history.iter().map(|s| s.seconds).sum()),
            threads,
            machine: scratchnet::provenance::machine(),
            date: scratchnet::provenance::now_utc(),
        }
    }

    fn checkpoint_bytes(&self) -> PyResult<Vec<u8>> {
        checkpoint::to_bytes_with_run(&self.trainer, &self.info, &self.run).map_err(to_py)
    }

    fn from_loaded(loaded: model_file::Loaded, source: &str) -> PyResult<Self> {
        if loaded.checkpoint.is_some() {
            let c = checkpoint::decode(loaded, source).map_err(to_py)?;
            let run = c.run.unwrap_or_else(|| RunSettings {
                name: c.info.training.as_ref().and_then(|r| r.preset.clone()).unwrap_or_else(|| "model".into()),
                preset: c.info.training.as_ref().and_then(|r| r.preset.clone()),
                dataset: c.info.dataset.clone(),
                ..Default::default()
            });
            let mut inner = Inner::new(c.trainer, c.info, run);
            // A checkpoint taken inside an epoch finishes it on the data it recorded (the whole
            // training set: a CLI run's --limit trained on part of it, which arrays cannot tell).
            if inner.trainer.state.batch > 0 && inner.run.limit.is_none() {
                inner.epoch_data = inner.run.data.clone();
            }
            return Ok(inner);
        }
        let model_file::Loaded { model, info, .. } = loaded;
        let config =
            info.training.as_ref().map(|r| r.config.clone()).unwrap_or_else(scratchnet::train::recipe::spec_default);
        let preset = info.training.as_ref().and_then(|r| r.preset.clone());
        let run = RunSettings {
            name: preset.clone().unwrap_or_else(|| "model".into()),
            preset,
            dataset: info.dataset.clone(),
            ..Default::default()
        };
        Ok(Inner::new(Trainer::new(model, config), info, run))
    }
}

/// A network and its training run: weights, recipe, optimizer state, history. The Python class
/// `scratchnet.Model` wraps this one.
#[pyclass(module = "scratchnet._native", name = "Model")]
struct Model {
    inner: Mutex<Inner>,
}

impl Model {
    fn wrap(inner: Inner) -> Self {
        Model { inner: Mutex::new(inner) }
    }

    /// The model, or an error while another thread's call (fit, predict) holds it: waiting would
    /// hold the GIL that call needs to report progress.
    fn lock(&self) -> PyResult<MutexGuard<'_, Inner>> {
        match self.inner.try_lock() {
            Ok(g) => Ok(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "the model is busy: another thread is running fit, evaluate or predict on it",
            )),
        }
    }
}

/// The recipe `base` with the keys of `overrides` (a JSON object, as `TrainConfig` serialises)
/// replaced.
fn merge_config(base: TrainConfig, overrides: Option<&str>) -> PyResult<TrainConfig> {
    let Some(text) = overrides else { return Ok(base) };
    let mut value = serde_json::to_value(&base).map_err(json_err)?;
    let over: serde_json::Value = serde_json::from_str(text).map_err(json_err)?;
    let (Some(obj), Some(over)) = (value.as_object_mut(), over.as_object()) else {
        return Err(value_err("config must be a dict"));
    };
    for (k, v) in over {
        if !obj.contains_key(k) && !["label_smoothing", "validation", "augment", "decay_norm"].contains(&k.as_str()) {
            return Err(value_err(format!(
                "config has no setting {k:?}; the recipe's settings are {}",
                obj.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        obj.insert(k.clone(), v.clone());
    }
    serde_json::from_value(value).map_err(|e| value_err(format!("config: {e}")))
}

fn info_for(spec: ModelSpec, dataset: &str, classes: Option<Vec<String>>) -> PyResult<ModelInfo> {
    let k = spec.num_classes().map_err(to_py)?;
    let kind = DatasetKind::from_name(dataset);
    let classes = match classes {
        Some(c) if c.len() != k => {
            return Err(value_err(format!("classes: {} names for a network with {k} outputs", c.len())));
        }
        Some(c) => c,
        None => match kind {
            Some(kind) if kind.class_names().len() == k => kind.class_names(),
            _ => (0..k).map(|i| i.to_string()).collect(),
        },
    };
    Ok(ModelInfo {
        spec,
        classes,
        dataset: kind.map_or_else(|| dataset.to_string(), |k| k.name().to_string()),
        input: InputNorm::default(),
        training: None,
        tta: Tta::None,
    })
}

#[pymethods]
impl Model {
    /// A preset network with its recipe; dataset "mnist" turns its left-right flips off, as the CLI does.
    #[staticmethod]
    #[pyo3(signature = (name, seed, dataset, config=None))]
    fn preset(name: &str, seed: u64, dataset: &str, config: Option<&str>) -> PyResult<Self> {
        let p = scratchnet::train::preset(name).ok_or_else(|| {
            value_err(format!(
                "unknown preset {name:?}; the presets are {}",
                scratchnet::train::PRESET_NAMES.join(", ")
            ))
        })?;
        let mut train = p.train;
        train.seed = seed;
        if dataset == "mnist" {
            train.augment.hflip = false;
        }
        let train = merge_config(train, config)?;
        let info = info_for(p.spec.clone(), dataset, None)?;
        let model = Sequential::new(p.spec, train.seed).map_err(to_py)?;
        let run = RunSettings {
            name: p.name.to_string(),
            preset: Some(p.name.to_string()),
            dataset: info.dataset.clone(),
            ..Default::default()
        };
        Ok(Model::wrap(Inner::new(Trainer::new(model, train), info, run)))
    }

    /// A network from a spec (JSON text, the CLI's spec.json format) with the default recipe.
    #[staticmethod]
    #[pyo3(signature = (spec, seed, dataset, classes=None, config=None))]
    fn from_spec(
        spec: &str,
        seed: u64,
        dataset: &str,
        classes: Option<Vec<String>>,
        config: Option<&str>,
    ) -> PyResult<Self> {
        let spec = ModelSpec::from_json(spec).map_err(to_py)?;
        let mut train = scratchnet::train::recipe::spec_default();
        train.seed = seed;
        let train = merge_config(train, config)?;
        let info = info_for(spec.clone(), dataset, classes)?;
        let model = Sequential::new(spec, train.seed).map_err(to_py)?;
        let run = RunSettings { name: "model".into(), dataset: info.dataset.clone(), ..Default::default() };
        Ok(Model::wrap(Inner::new(Trainer::new(model, train), info, run)))
    }

    /// A model file or a checkpoint (which continues its run exactly).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        if !path.exists() {
            return Err(PyFileNotFoundError::new_err(format!("{}: no such file", path.display())));
        }
        let loaded = model_file::load(&path).map_err(to_py)?;
        Ok(Model::wrap(Inner::from_loaded(loaded, &path.display().to_string())?))
    }

    /// A model file's bytes.
    #[staticmethod]
    #[pyo3(signature = (data, source="<bytes>"))]
    fn from_bytes(data: &[u8], source: &str) -> PyResult<Self> {
        let loaded = model_file::from_bytes(data, source).map_err(to_py)?;
        Ok(Model::wrap(Inner::from_loaded(loaded, source)?))
    }

    /// The built-in model for "fashion-mnist" or "mnist".
    #[staticmethod]
    fn builtin(dataset: &str) -> PyResult<Self> {
        let kind = DatasetKind::from_name(dataset)
            .ok_or_else(|| value_err(format!("dataset must be 'fashion-mnist' or 'mnist', not {dataset:?}")))?;
        let loaded = scratchnet::builtin::load(Some(kind)).map_err(to_py)?;
        Ok(Model::wrap(Inner::from_loaded(loaded, scratchnet::builtin::builtin(Some(kind)).name)?))
    }

    /// Everything but the weights, as JSON: spec, classes, dataset, input, tta, training record,
    /// recipe, where the run stands, its history, its name and preset, the device.
    fn info(&self) -> PyResult<String> {
        let g = self.lock()?;
        let v = serde_json::json!({
            "spec": g.info.spec,
            "classes": g.info.classes,
            "dataset": g.info.dataset,
            "input": g.info.input,
            "tta": g.info.tta.name(),
            "training": g.info.training,
            "config": g.trainer.config,
            "epoch": g.trainer.state.epoch,
            "batch": g.trainer.state.batch,
            "history": g.trainer.state.history,
            "name": g.run.name,
            "preset": g.run.preset,
            "device": g.trainer.model.device().name(),
            "num_params": g.info.spec.num_params(),
        });
        Ok(v.to_string())
    }

    fn set_tta(&self, name: &str) -> PyResult<()> {
        let mut g = self.lock()?;
        g.info.tta = tta_arg(Some(name), Tta::None)?;
        Ok(())
    }

    /// Moves the model (and its optimizer state) to a device.
    fn to_device(&self, device: &str) -> PyResult<()> {
        let mut g = self.lock()?;
        if device == g.trainer.model.device().name() {
            return Ok(());
        }
        let d = pick_device(device)?;
        g.trainer.to_device(&d).map_err(to_py)
    }

    /// Trains until the run has done `epochs` epochs (None: the recipe's); returns the JSON list of
    /// the epochs finished by this call. See the Python `Model.fit`.
    #[pyo3(signature = (x, y, epochs, batch_size, threads, device, validation, test, progress, on_epoch, checkpoint, checkpoint_every, command))]
    #[allow(clippy::too_many_arguments)]
    fn fit(
        &self,
        py: Python<'_>,
        x: PyReadonlyArrayDyn<'_, u8>,
        y: PyReadonlyArray1<'_, u8>,
        epochs: Option<usize>,
        batch_size: Option<usize>,
        threads: Option<usize>,
        device: Option<&str>,
        validation: Option<(PyReadonlyArrayDyn<'_, u8>, PyReadonlyArray1<'_, u8>)>,
        test: Option<(PyReadonlyArrayDyn<'_, u8>, PyReadonlyArray1<'_, u8>)>,
        progress: Option<Py<PyAny>>,
        on_epoch: Option<Py<PyAny>>,
        checkpoint: Option<PathBuf>,
        checkpoint_every: Option<usize>,
        command: String,
    ) -> PyResult<String> {
        let started = Instant::now();
        let mut g = self.lock()?;
        let pool = pool(threads)?;
        let g = &mut *g;
        g.command = command;
        if let Some(e) = epochs {
            if e < g.trainer.state.epoch || (e == g.trainer.state.epoch && g.trainer.state.batch > 0) {
                return Err(value_err(format!(
                    "epochs={e}: the run has already trained {} epochs{} (epochs is the run's total, as Keras' and \
                     the CLI's --epochs)",
                    g.trainer.state.epoch,
                    if g.trainer.state.batch > 0 {
                        format!(" and {} batches of the next", g.trainer.state.batch)
                    } else {
                        String::new()
                    }
                )));
            }
            g.trainer.config.epochs = e;
        }
        if let Some(b) = batch_size
            && b != g.trainer.config.batch_size
        {
            if b == 0 {
                return Err(value_err("batch_size must be at least 1"));
            }
            if g.trainer.state.batch > 0 {
                return Err(value_err(format!(
                    "batch_size={b}: the run stopped inside an epoch trained with batch_size={}; finish that epoch \
                     with it",
                    g.trainer.config.batch_size
                )));
            }
            g.trainer.config.batch_size = b;
        }
        // A model already on the device named stays on it (a new GPU context would copy it over).
        if let Some(d) = device
            && d != g.trainer.model.device().name()
        {
            let d = pick_device(d)?;
            g.trainer.to_device(&d).map_err(to_py)?;
        }
        let spec = g.info.spec.clone();
        let classes = g.info.classes.clone();
        let (xv, yv) = (x.as_array(), labels_slice(&y)?);
        let train_all = py.detach(|| dataset(&xv, &yv, &spec, &classes))?;
        // The whole set's identity, as the CLI records it (before a validation split).
        let kind = g.kind();
        let identity = py.detach(|| DataIdentity::of(kind, &train_all));
        if g.trainer.state.batch > 0
            && let Some(was) = &g.epoch_data
            && *was != identity
        {
            return Err(value_err(format!(
                "x, y: the interrupted epoch ran on {was}, these are {identity}; finish it on the same data (or start a \
                 new model)"
            )));
        }
        let mut validation_set = None;
        let mut train = train_all;
        let held_out = g.trainer.config.validation;
        if held_out > 0 {
            if validation.is_some() {
                return Err(value_err(format!(
                    "validation_data: the recipe already holds out {held_out} training images for validation \
                     (config validation); pass one or the other"
                )));
            }
            if held_out >= train.len() {
                return Err(value_err(format!(
                    "the recipe holds out {held_out} images for validation but x has {}",
                    train.len()
                )));
            }
            let (rest, val) = train.split_validation(held_out, g.trainer.config.seed);
            train = rest;
            validation_set = Some(val);
        }
        if let Some((vx, vy)) = &validation {
            let (vxa, vya) = (vx.as_array(), labels_slice(vy)?);
            validation_set = Some(dataset(&vxa, &vya, &spec, &classes)?);
        }
        let test_set = match &test {
            Some((tx, ty)) => {
                let (txa, tya) = (tx.as_array(), labels_slice(ty)?);
                Some(dataset(&txa, &tya, &spec, &classes)?)
            }
            None => None,
        };
        let has_batch_norm = spec.layers.iter().any(|l| !l.buffer_shapes().is_empty());
        let bs = g.trainer.config.batch_size;
        if has_batch_norm && (bs == 1 || train.len() % bs == 1) {
            return Err(value_err(format!(
                "batch norm needs at least 2 images in every training batch; with {} training images and \
                 batch_size={bs} {}: choose another batch_size",
                train.len(),
                if bs == 1 { "every batch has 1" } else { "the last batch has 1" }
            )));
        }
        g.run.data = Some(identity.clone());
        g.run.checkpoint_every = checkpoint_every;
        let val_parts = validation_set.as_ref().map(chunks);
        let test_parts = test_set.as_ref().map(chunks);
        let options = EvalOptions { tta: g.info.tta, input: g.info.input.clone(), ..EvalOptions::default() };
        let threads_used = threads_of(&pool);
        let mut finished: Vec<EpochStats> = Vec::new();

        let write_checkpoint = |g: &Inner| -> PyResult<()> {
            if let Some(p) = &checkpoint {
                let bytes = g.checkpoint_bytes()?;
                model_file::write_atomic(p, &bytes).map_err(to_py)?;
            }
            Ok(())
        };

        while g.trainer.state.epoch < g.trainer.config.epochs {
            let shared = Shared::default();
            let trainer = &mut g.trainer;
            let (outcome, pending) = run_detached(py, &shared, progress.as_ref(), || {
                in_pool(&pool, || -> scratchnet::Result<Option<EpochStats>> {
                    let Some(mut stats) = trainer.run_epoch_with(&train, &mut |p| {
                        shared.report(Tick {
                            phase: 0,
                            done: p.batch,
                            total: p.batches,
                            loss: p.loss,
                            accuracy: p.accuracy,
                        });
                        !shared.stopped()
                    })?
                    else {
                        return Ok(None);
                    };
                    if let Some(parts) = &test_parts
                        && let Some(ev) = evaluate_chunked(&mut trainer.model, parts, &options, &shared)?
                    {
                        stats.test_accuracy = Some(ev.accuracy);
                        stats.test_loss = Some(ev.loss);
                    }
                    if let Some(parts) = &val_parts
                        && let Some(ev) = evaluate_chunked(&mut trainer.model, parts, &options, &shared)?
                    {
                        stats.validation_accuracy = Some(ev.accuracy);
                        stats.validation_loss = Some(ev.loss);
                    }
                    Ok(Some(stats))
                })
            })?;
            let stats = match outcome {
                Err(e) => return Err(to_py(e)),
                Ok(None) => {
                    // Stopped between two batches: the model is as of the last one.
                    g.epoch_data = Some(identity.clone());
                    g.info.training = Some(g.record(started, train.len(), threads_used));
                    write_checkpoint(g)?;
                    return Err(pending.unwrap_or_else(|| PyRuntimeError::new_err("training stopped")));
                }
                Ok(Some(stats)) => stats,
            };
            g.epoch_data = None;
            g.trainer.state.history.push(stats.clone());
            g.info.training = Some(g.record(started, train.len(), threads_used));
            finished.push(stats.clone());
            let every = checkpoint_every.unwrap_or(1).max(1);
            if pending.is_some() || g.trainer.state.epoch % every == 0 {
                write_checkpoint(g)?;
            }
            if let Some(e) = pending {
                return Err(e);
            }
            if let Some(cb) = &on_epoch {
                let go_on = cb.call1(py, (to_json(&stats),))?;
                let go_on = go_on.bind(py);
                if go_on.is_instance_of::<pyo3::types::PyBool>() && !go_on.extract::<bool>()? {
                    break;
                }
            }
        }
        Ok(to_json(&finished))
    }

    /// Class probabilities (N, classes) of uint8 pixels (N, ...) in C order of the model's input.
    #[pyo3(signature = (x, tta=None, batch_size=None, threads=None))]
    fn predict_proba_u8<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, u8>,
        tta: Option<&str>,
        batch_size: Option<usize>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray<f32, numpy::Ix2>>> {
        let view = x.as_array();
        self.predict_impl(py, Pixels::U8(view), tta, batch_size, threads)
    }

    /// Class probabilities of float32 pixels: pixel = x·factor on the 0-255 scale.
    #[pyo3(signature = (x, factor, tta=None, batch_size=None, threads=None))]
    fn predict_proba_f32<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, f32>,
        factor: f32,
        tta: Option<&str>,
        batch_size: Option<usize>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray<f32, numpy::Ix2>>> {
        let view = x.as_array();
        self.predict_impl(py, Pixels::F32(view, factor), tta, batch_size, threads)
    }

    /// Accuracy, mean loss, per-class accuracy and confusion counts on uint8 pixels and labels.
    #[pyo3(signature = (x, y, tta=None, batch_size=None, threads=None, progress=None))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn evaluate_u8<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArrayDyn<'py, u8>,
        y: PyReadonlyArray1<'py, u8>,
        tta: Option<&str>,
        batch_size: Option<usize>,
        threads: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(f64, f64, Vec<f64>, Bound<'py, PyArray<u64, numpy::Ix2>>)> {
        let mut g = self.lock()?;
        let g = &mut *g;
        let pool = pool(threads)?;
        let (xv, yv) = (x.as_array(), labels_slice(&y)?);
        let (spec, classes) = (g.info.spec.clone(), g.info.classes.clone());
        let data = py.detach(|| dataset(&xv, &yv, &spec, &classes))?;
        let parts = chunks(&data);
        let options = EvalOptions {
            batch_size: batch_size.unwrap_or(EVAL_BATCH).max(1),
            tta: tta_arg(tta, g.info.tta)?,
            input: g.info.input.clone(),
        };
        let shared = Shared::default();
        let model = &mut g.trainer.model;
        let (result, pending) = run_detached(py, &shared, progress.as_ref(), || {
            in_pool(&pool, || evaluate_chunked(model, &parts, &options, &shared))
        })?;
        if let Some(e) = pending {
            return Err(e);
        }
        let ev = result.map_err(to_py)?.ok_or_else(|| PyRuntimeError::new_err("evaluation stopped"))?;
        let k = ev.confusion.len();
        let flat: Vec<u64> = ev.confusion.iter().flatten().copied().collect();
        let confusion = PyArray::from_owned_array(py, Array2::from_shape_vec((k, k), flat).expect("k x k"));
        Ok((ev.accuracy, ev.loss, ev.per_class, confusion))
    }

    /// The model file's bytes (safetensors).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let g = self.lock()?;
        let bytes = model_file::to_bytes(&g.trainer.model, &g.info, &[], None).map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Writes the model file (atomically: a temporary file renamed into place).
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let g = self.lock()?;
        let bytes = model_file::to_bytes(&g.trainer.model, &g.info, &[], None).map_err(to_py)?;
        model_file::write_atomic(&path, &bytes).map_err(to_py)
    }

    /// Writes a checkpoint: the model file plus optimizer state and where the run stands.
    fn save_checkpoint(&self, path: PathBuf) -> PyResult<()> {
        let g = self.lock()?;
        model_file::write_atomic(&path, &g.checkpoint_bytes()?).map_err(to_py)
    }

    #[pyo3(signature = (path, softmax=false, tta=None))]
    fn export_onnx(&self, path: PathBuf, softmax: bool, tta: Option<&str>) -> PyResult<()> {
        let g = self.lock()?;
        let tta = tta_arg(tta, Tta::None)?;
        if tta != Tta::None && !softmax {
            return Err(value_err("tta='hflip' averages probabilities: it needs softmax=True"));
        }
        let opts = scratchnet::onnx::ExportOptions { softmax, tta };
        let bytes = scratchnet::onnx::to_bytes(&g.trainer.model, &g.info, &opts).map_err(to_py)?;
        model_file::write_atomic(Path::new(&path), &bytes).map_err(to_py)
    }

    /// (name, array) of every tensor a model file holds, in PyTorch's state_dict order: float32
    /// parameters and buffers, batch norms' step counters as 0-dimensional int64.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        let g = self.lock()?;
        let mut out = Vec::new();
        for (name, t) in g.trainer.model.named_state() {
            let shape = t.shape().to_vec();
            let values = t.to_vec().map_err(to_py)?;
            let array = if model_file::is_counter(&name) {
                let v: Vec<i64> = values.iter().map(|&v| v as i64).collect();
                PyArray::from_owned_array(py, ArrayD::from_shape_vec(IxDyn(&shape), v).expect("shape")).into_any()
            } else {
                PyArray::from_owned_array(py, ArrayD::from_shape_vec(IxDyn(&shape), values).expect("shape")).into_any()
            };
            out.push((name, array));
        }
        Ok(out)
    }

    /// Replaces every parameter and buffer from float32 arrays by state_dict name.
    fn load_state_dict(&self, entries: Vec<(String, PyReadonlyArrayDyn<'_, f32>)>) -> PyResult<()> {
        let mut g = self.lock()?;
        let expected = g.info.spec.state_shapes();
        let mut values = Vec::with_capacity(expected.len());
        for (name, shape) in &expected {
            let Some((_, a)) = entries.iter().find(|(n, _)| n == name) else {
                return Err(PyKeyError::new_err(format!("state_dict: no entry {name:?} (shape {shape:?})")));
            };
            let a = a.as_array();
            if a.shape() != shape.as_slice() {
                return Err(value_err(format!("state_dict[{name:?}]: shape {:?}, expected {shape:?}", a.shape())));
            }
            let v: Vec<f32> = a.iter().copied().collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(value_err(format!("state_dict[{name:?}] holds NaN or infinite values")));
            }
            values.push(Tensor::from_vec(shape, v).map_err(to_py)?);
        }
        if let Some((n, _)) = entries.iter().find(|(n, _)| !expected.iter().any(|(e, _)| e == n)) {
            return Err(value_err(format!("state_dict: unexpected entry {n:?}")));
        }
        let device = g.trainer.model.device().clone();
        g.trainer.to_device(&Device::Cpu).map_err(to_py)?;
        g.trainer.model.set_state(values).map_err(to_py)?;
        g.trainer.to_device(&device).map_err(to_py)
    }
}

enum Pixels<'a> {
    U8(ArrayViewD<'a, u8>),
    F32(ArrayViewD<'a, f32>, f32),
}

impl Pixels<'_> {
    fn len(&self) -> usize {
        self.shape().first().copied().unwrap_or(0)
    }

    fn shape(&self) -> &[usize] {
        match self {
            Pixels::U8(a) => a.shape(),
            Pixels::F32(a, _) => a.shape(),
        }
    }

    /// Writes images start..start + dst.len() / per into `dst` as pixel·scale + offset, the
    /// arithmetic of `Dataset::fill_batch_normalised`.
    fn fill(&self, start: usize, per: usize, input: &InputNorm, dst: &mut [f32]) {
        let (scale, offset) = (input.scale, input.offset);
        let n = dst.len() / per;
        match self {
            Pixels::U8(a) => match a.as_slice() {
                Some(s) => {
                    for (d, &p) in dst.iter_mut().zip(&s[start * per..(start + n) * per]) {
                        *d = p as f32 * scale + offset;
                    }
                }
                None => {
                    for (i, img) in dst.chunks_mut(per).enumerate() {
                        for (d, &p) in img.iter_mut().zip(a.index_axis(Axis(0), start + i).iter()) {
                            *d = p as f32 * scale + offset;
                        }
                    }
                }
            },
            Pixels::F32(a, factor) => {
                for (i, img) in dst.chunks_mut(per).enumerate() {
                    for (d, &p) in img.iter_mut().zip(a.index_axis(Axis(0), start + i).iter()) {
                        *d = (p * factor) * scale + offset;
                    }
                }
            }
        }
    }
}

impl Model {
    fn predict_impl<'py>(
        &self,
        py: Python<'py>,
        x: Pixels<'_>,
        tta: Option<&str>,
        batch_size: Option<usize>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray<f32, numpy::Ix2>>> {
        let mut g = self.lock()?;
        let g = &mut *g;
        let pool = pool(threads)?;
        let tta = tta_arg(tta, g.info.tta)?;
        let bs = batch_size.unwrap_or(EVAL_BATCH).max(1);
        let n = x.len();
        let [c, h, w] = g.info.spec.input;
        let per = c * h * w;
        // The Python layer checks shapes; this keeps a direct call from reading past the array.
        if x.shape().len() < 2 || x.shape()[1..].iter().product::<usize>() != per {
            return Err(value_err(format!("x: shape {:?}; expected (N, ...) with {per} values per image", x.shape())));
        }
        let k = g.info.classes.len();
        let input = g.info.input.clone();
        let model = &mut g.trainer.model;
        let shared = Shared::default();
        let (result, pending) = run_detached(py, &shared, None, || {
            in_pool(&pool, || {
                let macs = model.spec().forward_macs() * bs;
                let device = model.device().clone();
                scratchnet::ops::run_batches(&device, macs, || -> scratchnet::Result<Option<Vec<f32>>> {
                    let mut out = Vec::with_capacity(n * k);
                    for start in (0..n).step_by(bs) {
                        if shared.stopped() {
                            return Ok(None);
                        }
                        let m = bs.min(n - start);
                        x.fill(start, per, &input, model.input_mut(m).data_mut());
                        out.extend_from_slice(&model.infer(tta)?.to_vec()?);
                    }
                    Ok(Some(out))
                })
            })
        })?;
        if let Some(e) = pending {
            return Err(e);
        }
        let probs = result.map_err(to_py)?.ok_or_else(|| PyRuntimeError::new_err("prediction stopped"))?;
        Ok(PyArray::from_owned_array(py, Array2::from_shape_vec((n, k), probs).expect("n x k")))
    }
}

/// One split of a dataset found as the CLI finds it: (images uint8 (N, H, W), labels uint8 (N,),
/// class names, dataset kind, where it was found).
#[pyfunction]
#[pyo3(signature = (name, split, data_dir=None))]
#[allow(clippy::type_complexity)]
fn load_dataset<'py>(
    py: Python<'py>,
    name: &str,
    split: &str,
    data_dir: Option<PathBuf>,
) -> PyResult<(Bound<'py, PyArray<u8, numpy::Ix3>>, Bound<'py, PyArray<u8, numpy::Ix1>>, Vec<String>, String, String)> {
    if split != "train" && split != "test" {
        return Err(value_err(format!("split must be 'train' or 'test', not {split:?}")));
    }
    // Only the split asked for is read (the CLI's `load` reads both), found by the same rules.
    let (d, origin, kind) = py
        .detach(|| -> scratchnet::Result<(Dataset, String, DatasetKind)> {
            use scratchnet::data::discover;
            let (dir, layout, kind) = discover::locate(name, data_dir.as_deref())?;
            let files = if split == "train" { &layout.train } else { &layout.test };
            let loaded = files.as_ref().map(|f| discover::load_split(f, kind)).transpose()?;
            let (train, test) = if split == "train" { (loaded, None) } else { (None, loaded) };
            let splits = scratchnet::data::Splits {
                kind,
                origin: dir.display().to_string(),
                train,
                test,
                train_source: None,
                test_source: None,
            };
            let origin = match files {
                Some(discover::SplitFiles::Idx { images, .. }) => images.display().to_string(),
                Some(discover::SplitFiles::Csv(path)) => path.display().to_string(),
                None => splits.origin.clone(),
            };
            // The library's message when the split is missing; then the split itself, not a copy.
            if split == "train" {
                splits.train()?;
            } else {
                splits.test()?;
            }
            let d = if split == "train" { splits.train } else { splits.test };
            Ok((d.expect("checked above"), origin, kind))
        })
        .map_err(to_py)?;
    let kind = kind.name().to_string();
    let (n, h, w) = (d.len(), d.height, d.width);
    let classes = d.classes.clone();
    let images = Array3::from_shape_vec((n, h, w), d.images).expect("n x h x w");
    let labels = Array1::from_vec(d.labels);
    Ok((PyArray::from_owned_array(py, images), PyArray::from_owned_array(py, labels), classes, kind, origin))
}

/// Pixel levels of float32 pixels: (x·factor rounded to uint8, the same shape; count of NaN or
/// infinite values; min and max of x·factor over the finite ones; count of values more than 1e-3
/// from a level). One pass, so checking a training set costs no NumPy temporaries.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn quantize<'py>(
    py: Python<'py>,
    x: PyReadonlyArrayDyn<'py, f32>,
    factor: f32,
) -> PyResult<(Bound<'py, PyArray<u8, IxDyn>>, usize, f32, f32, usize)> {
    let view = x.as_array();
    let shape = view.shape().to_vec();
    let (levels, bad, lo, hi, off) = py.detach(|| {
        let mut levels = Vec::with_capacity(view.len());
        let (mut bad, mut lo, mut hi, mut off) = (0usize, f32::INFINITY, f32::NEG_INFINITY, 0usize);
        for &v in view.iter() {
            let p = v * factor;
            if !p.is_finite() {
                bad += 1;
                levels.push(0);
                continue;
            }
            lo = lo.min(p);
            hi = hi.max(p);
            let r = p.round();
            if (p - r).abs() > 1e-3 {
                off += 1;
            }
            levels.push(r.clamp(0.0, 255.0) as u8);
        }
        (levels, bad, lo, hi, off)
    });
    let levels = ArrayD::from_shape_vec(IxDyn(&shape), levels).expect("same shape");
    Ok((PyArray::from_owned_array(py, levels), bad, lo, hi, off))
}

/// The class names of "fashion-mnist" or "mnist", in label order.
#[pyfunction]
fn dataset_classes(name: &str) -> PyResult<Vec<String>> {
    DatasetKind::from_name(name)
        .map(|k| k.class_names())
        .ok_or_else(|| value_err(format!("dataset must be 'fashion-mnist' or 'mnist', not {name:?}")))
}

/// (name, summary) of every preset.
#[pyfunction]
fn presets() -> Vec<(String, String)> {
    scratchnet::train::PRESET_NAMES
        .iter()
        .filter_map(|n| scratchnet::train::preset(n))
        .map(|p| (p.name.to_string(), p.summary.to_string()))
        .collect()
}

/// The recipe of a preset (or of a spec network, for None) as JSON.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn recipe(name: Option<&str>) -> PyResult<String> {
    match name {
        None => Ok(to_json(&scratchnet::train::recipe::spec_default())),
        Some(n) => scratchnet::train::preset(n)
            .map(|p| to_json(&p.train))
            .ok_or_else(|| value_err(format!("unknown preset {n:?}"))),
    }
}

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(load_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(presets, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_classes, m)?)?;
    m.add_function(wrap_pyfunction!(recipe, m)?)?;
    m.add("EVAL_BATCH", EVAL_BATCH)?;
    Ok(())
}
