// The charts: response time and throughput scatter plots, idle periods on
// the time axis, and the tables beside them. At most MAX_POINTS points are
// drawn per chart (the highest of each time slice, so outliers stay); the
// note under the chart says when.
"use strict";
DW.MAX_POINTS = 4000;
DW.CHART = { W: 960, H: 260, l: 64, r: 16, t: 12, b: 34 };

// Rows of a {columns, points} chart as objects.
DW.rows = function (chart) {
  return chart.points.map(function (p) {
    const o = {};
    chart.columns.forEach((c, i) => { o[c] = p[i]; });
    return o;
  });
};

// Keep the highest `per` points of each of `bins` time slices.
DW.thin = function (rows, key, bins, per) {
  if (rows.length <= DW.MAX_POINTS) return rows;
  const lo = DW.min(rows, (r) => r.t), hi = DW.max(rows, (r) => r.t);
  const slices = new Map();
  rows.forEach(function (r) {
    const b = Math.floor((r.t - lo) / ((hi - lo) || 1) * (bins - 1));
    const s = slices.get(b) || [];
    s.push(r);
    if (s.length > per) { s.sort((p, q) => q[key] - p[key]); s.length = per; }
    slices.set(b, s);
  });
  return [].concat(...slices.values());
};

// A scatter plot: x time (s), y value on a log scale; each point links to
// the ladder arrow of its event.
DW.scatter = function (box, rows, o) {
  const C = DW.CHART, total = rows.length;
  const svg = DW.svg("svg", { width: C.W, height: C.H }, box);
  rows = rows.filter((r) => o.y(r) > 0);
  if (!rows.length) {
    DW.svg("text", { class: "empty", x: C.W / 2, y: C.H / 2, "text-anchor": "middle", text: o.empty }, svg);
    return;
  }
  const shown = DW.thin(rows, o.key, 1000, 4);
  const T = DW.M.timeline, pad = Math.max((T.end - T.start) * 0.02, 0.0005);
  const x0 = T.start - pad, x1 = T.end + pad;
  let ylo = DW.min(rows, o.y), yhi = DW.max(rows, o.y);
  if (o.threshold) yhi = Math.max(yhi, o.threshold * 1.5);
  ylo = Math.pow(10, Math.floor(Math.log10(ylo))); yhi = Math.pow(10, Math.ceil(Math.log10(yhi)));
  if (ylo === yhi) yhi = ylo * 10;
  const X = (t) => C.l + (t - x0) / (x1 - x0) * (C.W - C.l - C.r);
  const Y = (v) => C.H - C.b - (Math.log10(v) - Math.log10(ylo)) / (Math.log10(yhi) - Math.log10(ylo)) * (C.H - C.t - C.b);
  DW.axes(svg, X, Y, x0, x1, DW.logTicks(ylo, yhi), o.yText);
  if (o.threshold) {
    DW.svg("line", { class: "threshold", x1: C.l, x2: C.W - C.r, y1: Y(o.threshold), y2: Y(o.threshold),
                     title: o.thresholdText }, svg);
  }
  shown.forEach(function (r) {
    const c = DW.svg("circle", { class: "pt " + o.cls(r), cx: X(r.t), cy: Y(o.y(r)), r: 3.5, title: o.title(r),
                                 fill: DW.colour(r.name) }, svg);
    c.addEventListener("click", () => { location.hash = "#ev-" + r.assoc + "-" + r.seq; });
  });
  const names = [...new Set(shown.map((r) => r.name))];
  const note = DW.el("p", { class: "chart-note" }, box);
  names.forEach(function (n) {
    DW.el("i", { style: "display:inline-block;width:10px;height:10px;border-radius:5px;margin:0 4px 0 10px;background:" + DW.colour(n) }, note);
    note.appendChild(document.createTextNode(n));
  });
  if (shown.length < total) note.appendChild(document.createTextNode(" \u00b7 " + DW.num(shown.length) + " of " + DW.num(total) + " points drawn (the highest of each time slice)"));
};

DW.axes = function (svg, X, Y, x0, x1, yticks, yText) {
  const C = DW.CHART, g = DW.svg("g", { class: "axis" }, svg);
  DW.svg("line", { x1: C.l, x2: C.W - C.r, y1: C.H - C.b, y2: C.H - C.b }, g);
  DW.svg("line", { x1: C.l, x2: C.l, y1: C.t, y2: C.H - C.b }, g);
  DW.ticks(x0, x1, 8).forEach(function (v) {
    DW.svg("line", { x1: X(v), x2: X(v), y1: C.H - C.b, y2: C.H - C.b + 4 }, g);
    DW.svg("text", { x: X(v), y: C.H - C.b + 16, "text-anchor": "middle", text: DW.tickText(v) + " s" }, g);
  });
  yticks.forEach(function (v) {
    DW.svg("line", { x1: C.l - 4, x2: C.W - C.r, y1: Y(v), y2: Y(v), style: "stroke-opacity:0.35" }, g);
    DW.svg("text", { x: C.l - 6, y: Y(v) + 4, "text-anchor": "end", text: yText(v) }, g);
  });
};

// A stable colour per message name.
DW.colour = function (name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return "hsl(" + h + ",62%,42%)";
};

// Idle periods as bars on the time axis, coloured by who was awaited.
DW.idleChart = function (box, rows) {
  const C = DW.CHART, H = 90;
  const svg = DW.svg("svg", { width: C.W, height: H }, box);
  if (!rows.length) {
    DW.svg("text", { class: "empty", x: C.W / 2, y: H / 2, "text-anchor": "middle", text: "No pause longer than " + DW.M.summary.thresholds.idle + " s between PDUs." }, svg);
    return;
  }
  const T = DW.M.timeline, pad = Math.max((T.end - T.start) * 0.02, 0.0005), x0 = T.start - pad, x1 = T.end + pad;
  const X = (t) => C.l + (t - x0) / (x1 - x0) * (C.W - C.l - C.r);
  rows.slice(0, DW.MAX_POINTS).forEach(function (r) {
    const who = r.waiting_for || "nobody";
    const b = DW.svg("rect", { class: "idle-" + who, x: X(r.t), y: 14, width: Math.max(2, X(r.t + r.seconds) - X(r.t)), height: 40,
                               title: "association #" + r.assoc + ": idle " + DW.seconds(r.seconds) + (r.waiting_for ? ", waiting for the " + r.waiting_for + " (" + (r.waited_side || "?") + ")" : ", nobody waiting") }, svg);
    b.addEventListener("click", () => { location.hash = "#idle-" + r.assoc + "-" + r.index; });
  });
  const g = DW.svg("g", { class: "axis" }, svg);
  DW.ticks(x0, x1, 8).forEach((v) => DW.svg("text", { x: X(v), y: 74, "text-anchor": "middle", text: DW.tickText(v) + " s" }, g));
  const note = DW.el("p", { class: "chart-note" }, box);
  note.textContent = "orange: waiting for the acceptor \u00b7 purple: waiting for the requestor \u00b7 grey: nobody waiting";
};

DW.charts = function () {
  const ch = DW.M.charts, th = DW.M.summary.thresholds;
  DW.scatter(document.getElementById("chart-rsp"), DW.rows(ch.response_times), {
    y: (r) => Math.max(r.seconds, 1e-6), key: "seconds", cls: () => "", yText: (v) => DW.seconds(v),
    threshold: th.slow_response, thresholdText: "slow response threshold " + th.slow_response + " s",
    title: (r) => r.name + " in association #" + r.assoc + ": " + DW.seconds(r.seconds) + " after its request, at " + DW.at(r.t) + " s",
    empty: "No response paired with its request.",
  });
  DW.scatter(document.getElementById("chart-tp"), DW.rows(ch.throughput).filter((r) => r.seconds > 0), {
    y: (r) => r.bytes / r.seconds / 1e6, key: "bytes", cls: () => "", yText: (v) => DW.tickText(v) + " MB/s",
    title: (r) => r.name + " in association #" + r.assoc + ": " + DW.bytes(r.bytes) + " in " + DW.seconds(r.seconds) + " (" + (r.bytes / r.seconds / 1e6).toFixed(2) + " MB/s)",
    empty: "No data set took longer than one frame (no rate to show).",
  });
  const idle = DW.rows(ch.idle);
  DW.idleChart(document.getElementById("chart-idle"), idle);
  const it = document.querySelector("#idle-table tbody");
  idle.slice().sort((p, q) => q.seconds - p.seconds).slice(0, 100).forEach(function (r) {
    const a = DW.byId[r.assoc], p = a.idle[r.index];
    const tr = DW.el("tr", {}, it);
    DW.el("a", { href: "#idle-" + r.assoc + "-" + r.index, text: "#" + r.assoc + " " + DW.ae(a) }, DW.el("td", {}, tr));
    DW.el("td", { text: DW.at(r.t) + " s" }, tr);
    DW.el("td", { text: DW.seconds(r.seconds) }, tr);
    DW.el("td", { text: p.from + "\u2013" + p.to }, tr);
    DW.el("td", { text: r.waiting_for ? r.waiting_for + " (" + (r.waited_side || "?") + ")" : "nobody (the " + p.next_sender + " was idle)" }, tr);
  });
  const st = document.querySelector("#rsp-stats tbody");
  ch.response_stats.forEach(function (s) {
    const tr = DW.el("tr", {}, st);
    [s.name, DW.num(s.count), DW.seconds(s.mean), DW.seconds(s.max)].forEach((v) => DW.el("td", { text: v }, tr));
  });
};
