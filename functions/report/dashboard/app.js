// GameMetrics dashboard: plain JavaScript, no external code. It reads the
// report API with the game's read key, kept in this browser's localStorage.
"use strict";
(function () {
  const KEY = "gamemetrics.readKey";
  const CHARTS = ["dau", "new_players", "revenue", "sessions"];
  const RETENTION_DAYS = [1, 7, 30];
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let game = null;
  let liveTimer = null;

  function setState(s) { document.body.dataset.state = s; }

  function showError(msg) {
    const e = $("error");
    e.textContent = msg;
    e.hidden = !msg;
  }

  async function api(path) {
    const key = localStorage.getItem(KEY);
    const resp = await fetch(path, { headers: { Authorization: "Bearer " + key, Accept: "application/json" } });
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      const err = new Error((body && body.error) || ("HTTP " + resp.status));
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  function el(tag, attrs, text) {
    const n = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function fmt(v) {
    return Number(v).toLocaleString("en-US", { maximumFractionDigits: 2 });
  }

  function isoDate(d) { return d.toISOString().slice(0, 10); }

  function addDays(s, n) {
    const d = new Date(s + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return isoDate(d);
  }

  async function open(key) {
    localStorage.setItem(KEY, key);
    showError("");
    setState("loading");
    try {
      game = await api("/v1/game");
    } catch (err) {
      if (err.status === 401) {
        localStorage.removeItem(KEY);
        showKeyPanel();
        showError("That read key was not accepted: " + err.message);
      } else {
        showError("Cannot reach GameMetrics: " + err.message);
      }
      setState("error");
      return;
    }
    $("key-panel").hidden = true;
    $("main").hidden = false;
    $("forget").hidden = false;
    $("game-info").textContent = game.name + " · " + game.game + " · days in " + game.timezone;
    if (!$("to").value) {
      $("to").value = game.today;
      $("from").value = addDays(game.today, -29);
    }
    const cur = $("currency");
    cur.textContent = "";
    for (const c of game.currencies) cur.appendChild(el("option", { value: c }, c));
    $("currency-label").hidden = game.currencies.length < 2;
    await load();
    startLive();
  }

  function showKeyPanel() {
    $("key-panel").hidden = false;
    $("main").hidden = true;
    $("forget").hidden = true;
    $("game-info").textContent = "No game selected";
    if (liveTimer) clearInterval(liveTimer);
  }

  async function load() {
    const from = $("from").value, to = $("to").value, interval = $("interval").value;
    if (!from || !to) return;
    setState("loading");
    showError("");
    $("status").textContent = "Loading…";
    const g = encodeURIComponent(game.game);
    const q = "from=" + from + "&to=" + to + "&interval=" + interval;
    const currency = game.currencies.length > 1 ? "&currency=" + encodeURIComponent($("currency").value) : "";
    try {
      const series = await Promise.all(CHARTS.map((m) =>
        api("/v1/games/" + g + "/metrics/" + m + "?" + q + (m === "revenue" ? currency : ""))));
      series.forEach((s, i) => drawChart(CHARTS[i], s));
      const ret = await api("/v1/games/" + g + "/retention?from=" + from + "&to=" + to + "&days=" + RETENTION_DAYS.join(","));
      drawRetention(ret);
      $("status").textContent = "Updated " + new Date().toLocaleTimeString();
      setState("ready");
    } catch (err) {
      if (err.status === 401) {
        localStorage.removeItem(KEY);
        showKeyPanel();
      }
      showError("Could not load the numbers: " + err.message);
      $("status").textContent = "";
      setState("error");
    }
  }

  function drawChart(metric, s) {
    const fig = $("chart-" + metric);
    const plot = fig.querySelector(".plot");
    plot.textContent = "";
    const vals = s.points.map((p) => p.value);
    const total = metric === "dau" ? null : vals.reduce((a, b) => a + b, 0);
    fig.querySelector(".total").textContent = total === null ? "" : "total " + fmt(total);
    if (metric === "revenue") fig.querySelector(".unit").textContent = s.currency ? "(" + s.currency + ", minor units)" : "";
    fig.dataset.points = JSON.stringify(s.points);
    if (vals.every((v) => v === 0)) {
      plot.appendChild(el("div", { class: "empty" }, "No data in this range"));
      return;
    }
    const W = 600, H = 180, L = 44, B = 22, T = 8;
    const max = Math.max(...vals);
    const svg = el("svg:svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": metric });
    const bw = (W - L - 4) / vals.length;
    svg.appendChild(el("svg:line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }));
    svg.appendChild(el("svg:text", { x: L - 4, y: T + 8, "text-anchor": "end" }, fmt(max)));
    svg.appendChild(el("svg:text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"));
    s.points.forEach((p, i) => {
      const h = max > 0 ? (p.value / max) * (H - B - T) : 0;
      const r = el("svg:rect", { class: "bar", x: (L + i * bw + bw * 0.1).toFixed(2), y: (H - B - h).toFixed(2),
        width: Math.max(1, bw * 0.8).toFixed(2), height: h.toFixed(2), "data-t": p.t, "data-value": p.value });
      r.appendChild(el("svg:title", {}, p.t + ": " + fmt(p.value)));
      svg.appendChild(r);
    });
    const step = Math.max(1, Math.ceil(vals.length / 6));
    for (let i = 0; i < vals.length; i += step) {
      svg.appendChild(el("svg:text", { x: (L + i * bw + bw / 2).toFixed(2), y: H - 6, "text-anchor": "middle" }, s.points[i].t.slice(5, 10)));
    }
    plot.appendChild(svg);
  }

  function drawRetention(r) {
    const box = $("retention");
    box.textContent = "";
    const cohorts = r.cohorts.filter((c) => c.size > 0);
    if (cohorts.length === 0) {
      box.appendChild(el("div", { class: "empty" }, "No players installed in this range"));
      return;
    }
    const table = el("table", { id: "retention-table" });
    const head = el("tr");
    head.appendChild(el("th", {}, "Install day"));
    head.appendChild(el("th", {}, "Players"));
    for (const d of r.days) head.appendChild(el("th", {}, "Day " + d));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const c of cohorts) {
      const tr = el("tr", { "data-cohort": c.cohort });
      tr.appendChild(el("td", {}, c.cohort));
      tr.appendChild(el("td", { "data-size": c.size }, fmt(c.size)));
      for (const d of r.days) {
        const v = c.retained[String(d)];
        if (v === null || v === undefined) {
          tr.appendChild(el("td", { class: "future", "data-day": d }, "–"));
          continue;
        }
        const pct = c.size > 0 ? v / c.size : 0;
        const td = el("td", { "data-day": d, "data-value": v, title: v + " of " + c.size }, v + " (" + Math.round(pct * 100) + "%)");
        td.style.backgroundColor = "rgba(47,111,221," + (0.08 + 0.7 * pct).toFixed(3) + ")";
        if (pct > 0.55) td.style.color = "#fff";
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    box.appendChild(table);
  }

  async function refreshLive() {
    if (!game) return;
    try {
      const l = await api("/v1/games/" + encodeURIComponent(game.game) + "/live");
      $("live-online").textContent = fmt(l.online);
      $("live-today").textContent = fmt(l.active_today);
      const svg = $("live-spark");
      svg.textContent = "";
      const vals = l.events_per_minute.map((p) => p.value);
      const max = Math.max(1, ...vals);
      const pts = vals.map((v, i) => (i * 300 / Math.max(1, vals.length - 1)).toFixed(1) + "," + (38 - v / max * 36).toFixed(1));
      svg.appendChild(el("svg:polyline", { points: pts.join(" ") }));
      $("live").dataset.online = l.online;
    } catch (err) {
      $("live-online").textContent = "?";
      $("live-today").textContent = "?";
    }
  }

  // exportDay downloads one UTC day of raw events: fetched with the key
  // (a link could not send it), then saved from a blob URL.
  async function exportDay() {
    const day = $("export-date").value;
    if (!game || !day) return;
    const status = $("export-status");
    status.textContent = "Downloading…";
    try {
      const resp = await fetch("/v1/games/" + encodeURIComponent(game.game) + "/events?date=" + day,
        { headers: { Authorization: "Bearer " + localStorage.getItem(KEY) } });
      if (!resp.ok) {
        let msg = "HTTP " + resp.status;
        try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
        throw new Error(msg);
      }
      const blob = await resp.blob();
      const a = el("a", { href: URL.createObjectURL(blob), download: game.game + "-" + day + ".ndjson" });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      const lines = blob.size ? (await blob.text()).split("\n").filter((l) => l).length : 0;
      status.textContent = lines ? fmt(lines) + " events" : "No events stored for " + day;
    } catch (err) {
      status.textContent = "";
      showError("Raw events of " + day + ": " + err.message);
    }
  }

  function startLive() {
    if (liveTimer) clearInterval(liveTimer);
    refreshLive();
    liveTimer = setInterval(refreshLive, 15000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const k = $("key").value.trim();
      if (k) open(k);
    });
    $("range").addEventListener("submit", (e) => { e.preventDefault(); load(); });
    $("interval").addEventListener("change", load);
    $("currency").addEventListener("change", load);
    $("export").addEventListener("submit", (e) => { e.preventDefault(); exportDay(); });
    $("export-date").value = addDays(isoDate(new Date()), -1);
    $("forget").addEventListener("click", () => {
      localStorage.removeItem(KEY);
      game = null;
      showError("");
      showKeyPanel();
    });
    const key = localStorage.getItem(KEY);
    if (key) open(key); else setState("key");
  });
})();
