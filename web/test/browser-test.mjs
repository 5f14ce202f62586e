// The demo page in a real browser: Debian's chromium, headless, driven by puppeteer-core against
// the page served on 127.0.0.1 (web/test.sh builds, serves and runs this).
//
//   node browser-test.mjs --url http://127.0.0.1:PORT/ --dist web/dist --scratchnet target/release/scratchnet
//                         --mnist tests/data/mnist --out DIR [--screenshot docs/web-demo.png]
//
// Checks: (1) the page loads with no console errors and requests nothing but its own files, none
// of the digit mode's; (2) every bundled sample, clothing and digits, gets the same top-1 class
// and probabilities within 1e-5 of `scratchnet predict --json` on the same file (CNN and MLP of
// each, through the page's #selftest mode); (3) a stroke drawn with synthetic mouse events gives a
// prediction; keyboard selection works; (4) a short live training completes, its curve updates,
// and the downloaded model loads in `scratchnet evaluate`; (5) a non-image file, an empty file and
// a huge picture each give a clear message, no uncaught exception; (6) the switch to digits loads
// the MNIST models, digits drawn as mouse strokes get their classes, and digits train live too;
// (7) with WebGPU off (this browser: no adapter) the page says so in one line and runs on the CPU;
// (8) in a second browser with WebGPU on a software adapter (SwiftShader; a correctness run, not a
// speed one): the page finds the adapter, GPU inference on the samples equals `scratchnet predict`
// (the CPU) within the native GPU tests' 1e-4, and the CNN trains live on the GPU: its loss falls,
// and its downloaded model evaluates in the CLI as the page said.
// Writes screenshots and prints the measured timings, which fail the test only past five times
// their targets (WEB_TIMING_STRICT=1: past their targets).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import puppeteer from "puppeteer-core";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
for (const k of ["url", "dist", "scratchnet", "mnist", "out"]) {
  if (!args[k]) throw new Error(`missing --${k}`);
}
const url = args.url.endsWith("/") ? args.url : `${args.url}/`;
const origin = new URL(url).origin;
fs.mkdirSync(args.out, { recursive: true });
const TOLERANCE = 1e-5;
// GPU against CPU: the native GPU tests' tolerance (tests/gpu.rs).
const GPU_TOLERANCE = 1e-4;
// WebGPU on the CPU: Chromium's SwiftShader adapter, in a secure context (127.0.0.1).
const WEBGPU_ARGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"];

let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures++;
};
const figures = {};
// A timed check cannot decide pass or fail on a shared machine whose speed varies severalfold
// between runs (web/README.md): a timing fails the test only past five times its target, beyond
// that variation, and is otherwise reported against its target. WEB_TIMING_STRICT=1 holds it to
// the target itself, for measuring on a quiet machine.
const strictTiming = process.env.WEB_TIMING_STRICT === "1";
const timing = (value, target, what) => {
  if (strictTiming) return check(value <= target, `${what} (target <= ${target})`);
  if (value > 5 * target) return check(false, `${what} (target <= ${target}; past five times it)`);
  console.log(`${value <= target ? "ok  " : "SLOW"} ${what} (target <= ${target}${value <= target ? "" : ": not met on this run, reported, not failed"})`);
};

const BROWSER_ARGS = [
  "--no-sandbox",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const launch = (extra) =>
  puppeteer.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, protocolTimeout: 900000, args: [...BROWSER_ARGS, ...extra] });
// The first browser has no WebGPU adapter (as most headless browsers): the page's fallback.
let browser = await launch(["--disable-gpu"]);
figures.chromium = await browser.version();

// A page with its console errors, uncaught exceptions and foreign requests recorded.
async function openPage(hash = "", viewport = { width: 1200, height: 1000 }) {
  const page = await browser.newPage();
  await page.setViewport(viewport);
  page.problems = [];
  page.on("console", (m) => {
    if (m.type() === "error") page.problems.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => page.problems.push(`uncaught: ${e.message}`));
  page.on("request", (r) => {
    const u = r.url();
    if (!(u.startsWith(origin) || u.startsWith("data:") || u.startsWith("blob:"))) page.problems.push(`foreign request: ${u}`);
  });
  page.on("requestfailed", (r) => page.problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    if (r.status() >= 400) page.problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  // Room for every file the page fetches in its timeline (the default keeps 250).
  await page.evaluateOnNewDocument(() => performance.setResourceTimingBufferSize(2000));
  await page.goto(url + hash, { waitUntil: "load" });
  await page.waitForFunction(() => window.scratchnet && (window.scratchnet.ready || !document.getElementById("message").hidden), {
    timeout: 60000,
  });
  return page;
}

function cli(argv) {
  return execFileSync(args.scratchnet, argv, { encoding: "utf8", maxBuffer: 64 << 20 });
}

// The files a page has fetched so far, with their sizes (the test server sends them uncompressed),
// once the sample thumbnails are in.
const fetched = async (p) => {
  await p.waitForFunction(() => [...document.querySelectorAll("#samples img")].every((i) => i.complete), { timeout: 30000 });
  return p.evaluate(() =>
  [performance.getEntriesByType("navigation")[0], ...performance.getEntriesByType("resource")].map((e) => ({
    url: e.name,
    bytes: e.encodedBodySize,
  })));
};

// ---- (1) load ----
const page = await openPage();
const ready = await page.evaluate(() => window.scratchnet.ready);
check(ready, "the page loads and classifies its first test image");
const firstLoad = await fetched(page);
figures.first_load_bytes = firstLoad.reduce((a, f) => a + f.bytes, 0);
const digitFiles = firstLoad.filter((f) => /mnist\/|models\/mnist-/.test(f.url));
check(digitFiles.length === 0,
  `the first load (${firstLoad.length} files, ${figures.first_load_bytes} bytes) fetches none of the digit mode's files ${digitFiles.map((f) => f.url).join(" ")}`);
// The first load of a freshly started browser is slower (nothing compiled or cached yet): the
// target applies to the median of that and four more loads, each in a new browser context.
const firstMs = [await page.evaluate(() => window.scratchnet.timings.firstPredictionMs)];
for (let i = 0; i < 4; i++) {
  const ctx = await browser.createBrowserContext();
  const p = await ctx.newPage();
  await p.goto(url, { waitUntil: "load" });
  await p.waitForFunction(() => window.scratchnet && window.scratchnet.ready, { timeout: 60000 });
  firstMs.push(await p.evaluate(() => window.scratchnet.timings.firstPredictionMs));
  await ctx.close();
}
figures.first_prediction_ms = firstMs.map((v) => Math.round(v));
const firstMedian = [...firstMs].sort((a, b) => a - b)[2];
timing(firstMedian, 1000,
  `first prediction after navigation start: ${figures.first_prediction_ms.join(", ")} ms (first: a fresh browser), median ${Math.round(firstMedian)} ms`);

// ---- (2) samples against `scratchnet predict --json` ----
const modelFiles = {
  cnn: "models/fashion-mnist-cnn-best.safetensors",
  mlp: "models/fashion-mnist-mlp.safetensors",
  mnist_cnn: "models/mnist-cnn.safetensors",
  mnist_mlp: "models/mnist-mlp.safetensors",
};
for (const [model, hash, samplesDir] of [
  ["cnn", "#selftest&model=cnn", "samples"],
  ["mlp", "#selftest&model=mlp", "samples"],
  ["mnist_cnn", "#selftest&dataset=mnist", "mnist/samples"],
  ["mnist_mlp", "#selftest&dataset=mnist&model=mlp", "mnist/samples"],
]) {
  const st = await openPage(hash);
  await st.waitForFunction(() => document.getElementById("selftest").dataset.done === "true", { timeout: 120000 });
  const summary = JSON.parse(await st.$eval("#selftest", (e) => e.textContent));
  check(!summary.error && summary.samples === 100 && summary.predictions.length === 100, `${model}: #selftest classified ${summary.samples} samples`);
  check(summary.dataset === (model.startsWith("mnist") ? "mnist" : "fashion-mnist"), `${model}: #selftest ran on ${summary.dataset}`);
  const files = summary.predictions.map((p) => path.join(args.dist, samplesDir, p.file));
  const lines = cli(["predict", "--json", "--top-k", "10", "--model", path.join(args.dist, modelFiles[model]), ...files])
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  let worst = 0, sameTop = 0;
  summary.predictions.forEach((p, i) => {
    const top = lines[i].top;
    if (path.basename(lines[i].file) !== p.file) check(false, `${model}: CLI line ${i} is ${lines[i].file}, not ${p.file}`);
    if (top[0].index === p.predicted) sameTop++;
    for (const t of top) worst = Math.max(worst, Math.abs(t.probability - p.probabilities[t.index]));
  });
  check(sameTop === 100, `${model}: same top-1 class as scratchnet predict on ${sameTop}/100 samples`);
  check(worst <= TOLERANCE, `${model}: largest probability difference from scratchnet predict ${worst.toExponential(2)} (<= 1e-5)`);
  figures[`${model}_agree_with_labels`] = summary.agree_with_labels;
  figures[`${model}_infer_ms_median`] = summary.infer_ms_median;
  figures[`${model}_infer_ms_max`] = summary.infer_ms_max;
  check(st.problems.length === 0, `${model} self-test page: no console errors, foreign requests or failures ${st.problems.join("; ")}`);
  await st.close();
}
timing(figures.cnn_infer_ms_median, 20, `CNN inference median ${figures.cnn_infer_ms_median.toFixed(2)} ms over 100 images`);
timing(figures.mnist_cnn_infer_ms_median, 20, `MNIST CNN inference median ${figures.mnist_cnn_infer_ms_median.toFixed(2)} ms over 100 images`);

// ---- (3) a stroke with synthetic mouse events; keyboard ----
const pad = await page.$("#pad");
const box = await pad.boundingBox();
const P = (fx, fy) => [box.x + fx * box.width, box.y + fy * box.height];
await page.mouse.move(...P(0.3, 0.2));
await page.mouse.down();
for (const [fx, fy] of [[0.7, 0.2], [0.7, 0.85], [0.3, 0.85], [0.3, 0.2]]) await page.mouse.move(...P(fx, fy), { steps: 12 });
await page.mouse.up();
await page.waitForFunction(() => window.scratchnet.last && window.scratchnet.last.what === "Your drawing", { timeout: 10000 });
const drawn = await page.evaluate(() => window.scratchnet.last);
const sum = drawn.probabilities.reduce((a, b) => a + b, 0);
check(drawn.probabilities.length === 10 && Math.abs(sum - 1) < 1e-4, `a drawn stroke is classified (probabilities sum to ${sum.toFixed(6)})`);
const seenLit = await page.$eval("#seen", (c) => c.getContext("2d").getImageData(0, 0, 28, 28).data.some((v, i) => i % 4 === 0 && v > 100));
check(seenLit, "the preprocessed 28x28 input of the drawing is shown");
await page.focus("#samples button:nth-child(23)");
await page.keyboard.press("Enter");
await page.waitForFunction(() => window.scratchnet.last.what.includes("22-pullover"), { timeout: 10000 });
check(true, "a test image chosen with the keyboard (focus + Enter) is classified");

// ---- (4) live training, download, scratchnet evaluate ----
const downloads = fs.mkdtempSync(path.join(os.tmpdir(), "scratchnet-web-dl-"));
const cdp = await page.createCDPSession();
await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads });
const curvePixels = () => page.$eval("#curve", (c) => c.toDataURL());
async function trainInPage(images, epochs) {
  await page.$eval("#images", (e, v) => (e.value = v), String(images));
  await page.$eval("#epochs", (e, v) => (e.value = v), String(epochs));
  const t0 = Date.now();
  await page.click("#train");
  await page.waitForFunction(() => window.scratchnet.trainingDone === true, { timeout: 300000 });
  return (Date.now() - t0) / 1000;
}
const before = await curvePixels();
const shortWall = await trainInPage(400, 1);
const status = await page.$eval("#train-status", (e) => e.textContent);
check(/Epoch 1 of 1/.test(status) && /Done/.test(status), `a 400-image, 1-epoch live training completes in ${shortWall.toFixed(1)} s: "${status}"`);
check((await curvePixels()) !== before, "the training curve is updated");
check(await page.$eval("input[value=trained]", (e) => e.checked && !e.disabled), "the page switches to the model it trained");
await page.click("#download");
const file = path.join(downloads, "scratchnet-web-mlp.safetensors");
for (let i = 0; i < 100 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
check(fs.existsSync(file), `the model downloads (${fs.existsSync(file) ? fs.statSync(file).size : 0} bytes)`);
if (fs.existsSync(file)) {
  // The page measured its test accuracy on the bundled 1,000 images, the test set's first 1,000:
  // the CLI on the same images agrees (up to an argmax tie broken differently).
  const pageAccuracy = await page.evaluate(() => window.scratchnet.lastEpoch.test_accuracy);
  let ev = null;
  try {
    ev = JSON.parse(cli(["evaluate", "--model", file, "--json", "--limit", "1000"]));
  } catch (e) {
    check(false, `scratchnet evaluate --model on the downloaded file: ${e.message}`);
  }
  if (ev) {
    check(Math.abs(ev.accuracy - pageAccuracy) <= 0.002,
      `scratchnet evaluate --model reads the downloaded model: ${(100 * ev.accuracy).toFixed(1)}% on the first 1,000 test images, the page said ${(100 * pageAccuracy).toFixed(1)}%`);
  }
  const inspect = cli(["inspect", file]);
  check(inspect.includes("web demo"), "its training record says it was trained in the web demo");
  fs.copyFileSync(file, path.join(args.out, "trained-in-page.safetensors"));
}
// The target: an epoch of the MLP on all 5,000 bundled images.
const fullWall = await trainInPage(5000, 3);
figures.mlp_epoch_seconds = await page.evaluate(() => window.scratchnet.timings.epochSeconds);
figures.mlp_3_epochs_wall_seconds = fullWall;
const slowest = Math.max(...figures.mlp_epoch_seconds);
check(figures.mlp_epoch_seconds.length === 3, `live training ran ${figures.mlp_epoch_seconds.length} of 3 epochs`);
timing(slowest, 5,
  `live MLP epochs on 5,000 images: ${figures.mlp_epoch_seconds.map((s) => s.toFixed(2)).join(", ")} s (the slowest counts); 3 epochs with evaluations ${fullWall.toFixed(1)} s wall`);

// ---- (5) bad input ----
const bad = fs.mkdtempSync(path.join(os.tmpdir(), "scratchnet-web-bad-"));
const notImage = path.join(bad, "notes.png");
fs.writeFileSync(notImage, "these are words, not pixels\n");
const empty = path.join(bad, "empty.jpg");
fs.writeFileSync(empty, "");
// A real, valid 12,000 x 12,000 PNG (144 megapixels; a few hundred kB compressed).
const huge = path.join(bad, "huge.png");
{
  const [w, h] = [12000, 12000];
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  const raw = Buffer.alloc((w + 1) * h);
  fs.writeFileSync(huge, Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]));
}
for (const [f, expect] of [[notImage, /not a picture/], [empty, /empty/], [huge, /12000x12000 pixels/]]) {
  const t0 = Date.now();
  await page.$eval("#message", (e) => { e.hidden = true; e.textContent = ""; });
  const input = await page.$("#file");
  await input.uploadFile(f);
  await page.waitForFunction(() => !document.getElementById("message").hidden, { timeout: 30000 });
  const msg = await page.$eval("#message", (e) => e.textContent);
  check(expect.test(msg), `${path.basename(f)}: "${msg}" (${Date.now() - t0} ms)`);
}
// Still responsive afterwards.
await page.click("#samples button:nth-child(1)");
await page.waitForFunction(() => window.scratchnet.last.what.includes("00-t-shirt"), { timeout: 10000 });
check(true, "the page still classifies after the bad inputs");
check(page.problems.length === 0, `main page: no console errors, uncaught exceptions or foreign requests ${page.problems.join("; ")}`);

// ---- (6) digits: the switch, digits drawn as a person would, live training ----
const before6 = (await fetched(page)).length;
await page.click("input[name=dataset][value=mnist]");
await page.waitForFunction(() => window.scratchnet.timings.switchMs && window.scratchnet.last.what.includes("00-zero"), { timeout: 30000 });
const switchFiles = (await fetched(page)).slice(before6);
figures.digit_switch_files = switchFiles.length;
figures.digit_switch_bytes = switchFiles.reduce((a, f) => a + f.bytes, 0);
figures.digit_switch_ms = await page.evaluate(() => window.scratchnet.timings.switchMs);
check(switchFiles.every((f) => /mnist\//.test(f.url) || /models\/mnist-/.test(f.url)) && switchFiles.some((f) => f.url.endsWith("mnist-cnn.safetensors")),
  `the switch to digits fetches the MNIST models and samples: ${switchFiles.length} files, ${figures.digit_switch_bytes} bytes`);
timing(figures.digit_switch_ms, 1000, `switch to digits until the first digit is classified: ${Math.round(figures.digit_switch_ms)} ms`);
check(new URL(page.url()).hash === "#digits", `the address remembers the digits (${new URL(page.url()).hash})`);
check(await page.$eval("#bars li:first-child .label span", (e) => e.textContent) === "0", "the first MNIST test image, a 0, is classified as 0");

// Digits as mouse strokes: each a list of strokes, each a polyline in fractions of the pad, drawn
// with mouse down / move / up at a hand's pace (a few pad pixels apart), wobbly, slanted and
// placed off-centre like a person's, in several sizes.
const arc = (cx, cy, rx, ry, from, to, n = 24) =>
  Array.from({ length: n + 1 }, (_, i) => {
    const t = ((from + ((to - from) * i) / n) * Math.PI) / 180;
    return [cx + rx * Math.cos(t), cy + ry * Math.sin(t)];
  });
const DIGITS = [
  ["1", [[[0.54, 0.2], [0.53, 0.35], [0.51, 0.5], [0.5, 0.65], [0.48, 0.8]]]],
  ["0", [arc(0.5, 0.5, 0.2, 0.3, -100, 275)]],
  // A small 7 in the upper left: the page crops and scales it.
  ["7", [[[0.15, 0.15], [0.3, 0.14], [0.45, 0.16], [0.38, 0.3], [0.32, 0.45], [0.28, 0.55]]]],
  ["4", [[[0.5, 0.18], [0.4, 0.35], [0.3, 0.55], [0.5, 0.56], [0.72, 0.54]], [[0.62, 0.32], [0.61, 0.55], [0.6, 0.82]]]],
  ["3", [[...arc(0.5, 0.33, 0.17, 0.14, -160, 90), ...arc(0.5, 0.63, 0.19, 0.16, -90, 150)]]],
  ["8", [Array.from({ length: 41 }, (_, i) => {
    const t = (2 * Math.PI * i) / 40;
    return [0.5 + 0.17 * Math.sin(2 * t) - 0.04 * Math.cos(t), 0.5 - 0.31 * Math.cos(t)];
  })]],
];
// Each segment in pieces of about 6 pad pixels, drifting slowly off the ideal line as a hand does.
const padHandle = await page.$("#pad");
async function drawStroke(points, seed) {
  const b = await padHandle.boundingBox();
  const P = (fx, fy) => [b.x + fx * b.width, b.y + fy * b.height];
  await page.mouse.move(...P(...points[0]));
  await page.mouse.down();
  let k = seed;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1], [x1, y1] = points[i];
    const n = Math.max(1, Math.round((Math.hypot(x1 - x0, y1 - y0) * b.width) / 6));
    for (let j = 1; j <= n; j++) {
      const f = j / n;
      k++;
      const [dx, dy] = [0.008 * Math.sin(k * 0.35), 0.006 * Math.sin(k * 0.23 + 1)];
      await page.mouse.move(...P(x0 + (x1 - x0) * f + dx, y0 + (y1 - y0) * f + dy));
    }
  }
  await page.mouse.up();
}
const shownClass = () => page.$eval("#bars li:first-child .label span", (e) => e.textContent);
const drawnDigits = [];
await padHandle.scrollIntoView();
for (const [digit, strokes] of DIGITS) {
  await page.click("#clear");
  for (const [i, s] of strokes.entries()) await drawStroke(s, 10 * i);
  await page.waitForFunction(() => window.scratchnet.last.what === "Your drawing", { timeout: 10000 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const shown = await shownClass();
  const p = await page.evaluate(() => window.scratchnet.last.probabilities);
  drawnDigits.push(`${digit}->${shown} (${(100 * Math.max(...p)).toFixed(0)}%)`);
  await padHandle.screenshot({ path: path.join(args.out, `digit-${digit}.png`) });
  check(shown === digit, `a ${digit} drawn with the mouse (${strokes.length} stroke${strokes.length > 1 ? "s" : ""}) is classified as ${shown}, ${(100 * Math.max(...p)).toFixed(1)}%`);
}
figures.drawn_digits = drawnDigits.join(", ");
await page.evaluate(() => window.scrollTo(0, 0));
await page.screenshot({ path: path.join(args.out, "web-demo-digits.png"), fullPage: true });

// Digits train live: the model file says mnist, and `scratchnet evaluate` agrees on the test set's
// first 1,000 digits (the committed t10k files).
const digitWall = await trainInPage(400, 1);
const digitStatus = await page.$eval("#train-status", (e) => e.textContent);
check(/Epoch 1 of 1/.test(digitStatus) && /Done/.test(digitStatus), `digits: a 400-image, 1-epoch live training completes in ${digitWall.toFixed(1)} s: "${digitStatus}"`);
await page.click("#download");
const digitFile = path.join(downloads, "scratchnet-web-mnist-mlp.safetensors");
for (let i = 0; i < 100 && !fs.existsSync(digitFile); i++) await new Promise((r) => setTimeout(r, 100));
check(fs.existsSync(digitFile), "the digit model downloads");
if (fs.existsSync(digitFile)) {
  const pageAccuracy = await page.evaluate(() => window.scratchnet.lastEpoch.test_accuracy);
  try {
    const ev = JSON.parse(cli(["evaluate", "--model", digitFile, "--data-dir", args.mnist, "--json", "--limit", "1000"]));
    check(Math.abs(ev.accuracy - pageAccuracy) <= 0.002,
      `scratchnet evaluate reads the digit model: ${(100 * ev.accuracy).toFixed(1)}% on the first 1,000 MNIST test images, the page said ${(100 * pageAccuracy).toFixed(1)}%`);
  } catch (e) {
    check(false, `scratchnet evaluate --model on the downloaded digit model: ${e.message}`);
  }
  check(/dataset mnist/.test(cli(["inspect", digitFile])), "its file says it was trained on mnist (digit preprocessing)");
}

// Back to clothing: its samples, and the clothing model trained earlier, are there again.
await page.click("input[name=dataset][value=fashion]");
await page.waitForFunction(() => window.scratchnet.last.what.includes("00-t-shirt"), { timeout: 30000 });
check(await page.$eval("input[value=trained]", (e) => !e.disabled), "back on clothing, the clothing model trained earlier is still a choice");
check(page.problems.length === 0, `main page after the digits: no console errors, uncaught exceptions or foreign requests ${page.problems.join("; ")}`);

// An address that asks for digits opens the page on them, without the clothing models.
for (const ask of ["?dataset=mnist", "#digits"]) {
  const p = await openPage(ask);
  const files = await fetched(p);
  const onDigits = await p.evaluate(() => document.querySelector("input[name=dataset][value=mnist]").checked &&
    window.scratchnet.last.what.includes("00-zero"));
  check(onDigits && !files.some((f) => /fashion-mnist/.test(f.url)),
    `${ask} opens the page on digits (${files.length} files, ${files.reduce((a, f) => a + f.bytes, 0)} bytes, no clothing model)`);
  check(p.problems.length === 0, `${ask} page: no problems ${p.problems.join("; ")}`);
  await p.close();
}

// ---- screenshots: desktop and phone width ----
await page.click("#samples button:nth-child(38)");
await page.evaluate(() => window.scrollTo(0, 0));
const shot = path.join(args.out, "web-demo.png");
await page.screenshot({ path: shot, fullPage: true });
if (args.screenshot) fs.copyFileSync(shot, args.screenshot);
const phone = await openPage("", { width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 1 });
const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
check(overflow <= 0, `at phone width (390 px) nothing overflows sideways (${overflow} px)`);
await phone.screenshot({ path: path.join(args.out, "web-demo-phone.png"), fullPage: true });
check(phone.problems.length === 0, `phone-width page: no problems ${phone.problems.join("; ")}`);

// ---- (7) WebGPU switched off: a one-line reason, the CPU as before ----
{
  const st = await openPage("#selftest&device=gpu&model=mlp");
  await st.waitForFunction(() => document.getElementById("selftest").dataset.done === "true", { timeout: 120000 });
  const summary = JSON.parse(await st.$eval("#selftest", (e) => e.textContent));
  check(summary.device === "cpu" && typeof summary.reason === "string" && summary.reason.length > 0 && !summary.reason.includes("\n") && summary.samples === 100,
    `without a WebGPU adapter #selftest&device=gpu runs on the CPU and says why in one line: "${summary.reason}"`);
  const note = await st.$eval("#gpu-note", (e) => e.textContent);
  const offered = await st.evaluate(() => !document.getElementById("use-gpu").disabled || !document.querySelector("#preset option[value=cnn-fast]").disabled);
  check(/^On the CPU: /.test(note) && !offered, `the page offers no GPU and says "${note}"`);
  check(st.problems.length === 0, `fallback page: no console errors, uncaught exceptions or foreign requests ${st.problems.join("; ")}`);
  await st.close();
}

await browser.close();

// ---- (8) WebGPU on a software adapter: GPU inference, the CNN trained live on the GPU ----
const gpuStart = Date.now();
browser = await launch(WEBGPU_ARGS);
{
  // GPU inference against the CLI on the CPU: the MLP on all 100 samples, the CNN (two views, far
  // slower on SwiftShader) on the first GPU_CNN_SAMPLES.
  const GPU_CNN_SAMPLES = 10;
  for (const [model, hash, n] of [["mlp", "#selftest&device=gpu&model=mlp", 100], ["cnn", `#selftest&device=gpu&n=${GPU_CNN_SAMPLES}`, GPU_CNN_SAMPLES]]) {
    const t0 = Date.now();
    const st = await openPage(hash);
    await st.waitForFunction(() => document.getElementById("selftest").dataset.done === "true", { timeout: 600000 });
    const summary = JSON.parse(await st.$eval("#selftest", (e) => e.textContent));
    if (model === "mlp") {
      figures.webgpu_adapter = summary.adapter;
      check(summary.device === "webgpu" && summary.adapter && summary.adapter.backend === "webgpu",
        `the page finds a WebGPU adapter: ${JSON.stringify(summary.adapter || summary.reason)}`);
    }
    check(summary.device === "webgpu" && summary.samples === n, `${model} on the GPU: #selftest classified ${summary.samples} samples on ${summary.device}`);
    const files = summary.predictions.map((p) => path.join(args.dist, "samples", p.file));
    const lines = cli(["predict", "--json", "--top-k", "10", "--model", path.join(args.dist, modelFiles[model]), ...files])
      .trim().split("\n").map((l) => JSON.parse(l));
    let worst = 0, sameTop = 0;
    summary.predictions.forEach((p, i) => {
      const top = lines[i].top;
      if (top[0].index === p.predicted) sameTop++;
      for (const t of top) worst = Math.max(worst, Math.abs(t.probability - p.probabilities[t.index]));
    });
    check(sameTop === n, `${model} on the GPU: same top-1 class as scratchnet predict (CPU) on ${sameTop}/${n} samples`);
    check(worst <= GPU_TOLERANCE, `${model} on the GPU: largest probability difference from the CPU ${worst.toExponential(2)} (<= 1e-4)`);
    figures[`webgpu_${model}_infer_ms_median`] = summary.infer_ms_median;
    figures[`webgpu_${model}_selftest_seconds`] = (Date.now() - t0) / 1000;
    check(st.problems.length === 0, `${model} GPU self-test page: no console errors or failures ${st.problems.join("; ")}`);
    await st.close();
  }

  // The CNN trained live on the GPU (cnn-fast's network and recipe, batch 128: WebGPU's default
  // limits hold it), downloaded, evaluated by the CLI.
  // SwiftShader is slow (a correctness run): one batch of 128 an epoch, two epochs, each evaluated
  // on the first 100 bundled test images (the CLI evaluates the same 100).
  const [images, epochs, testImages] = [128, 2, 100].map((v, i) => Number([process.env.WEB_GPU_IMAGES, process.env.WEB_GPU_EPOCHS, process.env.WEB_GPU_TEST][i] || v));
  const gp = await openPage("");
  await gp.waitForFunction(() => window.scratchnet.webgpu, { timeout: 60000 });
  const dl = fs.mkdtempSync(path.join(os.tmpdir(), "scratchnet-web-gpu-dl-"));
  const gcdp = await gp.createCDPSession();
  await gcdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: dl });
  await gp.evaluate((n) => (window.scratchnet.testImages = n), testImages);
  await gp.select("#preset", "cnn-fast");
  await gp.$eval("#images", (e, v) => (e.value = v), String(images));
  await gp.$eval("#epochs", (e, v) => (e.value = v), String(epochs));
  const t0 = Date.now();
  await gp.click("#train");
  await gp.waitForFunction(() => window.scratchnet.trainingDone === true || !document.getElementById("message").hidden, { timeout: 1800000 });
  const wall = (Date.now() - t0) / 1000;
  figures.webgpu_cnn_train_wall_seconds = wall;
  const gstatus = await gp.$eval("#train-status", (e) => e.textContent);
  const device = await gp.evaluate(() => window.scratchnet.trainingDevice);
  check(device === "webgpu" && new RegExp(`Epoch ${epochs} of ${epochs}`).test(gstatus) && /Done/.test(gstatus),
    `the CNN trains live on the GPU (${images} images, ${epochs} epochs, ${wall.toFixed(0)} s on SwiftShader): "${gstatus}" ${await gp.$eval("#message", (e) => e.textContent)}`);
  const curve = await gp.evaluate(() => window.scratchnet.curve);
  const epochsDone = curve.filter((p) => p.test !== undefined);
  figures.webgpu_cnn_curve = curve.map((p) => ({ x: +p.x.toFixed(3), loss: +p.loss.toFixed(4) }));
  check(curve.length >= 2 && epochsDone.length === epochs && epochsDone[epochs - 1].loss < curve[0].loss,
    `its loss falls: ${curve.length ? curve[0].loss.toFixed(3) : "?"} at the first report, ${epochsDone.length ? epochsDone[epochsDone.length - 1].loss.toFixed(3) : "?"} over the last epoch`);
  await gp.click("#download");
  const gfile = path.join(dl, "scratchnet-web-cnn.safetensors");
  for (let i = 0; i < 100 && !fs.existsSync(gfile); i++) await new Promise((r) => setTimeout(r, 100));
  check(fs.existsSync(gfile), `the GPU-trained CNN downloads (${fs.existsSync(gfile) ? fs.statSync(gfile).size : 0} bytes)`);
  if (fs.existsSync(gfile)) {
    const pageAccuracy = await gp.evaluate(() => window.scratchnet.lastEpoch.test_accuracy);
    figures.webgpu_cnn_test_accuracy = pageAccuracy;
    let ev = null;
    try {
      ev = JSON.parse(cli(["evaluate", "--model", gfile, "--json", "--limit", String(testImages)]));
    } catch (e) {
      check(false, `scratchnet evaluate --model on the GPU-trained file: ${e.message}`);
    }
    if (ev) {
      // GPU and CPU sums differ in the last bits: at most one argmax tie may go the other way.
      check(Math.abs(ev.accuracy - pageAccuracy) <= 1 / testImages + 1e-9,
        `scratchnet evaluate --model reads the GPU-trained CNN: ${(100 * ev.accuracy).toFixed(1)}% on the first ${testImages} test images, the page said ${(100 * pageAccuracy).toFixed(1)}%`);
    }
    check(cli(["inspect", gfile]).includes("WebGPU"), "its training record says it was trained on WebGPU");
    fs.copyFileSync(gfile, path.join(args.out, "trained-on-webgpu.safetensors"));
  }
  check(gp.problems.length === 0, `GPU training page: no console errors or failures ${gp.problems.join("; ")}`);
  fs.rmSync(dl, { recursive: true, force: true });
}
figures.webgpu_section_seconds = (Date.now() - gpuStart) / 1000;
console.log(`WebGPU checks (SwiftShader, a correctness run): ${figures.webgpu_section_seconds.toFixed(0)} s`);
await browser.close();
for (const d of [downloads, bad]) fs.rmSync(d, { recursive: true, force: true });
fs.writeFileSync(path.join(args.out, "figures.json"), JSON.stringify(figures, null, 1) + "\n");
console.log(JSON.stringify(figures, null, 1));
console.log(failures ? `${failures} check(s) failed` : "all browser checks passed");
process.exit(failures ? 1 : 0);
