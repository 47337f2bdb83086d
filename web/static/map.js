// poster search page: the poster map (GET /api/map). Loaded after app.js, whose helpers ($, el, api,
// label, searchId) it uses.
"use strict";

// --- the poster map (GET /api/map): pan, zoom, hover, click, a year filter -------------------
// The server computes a map in the background: GET /api/map answers 202 with its progress until it
// is ready (then 200), so this polls and the rest of the page stays usable. Dots at overview;
// zoomed in on few enough posters, each is drawn as its poster (thumbnails loaded lazily, kept).
// Decade labels are placed so that none overlaps another (window.mapLabelBoxes, for tests).

const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
const MAX_THUMBS = 150;  // posters on screen up to which a zoomed-in map shows posters, not dots
const THUMB_ZOOM = 1.5;  // and only zoomed in: the overview is dots, whatever the collection's size
const KEPT_IMAGES = 400;  // thumbnails kept (Image objects by id), the least recently drawn dropped first
const POLL_MS = 700;
const LABEL_HEIGHT = 16;
const LABEL_RINGS = [10, 22, 36, 52, 70];  // distances from its decade's point a label may sit at, nearest first
const LABEL_SIDES = [[1, -1], [1, 1], [-1, -1], [-1, 1], [1, 0], [-1, 0], [0, -1], [0, 1]];
const map = {
  data: null, key: null, view: { scale: 1, dx: 0, dy: 0 }, cells: null, points: new Map(), drag: null, hover: -1,
  loading: 0, images: new Map(), thumbs: [], redraw: false,
};
window.mapLabelBoxes = [];
window.mapPostersDrawn = 0;

function yearColour(year, low, high) {
  if (year < 0) return [190, 190, 190];
  const x = (high > low ? (year - low) / (high - low) : 0.5) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function progressText(p) {
  const how = p.total ? ` ${p.done.toLocaleString()} of ${p.total.toLocaleString()}` : "";
  return `Computing the map in the background (${p.seconds} s): ${p.stage}${how}… The rest of the page works meanwhile.`;
}

async function loadMap() {
  const p = new URLSearchParams({ collection: $("collection").value, vector: $("vector").value });
  const key = p.toString();
  if (map.key === key && map.data) { drawMap(); return; }
  const ticket = ++map.loading;  // a later load (another collection, the panel closed and opened) ends this one's polling
  const bar = $("map-progress"), started = performance.now();
  $("map-status").textContent = "Asking for the map (computed once per collection, then kept)…";
  try {
    let data = await api(`/api/map?${p}`);
    while (data.status === "computing") {
      if (ticket !== map.loading || !$("map-panel").open) return;  // the server goes on; a later open finds it further on
      $("map-status").textContent = progressText(data);
      bar.hidden = false; bar.max = data.total || 1; bar.value = data.done;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      data = await api(`/api/map?${p}`);
    }
    if (ticket !== map.loading) return;
    bar.hidden = true;
    map.data = data; map.key = key; map.collection = data.collection; map.points = new Map(); map.view = { scale: 1, dx: 0, dy: 0 };
    const dated = data.year.filter((y) => y >= 0);
    map.low = dated.reduce((a, b) => Math.min(a, b), Infinity); map.high = dated.reduce((a, b) => Math.max(a, b), -Infinity);
    map.colours = data.year.map((y) => yearColour(y, map.low, map.high));
    index();
    drawMap();
    const sample = data.total > data.n ? ` (a seeded sample of the ${data.total.toLocaleString()})` : "";
    const years = dated.length ? `, ${map.low}–${map.high}` : "";
    $("map-status").textContent = `${data.n} posters${sample}${years}` + (data.computed_seconds ? ` (computed in ${data.computed_seconds} s)` : "")
      + `; loaded in ${Math.round(performance.now() - started)} ms. Zoom in to see the posters.`;
  } catch (error) {
    if (ticket !== map.loading) return;
    bar.hidden = true;
    $("map-status").textContent = `No map: ${error.message}`;
  }
}

function screen(i) {
  const c = $("map-canvas"), size = Math.min(c.width, c.height), v = map.view;
  return [(map.data.x[i] / 10000 - 0.5) * size * v.scale + c.width / 2 + v.dx, (map.data.y[i] / 10000 - 0.5) * size * v.scale + c.height / 2 + v.dy];
}

function index() {
  // a 64 x 64 grid of the points in map coordinates: hover finds the nearest by its own and neighbouring cells
  map.cells = new Map();
  for (let i = 0; i < map.data.n; i++) {
    const key = `${Math.floor(map.data.x[i] / 157)},${Math.floor(map.data.y[i] / 157)}`;
    if (!map.cells.has(key)) map.cells.set(key, []);
    map.cells.get(key).push(i);
  }
}

function yearFilter() {
  // read once per redraw or hover, not once per poster: the map may hold 50,000
  const from = $("map-from").value, to = $("map-to").value, low = Number(from) || -Infinity, high = Number(to) || Infinity, any = !from && !to;
  return (i) => { const y = map.data.year[i]; return y >= 0 ? y >= low && y <= high : any; };
}

function scheduleDraw() {
  // thumbnails arrive one by one: one redraw per frame, however many arrived
  if (map.redraw) return;
  map.redraw = true;
  requestAnimationFrame(() => { map.redraw = false; drawMap(); });
}

function thumbnail(id) {
  // a poster's thumbnail, loaded once and kept (most recently drawn last; the oldest dropped past KEPT_IMAGES)
  let image = map.images.get(id);
  if (image) { map.images.delete(id); map.images.set(id, image); return image; }
  image = new Image();
  image.decoding = "async";
  image.onload = scheduleDraw;
  image.src = `/api/posters/${encodeURIComponent(map.collection)}/${encodeURIComponent(id)}?w=160`;
  map.images.set(id, image);
  while (map.images.size > KEPT_IMAGES) map.images.delete(map.images.keys().next().value);
  return image;
}

function onScreen() {
  // the shown posters whose point lies on the canvas
  const c = $("map-canvas"), shown = yearFilter(), visible = [];
  for (let i = 0; i < map.data.n; i++) {
    if (!shown(i)) continue;
    const [x, y] = screen(i);
    if (x >= 0 && y >= 0 && x < c.width && y < c.height) visible.push(i);
  }
  return visible;
}

function drawMap() {
  if (!map.data) return;
  const c = $("map-canvas"), context = c.getContext("2d"), image = context.createImageData(c.width, c.height), px = image.data;
  px.fill(255);
  const visible = map.view.scale >= THUMB_ZOOM ? onScreen() : [];
  const posters = visible.length > 0 && visible.length <= MAX_THUMBS ? new Set(visible) : new Set();
  // dots from 6 pixels (a few hundred posters) down to 2 (50,000), larger when zoomed in
  const dot = Math.max(2, Math.min(8, Math.round(24 / Math.sqrt(map.data.n / 100) * Math.sqrt(map.view.scale))));
  const shown = yearFilter(), dimmed = [225, 225, 225];
  for (const pass of [false, true]) {  // the dimmed first, so that no dimmed dot covers a shown one
    for (let i = 0; i < map.data.n; i++) {
      if (shown(i) !== pass || posters.has(i)) continue;
      const [x, y] = screen(i), colour = pass ? map.colours[i] : dimmed;
      for (let a = 0; a < dot; a++) for (let b = 0; b < dot; b++) {
        const sx = Math.round(x) + a, sy = Math.round(y) + b;
        if (sx < 0 || sy < 0 || sx >= c.width || sy >= c.height) continue;
        px.set(colour, 4 * (sy * c.width + sx));
      }
    }
  }
  context.putImageData(image, 0, 0);
  drawPosters(context, c, [...posters]);
  drawDecades(context, c);
  if (map.hover >= 0) {
    const thumb = map.thumbs.find((t) => t.i === map.hover);
    context.strokeStyle = "#e00"; context.lineWidth = 2; context.beginPath();
    if (thumb) context.rect(thumb.x - 1, thumb.y - 1, thumb.w + 2, thumb.h + 2);
    else { const [x, y] = screen(map.hover); context.arc(x + 1, y + 1, 6, 0, 2 * Math.PI); }
    context.stroke();
  }
}

function drawPosters(context, c, shown) {
  // each poster 2:3 at its point, framed in its year's colour; a grey card until its thumbnail arrives
  map.thumbs = [];
  let drawn = 0;
  if (shown.length) {
    const w = Math.round(Math.max(24, Math.min(96, 0.7 * Math.sqrt(c.width * c.height / shown.length)))), h = Math.round(w * 1.5);
    shown.sort((a, b) => screen(a)[1] - screen(b)[1]);  // lower on the map drawn later, over the ones above
    for (const i of shown) {
      const [x, y] = screen(i), left = Math.round(x - w / 2), top = Math.round(y - h / 2), image = thumbnail(map.data.ids[i]);
      context.fillStyle = `rgb(${map.colours[i].join(",")})`;
      context.fillRect(left - 2, top - 2, w + 4, h + 4);
      if (image.complete && image.naturalWidth) { context.drawImage(image, left, top, w, h); drawn++; }
      else { context.fillStyle = "#eee"; context.fillRect(left, top, w, h); }
      map.thumbs.push({ i, x: left - 2, y: top - 2, w: w + 4, h: h + 4 });
    }
  }
  window.mapPostersDrawn = drawn;
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function placeLabels(context, c, marks) {
  // greedy, in decade order: each label at the nearest free place around its point (rings of eight
  // sides), inside the canvas, over no other label and no other decade's point; none where none is free
  const boxes = [], points = marks.map((m) => ({ x: m.x - 6, y: m.y - 6, w: 12, h: 12 }));
  for (const m of marks) {
    if (m.x < 0 || m.y < 0 || m.x >= c.width || m.y >= c.height) continue;
    const text = `${m.decade}s`, w = Math.ceil(context.measureText(text).width) + 6, h = LABEL_HEIGHT;
    let placed = null;
    for (const r of LABEL_RINGS) {
      for (const [ax, ay] of LABEL_SIDES) {
        const box = { x: m.x + ax * r - (ax < 0 ? w : ax === 0 ? w / 2 : 0), y: m.y + ay * r - (ay < 0 ? h : ay === 0 ? h / 2 : 0), w, h };
        if (box.x < 0 || box.y < 0 || box.x + w > c.width || box.y + h > c.height) continue;
        if (boxes.some((b) => overlaps(b, box)) || points.some((p) => overlaps(p, box))) continue;
        placed = { decade: m.decade, text, ...box, far: r > LABEL_RINGS[0], px: m.x, py: m.y };
        break;
      }
      if (placed) break;
    }
    if (placed) boxes.push(placed);
  }
  return boxes;
}

function drawDecades(context, c) {
  const size = Math.min(c.width, c.height), v = map.view;
  const marks = map.data.decades.map((d) => ({ decade: d.decade, x: (d.x - 0.5) * size * v.scale + c.width / 2 + v.dx, y: (d.y - 0.5) * size * v.scale + c.height / 2 + v.dy }));
  context.strokeStyle = "#111"; context.lineWidth = 2; context.beginPath();
  marks.forEach((m, i) => { if (i) context.lineTo(m.x, m.y); else context.moveTo(m.x, m.y); });
  context.stroke();
  for (const m of marks) {
    context.fillStyle = "#fff"; context.beginPath(); context.arc(m.x, m.y, 5, 0, 2 * Math.PI); context.fill(); context.stroke();
  }
  context.font = "bold 13px system-ui, sans-serif";
  const boxes = placeLabels(context, c, marks);
  context.textBaseline = "middle";
  for (const b of boxes) {
    if (b.far) {  // a leader line from the point to the nearest edge of its moved label
      context.strokeStyle = "#555"; context.lineWidth = 1; context.beginPath(); context.moveTo(b.px, b.py);
      context.lineTo(Math.max(b.x, Math.min(b.px, b.x + b.w)), Math.max(b.y, Math.min(b.py, b.y + b.h))); context.stroke();
    }
    context.fillStyle = "rgba(255, 255, 255, 0.85)"; context.fillRect(b.x, b.y, b.w, b.h);
    context.fillStyle = "#111"; context.fillText(b.text, b.x + 3, b.y + b.h / 2 + 1);
  }
  context.textBaseline = "alphabetic";
  window.mapLabelBoxes = boxes.map(({ decade, x, y, w, h }) => ({ decade, x, y, w, h }));
}

function nearestPoint(event) {
  const c = $("map-canvas"), box = c.getBoundingClientRect();
  const sx = (event.clientX - box.left) * c.width / box.width, sy = (event.clientY - box.top) * c.height / box.height;
  const where = { x: event.clientX - box.left, y: event.clientY - box.top };
  for (let k = map.thumbs.length - 1; k >= 0; k--) {  // a poster drawn on top first
    const t = map.thumbs[k];
    if (sx >= t.x && sx < t.x + t.w && sy >= t.y && sy < t.y + t.h) return { index: t.i, ...where };
  }
  const size = Math.min(c.width, c.height), v = map.view;
  const mx = ((sx - c.width / 2 - v.dx) / (size * v.scale) + 0.5) * 10000, my = ((sy - c.height / 2 - v.dy) / (size * v.scale) + 0.5) * 10000;
  let best = -1, bestDistance = 64;  // within 8 canvas pixels
  const shown = yearFilter();
  const cx = Math.floor(mx / 157), cy = Math.floor(my / 157), reach = Math.max(1, Math.ceil(8 / (size * v.scale) * 10000 / 157));
  for (let a = -reach; a <= reach; a++) for (let b = -reach; b <= reach; b++) {
    for (const i of map.cells.get(`${cx + a},${cy + b}`) || []) {
      if (!shown(i)) continue;
      const [x, y] = screen(i), d = (x - sx) ** 2 + (y - sy) ** 2;
      if (d < bestDistance) { best = i; bestDistance = d; }
    }
  }
  return { index: best, ...where };
}

async function mapPoint(i) {
  if (!map.points.has(i)) {
    const p = new URLSearchParams({ collection: $("collection").value, vector: $("vector").value });
    map.points.set(i, api(`/api/map/${i}?${p}`));
  }
  return map.points.get(i);
}

async function hoverMap(event) {
  if (!map.data || map.drag) return;
  const found = nearestPoint(event), tip = $("map-tip");
  if (found.index !== map.hover) { map.hover = found.index; drawMap(); }
  if (found.index < 0) { tip.hidden = true; return; }
  const point = await mapPoint(found.index);
  if (map.hover !== found.index) return;
  tip.replaceChildren(el("img", { src: point.poster_url, alt: "" }), el("div", { text: label(point) }));
  tip.style.left = `${Math.min(found.x + 14, $("map-canvas").clientWidth - 140)}px`;
  tip.style.top = `${found.y + 14}px`;
  tip.hidden = false;
}

function zoomMap(factor, sx, sy) {
  // by `factor`, keeping the canvas point (sx, sy), measured from the canvas' centre, where it is
  const v = map.view, scale = Math.min(64, Math.max(0.5, v.scale * factor)), applied = scale / v.scale;
  v.dx = sx - (sx - v.dx) * applied; v.dy = sy - (sy - v.dy) * applied; v.scale = scale;
  drawMap();
}

function wireMap() {
  const c = $("map-canvas");
  c.addEventListener("wheel", (e) => {
    if (!map.data) return;
    e.preventDefault();
    const box = c.getBoundingClientRect();
    zoomMap(e.deltaY < 0 ? 1.25 : 0.8, (e.clientX - box.left) * c.width / box.width - c.width / 2, (e.clientY - box.top) * c.height / box.height - c.height / 2);
  }, { passive: false });
  c.addEventListener("keydown", (e) => {  // + and - zoom on the centre, the arrows pan
    if (!map.data) return;
    const pan = { ArrowLeft: [40, 0], ArrowRight: [-40, 0], ArrowUp: [0, 40], ArrowDown: [0, -40] }[e.key];
    if (e.key === "+" || e.key === "=") zoomMap(1.25, 0, 0);
    else if (e.key === "-") zoomMap(0.8, 0, 0);
    else if (pan) { map.view.dx += pan[0]; map.view.dy += pan[1]; drawMap(); }
    else return;
    e.preventDefault();
  });
  c.addEventListener("pointerdown", (e) => { map.drag = { x: e.clientX, y: e.clientY, moved: false }; c.setPointerCapture(e.pointerId); });
  c.addEventListener("pointermove", (e) => {
    if (!map.drag) { hoverMap(e); return; }
    const box = c.getBoundingClientRect(), k = c.width / box.width, dx = (e.clientX - map.drag.x) * k, dy = (e.clientY - map.drag.y) * k;
    if (Math.abs(dx) + Math.abs(dy) > 2) map.drag.moved = true;
    map.view.dx += dx; map.view.dy += dy; map.drag.x = e.clientX; map.drag.y = e.clientY;
    $("map-tip").hidden = true;
    drawMap();
  });
  c.addEventListener("pointerup", async (e) => {
    const drag = map.drag; map.drag = null;
    if (drag && drag.moved) return;
    const found = nearestPoint(e);
    if (found.index < 0) return;
    const point = await mapPoint(found.index);
    searchId(point.id);
    $("results-title").scrollIntoView({ behavior: "smooth" });
  });
  c.addEventListener("pointerleave", () => { $("map-tip").hidden = true; map.hover = -1; drawMap(); });
  for (const id of ["map-from", "map-to"]) $(id).addEventListener("input", drawMap);
  $("map-reset").addEventListener("click", () => { map.view = { scale: 1, dx: 0, dy: 0 }; drawMap(); });
  $("map-panel").addEventListener("toggle", () => { if ($("map-panel").open) loadMap(); });
}


wireMap();
$("collection").addEventListener("change", () => { if ($("map-panel").open) loadMap(); });
$("vector").addEventListener("change", () => { if ($("map-panel").open) loadMap(); });
