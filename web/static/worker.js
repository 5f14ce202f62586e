// Live training in a Web Worker, so the page stays responsive: scratchnet's Trainer (compiled to
// WebAssembly) runs a few batches at a time and reports after each, then hands over the model file.
// On the CPU, or on WebGPU (a device of the worker's own) when the page asks for the GPU; if the
// worker cannot open WebGPU, it says why in one line and trains on the CPU.
import init, { Training, WebGpu } from "./pkg/scratchnet_web.js";

// Under each dataset's folder ("" for Fashion-MNIST, "mnist/"), fetched when it first trains.
const DATA = {
  trainImages: "data/train-5000-images-idx3-ubyte.gz",
  trainLabels: "data/train-5000-labels-idx1-ubyte.gz",
  testImages: "data/test-1000-images-idx3-ubyte.gz",
  testLabels: "data/test-1000-labels-idx1-ubyte.gz",
};
// Batches per report: about ten curve points an epoch of 5,000 images at batch 64 (the page
// sends fewer for the CNN's larger, slower batches).
const BATCHES_PER_REPORT = 8;
let gpu = null; // the worker's WebGPU device, opened once

let ready = null;
const data = new Map(); // dir -> promise of { trainImages, ... }
let stop = false;
let running = false;

async function load(dir) {
  const entries = await Promise.all(
    Object.entries(DATA).map(async ([k, file]) => {
      const url = dir + file;
      const r = await fetch(url);
      if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
      return [k, new Uint8Array(await r.arrayBuffer())];
    }),
  );
  return Object.fromEntries(entries);
}

async function train(m) {
  ready ??= init();
  if (!data.has(m.dir)) data.set(m.dir, load(m.dir).catch((e) => { data.delete(m.dir); throw e; }));
  await ready;
  const d = await data.get(m.dir);
  const t = new Training(m.preset, m.dataset, d.trainImages, d.trainLabels, d.testImages, d.testLabels, m.images, m.testImages || 0, m.epochs, m.seed);
  try {
    let device = "cpu", reason = null;
    if (m.device === "gpu") {
      try {
        if (!navigator.gpu) throw new Error("this browser offers no WebGPU to workers");
        gpu ??= await WebGpu.open();
        t.useGpu(gpu);
        device = "webgpu";
      } catch (err) {
        reason = err instanceof Error ? err.message : String(err);
      }
    }
    postMessage({ type: "started", batches: t.batchesPerEpoch(), images: t.trainImages(), batchSize: t.batchSize(), device, reason });
    let last = null;
    while (!stop) {
      const report = JSON.parse(await t.step(m.batchesPerReport || BATCHES_PER_REPORT));
      if (report.finished) last = report.finished;
      postMessage({ type: "progress", report });
      if (report.done) break;
      // Let a "stop" message in.
      await new Promise((r) => setTimeout(r, 0));
    }
    const bytes = await t.modelBytes(new Date().toISOString());
    postMessage({ type: "model", key: m.key, preset: m.preset, device, bytes, stopped: stop, testAccuracy: last ? last.test_accuracy : null }, [bytes.buffer]);
  } finally {
    t.free();
  }
}

onmessage = async (e) => {
  const m = e.data;
  if (m.type === "stop") {
    stop = true;
  } else if (m.type === "start" && !running) {
    stop = false;
    running = true;
    try {
      await train(m);
    } catch (err) {
      postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) });
    } finally {
      running = false;
    }
  }
};
