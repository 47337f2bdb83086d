// poster search page: uses only the JSON API under /api (described at /openapi.json).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  collections: new Map(), default: null, current: null, votes: new Map(), maps: new Map(), query: null,
  uploads: new Map(), uploadCount: 0, landingKey: null, browse: null, facets: new Map(),
};
const DEFAULTS = { vector: "vgg16", k: "12" };
const BROWSE_SORTS = ["title", "year", "added"], BROWSE_STATUS = ["catalog", "predicted", "none"];
const NARROW = window.matchMedia("(max-width: 640px)");  // a phone: the options folded, results scrolled into view

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
    if (value == null) continue;
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
  // a Map, never a plain object: names come from the store and from shared links ("toString", "__proto__")
  state.collections = new Map(data.collections.map((c) => [c.name, c]));
  for (const c of data.collections) select.append(el("option", { value: c.name, text: `${c.name} (${c.count})` }));
  state.default = state.collections.has(data.default) ? data.default : (data.collections[0] || {}).name;
  select.value = state.default;
  showCollection();
}

function showCollection(note = "") {
  const c = state.collections.get($("collection").value);
  if (!c) { $("collection-info").textContent = "This store has no poster collection yet: run `python cli.py ingest`."; return; }
  const vector = $("vector");
  const previous = vector.value;
  vector.replaceChildren(...Object.keys(c.vectors).map((v) => el("option", { value: v, text: v })));
  if (Object.hasOwn(c.vectors, previous)) vector.value = previous;
  const genre = $("genre");
  const chosen = genre.value;
  genre.replaceChildren(el("option", { value: "", text: "any" }), ...c.genres.map((g) => el("option", { value: g, text: g })));
  genre.disabled = c.genres.length === 0;
  if (c.genres.includes(chosen)) genre.value = chosen;
  const years = c.years ? `, dated ${c.years[0]}–${c.years[1]}` : "";
  $("collection-info").textContent = `${note}${c.count} posters${years}.`;
  showTechnical(c);
  showOptionsSummary();
}

function showOptionsSummary() {
  // the folded options (on a phone) say what is set, so a narrowed search never looks like the whole collection
  const set = [];
  const collection = $("collection").value;
  if (collection && collection !== state.default) set.push(collection);
  if (document.body.dataset.view !== "browse") {
    if ($("vector").value && $("vector").value !== DEFAULTS.vector) set.push($("vector").value);
    if ($("k").value && $("k").value !== DEFAULTS.k) set.push(`${$("k").value} results`);
    const from = $("year-min").value, to = $("year-max").value;
    if (from || to) set.push(`${from || "…"}–${to || "…"}`);
    if ($("genre").value) set.push($("genre").value);
  }
  $("options-summary").textContent = set.length ? `· ${set.join(", ")}` : "";
  const link = new URLSearchParams({ browse: "1" });
  if (collection && collection !== state.default) link.set("collection", collection);
  $("browse-link").href = `/?${link}`;
}

function showTechnical(c) {
  // what identifies the embedding (the contract between ingest, store and queries): for the curious, not the first screen
  const rows = [];
  for (const [name, spec] of Object.entries(c.vectors)) {
    rows.push(el("dt", { text: `${c.name}: stored vector ${name}` }),
      el("dd", { text: Object.entries(spec).filter(([, v]) => v !== "").map(([k, v]) => `${k} ${v}`).join(" · ") }));
  }
  if (state.yearModel) rows.push(el("dt", { text: "Year model" }), el("dd", { text: state.yearModel }));
  $("tech-body").replaceChildren(...rows);
}

// --- every search is a view, and every view but an upload is a URL ----------------------------
// A view: {kind: "landing"} | {kind: "browse", sort, order, decade, genre, status} | {kind: "title",
// title, year} | {kind: "id", id} | {kind: "recommend", like: [ids], dislike: [ids], query?: id,
// upload?: n, token?} | {kind: "image", upload: n}. The options (collection, vector, k, year range,
// genre) go into the URL beside a search; browsing has its own sort and filters instead. An
// uploaded image cannot be a URL (nor a refinement that starts from one): its history entry names it
// by a number this page holds while it stays open; reloaded or pasted, the URL shows the
// collection instead, and the page says so.

function browseView(o = {}) {
  const sort = BROWSE_SORTS.includes(o.sort) ? o.sort : "title";
  return {
    kind: "browse", sort, order: o.order === "desc" ? "desc" : "asc",
    decade: /^-?\d{1,4}$/.test(o.decade || "") ? String(Number(o.decade)) : "",
    genre: (o.genre || "").slice(0, 200), status: BROWSE_STATUS.includes(o.status) ? o.status : "",
  };
}

function urlOf(view) {
  const p = new URLSearchParams();
  const collection = $("collection").value;
  if (view.kind === "browse") {
    p.set("browse", "1");
    if (view.sort !== "title") p.set("sort", view.sort);
    if (view.order !== "asc") p.set("order", view.order);
    for (const key of ["decade", "genre", "status"]) if (view[key]) p.set(key, view[key]);
    if (collection && collection !== state.default) p.set("collection", collection);
    return `/?${p}`;
  }
  if (view.kind === "title") { p.set("q", view.title); if (view.year) p.set("year", view.year); }
  else if (view.kind === "id") p.set("id", view.id);
  else if (view.kind === "recommend" && view.upload == null) { p.set("like", view.like.join(",")); if (view.dislike.length) p.set("dislike", view.dislike.join(",")); }
  if (collection && collection !== state.default) p.set("collection", collection);
  if ($("vector").value && $("vector").value !== DEFAULTS.vector) p.set("vector", $("vector").value);
  if ($("k").value && $("k").value !== DEFAULTS.k) p.set("k", $("k").value);
  for (const [id, name] of [["year-min", "year_min"], ["year-max", "year_max"], ["genre", "genre"]]) if ($(id).value) p.set(name, $(id).value);
  const query = p.toString();
  return query ? `/?${query}` : "/";
}

function viewFromUrl(historyState) {
  // the options first (a collection changes which vectors and genres there are), then the search
  const p = new URLSearchParams(location.search);
  // a collection this store does not hold (a link from another store, a typo): the default one, and the page says so
  const collection = p.get("collection");
  const known = !collection || state.collections.has(collection);
  $("collection").value = collection && known ? collection : state.default;
  const asked = collection && collection.length > 80 ? `${collection.slice(0, 79)}…` : collection;
  showCollection(known || !state.default ? "" : `This store has no collection “${asked}”: showing “${state.default}”. `);
  $("vector").value = p.get("vector") || DEFAULTS.vector;
  if (!$("vector").value) $("vector").selectedIndex = 0;
  $("k").value = p.get("k") || DEFAULTS.k;
  $("year-min").value = p.get("year_min") || "";
  $("year-max").value = p.get("year_max") || "";
  $("title").value = p.get("q") || "";
  $("title-year").value = p.get("q") ? p.get("year") || "" : "";
  if (p.has("browse")) {
    // browsing's genre is its own filter, not the searches' option
    const view = browseView(Object.fromEntries(["sort", "order", "decade", "genre", "status"].map((k) => [k, p.get(k)])));
    if (historyState && historyState.kind === "browse" && historyState.shown) view.restore = { shown: historyState.shown, scrollY: historyState.scrollY || 0 };
    return view;
  }
  $("genre").value = p.get("genre") || "";
  if (historyState && (historyState.kind === "image" || (historyState.kind === "recommend" && historyState.upload != null))) return historyState;
  if (p.get("q")) return { kind: "title", title: p.get("q"), year: p.get("year") || "" };
  if (p.get("id")) return { kind: "id", id: p.get("id") };
  if (p.get("like")) return { kind: "recommend", like: p.get("like").split(",").filter(Boolean), dislike: (p.get("dislike") || "").split(",").filter(Boolean) };
  return { kind: "landing" };
}

function go(view, how = "push") {
  // how: "push" a new search, "replace" the same search with other options, "none" from the URL (back, forward), "load" the page's address
  if (how === "push" && state.current && state.current.kind === "browse" && state.browse) {
    // leaving the grid: remember how far it was scrolled, for back
    history.replaceState({ ...state.current, restore: undefined, shown: $("browse-grid").children.length, scrollY: Math.round(window.scrollY) }, "", location.href);
  }
  state.current = view;
  const { restore, ...kept } = view;
  if (how === "push") history.pushState(kept, "", urlOf(view));
  else if (how === "replace" || how === "load") history.replaceState(kept, "", urlOf(view));
  show(view, how !== "replace");
}

function show(view, moved = true) {
  // moved: a new search or a step through history (on a phone its results are scrolled into view),
  // not the same search with another option
  const held = view.upload == null || state.uploads.has(view.upload);
  const landing = view.kind === "landing" || ((view.kind === "image" || view.kind === "recommend") && !held);
  const browsing = view.kind === "browse";
  document.body.dataset.view = landing ? "landing" : view.kind;
  $("landing").hidden = !landing;
  $("browse").hidden = !browsing;
  $("results").hidden = landing || browsing;
  $("close-matches").hidden = true;
  closeSuggestions();
  showOptionsSummary();
  if (view.kind !== "image") resetDrop();
  if (view.kind !== "title") { $("title").value = ""; $("title-year").value = ""; }  // the title field names only the search shown
  if (view.kind !== "image") $("prediction").hidden = true;
  if (landing) {
    loadLanding(view.upload != null ? "That uploaded poster is no longer held by this page (an upload is not part of the address): drop it again to search with it." : "");
    return;
  }
  if (browsing) { loadBrowse(view, moved); return; }
  if (view.kind === "title") runSearch(view, moved, (d) => `Posters like ${label(d.query)}`, () => {
    const p = searchParams();
    p.set("title", view.title);
    if (view.year) p.set("year", view.year);
    return api(`/api/search/title?${p}`);
  });
  else if (view.kind === "id") runSearch(view, moved, (d) => `More like ${label(d.query)}`, () => api(`/api/search/id/${encodeURIComponent(view.id)}?${searchParams()}`));
  else if (view.kind === "recommend") {
    state.votes = new Map([...view.like.map((id) => [id, "like"]), ...view.dislike.map((id) => [id, "dislike"])]);
    updateVotes();
    const upload = view.upload != null ? state.uploads.get(view.upload) : null;
    const marks = `${view.like.length} liked, ${view.dislike.length} disliked`;
    runSearch(view, moved, () => (upload ? `Refined: ${upload.file.name}, ${marks}` : `Refined: ${marks}`), () => {
      const p = searchParams();
      const body = { positive: view.like, negative: view.dislike, collection: p.get("collection"), vector: p.get("vector"), k: Number(p.get("k")) };
      if (view.token) body.query_token = view.token;  // the uploaded query stays a positive example
      for (const key of ["year_min", "year_max"]) if (p.get(key)) body[key] = Number(p.get(key));
      if (p.get("genre")) body.genre = p.get("genre");
      return api("/api/recommend", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    });
  } else if (view.kind === "image") {
    const upload = state.uploads.get(view.upload);
    showDrop(upload);
    const searched = runSearch(view, moved, () => `Posters like ${upload.file.name}`, () => {
      const form = new FormData();
      form.append("file", upload.file);
      return api(`/api/search/image?${searchParams()}`, { method: "POST", body: form });
    });
    predictYear(upload.file, view, searched);
  }
}

function failedHeading(view) {
  if (view.kind === "title") return `“${view.title}”${view.year ? ` (${view.year})` : ""}`;
  if (view.kind === "image") return state.uploads.has(view.upload) ? state.uploads.get(view.upload).file.name : "Your poster";
  return view.kind === "recommend" ? "Refined" : "More like this";
}

async function runSearch(view, moved, heading, request) {
  // true when it found its results (an empty list included), false on an error
  status("Searching…");
  $("grid").setAttribute("aria-busy", "true");
  try {
    const started = performance.now();
    const data = await request();
    if (state.current !== view) return false;  // another search since
    state.maps = new Map();
    $("results").classList.remove("failed");
    render(data.results);
    showQuery(data.query, view);
    $("results-title").textContent = heading(data);
    loadMaps(data);
    status(`${data.results.length} results in ${Math.round(performance.now() - started)} ms` + (data.results.length ? "" : " (try wider filters)"));
    if (moved) intoView($("results"));
    return true;
  } catch (error) {
    if (state.current !== view) return false;
    render([]);
    $("results").classList.add("failed");  // nothing to mark or refine
    $("query-card").hidden = true;
    state.query = null;
    updateVotes();
    $("results-title").textContent = failedHeading(view);
    status(error.message, true);
    if (view.kind === "title") showCloseMatches(view);
    if (moved) intoView($("results"));
    return false;
  } finally {
    $("grid").removeAttribute("aria-busy");
  }
}

function intoView(node) {
  // on a phone the search box and the options fill the first screen: bring what was asked for up
  if (NARROW.matches && !node.hidden) node.scrollIntoView({ block: "start" });
}

function yearText(r) {
  // a catalog year as it is; a predicted one always marked as predicted, never in its place
  if (r.year != null) return String(r.year);
  if (r.predicted_year != null) return `c. ${r.predicted_year}, predicted`;
  return "year unknown";
}

function yearTitle(r) {
  if (r.year != null || r.predicted_year == null) return r.year != null ? "release year, from the catalog" : "";
  const range = r.predicted_low != null && r.predicted_high != null ? `, 80 % range ${r.predicted_low}–${r.predicted_high}` : "";
  return `No catalog year: predicted from the poster${range}${r.predicted_by ? ` (${r.predicted_by})` : ""}`;
}

function yearSpan(r) {
  return el("span", { class: r.year == null && r.predicted_year != null ? "y predicted" : "y", title: yearTitle(r), text: yearText(r) });
}

function label(r) {
  return r.year == null && r.predicted_year == null ? r.title : `${r.title} (${yearText(r)})`;
}

function titleSpan(r) {
  // two lines at most on a card (CSS); the whole title on hover and while the card has focus
  return el("span", { class: "t", title: r.title, text: r.title });
}

function thumbOf(r) {
  return r.thumb_url || r.poster_url;
}

function showQuery(query, view) {
  // the query poster beside its results: a stored poster (title, id), the upload, or what a refinement started from
  const card = $("query-card"), image = $("query-image");
  card.hidden = false;
  $("query-note").textContent = "";
  $("query-examples").replaceChildren();
  if (query.kind === "image") {
    image.src = state.uploads.get(view.upload).url;
    image.alt = `Your poster: ${query.name}`;
    image.hidden = false;
    $("query-title").textContent = query.name;
    $("query-year").replaceChildren("Uploaded");
    $("query-note").textContent = "An upload is not part of the page's address: a reload or a shared link shows the collection.";
  } else if (query.kind === "recommend") {
    // what the refinement started from: the query poster (an upload, or the stored poster searched by), then the marked ones
    image.hidden = true;
    const collection = encodeURIComponent($("collection").value);
    const thumb = (id, kind) => el("img", {
      class: view.query === id ? `${kind} query` : kind, src: `/api/posters/${collection}/${encodeURIComponent(id)}?w=240`,
      alt: view.query === id ? "The query poster" : kind === "liked" ? "A liked poster" : "A disliked poster",
      title: view.query === id ? `the query${view.queryName ? `: ${view.queryName}` : ""}` : kind,
    });
    const upload = view.upload != null ? state.uploads.get(view.upload) : null;
    const first = upload ? [el("img", { class: "liked query", src: upload.url, alt: `The query: your poster ${upload.file.name}`, title: `the query: ${upload.file.name}` })] : [];
    $("query-examples").replaceChildren(...first, ...view.like.slice(0, 6).map((id) => thumb(id, "liked")), ...view.dislike.slice(0, 6).map((id) => thumb(id, "disliked")));
    const marks = `${view.like.length} liked, ${view.dislike.length} disliked`;
    $("query-title").textContent = upload ? `${upload.file.name} and ${marks}` : marks;
    $("query-year").replaceChildren(upload || view.query ? "Like the query and the liked posters, unlike the disliked ones" : "Like the liked posters, unlike the disliked ones");
    if (upload) $("query-note").textContent = "A refinement of an upload is not part of the page's address: a reload or a shared link shows the collection.";
  } else {
    image.src = query.poster_url;
    image.alt = `Poster of ${label(query)}`;
    image.hidden = false;
    $("query-title").textContent = query.title;
    $("query-year").replaceChildren(yearSpan(query));
  }
}

function resetDrop() {
  $("query-preview").hidden = true;
  $("query-preview").removeAttribute("src");
  $("drop-help").textContent = NARROW.matches ? "Search by a poster image: tap here" : "Drop a poster image here, or press Enter to choose one";
}

function showDrop(upload) {
  // the preview shows only once the browser has drawn it: a file that is not an image is never a broken-image icon
  const preview = $("query-preview");
  preview.hidden = true;
  preview.onload = () => { if (preview.src === upload.url) preview.hidden = false; };
  preview.onerror = () => { preview.hidden = true; };
  preview.src = upload.url;
  preview.alt = `Your poster: ${upload.file.name}`;
  $("drop-help").textContent = `${upload.file.name} — ${NARROW.matches ? "tap to choose another" : "drop or choose another"}`;
}

function searchFile(file) {
  // kept in this page only (the last 8): back and forward return to it; a reload cannot
  state.uploadCount += 1;
  state.uploads.set(state.uploadCount, { file, url: URL.createObjectURL(file) });
  for (const n of [...state.uploads.keys()]) if (state.uploads.size > 8) { URL.revokeObjectURL(state.uploads.get(n).url); state.uploads.delete(n); }
  go({ kind: "image", upload: state.uploadCount });
}

async function predictYear(file, view, searched) {
  // asked beside the search, shown after it: a file the search refused (not an image, too large)
  // is said once, by the search, never again by the year prediction
  const panel = $("prediction");
  panel.hidden = true;
  const form = new FormData();
  form.append("file", file);
  const asked = api("/api/predict-year", { method: "POST", body: form }).then((p) => ({ p }), (error) => ({ error }));
  if (!(await searched) || state.current !== view) return;
  panel.hidden = false;
  panel.textContent = "Predicting the year…";
  const { p, error } = await asked;
  if (state.current !== view) return;
  if (error) { panel.textContent = `No year prediction: ${error.message}`; return; }
  {
    panel.replaceChildren(
      "Predicted release year: ", el("strong", { text: Math.round(p.year) }),
      ` — ${Math.round(p.coverage * 100)} % range ${Math.round(p.low)}–${Math.round(p.high)} (calibrated on ${p.shipped ? "posters from a source it never saw" : "held-out posters"}; test mean error ${p.test_mae.toFixed(1)} years)`,
    );
    state.yearModel = `${p.shipped ? "the model shipped with poster search: " : ""}reads ${p.vector}, trained on ${p.trained_on}; held-out mean error ${p.test_mae.toFixed(2)} years, ${Math.round(p.coverage * 100)} % ranges`;
    const c = state.collections.get($("collection").value);
    if (c) showTechnical(c);
  }
}

function searchId(id) {
  go({ kind: "id", id });
}

function searchTitle(title, year) {
  go({ kind: "title", title, year: year || "" });
}

function refineQuery() {
  // the query a refinement keeps as a positive example: the stored poster searched by (title, more
  // like this), or the upload (by its token); a refinement of a refinement keeps the same one
  const current = state.current || {};
  if ((current.kind === "id" || current.kind === "title") && state.query && state.query.id != null) return { query: String(state.query.id), queryName: label(state.query) };
  if (current.kind === "image" && state.query && state.query.token) return { upload: current.upload, token: state.query.token };
  if (current.kind === "recommend") {
    if (current.upload != null) return { upload: current.upload, token: current.token };
    if (current.query != null) return { query: current.query, queryName: current.queryName };
  }
  return {};
}

function recommend() {
  const kept = refineQuery();
  const like = kept.query != null ? [kept.query] : [], dislike = [];
  for (const [id, vote] of state.votes) if (id !== kept.query) (vote === "like" ? like : dislike).push(id);
  go({ kind: "recommend", like, dislike, ...kept });
}

function rerun() {
  // an option changed: the same search (or the collection) again, with it, under the same history entry
  if (state.current) go(state.current, "replace");
}

// --- before any search: the collection, each decade's most typical posters ------------------

async function loadLanding(note) {
  const p = new URLSearchParams({ vector: $("vector").value || DEFAULTS.vector });
  const name = $("collection").value;
  if (!name) return;
  const key = `${name}?${p}`;
  if (state.landingKey === key) { if (note) $("landing-info").textContent = note; return; }
  state.landingKey = key;
  $("landing-info").textContent = "Loading the collection…";
  try {
    const data = await api(`/api/collections/${encodeURIComponent(name)}/overview?${p}`);
    if (state.landingKey !== key) return;
    const decades = data.groups.filter((g) => g.decade != null);
    const explained = decades.length
      ? `Each decade's most typical posters (nearest its average look, by the ${data.vector} vector): pick one for more like it.`
      : "Pick a poster for more like it.";
    const undated = data.undated ? ` ${data.undated} posters have no catalog year: a varied sample of them is last, each with its predicted year when there is one.` : "";
    $("landing-info").textContent = (note ? `${note} ` : "") + `${explained}${undated}`;
    $("landing-groups").replaceChildren(...data.groups.map((g) => el("section", { class: "start-row", "aria-label": g.decade != null ? `The ${g.label}` : "Undated posters" },
      el("div", { class: "start-label" }, el("strong", { text: g.decade != null ? g.label : "Undated" }), el("span", { class: "muted", text: `${g.count} poster${g.count === 1 ? "" : "s"}` })),
      el("ol", { class: "starts" }, ...g.posters.map(startCard)))));
  } catch (error) {
    state.landingKey = null;
    $("landing-info").textContent = `Cannot show the collection: ${error.message}`;
    $("landing-groups").replaceChildren();
  }
}

function startCard(r) {
  const name = label(r);
  return el("li", { class: "start", "data-id": r.id },
    // the poster is a mouse target; the keyboard's (and a screen reader's) is the button below, once
    el("button", { class: "open", type: "button", title: `More like ${name}`, tabindex: "-1", "aria-hidden": "true", onclick: () => searchId(r.id) },
      el("img", { src: thumbOf(r), alt: "", loading: "lazy" })),
    el("div", { class: "meta" }, titleSpan(r), yearSpan(r)),
    el("button", { class: "more", type: "button", "aria-label": `More like ${name}`, onclick: () => searchId(r.id), text: "More like this" }));
}

// --- results -----------------------------------------------------------------------------

function render(results) {
  const grid = $("grid");
  grid.replaceChildren(...results.map(card));
}

function card(r) {
  const name = label(r);
  const item = el("li", { class: "card", "data-id": r.id });
  const open = el("button", { class: "open", type: "button", title: `More like ${name}`, "aria-label": `More like ${name}`, onclick: () => searchId(r.id) },
    el("img", { src: thumbOf(r), alt: `Poster of ${name}`, loading: "lazy" }));
  const meta = el("div", { class: "meta" },
    titleSpan(r),
    yearSpan(r), " · ",
    el("span", { class: "score", title: "cosine similarity", text: `sim ${r.score.toFixed(3)}` }));
  const like = el("button", { class: "like", type: "button", "aria-pressed": "false", "aria-label": `Like ${name}`, text: "Like" });
  const dislike = el("button", { class: "dislike", type: "button", "aria-pressed": "false", "aria-label": `Dislike ${name}`, text: "Dislike" });
  like.addEventListener("click", () => vote(r.id, "like", item));
  dislike.addEventListener("click", () => vote(r.id, "dislike", item));
  const why = el("button", { class: "why", type: "button", "aria-pressed": "false", disabled: "", title: "Where the similarity comes from: the share of each cell of the poster", text: "Why?" });
  const compare = el("button", { class: "compare", type: "button", disabled: "", title: "The query and this poster side by side, both with their maps", text: "Compare" });
  why.addEventListener("click", () => toggleHeat(item, r.id, why));
  compare.addEventListener("click", () => openCompare(r, compare));
  item.append(open, meta, el("div", { class: "explain" }, why, compare), el("div", { class: "votes" }, like, dislike));
  paintVote(item, state.votes.get(r.id));
  return item;
}

// --- similarity maps: where each score comes from (POST /api/explain) -----------------------

const INFERNO = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]];

function heatColour(t) {
  const x = Math.max(0, Math.min(1, t)) * (INFERNO.length - 1), i = Math.min(INFERNO.length - 2, Math.floor(x)), f = x - i;
  return INFERNO[i].map((c, k) => Math.round(c + f * (INFERNO[i + 1][k] - c)));
}

function drawHeat(canvas, cells) {
  // 7x7 pixels, stretched over the poster by CSS: each cell covers what that cell of the grid saw.
  // From this map's smallest to its largest share: where in the poster its score comes from.
  canvas.width = cells[0].length; canvas.height = cells.length;
  const flat = cells.flat(), low = Math.min(...flat), span = Math.max(1e-12, Math.max(...flat) - low);
  const context = canvas.getContext("2d"), image = context.createImageData(canvas.width, canvas.height);
  cells.forEach((row, r) => row.forEach((value, c) => {
    const t = (value - low) / span, [red, green, blue] = heatColour(t), at = 4 * (r * canvas.width + c);
    image.data.set([red, green, blue, Math.round(20 + 215 * t)], at);
  }));
  context.putImageData(image, 0, 0);
}

function loadMaps(data) {
  // Maps are computed when asked for, one card at a time: each costs one forward pass of VGG16
  // over that poster (the query's own grid comes with its search), so a click answers in one pass.
  state.query = data.query;
  const explainable = data.vector === "vgg16" && data.results.length && (data.query.kind === "image" ? data.query.token : data.query.id);
  state.explainWith = explainable ? { collection: data.collection, ...(data.query.kind === "image" ? { query_token: data.query.token } : { query_id: data.query.id }) } : null;
  for (const item of $("grid").children) for (const b of item.querySelectorAll(".explain button")) {
    b.disabled = !explainable;
    b.title = explainable ? (b.classList.contains("why") ? "Show where the similarity comes from" : "The query and this poster side by side")
      : (data.vector !== "vgg16" ? "Maps exist for the vgg16 vector only" : "A refined search has no single query poster to explain");
  }
}

async function mapFor(id, button) {
  if (state.maps.has(id)) return state.maps.get(id);
  const asked = state.explainWith, query = state.query;
  button.setAttribute("aria-busy", "true");
  try {
    const answer = await api("/api/explain", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...asked, ids: [id] }) });
    if (state.query !== query) return null;  // another search since
    for (const m of answer.maps) state.maps.set(m.id, m);
    return state.maps.get(id);
  } catch (error) {
    button.title = `No map: ${error.message}`;
    status(`No similarity map: ${error.message}`, true);
    return null;
  } finally {
    button.removeAttribute("aria-busy");
  }
}

async function toggleHeat(item, id, button) {
  const open = item.querySelector(".open");
  let canvas = open.querySelector("canvas.heat");
  if (canvas) { canvas.remove(); button.setAttribute("aria-pressed", "false"); return; }
  const m = await mapFor(id, button);
  if (!m || open.querySelector("canvas.heat")) return;
  canvas = el("canvas", { class: "heat", "aria-hidden": "true" });
  drawHeat(canvas, m.neighbour);
  open.append(canvas);
  button.setAttribute("aria-pressed", "true");
}

async function openCompare(r, button) {
  const m = await mapFor(r.id, button);
  if (!m) return;
  $("compare-query").src = $("query-image").src;
  $("compare-neighbour").src = r.poster_url;
  drawHeat($("compare-query-map"), m.query);
  drawHeat($("compare-neighbour-map"), m.neighbour);
  for (const id of ["compare-query-map", "compare-neighbour-map"]) $(id).classList.add("heat");
  $("compare-neighbour-caption").textContent = `${label(r)}, where it matches the query`;
  const cells = m.neighbour.flat(), top = Math.max(...cells);
  $("compare-text").textContent = `Similarity ${m.score.toFixed(3)}: the sum of 49 cells (${m.sum.toFixed(3)}); the brightest cell holds ${(100 * top / m.sum).toFixed(1)} % of it (an even share would be 2.0 %). Brighter cells are where the two posters share more of VGG16's block-5 features; each map runs from its own smallest share (clear) to its largest (bright).`;
  $("compare").showModal();
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
  // a search from one poster (stored or uploaded) keeps it as a positive example: a dislike alone refines it
  const kept = refineQuery();
  const query = kept.query != null || kept.token != null;
  $("recommend").disabled = liked === 0 && !(query && values.length);
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
    const timeline = el("section", { class: "timeline", "aria-label": "Era timeline" }, el("p", { class: "muted", text: "Computing the timeline…" }));
    body.replaceChildren(
      el("p", { text: `Nearest neighbours are ${c.neighbour_mean.toFixed(1)} years apart on average (median ${c.neighbour_median.toFixed(1)}), random pairs ${c.random_mean.toFixed(1)} (median ${c.random_median.toFixed(1)}).` }),
      charts,
      model ? "" : el("p", { class: "muted", text: "No year model loaded (serve with --model-dir, or train one with `python cli.py train-year`)." }),
      timeline);
    loadTimeline(timeline);
  } catch (error) {
    body.replaceChildren(el("p", { class: "error", text: `No era figures: ${error.message}` }));
  }
}

// --- the era timeline (GET /api/timeline) ---------------------------------------------------

async function loadTimeline(container) {
  const p = new URLSearchParams({ collection: $("collection").value, vector: $("vector").value });
  try {
    const data = await api(`/api/timeline?${p}`);
    const most = Math.max(1e-9, ...data.decades.map((d) => d.moved || 0));
    const thumb = (poster) => el("button", { type: "button", title: `${poster.title} (${poster.year}), ${poster.similarity.toFixed(3)} to the decade's centre`, onclick: () => searchId(poster.id) },
      el("img", { src: poster.poster_url, alt: `${poster.title} (${poster.year})`, loading: "lazy" }));
    container.replaceChildren(
      el("h3", { text: "How the collection moved through time: each decade's most typical posters (nearest its centre) | least typical (farthest)" }),
      ...data.decades.map((d) => el("div", { class: "decade" },
        el("div", {}, el("strong", { text: `${d.decade}s` }), el("div", { class: "muted", text: `${d.posters} posters · cohesion ${d.cohesion.toFixed(3)}` }),
          el("div", { class: "muted", text: d.moved == null ? "first decade" : `moved ${d.moved.toFixed(3)} from the decade before` }),
          d.moved == null ? "" : el("span", { class: "moved", style: `width:${Math.round(100 * d.moved / most)}%` })),
        el("div", { class: "posters" }, ...d.typical.map(thumb), el("span", { class: "sep", "aria-hidden": "true" }), ...d.atypical.map(thumb)))));
  } catch (error) {
    container.replaceChildren(el("p", { class: "error", text: `No timeline: ${error.message}` }));
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
    closeSuggestions();
    if (title) searchTitle(title, $("title-year").value);
  });
  const title = $("title"), list = $("title-suggestions");
  title.addEventListener("input", typed);
  title.addEventListener("keydown", (e) => {
    const open = !list.hidden;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!open) { if (e.key === "ArrowDown") typed(); return; }
      e.preventDefault();
      moveSuggestion(e.key === "ArrowDown" ? 1 : -1);
    } else if (e.key === "Enter" && open && suggest.active >= 0) {
      e.preventDefault();
      pickSuggestion(suggest.items[suggest.active]);
    } else if (e.key === "Escape" && open) {
      e.preventDefault();  // closes the list, keeps the text
      closeSuggestions();
    }
  });
  title.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== title) closeSuggestions(); }, 100));
  list.addEventListener("mousedown", (e) => e.preventDefault());  // the field keeps the focus while a suggestion is clicked
  list.addEventListener("click", (e) => {
    const li = e.target.closest("li[role=option]");
    if (li) pickSuggestion(suggest.items[[...list.children].indexOf(li)]);
  });
  $("browse-link").addEventListener("click", (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;  // a new tab or window: the link itself
    e.preventDefault();
    go(browseView(), state.current && state.current.kind === "browse" ? "replace" : "push");
  });
  for (const id of ["browse-sort", "browse-decade", "browse-genre", "browse-status"]) $(id).addEventListener("change", changeBrowse);
  $("browse-tools").addEventListener("submit", (e) => e.preventDefault());
  $("browse-clear").addEventListener("click", () => {
    for (const id of ["browse-decade", "browse-genre", "browse-status"]) $(id).value = "";
    changeBrowse();
  });
  $("browse-more").addEventListener("click", () => browseMore());
  if ("IntersectionObserver" in window) {
    new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) browseMore(); }, { rootMargin: "800px 0px" }).observe($("browse-more"));
  }
  $("options").open = !NARROW.matches;  // folded on a phone, where the posters come first
  $("collection").addEventListener("change", () => {
    state.votes.clear(); updateVotes(); showCollection();
    // a title or an upload is searched again in the other collection; a stored poster's id
    // belongs to its own, so after "more like this" or a refinement the other one's overview shows
    const kind = state.current ? state.current.kind : "landing";
    if (kind === "id" || kind === "recommend") go({ kind: "landing" });
    else rerun();
  });
  $("home").addEventListener("click", (e) => {
    e.preventDefault();
    go({ kind: "landing" }, state.current && state.current.kind === "landing" ? "replace" : "push");
  });
  window.addEventListener("popstate", (e) => go(viewFromUrl(e.state), "none"));
  for (const id of ["vector", "k", "year-min", "year-max", "genre"]) $(id).addEventListener("change", () => { showOptionsSummary(); rerun(); });
  $("recommend").addEventListener("click", recommend);
  $("clear-votes").addEventListener("click", () => { state.votes.clear(); updateVotes(); for (const item of $("grid").children) paintVote(item, undefined); });
  $("era-panel").addEventListener("toggle", () => { if ($("era-panel").open) loadEra(); });
}

wire();
loadCollections()
  .then(() => go(viewFromUrl(history.state), "load"))
  .catch((error) => { $("landing-info").textContent = `Cannot load the collections: ${error.message}`; status(`Cannot load the collections: ${error.message}`, true); });
