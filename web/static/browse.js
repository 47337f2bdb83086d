// poster search page: Browse, every poster of a collection in an order, filtered (GET
// /api/collections/{name}/browse and /facets). Loaded before app.js, whose helpers ($, el, api,
// state, go, ...) its functions use when they run.
"use strict";

// --- browse: every poster of the collection, sorted and filtered, loaded as it is scrolled to ---

function browseParams(view) {
  const p = new URLSearchParams({ sort: view.sort, order: view.order });
  for (const key of ["decade", "genre", "status"]) if (view[key]) p.set(key, view[key]);
  return p;
}

function browsePage() {
  // enough cards to fill the screen twice over, per request: a phone asks for fewer than a desktop
  const grid = $("browse-grid"), width = grid.clientWidth || window.innerWidth;
  const columns = Math.max(2, Math.floor(width / (NARROW.matches ? 110 : 150)));
  const rows = Math.ceil(window.innerHeight / (NARROW.matches ? 220 : 280)) + 2;
  return Math.min(96, Math.max(24, columns * rows));
}

function setBrowseTools(view) {
  $("browse-sort").value = `${view.sort}-${view.order}`;
  if (!$("browse-sort").value) $("browse-sort").value = "title-asc";
  for (const key of ["decade", "genre", "status"]) {
    const select = $(`browse-${key}`);
    if (view[key] && ![...select.options].some((o) => o.value === view[key])) {
      // a value from a link that the facets do not list (yet): still shown as chosen
      select.append(el("option", { value: view[key], text: key === "decade" ? `${view[key]}s` : view[key] }));
    }
    select.value = view[key];
  }
  $("browse-clear").disabled = !(view.decade || view.genre || view.status);
}

async function loadFacets(name) {
  // the filter menus, with how many posters each choice holds: once per collection
  let facets = state.facets.get(name);
  if (!facets) {
    try {
      facets = await api(`/api/collections/${encodeURIComponent(name)}/facets`);
    } catch (error) {
      return;  // the menus keep "any" and what the address chose; the grid says what went wrong, if anything
    }
    state.facets.set(name, facets);
  }
  if ($("collection").value !== name) return;
  const count = (n) => ` (${Number(n).toLocaleString("en")})`;
  $("browse-decade").replaceChildren(el("option", { value: "", text: "any" }),
    ...facets.decades.map((d) => el("option", { value: String(d.decade), text: `${d.decade}s${count(d.count)}` })));
  $("browse-genre").replaceChildren(el("option", { value: "", text: "any" }),
    ...facets.genres.map((g) => el("option", { value: g.genre, text: `${g.genre}${count(g.count)}` })));
  $("browse-genre").disabled = facets.genres.length === 0;
  const status = facets.status || {};
  $("browse-status").replaceChildren(el("option", { value: "", text: "any" }),
    el("option", { value: "catalog", text: `from the catalog${count(status.catalog || 0)}` }),
    el("option", { value: "predicted", text: `predicted${count(status.predicted || 0)}` }),
    el("option", { value: "none", text: `none${count(status.none || 0)}` }));
  if (state.current && state.current.kind === "browse") setBrowseTools(state.current);
}

async function loadBrowse(view, moved) {
  const name = $("collection").value;
  if (!name) return;
  if (state.browse && state.browse.controller) state.browse.controller.abort();
  const restore = view.restore;
  delete view.restore;
  state.browse = { view, name, params: browseParams(view), next: null, done: false, loading: false, total: null, controller: null };
  $("browse-grid").replaceChildren();
  $("browse-count").textContent = "";
  $("browse-more").hidden = true;
  setBrowseTools(view);
  loadFacets(name);
  $("browse-status-line").textContent = "Loading the posters…";
  $("browse-status-line").classList.remove("error");
  await browseMore(restore ? restore.shown : 0);
  if (!state.browse || state.browse.view !== view) return;  // another view since
  // scrolled once the first page is there: before, the page may be too short to bring the grid up
  if (restore) window.scrollTo(0, restore.scrollY);
  else if (moved) intoView($("browse"));
}

async function browseMore(want = 0) {
  // the next page (or pages, until `want` cards are shown: back to a grid scrolled far down)
  const b = state.browse;
  if (!b || b.loading || b.done) return;
  b.loading = true;
  $("browse-grid").setAttribute("aria-busy", "true");
  try {
    do {
      const p = new URLSearchParams(b.params);
      p.set("limit", String(Math.min(200, Math.max(browsePage(), want - $("browse-grid").children.length))));
      if (b.next) p.set("after", b.next);
      b.controller = new AbortController();
      const data = await api(`/api/collections/${encodeURIComponent(b.name)}/browse?${p}`, { signal: b.controller.signal });
      if (state.browse !== b) return;
      $("browse-grid").append(...data.posters.map(startCard));
      b.next = data.next;
      b.done = !data.next || data.posters.length === 0;
      b.total = data.total;
    } while (!b.done && $("browse-grid").children.length < want);
    showBrowseCount(b);
  } catch (error) {
    if (state.browse !== b || error.name === "AbortError") return;
    $("browse-status-line").textContent = `Cannot show the posters: ${error.message}`;
    $("browse-status-line").classList.add("error");
    $("browse-more").hidden = true;
  } finally {
    if (state.browse === b) {
      b.loading = false;
      $("browse-grid").removeAttribute("aria-busy");
    }
  }
  if (state.browse === b && !b.done && sentinelNear()) browseMore();  // a tall screen: fill it
}

function showBrowseCount(b) {
  const shown = $("browse-grid").children.length, total = b.total ?? shown;
  const c = state.collections.get(b.name);
  const filtered = b.view.decade || b.view.genre || b.view.status;
  const n = (x) => Number(x).toLocaleString("en");
  $("browse-count").textContent = filtered && c ? `${n(total)} of ${n(c.count)} posters match` : `${n(total)} poster${total === 1 ? "" : "s"}`;
  $("browse-status-line").textContent = total === 0
    ? (filtered ? "No poster matches these filters." : "This collection has no posters yet.")
    : b.done ? `All ${n(total)} shown.` : `${n(shown)} of ${n(total)} shown: scroll for more.`;
  $("browse-more").hidden = b.done;
}

function sentinelNear() {
  const foot = $("browse-more");
  if ($("browse").hidden || foot.hidden) return false;
  return foot.getBoundingClientRect().top < window.innerHeight + 800;
}

function changeBrowse() {
  // a sort or filter changed: the same entry in history, a new address
  const [sort, order] = $("browse-sort").value.split("-");
  const view = browseView({ sort, order, decade: $("browse-decade").value, genre: $("browse-genre").value, status: $("browse-status").value });
  go(view, "replace");
}
