// poster search page: title suggestions as one types, and close matches after a title found
// nothing (GET /api/collections/{name}/suggest). Loaded before app.js, whose helpers ($, el, api,
// state, go, ...) its functions use when they run.
"use strict";

// --- suggestions as a title is typed, and close matches after a title found nothing ----------

const suggest = { timer: 0, controller: null, items: [], active: -1, asked: "" };

function suggestUrl(text, limit = 8) {
  const name = $("collection").value;
  return `/api/collections/${encodeURIComponent(name)}/suggest?${new URLSearchParams({ q: text, limit: String(limit) })}`;
}

function typed() {
  clearTimeout(suggest.timer);
  const text = $("title").value.trim();
  if (text.length < 2 || !$("collection").value) { closeSuggestions(); return; }
  suggest.timer = setTimeout(() => askSuggestions(text), 150);
}

async function askSuggestions(text) {
  if (suggest.controller) suggest.controller.abort();  // a stale answer never replaces a newer one
  const controller = new AbortController();
  suggest.controller = controller;
  try {
    const data = await api(suggestUrl(text), { signal: controller.signal });
    if (suggest.controller !== controller || $("title").value.trim() !== text || document.activeElement !== $("title")) return;
    showSuggestions(data.suggestions || []);
  } catch (error) {
    if (error.name !== "AbortError" && suggest.controller === controller) closeSuggestions();
  }
}

function showSuggestions(items) {
  suggest.items = items;
  suggest.active = -1;
  const list = $("title-suggestions");
  list.replaceChildren(...items.map((r, i) => el("li", { id: `suggestion-${i}`, role: "option", "aria-selected": "false", title: `More like ${label(r)}` },
    el("img", { src: thumbOf(r), alt: "", loading: "lazy" }),
    el("span", { class: "t", text: r.title }), yearSpan(r))));
  list.hidden = items.length === 0;
  $("title").setAttribute("aria-expanded", String(items.length > 0));
  $("title").removeAttribute("aria-activedescendant");
}

function closeSuggestions() {
  clearTimeout(suggest.timer);
  if (suggest.controller) { suggest.controller.abort(); suggest.controller = null; }
  suggest.items = [];
  suggest.active = -1;
  $("title-suggestions").hidden = true;
  $("title-suggestions").replaceChildren();
  $("title").setAttribute("aria-expanded", "false");
  $("title").removeAttribute("aria-activedescendant");
}

function moveSuggestion(step) {
  const n = suggest.items.length;
  if (!n) return;
  suggest.active = suggest.active < 0 ? (step > 0 ? 0 : n - 1) : (suggest.active + step + n) % n;
  [...$("title-suggestions").children].forEach((li, i) => li.setAttribute("aria-selected", String(i === suggest.active)));
  const active = $(`suggestion-${suggest.active}`);
  $("title").setAttribute("aria-activedescendant", active.id);
  active.scrollIntoView({ block: "nearest" });
}

function pickSuggestion(r) {
  // a stored film is named by its id: more like it, at ?id=...
  closeSuggestions();
  $("title").blur();
  searchId(String(r.id));
}

async function showCloseMatches(view) {
  // a title that names no film: the films whose titles start like it, or like its first word, or
  // like the start of that word (a typo is seldom in the first letters: "Casablanka"), to click
  const box = $("close-matches");
  const first = view.title.trim().split(/\s+/).find((w) => w.length >= 2) || "";
  const tries = [...new Set([view.title.trim(), first, first.slice(0, Math.ceil((2 * first.length) / 3)), first.slice(0, 3)].filter((t) => t.length >= 2))];
  for (const text of tries) {
    let found = [];
    try {
      found = (await api(suggestUrl(text, 6))).suggestions || [];
    } catch (error) {
      return;
    }
    if (state.current !== view) return;
    if (found.length) {
      box.replaceChildren(el("span", { class: "muted", text: "Did you mean " }),
        ...found.map((r) => el("button", { type: "button", class: "quiet", onclick: () => searchId(String(r.id)), text: label(r) })));
      box.hidden = false;
      return;
    }
  }
}
