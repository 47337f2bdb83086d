// poster search page: uses only the JSON API under /api (see /docs).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { collections: {}, last: null, votes: new Map(), file: null };

async function api(url, options = {}) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error((body && body.detail) || `HTTP ${response.status}`);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the page's CSP, unlike a style attribute
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function status(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

function searchParams() {
  const p = new URLSearchParams({ collection: $("collection").value, vector: $("vector").value, k: $("k").value || "12" });
  for (const [id, name] of [["year-min", "year_min"], ["year-max", "year_max"], ["genre", "genre"]]) {
    if ($(id).value) p.set(name, $(id).value);
  }
  return p;
}

// --- collections and options -------------------------------------------------------------

async function loadCollections() {
  const data = await api("/api/collections");
  const select = $("collection");
  select.replaceChildren();
  for (const c of data.collections) {
    state.collections[c.name] = c;
    select.append(el("option", { value: c.name, text: `${c.name} (${c.count})` }));
  }
  select.value = data.default in state.collections ? data.default : (data.collections[0] || {}).name;
  showCollection();
}

function showCollection() {
  const c = state.collections[$("collection").value];
  if (!c) { $("collection-info").textContent = "This store has no poster collection yet: run `python cli.py ingest`."; return; }
  const vector = $("vector");
  const previous = vector.value;
  vector.replaceChildren(...Object.keys(c.vectors).map((v) => el("option", { value: v, text: v })));
  if (previous in c.vectors) vector.value = previous;
  const genre = $("genre");
  const chosen = genre.value;
  genre.replaceChildren(el("option", { value: "", text: "any" }), ...c.genres.map((g) => el("option", { value: g, text: g })));
  genre.disabled = c.genres.length === 0;
  if (c.genres.includes(chosen)) genre.value = chosen;
  const years = c.years ? `, ${c.years[0]}–${c.years[1]}` : "";
  const spec = c.vectors.vgg16 || {};
  $("collection-info").textContent = `${c.count} posters${years}; embedding ${spec.model}/${spec.layer}, weights ${spec.weights}.`;
}

// --- searches ----------------------------------------------------------------------------

async function run(kind, heading, request) {
  state.last = { kind, heading, request };
  status("Searching…");
  $("grid").setAttribute("aria-busy", "true");
  try {
    const started = performance.now();
    const data = await request();
    render(data.results);
    $("results-title").textContent = heading(data);
    status(`${data.results.length} results in ${Math.round(performance.now() - started)} ms` + (data.results.length ? "" : " (try wider filters)"));
  } catch (error) {
    status(error.message, true);
  } finally {
    $("grid").removeAttribute("aria-busy");
  }
}

function searchFile(file) {
  state.file = file;
  const preview = $("query-preview");
  preview.src = URL.createObjectURL(file);
  preview.alt = `Your poster: ${file.name}`;
  preview.hidden = false;
  $("drop-help").textContent = `${file.name} — drop or choose another`;
  searchUploaded();
  predictYear(file);
}

function searchUploaded() {
  const file = state.file;
  run("image", () => `Posters like ${file.name}`, () => {
    const form = new FormData();
    form.append("file", file);
    return api(`/api/search/image?${searchParams()}`, { method: "POST", body: form });
  });
}

async function predictYear(file) {
  const panel = $("prediction");
  panel.hidden = false;
  panel.textContent = "Predicting the year…";
  try {
    const form = new FormData();
    form.append("file", file);
    const p = await api("/api/predict-year", { method: "POST", body: form });
    panel.replaceChildren(
      "Predicted release year: ", el("strong", { text: Math.round(p.year) }),
      ` — ${Math.round(p.coverage * 100)} % range ${Math.round(p.low)}–${Math.round(p.high)} (calibrated on held-out posters; test mean error ${p.test_mae.toFixed(1)} years, ${p.vector} model)`,
    );
  } catch (error) {
    panel.textContent = `No year prediction: ${error.message}`;
  }
}

function searchId(id, label) {
  run("id", (d) => `More like ${d.query.title}${d.query.year ? ` (${d.query.year})` : ""}`, () => api(`/api/search/id/${encodeURIComponent(id)}?${searchParams()}`));
}

function searchTitle(title, year) {
  // Requests read the options when they run, so changing a filter re-runs them with it.
  run("title", (d) => `Posters like ${d.query.title}${d.query.year ? ` (${d.query.year})` : ""}`, () => {
    const p = searchParams();
    p.set("title", title);
    if (year) p.set("year", year);
    return api(`/api/search/title?${p}`);
  });
}

function recommend() {
  const positive = [], negative = [];
  for (const [id, vote] of state.votes) (vote === "like" ? positive : negative).push(id);
  run("recommend", () => `Refined: ${positive.length} liked, ${negative.length} disliked`, () => {
    const p = searchParams();
    const body = { positive, negative, collection: p.get("collection"), vector: p.get("vector"), k: Number(p.get("k")) };
    for (const key of ["year_min", "year_max"]) if (p.get(key)) body[key] = Number(p.get(key));
    if (p.get("genre")) body.genre = p.get("genre");
    return api("/api/recommend", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  });
}

function rerun() {
  const last = state.last;
  if (!last) return;
  if (last.kind === "image") searchUploaded();
  else run(last.kind, last.heading, last.request);
}

// --- results -----------------------------------------------------------------------------

function render(results) {
  const grid = $("grid");
  grid.replaceChildren(...results.map(card));
}

function card(r) {
  const label = `${r.title}${r.year ? ` (${r.year})` : ""}`;
  const item = el("li", { class: "card", "data-id": r.id });
  const open = el("button", { class: "open", type: "button", title: `More like ${label}`, "aria-label": `More like ${label}`, onclick: () => searchId(r.id, label) },
    el("img", { src: r.poster_url, alt: `Poster of ${label}`, loading: "lazy" }));
  const meta = el("div", { class: "meta" },
    el("span", { class: "t", text: r.title }),
    el("span", { text: r.year ?? "year unknown" }), " · ",
    el("span", { class: "score", title: "cosine similarity", text: `sim ${r.score.toFixed(3)}` }));
  const like = el("button", { class: "like", type: "button", "aria-pressed": "false", "aria-label": `Like ${label}`, text: "Like" });
  const dislike = el("button", { class: "dislike", type: "button", "aria-pressed": "false", "aria-label": `Dislike ${label}`, text: "Dislike" });
  like.addEventListener("click", () => vote(r.id, "like", item));
  dislike.addEventListener("click", () => vote(r.id, "dislike", item));
  item.append(open, meta, el("div", { class: "votes" }, like, dislike));
  paintVote(item, state.votes.get(r.id));
  return item;
}

function vote(id, kind, item) {
  if (state.votes.get(id) === kind) state.votes.delete(id);
  else state.votes.set(id, kind);
  paintVote(item, state.votes.get(id));
  updateVotes();
}

function paintVote(item, kind) {
  item.classList.toggle("liked", kind === "like");
  item.classList.toggle("disliked", kind === "dislike");
  item.querySelector(".like").setAttribute("aria-pressed", String(kind === "like"));
  item.querySelector(".dislike").setAttribute("aria-pressed", String(kind === "dislike"));
}

function updateVotes() {
  const values = [...state.votes.values()];
  const liked = values.filter((v) => v === "like").length;
  $("votes").textContent = `${liked} liked, ${values.length - liked} disliked:`;
  $("recommend").disabled = liked === 0;
  $("clear-votes").disabled = values.length === 0;
}

// --- era figures as SVG bar charts ----------------------------------------------------------

function barChart(title, groups, series, unit) {
  // groups: [{label, values: [..one per series..]}]; series: [{name, color}]
  const width = 560, height = 240, left = 40, bottom = 30, top = 10;
  const highest = Math.max(1, ...groups.flatMap((g) => g.values.filter((v) => v != null)));
  const max = Math.ceil(highest / 10) * 10;  // round axis: ticks at whole multiples
  const slot = (width - left) / Math.max(1, groups.length);
  const bar = Math.max(2, (slot - 6) / series.length);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    svg.append(node);
    return node;
  };
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  for (let t = 0; t <= 5; t++) {
    const v = (max * t) / 5;
    add("line", { x1: left, x2: width, y1: y(v), y2: y(v), stroke: "#ddd" });
    add("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#666" }, Math.round(v));
  }
  groups.forEach((g, i) => {
    g.values.forEach((v, s) => {
      if (v == null) return;
      const rect = add("rect", { x: left + i * slot + 3 + s * bar, y: y(v), width: bar - 1, height: y(0) - y(v), fill: series[s].color });
      const tip = document.createElementNS("http://www.w3.org/2000/svg", "title");
      tip.textContent = `${g.label} ${series[s].name}: ${v.toFixed(1)} ${unit}`;
      rect.append(tip);
    });
    add("text", { x: left + i * slot + slot / 2, y: height - 10, "text-anchor": "middle", "font-size": 11 }, g.label);
  });
  const legend = el("div", { class: "legend" }, ...series.map((s) => el("span", {}, el("i", { style: `background:${s.color}` }), s.name)));
  return el("div", { class: "chart" }, el("h3", { text: title }), svg, legend);
}

async function loadEra() {
  const body = $("era-body");
  body.replaceChildren(el("p", { class: "muted", text: "Computing the era figures…" }));
  try {
    const p = new URLSearchParams({ collection: $("collection").value, vector: $("vector").value, k: "3" });
    const data = await api(`/api/era?${p}`);
    const c = data.coherence;
    const charts = el("div", { class: "charts" });
    charts.append(barChart(
      `Mean |year difference| to the ${c.k} nearest posters vs random pairs, by decade (${c.posters} posters, ${data.vector})`,
      c.by_decade.map((d) => ({ label: `${d.decade}s`, values: [d.neighbour_mean, d.random_mean] })),
      [{ name: "nearest neighbours", color: "#2a5db0" }, { name: "random pairs", color: "#bbb" }], "years"));
    const model = data.year_model;
    if (model) {
      const names = Object.keys(model.test);
      const decades = [...new Set(names.flatMap((n) => Object.keys(model.test[n].mae_by_decade || {})))].sort();
      const colors = ["#f0a500", "#bbb", "#1f7a3a", "#7a4fb0", "#b0302a"];
      charts.append(barChart(
        `Year model: mean absolute error by decade (${model.n_test} held-out posters, ${model.vector})`,
        decades.map((d) => ({ label: `${d}s`, values: names.map((n) => (model.test[n].mae_by_decade || {})[d] ?? null) })),
        names.map((n, i) => ({ name: `${n} (MAE ${model.test[n].mae.toFixed(1)})`, color: colors[i % colors.length] })), "years"));
    }
    body.replaceChildren(
      el("p", { text: `Nearest neighbours are ${c.neighbour_mean.toFixed(1)} years apart on average (median ${c.neighbour_median.toFixed(1)}), random pairs ${c.random_mean.toFixed(1)} (median ${c.random_median.toFixed(1)}).` }),
      charts,
      model ? "" : el("p", { class: "muted", text: "No year model loaded (train one with `python cli.py train-year`, serve with --model-dir)." }));
  } catch (error) {
    body.replaceChildren(el("p", { class: "error", text: `No era figures: ${error.message}` }));
  }
}

// --- wiring ------------------------------------------------------------------------------

function wire() {
  const drop = $("drop"), input = $("file");
  drop.addEventListener("click", (e) => { if (e.target !== input) input.click(); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { if (input.files[0]) searchFile(input.files[0]); });
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer.files[0];
    if (file) searchFile(file);
  });
  document.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData || {}).files || []].find((f) => f.type.startsWith("image/"));
    if (file) searchFile(file);
  });
  $("title-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const title = $("title").value.trim();
    if (title) searchTitle(title, $("title-year").value);
  });
  $("collection").addEventListener("change", () => { state.votes.clear(); updateVotes(); showCollection(); rerun(); });
  for (const id of ["vector", "k", "year-min", "year-max", "genre"]) $(id).addEventListener("change", rerun);
  $("recommend").addEventListener("click", recommend);
  $("clear-votes").addEventListener("click", () => { state.votes.clear(); updateVotes(); for (const item of $("grid").children) paintVote(item, undefined); });
  $("era-panel").addEventListener("toggle", () => { if ($("era-panel").open) loadEra(); });
}

wire();
loadCollections().catch((error) => status(`Cannot load the collections: ${error.message}`, true));
