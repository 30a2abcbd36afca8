// dpgan demo page: paint class ids (and a resample mask) at the model's resolution, ask the
// local server for images. State lives in two typed arrays; the canvas is only a view of them.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null, ids: null, mask: null, width: 0, height: 0,
  brush: 0, drawing: false, last: null,
  lastSeed: null, resultUrl: null, requestNo: 0,
};
const canvas = $("label-canvas");
const ctx = canvas.getContext("2d");

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// ---- talking to the server --------------------------------------------------------------

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const res = await fetch(path, init);
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try { message = (await res.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return (res.headers.get("Content-Type") || "").startsWith("application/json") ? res.json() : res.blob();
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text) {
  const s = atob(text), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function idBytes() { // one byte per pixel, or two little-endian bytes when a dataset has > 256 classes
  if (state.info.id_bytes === 1) return Uint8Array.from(state.ids);
  const out = new Uint8Array(state.ids.length * 2), view = new DataView(out.buffer);
  state.ids.forEach((v, i) => view.setUint16(2 * i, v, true));
  return out;
}

// ---- drawing ------------------------------------------------------------------------------

function render() {
  const img = ctx.createImageData(state.width, state.height);
  const colors = state.info.classes.map((c) => c.color);
  for (let i = 0; i < state.ids.length; i++) {
    let [r, g, b] = colors[state.ids[i]];
    if (state.mask[i]) { r = (r + 255) >> 1; g = g >> 1; b = (b + 255) >> 1; } // tint the region magenta
    img.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

function target() { return $("mode-mask").checked ? state.mask : state.ids; }
function value() { return $("mode-mask").checked ? 1 : state.brush; }

function canvasPoint(ev) {
  const box = canvas.getBoundingClientRect();
  return {
    x: Math.floor(((ev.clientX - box.left) / box.width) * state.width),
    y: Math.floor(((ev.clientY - box.top) / box.height) * state.height),
  };
}

function stamp(arr, cx, cy, v) {
  const r = Number($("brush-size").value) / 2;
  for (let y = Math.floor(cy - r); y <= cy + r; y++) {
    if (y < 0 || y >= state.height) continue;
    for (let x = Math.floor(cx - r); x <= cx + r; x++) {
      if (x < 0 || x >= state.width) continue;
      if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r + 0.25) arr[y * state.width + x] = v;
    }
  }
}

function strokeTo(p) { // stamp along the segment so fast mouse moves leave no gaps
  const arr = target(), v = value(), from = state.last || p;
  const steps = Math.max(1, Math.ceil(Math.hypot(p.x - from.x, p.y - from.y)));
  for (let s = 0; s <= steps; s++) {
    stamp(arr, Math.round(from.x + ((p.x - from.x) * s) / steps), Math.round(from.y + ((p.y - from.y) * s) / steps), v);
  }
  state.last = p;
  render();
}

function floodFill(p) {
  const arr = target(), v = value(), w = state.width, h = state.height;
  if (p.x < 0 || p.y < 0 || p.x >= w || p.y >= h) return;
  const old = arr[p.y * w + p.x];
  if (old === v) return;
  const stack = [p.y * w + p.x];
  while (stack.length) {
    const i = stack.pop();
    if (arr[i] !== old) continue;
    arr[i] = v;
    const x = i % w;
    if (x > 0) stack.push(i - 1);
    if (x < w - 1) stack.push(i + 1);
    if (i >= w) stack.push(i - w);
    if (i < w * (h - 1)) stack.push(i + w);
  }
  render();
}

canvas.addEventListener("pointerdown", (ev) => {
  if (!state.info) return;
  ev.preventDefault();
  const p = canvasPoint(ev);
  if ($("tool-fill").checked) { floodFill(p); afterStroke(); return; }
  canvas.setPointerCapture(ev.pointerId);
  state.drawing = true;
  state.last = null;
  strokeTo(p);
});
canvas.addEventListener("pointermove", (ev) => { if (state.drawing) strokeTo(canvasPoint(ev)); });
for (const name of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(name, () => {
    if (!state.drawing) return;
    state.drawing = false;
    state.last = null;
    afterStroke();
  });
}

function afterStroke() {
  if ($("auto-generate").checked && !$("mode-mask").checked) generate();
}

// ---- palette ------------------------------------------------------------------------------

function buildPalette() {
  const box = $("palette");
  box.replaceChildren();
  for (const c of state.info.classes) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.classId = c.id;
    b.setAttribute("role", "radio");
    b.title = `class ${c.id}: ${c.name}`;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${c.color.join(",")})`;
    b.append(swatch, document.createTextNode(c.name));
    b.addEventListener("click", () => selectBrush(c.id));
    box.append(b);
  }
}

function selectBrush(id) {
  state.brush = id;
  $("mode-label").checked = true;
  $("palette").classList.remove("inactive");
  for (const b of $("palette").children) b.setAttribute("aria-checked", String(Number(b.dataset.classId) === id));
}

// ---- generating ---------------------------------------------------------------------------

function readSeed() {
  const seed = Number($("seed").value);
  if (!Number.isInteger(seed) || seed < 0 || seed > 2147483647) throw new Error("the seed must be a whole number from 0 to 2147483647");
  return seed;
}

async function requestImage(body, what) {
  const no = ++state.requestNo;
  setStatus(`${what}\u2026`);
  $("generate").disabled = $("resample").disabled = true;
  try {
    const blob = await api("/api/generate", { label_ids: toBase64(idBytes()), ...body });
    if (no !== state.requestNo) return; // a newer request has been sent since
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    $("result").src = state.resultUrl;
    $("result").hidden = false;
    $("result-placeholder").hidden = true;
    const name = body.mask ? `dpgan_seed${body.seed}_region${body.new_seed}.png` : `dpgan_seed${body.seed}.png`;
    Object.assign($("download"), { href: state.resultUrl, download: name, hidden: false });
    setStatus(`${what}: done (${name})`);
  } catch (err) {
    if (no === state.requestNo) setStatus(err.message, true);
  } finally {
    if (no === state.requestNo) {
      $("generate").disabled = false;
      $("resample").disabled = !state.info.uses_noise;
    }
  }
}

function generate() {
  let seed;
  try { seed = readSeed(); } catch (err) { setStatus(err.message, true); return; }
  state.lastSeed = seed;
  requestImage({ seed }, `generating seed ${seed}`);
}

function resample() {
  if (!state.mask.some((m) => m)) { setStatus("paint the region to resample first (Paint: region to resample)", true); return; }
  const seed = state.lastSeed === null ? readSeed() : state.lastSeed;
  const newSeed = Math.floor(Math.random() * 2147483648);
  requestImage({ seed, mask: toBase64(state.mask), new_seed: newSeed }, `resampling the region of seed ${seed} with seed ${newSeed}`);
}

$("generate").addEventListener("click", generate);
$("resample").addEventListener("click", resample);
$("new-seed").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 2147483648); generate(); });
$("seed").addEventListener("keydown", (ev) => { if (ev.key === "Enter") generate(); });

// ---- other controls -----------------------------------------------------------------------

for (const id of ["mode-label", "mode-mask"]) {
  $(id).addEventListener("change", () => $("palette").classList.toggle("inactive", $("mode-mask").checked));
}
$("brush-size").addEventListener("input", () => { $("brush-size-value").textContent = $("brush-size").value; });
$("clear-label").addEventListener("click", () => { state.ids.fill(state.brush); render(); });
$("clear-mask").addEventListener("click", () => { state.mask.fill(0); render(); });

$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  $("upload").value = "";
  if (!file) return;
  const limit = state.info.limits.max_body_bytes * 0.74; // base64 grows a file by a third
  if (file.size > limit) { setStatus(`${file.name} is ${file.size} bytes; the demo accepts label PNGs up to ${Math.floor(limit)} bytes`, true); return; }
  setStatus(`reading ${file.name}\u2026`);
  try {
    const dataUrl = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
      reader.readAsDataURL(file);
    });
    const res = await api("/api/label", { png: dataUrl });
    const bytes = fromBase64(res.ids);
    state.ids = state.info.id_bytes === 1 ? bytes
      : Uint16Array.from({ length: bytes.length / 2 }, (_, i) => bytes[2 * i] | (bytes[2 * i + 1] << 8));
    state.mask.fill(0);
    render();
    const resized = res.source_width !== res.width || res.source_height !== res.height;
    setStatus(`loaded ${file.name}` + (resized ? ` (resized from ${res.source_width}x${res.source_height})` : ""));
  } catch (err) {
    setStatus(`${file.name}: ${err.message}`, true);
  }
});

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    setStatus(`cannot reach the demo server: ${err.message}`, true);
    return;
  }
  const info = state.info;
  state.width = canvas.width = info.width;
  state.height = canvas.height = info.height;
  state.ids = info.id_bytes === 1 ? new Uint8Array(info.width * info.height) : new Uint16Array(info.width * info.height);
  state.mask = new Uint8Array(info.width * info.height);
  const first = info.classes.find((c) => c.id !== info.ignore_index) || info.classes[0];
  state.ids.fill(first.id);
  buildPalette();
  selectBrush(first.id);
  render();
  $("model-info").textContent = `${info.dataset}: ${info.classes.length} classes, ${info.width}x${info.height} pixels, ` +
    `checkpoint ${info.checkpoint} (step ${info.step})` + (info.uses_noise ? "" : "; this generator uses no noise, so seeds change nothing");
  if (!info.uses_noise) for (const id of ["seed", "new-seed", "resample", "mode-mask"]) $(id).disabled = true;
  document.body.dataset.ready = "true";
  setStatus("ready");
}

start();
