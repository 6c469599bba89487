// GameMetrics dashboard: plain JavaScript, no external code. It reads the
// report API with the game's read key, kept in this browser's localStorage.
// Every panel is one API request (the filter bar's parameters on each), so
// a panel's CSV button downloads exactly the numbers it shows.
"use strict";
(function () {
  const KEY = "gamemetrics.readKey";
  const CHARTS = ["dau", "new_players", "revenue", "sessions"];
  const FILTERS = ["platform", "country", "appversion", "dim1", "dim2", "dim3"];
  const RETENTION_DAYS = [1, 7, 30];
  const LTV_DAYS = [0, 1, 3, 7, 14, 30, 60, 90];
  const HOUR_DAYS = 7; // the longest range an hourly series accepts
  const CCU_FILTERED_DAYS = 31; // the longest filtered ccu_peak series
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let game = null;
  let liveTimer = null;
  let generation = 0; // a newer load wins over answers of an older one
  let economyAnswer = null;
  let optionsRange = ""; // the range the filter bar's values were read for

  function setState(s) { document.body.dataset.state = s; }

  function showError(msg) {
    const e = $("error");
    e.textContent = msg;
    e.hidden = !msg;
  }

  function authHeaders(accept) {
    return { Authorization: "Bearer " + localStorage.getItem(KEY), Accept: accept };
  }

  async function api(path) {
    const resp = await fetch(path, { headers: authHeaders("application/json") });
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      const err = new Error((body && body.error) || ("HTTP " + resp.status));
      err.status = resp.status;
      err.param = body && (body.parameter || body.param);
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

  // exponentOf is the currency's ISO 4217 minor-unit exponent as the API
  // states it; an older server that does not state it gets the browser's
  // (CLDR) digits for the code, which agree for ISO currencies.
  function exponentOf(currency, stated) {
    if (Number.isInteger(stated)) return stated;
    try {
      return new Intl.NumberFormat("en-US", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch (_) {
      return 2;
    }
  }

  // money formats an amount in minor units as major units of currency:
  // exactly exp decimals (or up to extra more, for averages).
  function money(minor, currency, exp, extra) {
    const v = Number(minor) / Math.pow(10, exp);
    const digits = { minimumFractionDigits: exp, maximumFractionDigits: exp + (extra || 0) };
    try {
      return new Intl.NumberFormat("en-US", Object.assign({ style: "currency", currency, currencyDisplay: "narrowSymbol" }, digits)).format(v);
    } catch (_) {
      return v.toLocaleString("en-US", digits) + " " + currency;
    }
  }

  function isoDate(d) { return d.toISOString().slice(0, 10); }

  function addDays(s, n) {
    const d = new Date(s + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return isoDate(d);
  }

  // ---- parameters: the range form and the filter bar ----

  // filterValues reads the filter bar: per dimension its comma-separated
  // values, trimmed, empties dropped.
  function filterValues() {
    const out = {};
    for (const f of FILTERS) {
      const input = $("f-" + f);
      if (input.disabled) continue;
      const vals = input.value.split(",").map((v) => v.trim()).filter((v) => v);
      if (vals.length) out[f] = vals.join(",");
    }
    return out;
  }

  function gamePath(rest) { return "/v1/games/" + encodeURIComponent(game.game) + "/" + rest; }

  function withQuery(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, v);
    return path + "?" + q.toString();
  }

  function selectedCurrency() { return game.currencies.length > 1 ? $("currency").value : undefined; }

  // requests lists each panel's request for the form's current values.
  function requests() {
    const from = $("from").value, to = $("to").value, interval = $("interval").value;
    const f = filterValues();
    const range = Object.assign({ from, to }, f);
    const out = {};
    for (const m of CHARTS) {
      out[m] = withQuery(gamePath("metrics/" + m), Object.assign({ from, to, interval, currency: m === "revenue" ? selectedCurrency() : undefined }, f));
    }
    out.ccu = ccuPath(f);
    out.retention = withQuery(gamePath("retention"), Object.assign({}, range, { days: RETENTION_DAYS.join(",") }));
    out.ltv = withQuery(gamePath("ltv"), Object.assign({}, range, { days: LTV_DAYS.join(","), currency: selectedCurrency() }));
    out.economy = withQuery(gamePath("economy"), Object.assign({}, range, { interval }));
    out.progression = withQuery(gamePath("progression"), range);
    return out;
  }

  // ccuPath is the CCU panel's request: per day over the range, or per hour
  // over its last days (an hourly series is at most HOUR_DAYS long, a
  // filtered one per day at most CCU_FILTERED_DAYS: counted when asked).
  function ccuPath(filters) {
    const from = $("from").value, to = $("to").value, interval = $("ccu-interval").value;
    const days = interval === "hour" ? HOUR_DAYS : Object.keys(filters).length ? CCU_FILTERED_DAYS : 0;
    const last = days ? addDays(to, -(days - 1)) : from;
    return withQuery(gamePath("metrics/ccu_peak"), Object.assign({ from: last > from ? last : from, to, interval }, filters));
  }

  const RENDER = {
    dau: (a) => drawMetric("dau", a),
    new_players: (a) => drawMetric("new_players", a),
    revenue: (a) => drawMetric("revenue", a),
    sessions: (a) => drawMetric("sessions", a),
    ccu: (a) => drawMetric("ccu", a),
    retention: drawRetention,
    ltv: drawLTV,
    economy: (a) => { economyAnswer = a; drawEconomy(); },
    progression: drawProgression,
  };

  function panelRoot(name) { return document.querySelector('[data-panel="' + name + '"]'); }

  function panelBody(root) { return root.querySelector(".plot, .body"); }

  // saveHash keeps the range and filters in the address, so a filtered view
  // can be bookmarked or shared (the key is never in it).
  function saveHash() {
    const p = Object.assign({ from: $("from").value, to: $("to").value, interval: $("interval").value }, filterValues());
    history.replaceState(null, "", "#" + new URLSearchParams(p).toString());
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.get("from") && p.get("to")) { $("from").value = p.get("from"); $("to").value = p.get("to"); }
    if (p.get("interval")) $("interval").value = p.get("interval");
    for (const f of FILTERS) if (p.has(f)) $("f-" + f).value = p.get(f);
  }

  // ---- loading ----

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
    $("to").value = game.today;
    $("from").value = addDays(game.today, -29);
    readHash();
    const cur = $("currency");
    cur.textContent = "";
    for (const c of game.currencies) cur.appendChild(el("option", { value: c }, c));
    $("currency-label").hidden = game.currencies.length < 2;
    optionsRange = "";
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

  // loadPanel asks one panel's request and draws its answer, or its own
  // error: one endpoint failing leaves the others readable.
  async function loadPanel(name, path, gen, unfiltered) {
    const root = panelRoot(name);
    root.dataset.unfiltered = unfiltered ? "true" : "";
    root.dataset.state = "loading";
    root.setAttribute("aria-busy", "true");
    root.dataset.query = path;
    let answer;
    try {
      answer = await api(path);
    } catch (err) {
      if (gen !== generation) return { state: "stale" };
      root.removeAttribute("aria-busy");
      if (err.status === 401) throw err;
      // Peak concurrency is kept for the whole game only on servers that
      // refuse it filters: show the whole game's, saying so.
      if (name === "ccu" && err.status === 400 && FILTERS.includes(err.param) && !unfiltered) {
        return loadPanel(name, ccuPath({}), gen, true);
      }
      const body = panelBody(root);
      body.textContent = "";
      // An endpoint or metric this server does not have yet (404 for the
      // route, 400 naming the metric) is "not available", not an error.
      const missing = err.status === 404 || (err.status === 400 && err.param === "metric");
      root.dataset.state = missing ? "unavailable" : "error";
      root.querySelector(".csv").disabled = true;
      for (const n of root.querySelectorAll(".total, .scope")) n.textContent = "";
      const msg = missing ? "Not available on this server yet (" + path.split("?")[0].replace(/^\/v1\/games\/[^/]+\//, "") + ")"
        : FILTERS.includes(err.param) ? "Not shown: the " + $("f-" + err.param).closest("label").firstChild.textContent.trim().toLowerCase() + " filter was refused (see above)"
          : "Could not load: " + err.message;
      body.appendChild(el("div", { class: missing ? "empty unavailable" : "empty failed" }, msg));
      return { state: root.dataset.state, err };
    }
    if (gen !== generation) return { state: "stale" };
    root.removeAttribute("aria-busy");
    root.querySelector(".csv").disabled = false;
    RENDER[name](answer);
    const note = root.querySelector(".scope");
    if (note) note.textContent = unfiltered ? "whole game: the server keeps concurrency unfiltered" : "";
    root.dataset.state = "ready";
    return { state: "ready" };
  }

  async function load() {
    const from = $("from").value, to = $("to").value;
    if (!from || !to || !game) return;
    const gen = ++generation;
    const started = performance.now();
    setState("loading");
    showError("");
    saveHash();
    $("status").textContent = "Loading…";
    const reqs = requests();
    // The filter bar's values are those of the range: read again when it
    // changes.
    const options = optionsRange === from + "/" + to ? null : loadFilterOptions();
    optionsRange = from + "/" + to;
    for (const f of FILTERS) $("f-" + f).removeAttribute("aria-invalid");
    try {
      const results = await Promise.all(Object.entries(reqs).map(([name, path]) => loadPanel(name, path, gen)));
      await options;
      if (gen !== generation) return;
      const failed = results.filter((r) => r.state === "error");
      // A filter value the API refuses (an unknown platform, not a country
      // code) is said once, at its field, not in every panel.
      const refused = failed.find((r) => FILTERS.includes(r.err.param));
      if (refused) {
        $("f-" + refused.err.param).setAttribute("aria-invalid", "true");
        showError("Filter " + refused.err.message);
      }
      $("status").textContent = "Updated " + new Date().toLocaleTimeString() + (failed.length ? " · " + failed.length + " panel(s) could not load" : "");
      // How long the panels took, for the browser test to report.
      document.body.dataset.loadMs = String(Math.round(performance.now() - started));
      setState("ready");
    } catch (err) {
      if (gen !== generation) return;
      localStorage.removeItem(KEY);
      showKeyPanel();
      showError("Could not load the numbers: " + err.message);
      $("status").textContent = "";
      setState("error");
    }
  }

  async function reloadPanel(name) {
    const gen = generation;
    try {
      await loadPanel(name, requests()[name], gen);
    } catch (err) {
      showError("Could not load the numbers: " + err.message);
    }
  }

  // loadFilterOptions offers, per dimension, the values the game's events
  // have in the range (one events?by= series per value, biggest first).
  // A server without breakdowns answers points, not series: then the
  // filters are switched off rather than silently ignored.
  async function loadFilterOptions() {
    const from = $("from").value, to = $("to").value;
    const note = $("filters-note");
    const answers = await Promise.all(FILTERS.map((f) =>
      api(withQuery(gamePath("metrics/events"), { from, to, interval: "month", by: f })).catch((err) => err)));
    let unsupported = false;
    answers.forEach((a, i) => {
      const f = FILTERS[i];
      const list = $("dl-" + f);
      list.textContent = "";
      if (a instanceof Error) {
        if (a.status === 400 && a.param === "by") unsupported = true;
        return;
      }
      if (!Array.isArray(a.series)) {
        unsupported = true;
        return;
      }
      for (const s of a.series) {
        const n = s.points.reduce((t, p) => t + p.value, 0);
        list.appendChild(el("option", { value: s.value, label: s.value + " · " + fmt(n) + " events" }));
      }
      $("f-" + f).dataset.options = String(a.series.length);
    });
    for (const f of FILTERS) $("f-" + f).disabled = unsupported;
    $("clear-filters").disabled = unsupported;
    $("filters").dataset.supported = String(!unsupported);
    note.hidden = !unsupported;
    note.textContent = unsupported ? "This server does not break numbers down by dimension yet, so the filters are off." : "";
  }

  // ---- panels ----

  // drawBars draws one bar per point (values as the API gives them; label
  // formats them for the axis and the tooltips).
  function drawBars(plot, points, label, ariaLabel) {
    const vals = points.map((p) => p.value);
    const W = 600, H = 180, L = 64, B = 22, T = 8;
    const max = Math.max(...vals);
    const svg = el("svg:svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": ariaLabel });
    const bw = (W - L - 4) / vals.length;
    svg.appendChild(el("svg:line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }));
    svg.appendChild(el("svg:text", { x: L - 4, y: T + 8, "text-anchor": "end" }, label(max)));
    svg.appendChild(el("svg:text", { x: L - 4, y: H - B, "text-anchor": "end" }, label(0)));
    points.forEach((p, i) => {
      const h = max > 0 ? (p.value / max) * (H - B - T) : 0;
      const r = el("svg:rect", { class: "bar", x: (L + i * bw + bw * 0.1).toFixed(2), y: (H - B - h).toFixed(2),
        width: Math.max(1, bw * 0.8).toFixed(2), height: h.toFixed(2), "data-t": p.t, "data-value": p.value });
      r.appendChild(el("svg:title", {}, p.t + ": " + label(p.value)));
      svg.appendChild(r);
    });
    const step = Math.max(1, Math.ceil(vals.length / 6));
    for (let i = 0; i < vals.length; i += step) {
      const t = points[i].t;
      svg.appendChild(el("svg:text", { x: (L + i * bw + bw / 2).toFixed(2), y: H - 6, "text-anchor": "middle" }, t.length > 10 ? t.slice(5, 13).replace("T", " ") : t.slice(5, 10)));
    }
    plot.appendChild(svg);
  }

  function drawMetric(name, s) {
    const fig = panelRoot(name);
    const plot = fig.querySelector(".plot");
    plot.textContent = "";
    const vals = s.points.map((p) => p.value);
    let label = fmt;
    let total = "";
    if (name === "revenue") {
      const exp = exponentOf(s.currency, s.currency_exponent);
      fig.dataset.currency = s.currency || "";
      fig.dataset.exponent = String(exp);
      fig.querySelector(".unit").textContent = s.currency ? "(" + s.currency + ")" : "";
      label = s.currency ? (v) => money(v, s.currency, exp) : fmt;
      total = "total " + label(vals.reduce((a, b) => a + b, 0));
    } else if (name === "ccu") {
      total = vals.length ? "highest " + fmt(Math.max(...vals)) + (s.interval === "hour" ? " · UTC hours of the range's last " + HOUR_DAYS + " days" : "") : "";
    } else if (name !== "dau") {
      total = "total " + fmt(vals.reduce((a, b) => a + b, 0));
    }
    fig.querySelector(".total").textContent = total;
    fig.dataset.points = JSON.stringify(s.points);
    if (vals.every((v) => v === 0)) {
      plot.appendChild(el("div", { class: "empty" }, "No data in this range"));
      return;
    }
    drawBars(plot, s.points, label, fig.querySelector(".title").textContent);
  }

  function drawRetention(r) {
    const box = $("retention");
    box.textContent = "";
    const cohorts = (r.cohorts || []).filter((c) => c.size > 0);
    if (cohorts.length === 0) {
      box.appendChild(el("div", { class: "empty" }, "No players installed in this range"));
      return;
    }
    const table = el("table", { id: "retention-table" });
    table.appendChild(el("caption", { class: "sr-only" }, "Players retained by install day"));
    const head = el("tr");
    head.appendChild(el("th", { scope: "col" }, "Install day"));
    head.appendChild(el("th", { scope: "col" }, "Players"));
    for (const d of r.days) head.appendChild(el("th", { scope: "col" }, "Day " + d));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const c of cohorts) {
      const tr = el("tr", { "data-cohort": c.cohort });
      tr.appendChild(el("th", { scope: "row" }, c.cohort));
      tr.appendChild(el("td", { "data-size": c.size }, fmt(c.size)));
      for (const d of r.days) {
        const v = c.retained[String(d)];
        if (v === null || v === undefined) {
          tr.appendChild(el("td", { class: "future", "data-day": d }, "–"));
          continue;
        }
        const pct = c.size > 0 ? v / c.size : 0;
        // The cell's shade is a class (the CSP allows no inline style).
        const shade = Math.min(9, Math.floor(pct * 10));
        tr.appendChild(el("td", { class: "heat heat-" + shade, "data-day": d, "data-value": v, title: v + " of " + c.size }, v + " (" + Math.round(pct * 100) + "%)"));
      }
      body.appendChild(tr);
    }
    box.appendChild(table);
  }

  // drawLTV draws revenue per player against days since install: a thin
  // line per install day, a thick one for all of them (their revenue over
  // their players), then the numbers as a table.
  function drawLTV(a) {
    const box = $("ltv");
    const root = panelRoot("ltv");
    box.textContent = "";
    const want = selectedCurrency();
    const cur = (a.currencies || []).find((c) => c.currency === want) || (a.currencies || [])[0];
    const cohorts = cur ? (cur.cohorts || []).filter((c) => c.size > 0) : [];
    root.querySelector(".unit").textContent = cur ? "(" + cur.currency + " per player)" : "";
    if (!cur || cohorts.length === 0) {
      box.appendChild(el("div", { class: "empty" }, cur ? "No players installed in this range" : "No purchases in this range"));
      return;
    }
    const exp = exponentOf(cur.currency, cur.currency_exponent);
    root.dataset.currency = cur.currency;
    root.dataset.exponent = String(exp);
    const days = a.days;
    const perPlayer = (v) => money(v, cur.currency, exp, 2);
    const all = days.map((d) => {
      let rev = 0, size = 0;
      for (const c of cohorts) {
        const v = c.revenue_minor[String(d)];
        if (v !== null && v !== undefined) { rev += v; size += c.size; }
      }
      return size > 0 ? rev / size : null;
    });
    const W = 600, H = 200, L = 64, B = 22, T = 10, R = 10;
    const max = Math.max(0, ...all.filter((v) => v !== null),
      ...cohorts.flatMap((c) => days.map((d) => c.per_player_minor[String(d)]).filter((v) => v !== null && v !== undefined)));
    const x = (i) => L + (days.length > 1 ? i * (W - L - R) / (days.length - 1) : 0);
    const y = (v) => H - B - (max > 0 ? v / max * (H - B - T) : 0);
    const svg = el("svg:svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Revenue per player by days since install, " + cur.currency });
    svg.appendChild(el("svg:line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.appendChild(el("svg:text", { x: L - 4, y: T + 8, "text-anchor": "end" }, perPlayer(max)));
    svg.appendChild(el("svg:text", { x: L - 4, y: H - B, "text-anchor": "end" }, perPlayer(0)));
    days.forEach((d, i) => svg.appendChild(el("svg:text", { x: x(i).toFixed(1), y: H - 6, "text-anchor": "middle" }, "D" + d)));
    const line = (vals, cls, title) => {
      const pts = [];
      vals.forEach((v, i) => { if (v !== null && v !== undefined) pts.push(x(i).toFixed(1) + "," + y(v).toFixed(1)); });
      if (pts.length === 0) return;
      const pl = el("svg:polyline", { class: cls, points: pts.join(" ") });
      pl.appendChild(el("svg:title", {}, title));
      svg.appendChild(pl);
    };
    for (const c of cohorts) line(days.map((d) => c.per_player_minor[String(d)]), "cohort", c.cohort + " (" + fmt(c.size) + " players)");
    line(all, "all", "All install days");
    const plot = el("div", { class: "plot ltv-plot" });
    plot.appendChild(svg);
    box.appendChild(plot);
    box.appendChild(el("p", { class: "muted legend" }, "Thin lines: one install day each. Thick line: all install days together. Cells: revenue per player by day N after install (hover for the cohort's total)."));

    const table = el("table", { id: "ltv-table" });
    table.appendChild(el("caption", { class: "sr-only" }, "Revenue per player by install day, " + cur.currency));
    const head = el("tr");
    head.appendChild(el("th", { scope: "col" }, "Install day"));
    head.appendChild(el("th", { scope: "col" }, "Players"));
    for (const d of days) head.appendChild(el("th", { scope: "col" }, "Day " + d));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const c of cohorts) {
      const tr = el("tr", { "data-cohort": c.cohort });
      tr.appendChild(el("th", { scope: "row" }, c.cohort));
      tr.appendChild(el("td", { "data-size": c.size }, fmt(c.size)));
      for (const d of days) {
        const rev = c.revenue_minor[String(d)], pp = c.per_player_minor[String(d)];
        if (rev === null || rev === undefined) {
          tr.appendChild(el("td", { class: "future", "data-day": d }, "–"));
          continue;
        }
        tr.appendChild(el("td", { "data-day": d, "data-revenue": rev, "data-per-player": pp,
          title: money(rev, cur.currency, exp) + " from " + fmt(c.size) + " players" }, perPlayer(pp)));
      }
      body.appendChild(tr);
    }
    box.appendChild(table);
  }

  function drawEconomy() {
    const a = economyAnswer;
    a.currencies = a.currencies || [];
    const box = $("economy");
    box.textContent = "";
    const sel = $("economy-currency");
    const keep = sel.value;
    sel.textContent = "";
    for (const c of a.currencies) sel.appendChild(el("option", { value: c.currency }, c.currency));
    $("economy-currency-label").hidden = a.currencies.length < 2;
    const cur = a.currencies.find((c) => c.currency === keep) || a.currencies[0];
    if (!cur) {
      box.appendChild(el("div", { class: "empty" }, "No virtual currency flowed in this range"));
      return;
    }
    sel.value = cur.currency;
    panelRoot("economy").dataset.currency = cur.currency;
    if (cur.points.every((p) => p.source === 0 && p.sink === 0)) {
      box.appendChild(el("div", { class: "empty" }, "No " + cur.currency + " flowed in this range"));
      return;
    }
    const src = cur.points.reduce((t, p) => t + p.source, 0), snk = cur.points.reduce((t, p) => t + p.sink, 0);
    box.appendChild(el("p", { class: "totals" }, cur.currency + ": " + fmt(src) + " in (sources), " + fmt(snk) + " out (sinks), net " + fmt(src - snk)));

    // Paired bars per interval: sources left, sinks right.
    const W = 600, H = 180, L = 64, B = 22, T = 8;
    const max = Math.max(0, ...cur.points.map((p) => Math.max(p.source, p.sink)));
    const svg = el("svg:svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": cur.currency + " sources and sinks per " + a.interval, id: "economy-chart" });
    const bw = (W - L - 4) / Math.max(1, cur.points.length);
    svg.appendChild(el("svg:line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }));
    svg.appendChild(el("svg:text", { x: L - 4, y: T + 8, "text-anchor": "end" }, fmt(max)));
    svg.appendChild(el("svg:text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"));
    cur.points.forEach((p, i) => {
      for (const [k, off] of [["source", 0.1], ["sink", 0.5]]) {
        const h = max > 0 ? p[k] / max * (H - B - T) : 0;
        const r = el("svg:rect", { class: "bar " + k, x: (L + i * bw + bw * off).toFixed(2), y: (H - B - h).toFixed(2),
          width: Math.max(1, bw * 0.4).toFixed(2), height: h.toFixed(2), "data-t": p.t, "data-flow": k, "data-value": p[k] });
        r.appendChild(el("svg:title", {}, p.t + " " + k + ": " + fmt(p[k])));
        svg.appendChild(r);
      }
    });
    const step = Math.max(1, Math.ceil(cur.points.length / 6));
    for (let i = 0; i < cur.points.length; i += step) {
      svg.appendChild(el("svg:text", { x: (L + i * bw + bw / 2).toFixed(2), y: H - 6, "text-anchor": "middle" }, cur.points[i].t.slice(5, 10)));
    }
    const plot = el("div", { class: "plot" });
    plot.appendChild(svg);
    box.appendChild(plot);
    const legend = el("p", { class: "muted legend" });
    legend.appendChild(el("span", { class: "key source", "aria-hidden": "true" }, "■"));
    legend.appendChild(document.createTextNode(" sources (earned, bought)  "));
    legend.appendChild(el("span", { class: "key sink", "aria-hidden": "true" }, "■"));
    legend.appendChild(document.createTextNode(" sinks (spent)"));
    box.appendChild(legend);

    const grid = el("div", { class: "tables" });
    grid.appendChild(flowTable("economy-item-types", "By item type", ["Item type"], cur.item_types, (r) => [r.item_type]));
    grid.appendChild(flowTable("economy-top-items", "Top items", ["Item", "Type"], cur.top_items, (r) => [r.item_id, r.item_type]));
    box.appendChild(grid);
  }

  function flowTable(id, caption, keys, rows, keyOf) {
    const wrap = el("div");
    wrap.appendChild(el("h3", {}, caption));
    if (!rows || rows.length === 0) {
      wrap.appendChild(el("div", { class: "empty" }, "None"));
      return wrap;
    }
    const table = el("table", { id });
    const head = el("tr");
    for (const k of keys.concat(["In", "Out", "Net"])) head.appendChild(el("th", { scope: "col" }, k));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const r of rows) {
      const ks = keyOf(r);
      const tr = el("tr", { "data-key": ks.join("/"), "data-source": r.source, "data-sink": r.sink });
      tr.appendChild(el("th", { scope: "row" }, ks[0]));
      for (const k of ks.slice(1)) tr.appendChild(el("td", {}, k));
      tr.appendChild(el("td", {}, fmt(r.source)));
      tr.appendChild(el("td", {}, fmt(r.sink)));
      tr.appendChild(el("td", {}, fmt(r.source - r.sink)));
      body.appendChild(tr);
    }
    wrap.appendChild(table);
    return wrap;
  }

  function drawProgression(p) {
    const box = $("progression");
    box.textContent = "";
    if (!p.levels || p.levels.length === 0) {
      box.appendChild(el("div", { class: "empty" }, "No level was started in this range"));
      return;
    }
    const table = el("table", { id: "progression-table" });
    table.appendChild(el("caption", { class: "sr-only" }, "Starts, completes and fails per level"));
    const head = el("tr");
    for (const h of ["Level", "Starts", "Completes", "Fails", "Fail rate", "Attempts per complete"]) head.appendChild(el("th", { scope: "col" }, h));
    table.appendChild(el("thead")).appendChild(head);
    const body = table.appendChild(el("tbody"));
    for (const l of p.levels) {
      const tr = el("tr", { "data-level": l.level, "data-starts": l.starts, "data-completes": l.completes, "data-fails": l.fails, "data-fail-rate": l.fail_rate });
      tr.appendChild(el("th", { scope: "row" }, l.level));
      tr.appendChild(el("td", {}, fmt(l.starts)));
      tr.appendChild(el("td", {}, fmt(l.completes)));
      tr.appendChild(el("td", {}, fmt(l.fails)));
      const rate = el("td", { class: "rate" });
      const bar = el("span", { class: "ratebar rate-" + Math.min(10, Math.round(l.fail_rate * 10)), "aria-hidden": "true" });
      rate.appendChild(bar);
      rate.appendChild(document.createTextNode((l.fail_rate * 100).toFixed(1) + "%"));
      tr.appendChild(rate);
      tr.appendChild(el("td", {}, l.avg_attempts_on_complete === null || l.avg_attempts_on_complete === undefined ? "–" : fmt(l.avg_attempts_on_complete)));
      body.appendChild(tr);
    }
    box.appendChild(table);
  }

  // ---- live ----

  async function refreshLive() {
    if (!game) return;
    try {
      const l = await api(gamePath("live"));
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

  function startLive() {
    if (liveTimer) clearInterval(liveTimer);
    refreshLive();
    liveTimer = setInterval(refreshLive, 15000);
  }

  // ---- downloads ----

  // save fetches path with the key (a plain link could not send it) and
  // saves the body from a blob URL; it returns the blob.
  async function save(path, accept, filename) {
    const resp = await fetch(path, { headers: authHeaders(accept) });
    if (!resp.ok) {
      let msg = "HTTP " + resp.status;
      try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    const blob = await resp.blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    return blob;
  }

  // downloadCSV saves a panel's numbers: its own request with format=csv.
  async function downloadCSV(root) {
    const q = root.dataset.query;
    if (!q) return;
    const btn = root.querySelector(".csv");
    btn.disabled = true;
    try {
      const blob = await save(q + "&format=csv", "text/csv", game.game + "-" + root.dataset.panel + "-" + $("from").value + "-" + $("to").value + ".csv");
      root.dataset.csvBytes = String(blob.size);
    } catch (err) {
      showError("CSV of " + root.dataset.panel + ": " + err.message);
    } finally {
      btn.disabled = false;
    }
  }

  async function exportDay() {
    const day = $("export-date").value;
    if (!game || !day) return;
    const status = $("export-status");
    status.textContent = "Downloading…";
    try {
      const blob = await save(gamePath("events?date=" + day), "application/x-ndjson", game.game + "-" + day + ".ndjson");
      const lines = blob.size ? (await blob.text()).split("\n").filter((l) => l).length : 0;
      status.textContent = lines ? fmt(lines) + " events" : "No events stored for " + day;
    } catch (err) {
      status.textContent = "";
      showError("Raw events of " + day + ": " + err.message);
    }
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
    for (const f of FILTERS) $("f-" + f).addEventListener("change", load);
    $("clear-filters").addEventListener("click", () => {
      for (const f of FILTERS) $("f-" + f).value = "";
      load();
    });
    $("ccu-interval").addEventListener("change", () => reloadPanel("ccu"));
    $("economy-currency").addEventListener("change", () => { if (economyAnswer) drawEconomy(); });
    for (const b of document.querySelectorAll("[data-panel] .csv")) {
      b.addEventListener("click", () => downloadCSV(b.closest("[data-panel]")));
    }
    $("export").addEventListener("submit", (e) => { e.preventDefault(); exportDay(); });
    $("export-date").value = addDays(isoDate(new Date()), -1);
    $("forget").addEventListener("click", () => {
      localStorage.removeItem(KEY);
      game = null;
      for (const f of FILTERS) $("f-" + f).value = "";
      history.replaceState(null, "", location.pathname);
      showError("");
      showKeyPanel();
    });
    const key = localStorage.getItem(KEY);
    if (key) open(key); else setState("key");
  });
})();
