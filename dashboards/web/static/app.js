// finsentry built-in dashboard. Plain browser JavaScript, no build step.
//
// Everything shown here comes from scraped text and is untrusted: it is put on the page
// with textContent / createTextNode only, never innerHTML, and links are kept only when
// they are http(s). The server's Content-Security-Policy is a second line, not the first.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
                   "#db2777", "#65a30d", "#475569", "#ea580c", "#0d9488", "#9333ea"];
  const token = new URLSearchParams(window.location.search).get("token");

  const state = {
    charts: {},          // id -> {plot, keys}
    alerts: [],          // latest /api/alerts payload
    searching: null,     // the query whose results the document list shows, or null
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function api(path, params) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    }
    const headers = token ? {"X-Finsentry-Token": token} : {};
    const response = await fetch(url, {headers: headers, cache: "no-store"});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || (response.status + " " + response.statusText));
    return body;
  }

  function setStatus(text, isError) {
    const node = $("status");
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
  }

  function safeHref(url) {
    // javascript:, data: and the like are dropped: only web links leave the page.
    try {
      const parsed = new URL(url);
      return (parsed.protocol === "http:" || parsed.protocol === "https:") ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(0) + "%"; }
  function signed(x) { return x === null || x === undefined ? "" : (x >= 0 ? "+" : "") + x.toFixed(2); }
  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
  }

  // ---- explanation highlighting ------------------------------------------------------

  // Only the words that carried the decision: at least a quarter of the strongest weight.
  function explanationMap(explanation) {
    const weights = new Map();
    const pairs = (explanation || []).filter((p) => Array.isArray(p) && p.length >= 2 && isFinite(Number(p[1])));
    const strongest = Math.max(0, ...pairs.map((p) => Math.abs(Number(p[1]))));
    for (const pair of pairs) {
      const word = String(pair[0]).toLowerCase().replace(/^##/, "");
      const weight = Number(pair[1]);
      if (word && Math.abs(weight) >= 0.25 * strongest && weight !== 0) weights.set(word, weight);
    }
    return weights;
  }

  // The text as a fragment of text nodes, with the explanation's words wrapped in <mark>:
  // red where the word pulled the score down, green where it pushed it up.
  function highlighted(text, weights) {
    const fragment = document.createDocumentFragment();
    const parts = String(text || "").split(/([\p{L}\p{N}']+)/u);
    for (const part of parts) {
      const weight = weights.get(part.toLowerCase());
      if (part && weight !== undefined) {
        const mark = el("mark", weight < 0 ? "neg" : "pos", part);
        mark.title = "weight " + signed(weight);
        fragment.appendChild(mark);
      } else if (part) {
        fragment.appendChild(document.createTextNode(part));
      }
    }
    return fragment;
  }

  // ---- documents ---------------------------------------------------------------------

  function documentItem(doc) {
    const item = $("document-template").content.firstElementChild.cloneNode(true);
    const weights = explanationMap(doc.explanation);
    const badge = item.querySelector(".sentiment");
    badge.textContent = doc.sentiment || "?";
    badge.classList.add(doc.sentiment || "unknown");
    item.querySelector(".score").textContent = signed(doc.score);
    const title = item.querySelector(".title");
    title.appendChild(highlighted(doc.title || doc.text || "(no text)", weights));
    const href = doc.url ? safeHref(doc.url) : null;
    if (href) title.href = href; else title.removeAttribute("href");
    const meta = [doc.source, doc.topic, (doc.entities || []).join(" "), when(doc.published_at)];
    if (doc.dup_of) meta.push("near-duplicate");
    item.querySelector(".doc-meta").textContent = meta.filter(Boolean).join(" · ");
    const explanation = item.querySelector(".explanation");
    if (weights.size) {
      explanation.appendChild(el("span", "explanation-label", "why: "));
      const ranked = Array.from(weights.entries()).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
      for (const [word, weight] of ranked.slice(0, 6)) {
        explanation.appendChild(el("span", "chip " + (weight < 0 ? "neg" : "pos"), word + " " + signed(weight)));
      }
    } else {
      explanation.remove();
    }
    return item;
  }

  function showDocuments(docs, heading) {
    const list = $("documents");
    list.replaceChildren(...docs.map(documentItem));
    $("documents-empty").hidden = docs.length > 0;
    $("documents-title").textContent = heading;
  }

  async function loadDocuments() {
    if (state.searching !== null) return;
    const body = await api("/api/documents", {limit: 25});
    showDocuments(body.documents, "Latest scored documents");
  }

  async function runSearch(q) {
    state.searching = q;
    $("search-clear").hidden = false;
    const body = await api("/api/search", {q: q, limit: 50});
    showDocuments(body.documents, "Search: “" + q + "” (" + body.documents.length + ")");
  }

  // ---- alerts ------------------------------------------------------------------------

  function alertItem(alert) {
    const item = el("li", "alert " + alert.severity + " " + alert.status);
    const head = el("div", "alert-head");
    head.appendChild(el("span", "badge " + alert.severity, alert.severity));
    head.appendChild(el("span", "alert-scope", alert.scope + ": " + alert.key));
    head.appendChild(el("span", "alert-status", alert.status));
    item.appendChild(head);
    item.appendChild(el("div", "alert-summary",
      "negative share " + pct(alert.negative_share) + " vs baseline " + pct(alert.baseline) +
      " · " + alert.volume + " stories · " + alert.method + "=" + Number(alert.statistic).toFixed(1) +
      " · " + when(alert.window_end)));
    const evidence = el("ul", "evidence");
    for (const ev of alert.evidence || []) {
      const li = el("li", "evidence-item");
      li.appendChild(el("span", "score", signed(ev.score)));
      const link = el("a", "title");
      link.appendChild(highlighted(ev.title || "(untitled)", explanationMap(ev.explanation)));
      const href = ev.url ? safeHref(ev.url) : null;
      if (href) { link.href = href; link.target = "_blank"; link.rel = "noopener noreferrer"; }
      li.appendChild(link);
      if (ev.source) li.appendChild(el("span", "evidence-source", ev.source));
      evidence.appendChild(li);
    }
    item.appendChild(evidence);
    return item;
  }

  async function loadAlerts() {
    const body = await api("/api/alerts", {limit: 20});
    state.alerts = body.alerts;
    $("alerts").replaceChildren(...body.alerts.map(alertItem));
    $("alerts-empty").hidden = body.alerts.length > 0;
  }

  // ---- charts ------------------------------------------------------------------------

  // Each alert of the shown scope (and global ones) as a shaded band from the start of its
  // episode to its end (or its latest window while it still fires), with a dashed line
  // where it began. The chart's container reports how many bands it drew
  // (data-alert-markers), as it reports its points: a canvas cannot be inspected.
  function alertMarkers(by) {
    return {
      hooks: {
        draw: [function (u) {
          const ctx = u.ctx;
          const [xMin, xMax] = [u.scales.x.min, u.scales.x.max];
          const top = u.bbox.top, height = u.bbox.height;
          let drawn = 0;
          ctx.save();
          for (const alert of state.alerts) {
            if (alert.scope !== by && alert.scope !== "global") continue;
            const start = Date.parse(alert.episode_start) / 1000;
            const end = Date.parse(alert.ended_at || alert.window_end) / 1000;
            if (!(end >= xMin && start <= xMax)) continue;
            const x0 = Math.round(u.valToPos(Math.max(start, xMin), "x", true));
            const x1 = Math.round(u.valToPos(Math.min(Math.max(end, start), xMax), "x", true));
            const critical = alert.severity === "critical";
            ctx.fillStyle = critical ? "rgba(185, 28, 28, 0.08)" : "rgba(245, 158, 11, 0.10)";
            ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
            drawn += 1;
            if (start >= xMin) {
              ctx.strokeStyle = critical ? "#b91c1c" : "#f59e0b";
              ctx.lineWidth = 2 * devicePixelRatio;
              ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
              ctx.beginPath();
              ctx.moveTo(x0, top);
              ctx.lineTo(x0, top + height);
              ctx.stroke();
            }
          }
          ctx.restore();
          u.root.parentElement.dataset.alertMarkers = String(drawn);
        }],
      },
    };
  }

  function chartWidth(container) { return Math.max(320, container.clientWidth - 8); }

  function drawChart(id, payload, field, yRange, plugins) {
    const container = $(id);
    const keys = payload.series.map(s => s.key);
    const data = [payload.t].concat(payload.series.map(s => s[field]));
    const points = payload.series.reduce((n, s) => n + s[field].filter(v => v !== null).length, 0);
    container.dataset.points = String(points);
    container.dataset.series = String(keys.length);
    const existing = state.charts[id];
    if (existing && existing.keys.join("\u0000") === keys.join("\u0000")) {
      existing.plot.setData(data);
      return;
    }
    if (existing) existing.plot.destroy();
    const options = {
      width: chartWidth(container),
      height: 260,
      scales: {x: {time: true}, y: {range: yRange}},
      tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),  // the lists show UTC too
      series: [{label: "time"}].concat(keys.map((key, i) => ({
        label: key,
        stroke: PALETTE[i % PALETTE.length],
        width: 2,
        spanGaps: false,
        points: {show: payload.t.length < 60},
      }))),
      axes: [{}, {size: 50}],
      legend: {live: true},
      plugins: plugins || [],
    };
    state.charts[id] = {plot: new uPlot(options, data, container), keys: keys};
  }

  async function loadSeries() {
    const by = $("by").value;
    const payload = await api("/api/series", {by: by, range_s: $("range").value, top: 8});
    for (const node of document.querySelectorAll(".by-name")) node.textContent = by;
    drawChart("chart-sentiment", payload, "mean_score", [-1, 1]);
    drawChart("chart-negative", payload, "negative_share", [0, 1], [alertMarkers(by)]);
  }

  // ---- stats -------------------------------------------------------------------------

  async function loadStats() {
    const s = await api("/api/stats");
    $("stat-documents").textContent = s.documents.toLocaleString("en");
    $("stat-window").textContent = s.window_documents.toLocaleString("en");
    $("stat-negative").textContent = pct(s.window_negative_share);
    $("stat-alerts").textContent = String(s.alerts_firing);
    $("stat-model").textContent = s.model_versions.length ? s.model_versions.join(", ") : "–";
  }

  // ---- refresh loop ------------------------------------------------------------------

  async function refresh() {
    try {
      await loadAlerts();  // first: the negative-share chart draws the alert markers
      await Promise.all([loadStats(), loadSeries(), loadDocuments()]);
      setStatus("updated " + new Date().toLocaleTimeString());
      document.body.dataset.loaded = "true";
    } catch (err) {
      setStatus("update failed: " + err.message, true);
    }
  }

  function wire() {
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const q = $("search-input").value.trim();
      if (!q) return;
      runSearch(q).catch(err => setStatus("search failed: " + err.message, true));
    });
    $("search-clear").addEventListener("click", () => {
      state.searching = null;
      $("search-input").value = "";
      $("search-clear").hidden = true;
      loadDocuments().catch(err => setStatus("update failed: " + err.message, true));
    });
    for (const id of ["range", "by"]) {
      $(id).addEventListener("change", () => loadSeries().catch(err => setStatus(err.message, true)));
    }
    window.addEventListener("resize", () => {
      for (const [id, chart] of Object.entries(state.charts)) {
        chart.plot.setSize({width: chartWidth($(id)), height: 260});
      }
    });
  }

  wire();
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
