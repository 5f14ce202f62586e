// The demo page. Every computation on pictures and networks is scratchnet's Rust code compiled to
// WebAssembly (pkg/scratchnet_web.js); this file decodes pictures (the browser's decoders), draws,
// and moves bytes around. Training runs in worker.js. With WebGPU, the same Rust code runs the
// layers on the GPU (the library's WGSL kernels through wgpu): a classifier of its own per model,
// whose results are awaited (classifyAsync).
import init, { Classifier, WebGpu, maxPixels } from "./pkg/scratchnet_web.js";

const $ = (id) => document.getElementById(id);
// The two datasets the page switches between. Each has its own models, samples, training data,
// pad brush and words; the digits' files are fetched only once the page shows digits, so a first
// load of the clothing page fetches what it did before.
const DATASETS = {
  fashion: {
    name: "fashion-mnist",
    dir: "",
    models: { cnn: "models/fashion-mnist-cnn-best.safetensors", mlp: "models/fashion-mnist-mlp.safetensors" },
    // Clothing fills the frame: a broad brush paints areas quickly.
    brush: 22,
    pad: "Drawing pad: draw a piece of clothing with the mouse, a finger or a pen",
    samplesNote: "Ten of each class from the Fashion-MNIST test set, with their true labels.",
    trainData: "Fashion-MNIST training images",
    download: "scratchnet-web-mlp.safetensors",
  },
  mnist: {
    name: "mnist",
    dir: "mnist/",
    models: { cnn: "models/mnist-cnn.safetensors", mlp: "models/mnist-mlp.safetensors" },
    // A digit is fitted into 20x20 pixels, so a stroke there is the brush over the digit's height
    // times 20: MNIST's are 2-3 pixels, a 14 on digits 90-140 pad pixels tall. Thinner is safer:
    // a broad brush blots small digits, and thin strokes on large ones still read well.
    brush: 14,
    pad: "Drawing pad: draw a digit from 0 to 9 with the mouse, a finger or a pen",
    samplesNote: "Ten of each digit from the MNIST test set, with their true labels.",
    trainData: "MNIST training images (handwritten digits)",
    download: "scratchnet-web-mnist-mlp.safetensors",
  },
};
// Per dataset: its classifiers (cnn, mlp, and trained once one is), samples, and the model
// trained here (classifier, download link, note).
// `bytes`: each model file, for its GPU classifier (`gpuClassifiers`), made when first used there.
const loaded = { fashion: { classifiers: {}, gpuClassifiers: {}, bytes: {} }, mnist: { classifiers: {}, gpuClassifiers: {}, bytes: {} } };
// WebGPU: { gpu, adapter } once opened, or { reason } why not (one line); `wanted`: the box ticked.
const webgpu = { gpu: null, adapter: null, reason: null, wanted: false, opening: null };
const query = new URLSearchParams(location.search);
const hash = new URLSearchParams(location.hash.slice(1));
// #digits, #...&dataset=mnist or ?dataset=mnist open the page on digits.
let mode = hash.has("digits") || /^(mnist|digits)$/.test(hash.get("dataset") || query.get("dataset") || "") ? "mnist" : "fashion";
let current = "cnn";
let shown = null; // the dataset whose pad, samples and words the page shows
let training = false;
let clearCurve = null;
let lastInput = null; // { rgba, width, height, what, label } of the picture shown
let firstPredictionMs = null;
// For tests and the curious: timings and the last results.
window.scratchnet = { timings: {}, ready: false };

function showMessage(text, kind = "error") {
  const m = $("message");
  m.textContent = text;
  m.className = kind === "error" ? "message" : "message info";
  m.hidden = !text;
}

function errorText(e) {
  return e instanceof Error ? e.message : String(e);
}

// ---- pictures: the browser decodes, Rust preprocesses ----

// Width and height from a PNG, GIF, BMP or JPEG header, to refuse a huge picture before decoding
// it (decoding 20,000 x 20,000 pixels would take gigabytes); null if the header says nothing.
function headerSize(b) {
  const be32 = (i) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    return [be32(16), be32(20)];
  }
  if (b.length >= 10 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) {
    return [b[6] | (b[7] << 8), b[8] | (b[9] << 8)];
  }
  if (b.length >= 26 && b[0] === 0x42 && b[1] === 0x4d) {
    const le32 = (i) => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
    return [le32(18), Math.abs(le32(22) | 0)];
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) { i++; continue; }
      const marker = b[i + 1];
      const len = (b[i + 2] << 8) | b[i + 3];
      const sof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
      if (sof) return [(b[i + 7] << 8) | b[i + 8], (b[i + 5] << 8) | b[i + 6]];
      if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) { i += 2; continue; }
      i += 2 + len;
    }
  }
  return null;
}

function checkSize(w, h, name) {
  if (w * h > maxPixels()) {
    throw new Error(`${name} is ${w}x${h} pixels; the demo takes pictures up to ${maxPixels() / 1e6} megapixels.`);
  }
}

// A picture file's bytes to straight-alpha RGBA, as `scratchnet predict` decodes a file to RGBA.
async function decode(blob, name) {
  if (blob.size === 0) throw new Error(`${name} is empty (0 bytes).`);
  const head = new Uint8Array(await blob.slice(0, 65536).arrayBuffer());
  const size = headerSize(head);
  if (size) checkSize(size[0], size[1], name);
  let bmp;
  try {
    bmp = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new Error(`${name} is not a picture this browser can read (PNG or JPEG expected).`);
  }
  try {
    checkSize(bmp.width, bmp.height, name);
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = c.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0);
    const rgba = ctx.getImageData(0, 0, bmp.width, bmp.height, { colorSpace: "srgb" }).data;
    return { rgba: new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.length), width: bmp.width, height: bmp.height };
  } finally {
    bmp.close();
  }
}

// Whether classifying (and training) runs on the GPU now.
const onGpu = () => webgpu.wanted && webgpu.gpu !== null;

// The model's classifier on the device in use: on the GPU, a copy of its own, made once.
function classifier(model) {
  const l = loaded[mode];
  if (!onGpu()) return l.classifiers[model];
  if (!l.gpuClassifiers[model]) {
    const clf = new Classifier(l.bytes[model], `${model} (GPU)`);
    clf.useGpu(webgpu.gpu);
    l.gpuClassifiers[model] = clf;
  }
  return l.gpuClassifiers[model];
}

// Preprocesses and classifies with the chosen model; returns what the page and the self-test show.
async function classify(pic, model = current) {
  const clf = classifier(model);
  const t0 = performance.now();
  const input = clf.preprocessRgba(pic.rgba, pic.width, pic.height);
  const t1 = performance.now();
  const probs = clf.onGpu() ? await clf.classifyAsync(input) : clf.classify(input);
  const t2 = performance.now();
  return { input, probs, preprocessMs: t1 - t0, inferMs: t2 - t1, classes: clf.classes(), gpu: clf.onGpu() };
}

function show(pic, r) {
  const seen = $("seen").getContext("2d");
  const img = seen.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = r.input[i];
    img.data.set([v, v, v, 255], 4 * i);
  }
  seen.putImageData(img, 0, 0);
  const order = Classifier.ranked(r.probs);
  const bars = $("bars");
  bars.replaceChildren();
  for (const i of order.slice(0, 3)) {
    const li = document.createElement("li");
    const pct = (100 * r.probs[i]).toFixed(1);
    li.innerHTML = `<div class="label"><span></span><span>${pct}%</span></div>
      <div class="track" role="presentation"><div class="fill" style="width:${pct}%"></div></div>`;
    li.querySelector("span").textContent = r.classes[i];
    li.setAttribute("aria-label", `${r.classes[i]}: ${pct} percent`);
    bars.append(li);
  }
  let src = pic.what;
  if (pic.label !== undefined) {
    const ok = order[0] === pic.label ? "correct" : "wrong";
    src += ` (true class: ${r.classes[pic.label]}; ${ok})`;
  }
  $("source").textContent = `${src}, ${current === "trained" ? "model trained here" : current.toUpperCase()}:`;
  const where = r.gpu ? `on the GPU through WebGPU, ${webgpu.adapter.name || "the browser's adapter"}` : "in WebAssembly, one thread";
  $("timing").textContent =
    `Preprocessing ${r.preprocessMs.toFixed(1)} ms, inference ${r.inferMs.toFixed(1)} ms (${where}).`;
}

// One prediction at a time (a GPU one is awaited): the latest picture asked for meanwhile runs next.
let predicting = null, nextPic = null;
function predict(pic) {
  lastInput = pic;
  if (predicting) {
    nextPic = pic;
    return predicting;
  }
  predicting = (async () => {
    for (let p = pic; p; p = nextPic, nextPic = null) await predictNow(p);
    predicting = null;
  })();
  return predicting;
}

async function predictNow(pic) {
  try {
    const r = await classify(pic);
    show(pic, r);
    window.scratchnet.last = { what: pic.what, probabilities: Array.from(r.probs), inferMs: r.inferMs, device: r.gpu ? "webgpu" : "cpu" };
    if (firstPredictionMs === null) {
      firstPredictionMs = performance.now();
      window.scratchnet.timings.firstPredictionMs = firstPredictionMs;
      $("load-time").textContent = `First prediction ${Math.round(firstPredictionMs)} ms after the page started loading.`;
    }
    showMessage("");
  } catch (e) {
    showMessage(errorText(e));
  }
}

// ---- the drawing pad ----

let clearPad = null;

function setUpPad() {
  const pad = $("pad");
  const ctx = pad.getContext("2d", { willReadFrequently: true });
  let drawing = false, drew = false, last = null, pending = false;
  const clear = () => {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    drew = false;
  };
  clear();
  clearPad = clear;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
  };
  const classifyPad = () => {
    pending = false;
    const d = ctx.getImageData(0, 0, pad.width, pad.height).data;
    predict({ rgba: new Uint8Array(d.buffer), width: pad.width, height: pad.height, what: "Your drawing" });
  };
  const stroke = (p) => {
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    ctx.lineWidth = Number($("brush").value);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    if (last) {
      ctx.moveTo(last[0], last[1]);
      ctx.lineTo(p[0], p[1]);
      ctx.stroke();
    } else {
      ctx.arc(p[0], p[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
    }
    last = p;
    drew = true;
    if (!pending) {
      pending = true;
      requestAnimationFrame(classifyPad);
    }
  };
  pad.addEventListener("pointerdown", (e) => {
    drawing = true;
    last = null;
    pad.setPointerCapture(e.pointerId);
    stroke(at(e));
    e.preventDefault();
  });
  pad.addEventListener("pointermove", (e) => {
    if (drawing) stroke(at(e));
  });
  const end = () => {
    if (drawing && drew) classifyPad();
    drawing = false;
    last = null;
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => {
    clear();
    $("source").textContent = "Drawing cleared: draw, choose a file or pick a test image.";
    $("bars").replaceChildren();
    $("timing").textContent = "";
  });
}

// ---- files ----

async function takeFile(file) {
  try {
    const pic = await decode(file, file.name || "the file");
    predict({ ...pic, what: file.name || "Your picture" });
  } catch (e) {
    showMessage(errorText(e));
  }
}

function setUpFiles() {
  $("file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    if (f) takeFile(f);
    e.target.value = "";
  });
  const drop = $("drop");
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) takeFile(f);
    else showMessage("Drop a picture file (PNG or JPEG).");
  });
  // A file dropped beside the box should not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

// ---- samples ----

const sampleCache = new Map();

async function samplePicture(s, dir = DATASETS[mode].dir) {
  const url = `${dir}samples/${s.file}`;
  if (!sampleCache.has(url)) {
    const blob = await (await fetch(url)).blob();
    sampleCache.set(url, await decode(blob, s.file));
  }
  return { ...sampleCache.get(url), what: `Test image ${s.file}`, label: s.label };
}

// The sample grid of the dataset shown.
function setUpSamples() {
  const grid = $("samples");
  const dir = DATASETS[mode].dir;
  grid.replaceChildren();
  for (const s of loaded[mode].samples) {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("role", "listitem");
    b.setAttribute("aria-pressed", "false");
    b.title = `${s.class} (test image ${s.test_index})`;
    const img = document.createElement("img");
    img.src = `${dir}samples/${s.file}`;
    img.alt = `${s.class}, test image ${s.test_index}`;
    img.width = 28;
    img.height = 28;
    b.append(img);
    b.addEventListener("click", async () => {
      for (const o of grid.children) o.setAttribute("aria-pressed", "false");
      b.setAttribute("aria-pressed", "true");
      try {
        await predict(await samplePicture(s));
      } catch (e) {
        showMessage(errorText(e));
      }
    });
    grid.append(b);
  }
}

// ---- models and datasets ----

const fetches = new Map();
function fetchOnce(url, as) {
  if (!fetches.has(url)) {
    const f = fetch(url).then((r) => {
      if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
      return as === "json" ? r.json() : r.arrayBuffer();
    });
    fetches.set(url, f);
    // A failed fetch is tried again next time.
    f.catch(() => fetches.delete(url));
  }
  return fetches.get(url);
}

// Starts a dataset's fetches: its samples list and both models, in parallel.
function fetchDataset(key) {
  const ds = DATASETS[key];
  fetchOnce(`${ds.dir}samples/samples.json`, "json");
  for (const url of Object.values(ds.models)) fetchOnce(url);
}
// The first dataset's fetches start at once, in parallel with compiling the WebAssembly.
fetchDataset(mode);

async function loadModel(key, name) {
  const url = DATASETS[key].models[name];
  const bytes = new Uint8Array(await fetchOnce(url));
  const t0 = performance.now();
  loaded[key].bytes[name] = bytes;
  loaded[key].classifiers[name] = new Classifier(bytes, url.split("/").pop());
  window.scratchnet.timings[`${key === "mnist" ? "mnist_" : ""}${name}LoadMs`] = performance.now() - t0;
}

// Loads a dataset's samples list and models once; the CNN first, as the first prediction waits
// for it alone. Resolves when the CNN is ready; `mlp` is the MLP's promise.
function loadDataset(key) {
  const l = loaded[key];
  if (!l.ready) {
    fetchDataset(key);
    l.ready = (async () => {
      l.samples = await fetchOnce(`${DATASETS[key].dir}samples/samples.json`, "json");
      await loadModel(key, "cnn");
      l.mlp = loadModel(key, "mlp");
      // A failed load is tried again next time.
      l.mlp.catch(() => (l.ready = null));
    })();
    l.ready.catch(() => (l.ready = null));
  }
  return l.ready;
}

function describeModel() {
  const d = JSON.parse(loaded[mode].classifiers[current].describe());
  const tta = d.tta === "hflip" ? "; averages each picture with its mirror image" : "";
  $("model-info").textContent = `${d.layers} (${d.parameters.toLocaleString("en")} parameters${tta}).`;
}

// The model choices of the dataset shown: notes, the radio and download of a model trained here.
function showModels() {
  const l = loaded[mode];
  for (const name of ["cnn", "mlp"]) {
    const d = l.classifiers[name] ? JSON.parse(l.classifiers[name].describe()) : {};
    $(`${name}-note`).textContent = d.test_accuracy ? `(${(100 * d.test_accuracy).toFixed(2)}% on the test set)` : "";
  }
  $("trained-note").textContent = l.trained ? l.trained.note : "(train one below)";
  document.querySelector("input[value=trained]").disabled = !l.trained;
  const a = $("download");
  a.hidden = !l.trained;
  if (l.trained) {
    a.href = l.trained.url;
    a.download = l.trained.download;
  }
  if (!l.classifiers[current]) current = "cnn";
  document.querySelector(`input[name=model][value=${current}]`).checked = true;
  describeModel();
}

function setUpModelSwitch() {
  for (const r of document.querySelectorAll("input[name=model]")) {
    r.addEventListener("change", () => {
      current = r.value;
      describeModel();
      if (lastInput) predict(lastInput);
    });
  }
}

// Shows the dataset `key`: its words, pad brush, samples and models; its first test image
// classified. The pad is cleared: a drawing of the other dataset means nothing here.
async function showDataset(key) {
  const ds = DATASETS[key];
  await loadDataset(key);
  const l = loaded[key];
  // The model chosen stays chosen where this dataset has one.
  if (current === "mlp") await l.mlp;
  if (shown) DATASETS[shown].brush = Number($("brush").value);
  mode = shown = key;
  document.querySelector(`input[name=dataset][value=${key}]`).checked = true;
  $("brush").value = String(ds.brush);
  $("pad").setAttribute("aria-label", ds.pad);
  $("samples-note").textContent = ds.samplesNote;
  $("train-data").textContent = ds.trainData;
  clearPad();
  // The curve shown is of the other dataset's training.
  if (clearCurve) clearCurve();
  showModels();
  await predict(await samplePicture(l.samples[0]));
  setUpSamples();
  $("samples").children[0].setAttribute("aria-pressed", "true");
  // The MLP is a choice once it is loaded.
  await l.mlp;
  showModels();
}

function setUpDatasetSwitch() {
  const radios = document.querySelectorAll("input[name=dataset]");
  for (const r of radios) {
    r.addEventListener("change", async () => {
      if (r.value === mode) return;
      const t0 = performance.now();
      for (const o of radios) o.disabled = true;
      $("source").textContent = `Loading the ${r.value === "mnist" ? "digit" : "clothing"} models\u2026`;
      try {
        await showDataset(r.value);
        window.scratchnet.timings.switchMs = performance.now() - t0;
        // A reload or a shared link opens the page on the same dataset.
        const u = new URL(location.href);
        u.searchParams.delete("dataset");
        u.hash = mode === "mnist" ? "digits" : "";
        history.replaceState(null, "", u.href.replace(/#$/, ""));
      } catch (e) {
        document.querySelector(`input[name=dataset][value=${mode}]`).checked = true;
        showMessage(`Could not load the ${r.value === "mnist" ? "digit" : "clothing"} models: ${errorText(e)}`);
      } finally {
        for (const o of radios) o.disabled = training;
      }
    });
  }
}

// ---- live training (worker.js) ----

function setUpTraining() {
  const worker = new Worker("worker.js", { type: "module" });
  const points = []; // { x: epochs done (fractional), loss, acc, test? }
  window.scratchnet.curve = points;
  let batches = 1, epochs = 1;
  const curve = $("curve");
  const status = $("train-status");
  // The dataset stays while a model trains: the model belongs to it.
  const setRunning = (on) => {
    training = on;
    $("train").disabled = on;
    $("stop").disabled = !on;
    for (const id of ["preset", "images", "epochs"]) $(id).disabled = on;
    for (const r of document.querySelectorAll("input[name=dataset]")) r.disabled = on;
  };
  const draw = () => {
    const ctx = curve.getContext("2d");
    const W = curve.width, H = curve.height, L = 44, R = 44, T = 14, B = 28;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, W, H);
    const maxLoss = Math.max(0.5, ...points.map((p) => p.loss));
    const x = (v) => L + ((W - L - R) * v) / epochs;
    const yl = (v) => T + (H - T - B) * (1 - v / maxLoss);
    const ya = (v) => T + (H - T - B) * (1 - v);
    ctx.strokeStyle = "#ddd";
    ctx.fillStyle = "#555";
    ctx.font = "12px system-ui, sans-serif";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = T + ((H - T - B) * i) / 4;
      ctx.beginPath();
      ctx.moveTo(L, y);
      ctx.lineTo(W - R, y);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText((maxLoss * (1 - i / 4)).toFixed(2), L - 4, y + 4);
      ctx.textAlign = "left";
      ctx.fillText(`${100 - 25 * i}%`, W - R + 4, y + 4);
    }
    ctx.textAlign = "center";
    for (let e = 0; e <= epochs; e += Math.max(1, Math.ceil(epochs / 10))) ctx.fillText(String(e), x(e), H - 10);
    const line = (get, y, color, pts) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo(x(p.x), y(get(p))) : ctx.moveTo(x(p.x), y(get(p)))));
      ctx.stroke();
    };
    line((p) => p.loss, yl, "#c0392b", points);
    line((p) => p.acc, ya, "#2a7fd4", points);
    const tests = points.filter((p) => p.test !== undefined);
    line((p) => p.test, ya, "#27ae60", tests);
    for (const p of tests) {
      ctx.fillStyle = "#27ae60";
      ctx.fillRect(x(p.x) - 3, ya(p.test) - 3, 6, 6);
    }
    ctx.textAlign = "left";
    [["loss (left)", "#c0392b"], ["train accuracy", "#2a7fd4"], ["test accuracy", "#27ae60"]].forEach(([t, c], i) => {
      ctx.fillStyle = c;
      ctx.fillText(t, L + 8 + 130 * i, T + 12);
    });
  };
  draw();
  clearCurve = () => {
    points.length = 0;
    draw();
    status.textContent = "Not started.";
  };
  let started = 0;
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === "started") {
      batches = m.batches;
      window.scratchnet.trainingDevice = m.device;
      const where = m.device === "webgpu" ? "on the GPU (WebGPU)" : "on the CPU";
      const why = m.reason ? ` (no WebGPU in the worker: ${m.reason})` : "";
      status.textContent = `Training ${where}${why} on ${m.images} images, ${m.batches} batches of ${m.batchSize} an epoch\u2026`;
    } else if (m.type === "progress") {
      const r = m.report;
      const xv = r.finished ? r.epoch : r.epoch + r.batch / r.batches;
      const f = r.finished;
      points.push({ x: xv, loss: f ? f.train_loss : r.loss, acc: f ? f.train_accuracy : r.accuracy, test: f ? f.test_accuracy : undefined });
      if (f) {
        window.scratchnet.timings.epochSeconds = window.scratchnet.timings.epochSeconds || [];
        window.scratchnet.timings.epochSeconds.push(f.seconds);
        window.scratchnet.lastEpoch = f;
        status.textContent = `Epoch ${f.epoch} of ${epochs}: loss ${f.train_loss.toFixed(3)}, train accuracy ` +
          `${(100 * f.train_accuracy).toFixed(1)}%, test accuracy ${(100 * f.test_accuracy).toFixed(1)}% ` +
          `(${f.seconds.toFixed(2)} s training pass, ${Math.round(f.images_per_second)} images/s).`;
      }
      draw();
    } else if (m.type === "model") {
      setRunning(false);
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      const l = loaded[m.key];
      let clf;
      try {
        clf = new Classifier(m.bytes, "the model trained here");
      } catch (err) {
        showMessage(errorText(err));
        return;
      }
      if (l.trained) {
        l.classifiers.trained.free();
        if (l.gpuClassifiers.trained) l.gpuClassifiers.trained.free();
        delete l.gpuClassifiers.trained;
        URL.revokeObjectURL(l.trained.url);
      }
      l.classifiers.trained = clf;
      l.bytes.trained = m.bytes;
      const net = m.preset.startsWith("cnn") ? "cnn" : "mlp";
      l.trained = {
        url: URL.createObjectURL(new Blob([m.bytes], { type: "application/octet-stream" })),
        note: m.testAccuracy === null ? "" : `(${(100 * m.testAccuracy).toFixed(1)}% on the bundled test images)`,
        download: `scratchnet-web-${m.key === "mnist" ? "mnist-" : ""}${net}.safetensors`,
      };
      status.textContent += ` ${m.stopped ? "Stopped" : "Done"} after ${secs} s; now classifying with it.`;
      current = "trained";
      showModels();
      if (lastInput) predict(lastInput);
      window.scratchnet.trainingDone = true;
    } else if (m.type === "error") {
      setRunning(false);
      showMessage(`Training: ${m.message}`);
      status.textContent = "Training failed.";
    }
  };
  worker.onerror = (e) => {
    setRunning(false);
    showMessage(`Training worker: ${e.message}`);
  };
  $("train-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const images = Math.round(Number($("images").value));
    epochs = Math.round(Number($("epochs").value));
    if (!(images >= 64 && images <= 5000) || !(epochs >= 1 && epochs <= 100)) {
      showMessage("Images must be 64 to 5,000 and epochs 1 to 100.");
      return;
    }
    showMessage("");
    points.length = 0;
    draw();
    setRunning(true);
    window.scratchnet.trainingDone = false;
    window.scratchnet.timings.epochSeconds = [];
    started = performance.now();
    status.textContent = "Starting\u2026";
    const ds = DATASETS[mode];
    const preset = $("preset").value;
    // The CNN trains on the GPU only; the MLP where the page classifies.
    const gpu = webgpu.gpu !== null && (preset.startsWith("cnn") || onGpu());
    if (preset.startsWith("cnn") && !gpu) {
      setRunning(false);
      showMessage(`The CNN trains on the GPU only: ${webgpu.reason || "WebGPU is not ready yet"}.`);
      return;
    }
    // The CNN's batches are larger and slower: a report every two keeps the curve and the stop
    // button lively.
    // window.scratchnet.testImages (tests): evaluate on the first N bundled test images only.
    worker.postMessage({ type: "start", key: mode, dataset: ds.name, dir: ds.dir, preset, images, epochs, seed: 0,
      testImages: window.scratchnet.testImages || 0,
      device: gpu ? "gpu" : "cpu", batchesPerReport: preset.startsWith("cnn") ? 2 : 8 });
  });
  $("stop").addEventListener("click", () => worker.postMessage({ type: "stop" }));
}

// ---- WebGPU: detected once; the box moves classifying (and MLP training) onto the GPU ----

// Opens WebGPU once; afterwards webgpu.gpu or webgpu.reason (one line) is set.
function openGpu() {
  webgpu.opening ??= (async () => {
    try {
      if (!navigator.gpu) throw new Error("this browser offers no WebGPU (no navigator.gpu)");
      const gpu = await WebGpu.open();
      webgpu.adapter = JSON.parse(gpu.describe());
      webgpu.gpu = gpu;
    } catch (e) {
      webgpu.reason = errorText(e);
    }
    const box = $("use-gpu");
    box.disabled = webgpu.gpu === null;
    document.querySelector("#preset option[value=cnn-fast]").disabled = webgpu.gpu === null;
    const a = webgpu.adapter;
    $("gpu-note").textContent = a
      ? `WebGPU: ${a.name || "the browser's adapter"}${a.emulated || /swiftshader/i.test(a.name + a.driver) ? " (a CPU emulation: right results, slow)" : ""}.`
      : `On the CPU: ${webgpu.reason}`;
    window.scratchnet.webgpu = webgpu.gpu ? { adapter: a } : { reason: webgpu.reason };
  })();
  return webgpu.opening;
}

// Runs on the GPU (on) or the CPU; the GPU when it cannot be opened falls back with its reason.
async function setDevice(on) {
  await openGpu();
  webgpu.wanted = on && webgpu.gpu !== null;
  $("use-gpu").checked = webgpu.wanted;
  if (lastInput) await predict(lastInput);
}

function setUpGpu() {
  $("use-gpu").addEventListener("change", (e) => setDevice(e.target.checked));
  // Not awaited: the first prediction is already shown, on the CPU.
  openGpu();
}

// ---- self-test: #selftest classifies every sample and writes a JSON summary ----

async function selfTest(model, device) {
  let gpuInfo = {};
  if (device === "gpu") {
    await setDevice(true);
    gpuInfo = onGpu() ? { device: "webgpu", adapter: webgpu.adapter } : { device: "cpu", reason: webgpu.reason };
  }
  const predictions = [];
  let agree = 0;
  const times = [];
  // &n=N: the first N samples only (the GPU test on a software adapter, which is slow).
  const samples = loaded[mode].samples.slice(0, Number(hash.get("n")) || undefined);
  for (const s of samples) {
    const pic = await samplePicture(s);
    const r = await classify(pic, model);
    times.push(r.inferMs);
    const order = Classifier.ranked(r.probs);
    if (order[0] === s.label) agree++;
    predictions.push({
      file: s.file,
      label: s.label,
      predicted: order[0],
      class: r.classes[order[0]],
      probabilities: Array.from(r.probs),
      infer_ms: r.inferMs,
    });
  }
  const sorted = [...times].sort((a, b) => a - b);
  const out = $("selftest");
  out.textContent = JSON.stringify({
    samples: samples.length,
    agree_with_labels: agree,
    dataset: DATASETS[mode].name,
    model,
    ...gpuInfo,
    infer_ms_median: sorted[Math.floor(sorted.length / 2)],
    infer_ms_max: sorted[sorted.length - 1],
    first_prediction_ms: firstPredictionMs,
    predictions,
  });
  out.hidden = false;
  out.dataset.done = "true";
}

async function main() {
  try {
    const t = window.scratchnet.timings;
    await init();
    t.wasmReadyMs = performance.now();
    // The first prediction waits for the CNN alone; the MLP and the training worker come after.
    await loadDataset(mode);
    t.modelsReadyMs = performance.now();
    setUpPad();
    setUpFiles();
    // Something to look at straight away: the first test image (the thumbnails load after it).
    await showDataset(mode);
    setUpModelSwitch();
    setUpDatasetSwitch();
    setUpTraining();
    setUpGpu();
    window.scratchnet.ready = true;
    if (hash.has("selftest")) await selfTest(hash.get("model") || "cnn", hash.get("device"));
  } catch (e) {
    showMessage(`The demo could not start: ${errorText(e)}`);
    const out = $("selftest");
    out.textContent = JSON.stringify({ error: errorText(e) });
    out.dataset.done = "true";
  }
}

main();
