// Progressive enhancement of the server-rendered page: searches, filters, "more like this" and uploads
// fetch the same page's results fragment (?fragment=1) instead of reloading; the URL and history follow;
// one clip plays at a time. Without this script every control still works as a plain form or link.
(function () {
  "use strict";
  const form = document.getElementById("search-form");
  const results = document.getElementById("results");
  const live = document.getElementById("live");
  const query = document.getElementById("q");
  if (!form || !results || !window.fetch) return;
  let pending = null;

  function announce() {
    const summary = results.querySelector("#summary");
    const error = results.querySelector(".error");
    live.textContent = error ? error.textContent : (summary ? summary.textContent.replace(/\s+/g, " ").trim() : "");
  }

  async function load(url, options, pushUrl) {
    if (pending) pending.abort();
    pending = new AbortController();
    results.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(url, { ...options, signal: pending.signal, headers: { Accept: "text/html" } });
      const html = await response.text();
      if (response.status === 401) { window.location.reload(); return; }
      results.innerHTML = html;
      if (pushUrl) history.pushState({}, "", pushUrl);
      const q = new URL(window.location.href).searchParams.get("q");
      document.title = (q ? q + " · " : "") + "fsclap style search";
      announce();
    } catch (err) {
      if (err.name === "AbortError") return;
      results.innerHTML = '<h2 id="summary" class="summary">No results</h2><p class="error" role="alert"></p>';
      results.querySelector(".error").textContent = "The search failed: " + err.message;
      announce();
    } finally {
      results.removeAttribute("aria-busy");
    }
  }

  function searchParams() {
    const params = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (typeof value === "string" && value !== "" && !(name === "k" && value === "12")) params.append(name, value);
    }
    return params;
  }

  function fragmentUrl(params) {
    const copy = new URLSearchParams(params);
    copy.set("fragment", "1");
    return "/?" + copy.toString();
  }

  form.addEventListener("submit", (event) => {
    const submitter = event.submitter;
    event.preventDefault();
    if (submitter && submitter.getAttribute("formmethod") === "post") {
      const data = new FormData(form);
      const file = data.get("file");
      if (!file || !file.name) { document.getElementById("file").focus(); }
      data.delete("q");
      data.set("fragment", "1");
      load("/", { method: "POST", body: data }, null);
      return;
    }
    if (!query.value.trim()) { query.focus(); return; }
    const params = searchParams();
    load(fragmentUrl(params), {}, "/?" + params.toString());
  });

  // A filter change re-runs the search that is on screen (text or "more like this").
  form.addEventListener("change", (event) => {
    if (event.target.tagName !== "SELECT") return;
    const current = new URL(window.location.href).searchParams;
    const params = searchParams();
    if (current.get("like")) { params.delete("q"); params.set("like", current.get("like")); }
    else if (!query.value.trim()) return;
    load(fragmentUrl(params), {}, "/?" + params.toString());
  });

  // Links inside the results that lead to another page of results ("more like this", examples, descriptions).
  results.addEventListener("click", (event) => {
    const link = event.target.closest("a");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || link.hasAttribute("download")) return;
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || url.pathname !== "/") return;
    event.preventDefault();
    query.value = url.searchParams.get("q") || "";
    load(fragmentUrl(url.searchParams), {}, url.pathname + url.search);
    results.focus({ preventScroll: true });
    results.scrollIntoView({ block: "start" });
  });

  window.addEventListener("popstate", () => {
    const params = new URL(window.location.href).searchParams;
    query.value = params.get("q") || "";
    for (const select of form.querySelectorAll("select")) {
      select.value = params.get(select.name) || (select.name === "k" ? "12" : "");
    }
    load(fragmentUrl(params), {}, null);
  });

  // One clip plays at a time; the playing card is highlighted.
  document.addEventListener("play", (event) => {
    for (const audio of document.querySelectorAll("audio")) {
      if (audio !== event.target && !audio.paused) audio.pause();
    }
    const card = event.target.closest(".clip");
    if (card) card.classList.add("playing");
  }, true);
  for (const type of ["pause", "ended"]) {
    document.addEventListener(type, (event) => {
      const card = event.target.closest && event.target.closest(".clip");
      if (card) card.classList.remove("playing");
    }, true);
  }

  // "/" focuses the search box (unless typing somewhere already).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (document.activeElement && document.activeElement.tagName) || "";
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag)) return;
    event.preventDefault();
    query.focus();
    query.select();
  });
})();
