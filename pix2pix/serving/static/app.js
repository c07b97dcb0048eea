// pix2pix demo page: paints class ids (never colours) at the model's size and asks the server for the photo.
"use strict";

const DISPLAY_PX = 320;  // longest side of the scaled-up canvas and images on screen
const UNDO_DEPTH = 50;

const $ = (id) => document.getElementById(id);
const state = {
  model: null,
  ids: null,          // Uint16Array(H * W): the painted class map (label-map models)
  photo: null,        // Blob (PNG) of the input photo (photo models)
  classId: 0,
  tool: "brush",
  undo: [],
  lastPoint: null,
  generating: false,
  pending: false,
  outputUrl: null,
};

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function apiError(response) {
  try {
    return (await response.json()).error || response.statusText;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

// ---- drawing the class map ----
function draw() {
  const { width, height, colours } = state.model;
  const ctx = $("canvas").getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < state.ids.length; i++) {
    const c = colours[state.ids[i]];
    image.data[4 * i] = c[0];
    image.data[4 * i + 1] = c[1];
    image.data[4 * i + 2] = c[2];
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function pushUndo() {
  state.undo.push(state.ids.slice());
  if (state.undo.length > UNDO_DEPTH) state.undo.shift();
  $("undo").disabled = false;
}

function stamp(x, y, id) {
  // A hard-edged disc of the chosen diameter (1 px: one pixel).
  const { width, height } = state.model;
  const size = Number($("brush-size").value);
  const r = (size - 1) / 2;
  for (let dy = -Math.ceil(r); dy <= Math.ceil(r); dy++) {
    for (let dx = -Math.ceil(r); dx <= Math.ceil(r); dx++) {
      if (dx * dx + dy * dy > r * r + r) continue;
      const px = x + dx, py = y + dy;
      if (px >= 0 && py >= 0 && px < width && py < height) state.ids[py * width + px] = id;
    }
  }
}

function line(from, to, id) {
  const steps = Math.max(Math.abs(to.x - from.x), Math.abs(to.y - from.y), 1);
  for (let s = 0; s <= steps; s++) {
    stamp(Math.round(from.x + ((to.x - from.x) * s) / steps), Math.round(from.y + ((to.y - from.y) * s) / steps), id);
  }
}

function floodFill(x, y, id) {
  // 4-connected region of the clicked pixel's class.
  const { width, height } = state.model;
  const ids = state.ids;
  const old = ids[y * width + x];
  if (old === id) return;
  const stack = [y * width + x];
  while (stack.length) {
    const p = stack.pop();
    if (ids[p] !== old) continue;
    ids[p] = id;
    const px = p % width, py = (p - px) / width;
    if (px > 0) stack.push(p - 1);
    if (px < width - 1) stack.push(p + 1);
    if (py > 0) stack.push(p - width);
    if (py < height - 1) stack.push(p + width);
  }
}

function modelPoint(event) {
  const canvas = $("canvas");
  const box = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - box.left) / box.width) * canvas.width);
  const y = Math.floor(((event.clientY - box.top) / box.height) * canvas.height);
  return { x: Math.min(Math.max(x, 0), canvas.width - 1), y: Math.min(Math.max(y, 0), canvas.height - 1) };
}

function paintId() {
  return state.tool === "eraser" ? state.model.eraser_id : state.classId;
}

function onPointerDown(event) {
  if (!state.ids || event.button !== 0) return;
  const point = modelPoint(event);
  pushUndo();
  if (state.tool === "fill") {
    floodFill(point.x, point.y, state.classId);
    draw();
    generate();
    return;
  }
  $("canvas").setPointerCapture(event.pointerId);
  state.lastPoint = point;
  line(point, point, paintId());
  draw();
}

function onPointerMove(event) {
  if (!state.lastPoint) return;
  const point = modelPoint(event);
  line(state.lastPoint, point, paintId());
  state.lastPoint = point;
  draw();
}

function onPointerUp() {
  if (!state.lastPoint) return;
  state.lastPoint = null;
  generate();  // at the end of each stroke
}

// ---- inputs ----
function decodeIds(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Uint16Array(bytes.buffer);  // little-endian, as the server sends
}

async function showInput(input) {
  if (state.model.input_kind === "label_map") {
    if (state.ids) pushUndo();
    state.ids = decodeIds(input.ids);
    draw();
  } else {
    state.photo = await (await fetch(input.photo)).blob();
    const bitmap = await createImageBitmap(state.photo);
    $("canvas").getContext("2d").drawImage(bitmap, 0, 0);
  }
  const panel = $("target-panel");
  panel.hidden = !input.target;
  if (input.target) {
    $("target").src = input.target;
    $("target-caption").textContent = `(test pair ${input.index})`;
  }
  $("canvas").dataset.source = input.index === null ? "upload" : `example ${input.index}`;
  generate();
}

async function loadExample() {
  const index = Math.floor(Math.random() * state.model.examples);
  const response = await fetch(`/api/examples/${index}`);
  if (!response.ok) return showMessage(await apiError(response));
  showMessage("");
  await showInput(await response.json());
}

async function upload(file) {
  const response = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
  $("upload").value = "";
  if (!response.ok) return showMessage(`${file.name}: not used (HTTP ${response.status}): ${await apiError(response)}`);
  showMessage("");
  await showInput(await response.json());
}

// ---- generating ----
async function generate() {
  if (state.generating) {
    state.pending = true;  // one more run with the latest map once this one is back
    return;
  }
  const body = state.model.input_kind === "label_map" ? state.ids : state.photo;
  if (!body) return;
  state.generating = true;
  $("generate").disabled = true;
  const seed = $("seed").value || "0";
  const started = performance.now();
  try {
    const response = await fetch(`/api/generate?seed=${encodeURIComponent(seed)}`, { method: "POST", body });
    if (!response.ok) {
      showMessage(`generate failed (HTTP ${response.status}): ${await apiError(response)}`);
      return;
    }
    const blob = await response.blob();
    const roundTrip = performance.now() - started;
    if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
    state.outputUrl = URL.createObjectURL(blob);
    $("output").src = state.outputUrl;
    const download = $("download");
    download.href = state.outputUrl;
    download.download = `pix2pix-seed${seed}.png`;
    download.hidden = false;
    $("latency").textContent =
      `${response.headers.get("X-Generate-Ms")} ms generator, ${roundTrip.toFixed(0)} ms round trip (seed ${seed})`;
    $("output").dataset.generation = String(Number($("output").dataset.generation || 0) + 1);
  } finally {
    state.generating = false;
    $("generate").disabled = false;
    if (state.pending) {
      state.pending = false;
      generate();
    }
  }
}

// ---- building the page from the model ----
function selectClass(id) {
  state.classId = id;
  if (state.tool === "eraser") selectTool("brush");
  for (const control of document.querySelectorAll(".class-control")) {
    control.setAttribute("aria-checked", String(Number(control.dataset.classId) === id));
  }
}

function selectTool(tool) {
  state.tool = tool;
  for (const button of document.querySelectorAll(".tool")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  }
}

function buildClassControls(classes) {
  const box = $("classes");
  for (const cls of classes) {
    const control = document.createElement("button");
    control.type = "button";
    control.className = "class-control";
    control.setAttribute("role", "radio");
    control.dataset.classId = String(cls.id);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = `rgb(${cls.colour.join(", ")})`;
    const name = document.createElement("span");
    name.className = "class-name";
    name.textContent = cls.name;
    control.append(swatch, name);
    control.addEventListener("click", () => selectClass(cls.id));
    box.append(control);
  }
}

function sizeDisplays(width, height) {
  const scale = DISPLAY_PX / Math.max(width, height);
  for (const element of [$("canvas"), $("output"), $("target")]) {
    element.style.width = `${width * scale}px`;
    element.style.height = `${height * scale}px`;
  }
}

async function init() {
  const model = await (await fetch("/api/model")).json();
  state.model = model;
  const canvas = $("canvas");
  canvas.width = model.width;
  canvas.height = model.height;
  sizeDisplays(model.width, model.height);
  $("model-line").textContent = `${model.width}×${model.height} px, ${model.direction}, input: ${model.input_kind === "label_map" ? "label map" : "photo"}`;
  $("test-time").textContent = model.test_time;
  $("example").disabled = model.examples === 0;
  $("example").title = model.examples === 0 ? "no test pairs given (--examples)" : `${model.examples} test pairs`;
  $("example").addEventListener("click", loadExample);
  $("upload").addEventListener("change", (event) => event.target.files[0] && upload(event.target.files[0]));
  $("generate").addEventListener("click", generate);
  $("variation").addEventListener("click", () => {
    $("seed").value = String(Math.floor(Math.random() * 2 ** 31));
    generate();
  });
  if (model.input_kind !== "label_map") {
    $("input-title").textContent = "Input photo";
    $("output-title").textContent = "Generated";  // the output of a photo-input model may be a map (BtoA)
    $("target-title").textContent = "Real target";
    return;  // photo inputs: upload and examples only
  }
  $("paint-tools").hidden = false;
  buildClassControls(model.classes);
  selectClass(model.classes[Math.min(1, model.classes.length - 1)].id);
  for (const button of document.querySelectorAll(".tool")) {
    button.addEventListener("click", () => selectTool(button.dataset.tool));
  }
  $("undo").addEventListener("click", () => {
    if (!state.undo.length) return;
    state.ids = state.undo.pop();
    $("undo").disabled = state.undo.length === 0;
    draw();
    generate();
  });
  $("clear").addEventListener("click", () => {
    pushUndo();
    state.ids.fill(model.eraser_id);
    draw();
    generate();
  });
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  state.ids = new Uint16Array(model.width * model.height).fill(model.eraser_id);
  draw();
}

init().then(() => { document.body.dataset.ready = "true"; });
