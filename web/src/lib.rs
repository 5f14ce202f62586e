//! scratchnet in the browser: [wasm-bindgen](https://wasm-bindgen.github.io/wasm-bindgen/) glue
//! over the library's own code paths, nothing computed here: pictures are preprocessed by
//! `data::picture::preprocess_pixels` (what `scratchnet predict` runs after decoding a file),
//! classified by `classify::probabilities`, trained by `train::Trainer` on a `train::preset`, and
//! written by `model_file::to_bytes`. The browser decodes PNG/JPEG itself and hands over RGBA.
//!
//! Every fallible call returns `Result<_, JsError>`: a bad input is a rejected call with a
//! message, never a trap. A panic (a bug) still reaches the console with its message.
//!
//! The GPU: [`WebGpu::open`] opens WebGPU (the same WGSL kernels as `--device gpu`, through
//! wgpu's WebGPU backend); a [`Classifier`] or a [`Training`] moved onto it (`useGpu`) runs its
//! layers there. A browser cannot wait for the GPU, so the calls that read results back return
//! promises (`classifyAsync`, `Training.step`, `Training.modelBytes`): they await the library's
//! async forms (`classify::probabilities_async`, `Trainer::run_epoch_async`,
//! `train::evaluate_async`, `model_file::to_bytes_async`), the same code the CLI runs blocking.

use std::cell::RefCell;
use std::rc::Rc;

use scratchnet::classify;
use scratchnet::data::picture::{self, Pixels, Style};
use scratchnet::data::{Dataset, DatasetKind, idx};
use scratchnet::model::{Sequential, Tta};
use scratchnet::model_file::{self, InputNorm, ModelInfo, TrainingRecord};
use scratchnet::ops::gpu::Gpu;
use scratchnet::tensor::Device;
use scratchnet::train::{self, Progress, Trainer, preset};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// Pictures with more pixels than this are refused before any work (50 megapixels: 200 MB of RGBA
/// in a browser tab already).
pub const MAX_PIXELS: usize = 50_000_000;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

#[wasm_bindgen(start)]
fn start() {
    // build.sh compiles with SIMD128, which the matrix products then use: their kernels are
    // chosen at run time, and gemm assumes SIMD128 only where told (CNN inference in Chromium: 23 -> 9 ms).
    #[cfg(target_feature = "simd128")]
    gemm_common::set_wasm_simd128(true);
    std::panic::set_hook(Box::new(|info| console_error(&format!("scratchnet panicked: {info}"))));
}

fn js(e: scratchnet::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// The largest picture (in pixels) the demo accepts.
#[wasm_bindgen(js_name = maxPixels)]
pub fn max_pixels() -> usize {
    MAX_PIXELS
}

/// A WebGPU device: the browser's adapter with WebGPU's default limits.
#[wasm_bindgen]
pub struct WebGpu {
    gpu: Gpu,
}

#[wasm_bindgen]
impl WebGpu {
    /// Opens WebGPU; rejects with one line (no `navigator.gpu`, no adapter, no device) when it
    /// cannot.
    pub async fn open() -> Result<WebGpu, JsError> {
        Ok(WebGpu { gpu: Gpu::new_async().await.map_err(js)? })
    }

    /// The adapter and the limits asked for, as JSON.
    pub fn describe(&self) -> String {
        serde_json::to_string(self.gpu.summary()).expect("plain data serialises")
    }
}

/// A model file loaded for classifying pictures.
#[wasm_bindgen]
pub struct Classifier {
    /// Taken out while an awaited classification runs (a second one meanwhile is refused).
    model: Rc<RefCell<Option<Sequential>>>,
    info: ModelInfo,
    style: Style,
}

#[wasm_bindgen]
impl Classifier {
    /// Decodes a `.safetensors` model file (`name` appears in error messages).
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8], name: &str) -> Result<Classifier, JsError> {
        let loaded = model_file::from_bytes(bytes, name).map_err(js)?;
        let [c, _, _] = loaded.info.spec.input;
        if c != 1 {
            return Err(JsError::new(&format!(
                "{name}: the model expects {c} channels; the demo reads grayscale pictures"
            )));
        }
        let style = Style::for_dataset(&loaded.info.dataset, false);
        Ok(Classifier { model: Rc::new(RefCell::new(Some(loaded.model))), info: loaded.info, style })
    }

    /// Moves the model onto the GPU: then only [`Classifier::classify_async`] classifies.
    #[wasm_bindgen(js_name = useGpu)]
    pub fn use_gpu(&self, gpu: &WebGpu) -> Result<(), JsError> {
        let mut m = self.model.borrow_mut();
        let model = m.as_mut().ok_or_else(busy)?;
        model.to_device(&Device::Gpu(gpu.gpu.clone())).map_err(js)
    }

    /// Whether the model is on the GPU.
    #[wasm_bindgen(js_name = onGpu)]
    pub fn on_gpu(&self) -> bool {
        self.model.borrow().as_ref().is_some_and(|m| !m.device().is_cpu())
    }

    /// Class names, in output order.
    pub fn classes(&self) -> Vec<String> {
        self.info.classes.clone()
    }

    /// The model's input height and width.
    #[wasm_bindgen(js_name = inputSize)]
    pub fn input_size(&self) -> Vec<usize> {
        vec![self.info.spec.input[1], self.info.spec.input[2]]
    }

    /// What the page shows about the model, as JSON: layers, parameters, dataset, test-time
    /// augmentation, recorded test accuracy.
    pub fn describe(&self) -> String {
        let t = self.info.training.as_ref();
        serde_json::json!({
            "layers": self.info.spec.layers.iter().map(|l| l.describe()).collect::<Vec<_>>().join(", "),
            "parameters": self.info.spec.num_params(),
            "dataset": self.info.dataset,
            "tta": self.info.tta.name(),
            "test_accuracy": t.and_then(|t| t.final_test_accuracy),
            "preset": t.and_then(|t| t.preset.clone()),
            "train_examples": t.map(|t| t.train_examples),
        })
        .to_string()
    }

    /// Preprocesses a `width` x `height` RGBA picture (straight alpha, as `getImageData` gives it)
    /// to the model's input bytes, exactly as `scratchnet predict` does after decoding a file.
    #[wasm_bindgen(js_name = preprocessRgba)]
    pub fn preprocess_rgba(&self, rgba: &[u8], width: usize, height: usize) -> Result<Vec<u8>, JsError> {
        self.preprocess(Pixels::Rgba(rgba), width, height)
    }

    /// [`Classifier::preprocess_rgba`] for one gray byte a pixel.
    #[wasm_bindgen(js_name = preprocessGray)]
    pub fn preprocess_gray(&self, gray: &[u8], width: usize, height: usize) -> Result<Vec<u8>, JsError> {
        self.preprocess(Pixels::Gray(gray), width, height)
    }

    fn preprocess(&self, pixels: Pixels<'_>, width: usize, height: usize) -> Result<Vec<u8>, JsError> {
        check_size(width, height)?;
        let [_, h, w] = self.info.spec.input;
        picture::preprocess_pixels(pixels, width, height, self.style, h, w).map_err(js)
    }

    /// Class probabilities of preprocessed input bytes, with the model file's test-time
    /// augmentation (the built-in CNN averages each picture with its mirror image).
    pub fn classify(&self, input: &[u8]) -> Result<Vec<f32>, JsError> {
        let mut m = self.model.borrow_mut();
        let model = m.as_mut().ok_or_else(busy)?;
        classify::probabilities(model, &self.info, input, self.info.tta).map_err(js)
    }

    /// [`Classifier::classify`] as a promise of a `Float32Array`, which a model on the GPU needs
    /// (its result is read back by awaiting); on the CPU it resolves at once.
    #[wasm_bindgen(js_name = classifyAsync)]
    pub fn classify_async(&self, input: Vec<u8>) -> js_sys::Promise {
        let cell = self.model.clone();
        let info = self.info.clone();
        future_to_promise(async move {
            let mut model = cell.borrow_mut().take().ok_or_else(busy)?;
            let probs = classify::probabilities_async(&mut model, &info, &input, info.tta).await;
            *cell.borrow_mut() = Some(model);
            Ok(js_sys::Float32Array::from(&probs.map_err(js)?[..]).into())
        })
    }

    /// Class indices from the most to the least probable.
    pub fn ranked(probabilities: &[f32]) -> Vec<usize> {
        classify::ranked(probabilities)
    }
}

fn busy() -> JsError {
    JsError::new("the model is busy with another call: await it first")
}

fn check_size(width: usize, height: usize) -> Result<(), JsError> {
    if width == 0 || height == 0 {
        return Err(JsError::new(&format!("the picture is empty ({width}x{height} pixels)")));
    }
    match width.checked_mul(height) {
        Some(n) if n <= MAX_PIXELS => Ok(()),
        _ => Err(JsError::new(&format!(
            "the picture is {width}x{height} pixels; the demo takes up to {} megapixels",
            MAX_PIXELS / 1_000_000
        ))),
    }
}

/// A preset trained in the page (run it in a Web Worker): `step` a few batches at a time and
/// report, then `modelBytes` for a file `scratchnet evaluate --model` reads. On the CPU by default;
/// `useGpu` moves it onto WebGPU. `step` and `modelBytes` return promises: on the GPU they await
/// its read-backs, on the CPU they resolve at once.
#[wasm_bindgen]
pub struct Training {
    /// Taken out while a `step` or `modelBytes` runs (a second call meanwhile is refused).
    state: Rc<RefCell<Option<TrainingState>>>,
}

struct TrainingState {
    trainer: Trainer,
    preset: String,
    dataset: DatasetKind,
    train: Dataset,
    test: Dataset,
    /// Where it trains, for the model file's record.
    machine: String,
}

impl Training {
    fn with<R>(&self, f: impl FnOnce(&mut TrainingState) -> R) -> Result<R, JsError> {
        let mut s = self.state.borrow_mut();
        Ok(f(s.as_mut().ok_or_else(busy)?))
    }
}

#[wasm_bindgen]
impl Training {
    /// `preset` as `scratchnet train --model` takes it; `dataset` (`mnist` or `fashion-mnist`)
    /// names the classes and goes into the model file, where it decides how pictures are
    /// preprocessed; the data as IDX files (gzip or not); the first `limit` training images (0:
    /// all) and `test_limit` test images (0: all); `epochs` replaces the preset's.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        preset_name: &str,
        dataset: &str,
        train_images: &[u8],
        train_labels: &[u8],
        test_images: &[u8],
        test_labels: &[u8],
        limit: usize,
        test_limit: usize,
        epochs: usize,
        seed: u32,
    ) -> Result<Training, JsError> {
        let p = preset(preset_name).ok_or_else(|| JsError::new(&format!("no preset named '{preset_name}'")))?;
        if epochs == 0 {
            return Err(JsError::new("epochs must be at least 1"));
        }
        let kind = DatasetKind::from_name(dataset)
            .ok_or_else(|| JsError::new(&format!("no dataset named '{dataset}' (mnist or fashion-mnist)")))?;
        let load = |images: &[u8], labels: &[u8], what: &str| -> Result<Dataset, JsError> {
            let (px, h, w) = idx::parse_images(images, &format!("{what} images")).map_err(js)?;
            let classes = kind.class_names();
            let labels = idx::parse_labels(labels, &format!("{what} labels"), classes.len()).map_err(js)?;
            Dataset::new(px, labels, h, w, classes).map_err(js)
        };
        let mut train = load(train_images, train_labels, "training")?;
        let mut test = load(test_images, test_labels, "test")?;
        if limit > 0 {
            train = train.take(limit);
        }
        if test_limit > 0 {
            test = test.take(test_limit);
        }
        let [_, h, w] = p.spec.input;
        if (train.height, train.width) != (h, w) || (test.height, test.width) != (h, w) {
            return Err(JsError::new(&format!("preset {preset_name} takes {h}x{w} images")));
        }
        let mut config = p.train;
        config.epochs = epochs;
        config.seed = seed as u64;
        let model = Sequential::new(p.spec, config.seed).map_err(js)?;
        let state = TrainingState {
            trainer: Trainer::new(model, config),
            preset: p.name.to_string(),
            dataset: kind,
            train,
            test,
            machine: "web browser (WebAssembly, one thread)".into(),
        };
        Ok(Training { state: Rc::new(RefCell::new(Some(state))) })
    }

    /// Moves the model and the optimizer onto the GPU (before the first `step`).
    #[wasm_bindgen(js_name = useGpu)]
    pub fn use_gpu(&self, gpu: &WebGpu) -> Result<(), JsError> {
        self.with(|s| {
            s.trainer.to_device(&Device::Gpu(gpu.gpu.clone())).map_err(js)?;
            s.machine = format!("web browser (WebGPU: {})", gpu.gpu.summary().name);
            Ok(())
        })?
    }

    #[wasm_bindgen(js_name = batchesPerEpoch)]
    pub fn batches_per_epoch(&self) -> Result<usize, JsError> {
        self.with(|s| s.trainer.batches_per_epoch(&s.train))
    }

    /// Images per batch (the preset's).
    #[wasm_bindgen(js_name = batchSize)]
    pub fn batch_size(&self) -> Result<usize, JsError> {
        self.with(|s| s.trainer.config.batch_size)
    }

    #[wasm_bindgen(js_name = trainImages)]
    pub fn train_images(&self) -> Result<usize, JsError> {
        self.with(|s| s.train.len())
    }

    /// Epochs finished.
    pub fn epoch(&self) -> Result<usize, JsError> {
        self.with(|s| s.trainer.state.epoch)
    }

    pub fn epochs(&self) -> Result<usize, JsError> {
        self.with(|s| s.trainer.config.epochs)
    }

    /// Trains up to `max_batches` batches (fewer at the end of an epoch); a promise of JSON:
    /// `{"epoch", "batch", "batches", "loss", "accuracy", "finished": {..} | null, "done"}`, where
    /// `finished` is the epoch just completed (the CLI's per-epoch line, with the test set's
    /// accuracy and loss) and `loss`/`accuracy` the running figures of the epoch under way.
    pub fn step(&self, max_batches: usize) -> js_sys::Promise {
        let cell = self.state.clone();
        future_to_promise(async move {
            let mut s = cell.borrow_mut().take().ok_or_else(busy)?;
            let report = s.step(max_batches).await;
            *cell.borrow_mut() = Some(s);
            Ok(JsValue::from_str(&report?))
        })
    }

    /// A promise of the model as a `.safetensors` file (a `Uint8Array`), with its training record
    /// (`date`: when, as the page knows it).
    #[wasm_bindgen(js_name = modelBytes)]
    pub fn model_bytes(&self, date: String) -> js_sys::Promise {
        let cell = self.state.clone();
        future_to_promise(async move {
            let s = cell.borrow_mut().take().ok_or_else(busy)?;
            let bytes = s.model_bytes(&date).await;
            *cell.borrow_mut() = Some(s);
            Ok(js_sys::Uint8Array::from(&bytes?[..]).into())
        })
    }
}

impl TrainingState {
    async fn step(&mut self, max_batches: usize) -> Result<String, JsError> {
        if self.trainer.state.epoch >= self.trainer.config.epochs {
            return Err(JsError::new("training is finished"));
        }
        let mut left = max_batches.max(1);
        let mut last: Option<Progress> = None;
        let finished = self
            .trainer
            .run_epoch_async(&self.train, &mut |p| {
                last = Some(*p);
                left -= 1;
                left > 0
            })
            .await
            .map_err(js)?;
        let finished = match finished {
            Some(mut stats) => {
                let ev = train::evaluate_async(&mut self.trainer.model, &self.test, &train::EvalOptions::default())
                    .await
                    .map_err(js)?;
                stats.test_accuracy = Some(ev.accuracy);
                stats.test_loss = Some(ev.loss);
                self.trainer.state.history.push(stats.clone());
                Some(stats)
            }
            None => None,
        };
        let p = last.ok_or_else(|| JsError::new("no batch ran"))?;
        Ok(serde_json::json!({
            "epoch": self.trainer.state.epoch,
            "batch": p.batch,
            "batches": p.batches,
            "loss": p.loss,
            "accuracy": p.accuracy,
            "finished": finished,
            "done": self.trainer.state.epoch >= self.trainer.config.epochs,
        })
        .to_string())
    }

    async fn model_bytes(&self, date: &str) -> Result<Vec<u8>, JsError> {
        let st = &self.trainer.state;
        let last = st.history.last();
        let record = TrainingRecord {
            preset: Some(self.preset.clone()),
            command: format!(
                "scratchnet web demo: --model {} --epochs {} --limit {} --seed {} (test figures: the demo's {} bundled test images)",
                self.preset,
                self.trainer.config.epochs,
                self.train.len(),
                self.trainer.config.seed,
                self.test.len()
            ),
            config: self.trainer.config.clone(),
            epochs: st.epoch,
            dataset: self.dataset.name().into(),
            train_examples: self.train.len(),
            final_train_accuracy: last.map(|s| s.train_accuracy),
            final_test_accuracy: last.and_then(|s| s.test_accuracy),
            final_validation_accuracy: None,
            wall_seconds: st.history.iter().map(|s| s.seconds).sum(),
            training_seconds: Some(st.history.iter().map(|s| s.seconds).sum()),
            threads: 1,
            machine: self.machine.clone(),
            date: date.into(),
        };
        let info = ModelInfo {
            spec: self.trainer.model.spec().clone(),
            classes: self.train.classes.clone(),
            dataset: self.dataset.name().into(),
            input: InputNorm::default(),
            training: Some(record),
            tta: Tta::None,
        };
        model_file::to_bytes_async(&self.trainer.model, &info, &[], None).await.map_err(js)
    }
}
