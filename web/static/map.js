// poster search page: the poster map (GET /api/map). Loaded after app.js, whose helpers ($, el, api,
// label, searchId) it uses.
"use strict";

// --- the poster map (GET /api/map): pan, zoom, hover, click, a year filter -------------------

const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
const map = { data: null, key: null, view: { scale: 1, dx: 0, dy: 0 }, cells: null, points: new Map(), drag: null, hover: -1 };

function yearColour(year, low, high) {
  if (year < 0) return [190, 190, 190];
  const x = (high > low ? (year - low) / (high - low) : 0.5) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

async function loadMap() {
  const p = new URLSearchParams({ collection: $("collection").value, vector: $("vector").value });
  const key = p.toString();
  if (map.key === key && map.data) { drawMap(); return; }
  $("map-status").textContent = "Computing the map (once per collection; t-SNE, about a minute for a few thousand posters)…";
  try {
    const started = performance.now();
    const data = await api(`/api/map?${p}`);
    map.data = data; map.key = key; map.points = new Map(); map.view = { scale: 1, dx: 0, dy: 0 };
    const dated = data.year.filter((y) => y >= 0);
    map.low = Math.min(...dated); map.high = Math.max(...dated);
    map.colours = data.year.map((y) => yearColour(y, map.low, map.high));
    index();
    drawMap();
    $("map-status").textContent = `${data.n} posters, ${map.low}–${map.high}` + (data.computed_seconds ? ` (computed in ${data.computed_seconds} s)` : "") + `; loaded in ${Math.round(performance.now() - started)} ms`;
  } catch (error) {
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
  // read once per redraw or hover, not once per poster: the map may hold 100,000
  const from = $("map-from").value, to = $("map-to").value, low = Number(from) || -Infinity, high = Number(to) || Infinity, any = !from && !to;
  return (i) => { const y = map.data.year[i]; return y >= 0 ? y >= low && y <= high : any; };
}

function drawMap() {
  if (!map.data) return;
  const c = $("map-canvas"), context = c.getContext("2d"), image = context.createImageData(c.width, c.height), px = image.data;
  px.fill(255);
  // dots from 6 pixels (a few hundred posters) down to 2 (100,000), larger when zoomed in
  const dot = Math.max(2, Math.min(8, Math.round(24 / Math.sqrt(map.data.n / 100) * Math.sqrt(map.view.scale))));
  const shown = yearFilter(), dimmed = [225, 225, 225];
  for (const pass of [false, true]) {  // the dimmed first, so that no dimmed dot covers a shown one
    for (let i = 0; i < map.data.n; i++) {
      if (shown(i) !== pass) continue;
      const [x, y] = screen(i), colour = pass ? map.colours[i] : dimmed;
      for (let a = 0; a < dot; a++) for (let b = 0; b < dot; b++) {
        const sx = Math.round(x) + a, sy = Math.round(y) + b;
        if (sx < 0 || sy < 0 || sx >= c.width || sy >= c.height) continue;
        px.set(colour, 4 * (sy * c.width + sx));
      }
    }
  }
  context.putImageData(image, 0, 0);
  const size = Math.min(c.width, c.height), v = map.view;
  const at = (d) => [(d.x - 0.5) * size * v.scale + c.width / 2 + v.dx, (d.y - 0.5) * size * v.scale + c.height / 2 + v.dy];
  context.strokeStyle = "#111"; context.lineWidth = 2; context.beginPath();
  map.data.decades.forEach((d, i) => { const [x, y] = at(d); if (i) context.lineTo(x, y); else context.moveTo(x, y); });
  context.stroke();
  context.font = "bold 13px system-ui, sans-serif";
  for (const d of map.data.decades) {
    const [x, y] = at(d);
    context.fillStyle = "#fff"; context.beginPath(); context.arc(x, y, 5, 0, 2 * Math.PI); context.fill(); context.stroke();
    context.fillStyle = "#111"; context.fillText(`${d.decade}s`, x + 7, y - 7);
  }
  if (map.hover >= 0) {
    const [x, y] = screen(map.hover);
    context.strokeStyle = "#e00"; context.beginPath(); context.arc(x + 1, y + 1, 6, 0, 2 * Math.PI); context.stroke();
  }
}

function nearestPoint(event) {
  const c = $("map-canvas"), box = c.getBoundingClientRect();
  const sx = (event.clientX - box.left) * c.width / box.width, sy = (event.clientY - box.top) * c.height / box.height;
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
  return { index: best, x: event.clientX - box.left, y: event.clientY - box.top };
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

function wireMap() {
  const c = $("map-canvas");
  c.addEventListener("wheel", (e) => {
    if (!map.data) return;
    e.preventDefault();
    const box = c.getBoundingClientRect(), sx = (e.clientX - box.left) * c.width / box.width - c.width / 2, sy = (e.clientY - box.top) * c.height / box.height - c.height / 2;
    const factor = e.deltaY < 0 ? 1.25 : 0.8, v = map.view;
    const scale = Math.min(64, Math.max(0.5, v.scale * factor)), applied = scale / v.scale;
    v.dx = sx - (sx - v.dx) * applied; v.dy = sy - (sy - v.dy) * applied; v.scale = scale;
    drawMap();
  }, { passive: false });
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
