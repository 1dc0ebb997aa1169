// The report's helpers: element builders, number formats, axes and a pager.
// Plain scripts sharing one namespace (DW): a page opened from a file
// cannot load modules, and nothing may be fetched.
"use strict";
const DW = {};
// The model (build.py), packed by render.py: each list of dicts as rows of
// values in the order of a key list ($schemas). Unpacked here; a null value
// is left out, so absent and null agree.
DW.unpack = function (v, schemas) {
  if (Array.isArray(v)) return v.map((x) => DW.unpack(x, schemas));
  if (v === null || typeof v !== "object") return v;
  if (v.$s !== undefined) {
    const keys = schemas[v.$s];
    return v.$rows.map(function (row) {
      const o = {};
      for (let i = 0; i < row.length; i++) if (row[i] !== null) o[keys[i]] = DW.unpack(row[i], schemas);
      return o;
    });
  }
  const o = {};
  for (const k in v) if (v[k] !== null && k !== "$schemas") o[k] = DW.unpack(v[k], schemas);
  return o;
};
DW.M = (function () {
  const packed = JSON.parse(document.getElementById("model").textContent);
  return DW.unpack(packed, packed.$schemas);
})();
DW.SVG = "http://www.w3.org/2000/svg";

// An HTML element: attributes (a "text" key sets its text), appended to parent.
DW.el = function (tag, attrs, parent) {
  const e = document.createElement(tag);
  DW.set(e, attrs);
  if (parent) parent.appendChild(e);
  return e;
};

// An SVG element, the same way.
DW.svg = function (tag, attrs, parent) {
  const e = document.createElementNS(DW.SVG, tag);
  DW.set(e, attrs);
  if (parent) parent.appendChild(e);
  return e;
};

DW.set = function (e, attrs) {
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v == null) continue;
    if (k === "text") e.textContent = v;
    else if (k === "title") DW.tip(e, v);
    else e.setAttribute(k, v);
  }
};

// A tooltip: <title> in SVG, the title attribute in HTML.
DW.tip = function (e, text) {
  if (e instanceof SVGElement) {
    const t = document.createElementNS(DW.SVG, "title");
    t.textContent = text;
    e.appendChild(t);
  } else {
    e.setAttribute("title", text);
  }
};

DW.seconds = function (s) {
  if (s == null) return "-";
  if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms";
  return s.toFixed(3) + " s";
};

DW.bytes = function (n) {
  if (n == null) return "-";
  const units = ["bytes", "kB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return i ? n.toFixed(1) + " " + units[i] : n + " bytes";
};

DW.hex = (n) => n.toString(16).toUpperCase().padStart(4, "0");
DW.num = (n) => (n == null) ? "-" : n.toLocaleString("en");
DW.at = (t) => (t == null) ? "-" : t.toFixed(6);   // tshark's relative time
DW.frames = (f) => f[0] === f[1] ? "" + f[0] : f[0] + "\u2013" + f[1];
DW.ae = (a) => (a.calling || "?") + " \u2192 " + (a.called || "?");
DW.cls = (s) => String(s).replace(/[^a-z0-9]+/gi, "-");

// The least and greatest f(row) (no spread: 100,000 arguments overflow the stack).
DW.min = (rows, f) => rows.reduce((m, r) => Math.min(m, f(r)), Infinity);
DW.max = (rows, f) => rows.reduce((m, r) => Math.max(m, f(r)), -Infinity);

// Round tick values between lo and hi, about n of them.
DW.ticks = function (lo, hi, n) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(12));
  return out;
};

// Decades for a log axis.
DW.logTicks = function (lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(Math.pow(10, e));
  return out;
};

DW.tickText = function (v) {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1000 || Math.abs(v) < 0.001) return v.toExponential(0);
  return String(+v.toPrecision(6));
};

// A pager over `count` items: buttons in `box`; show(page) is called with the page.
DW.pager = function (box, count, size, show) {
  const pages = Math.max(1, Math.ceil(count / size));
  const state = { page: 0, pages: pages, size: size };
  function draw() {
    box.textContent = "";
    if (pages <= 1) { box.textContent = count + " shown"; return; }
    const prev = DW.el("button", { type: "button", text: "\u2039 prev" }, box);
    DW.el("span", { text: "page " + (state.page + 1) + " of " + pages + " (" + DW.num(count) + ")" }, box);
    const next = DW.el("button", { type: "button", text: "next \u203a" }, box);
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
    prev.onclick = () => state.go(state.page - 1);
    next.onclick = () => state.go(state.page + 1);
  }
  state.go = function (p) {
    state.page = Math.max(0, Math.min(pages - 1, p));
    draw();
    show(state.page);
  };
  state.go(0);
  return state;
};

// Scroll to an element, mark it for a moment.
DW.reveal = function (e) {
  if (!e) return;
  e.scrollIntoView({ block: "center" });
  document.querySelectorAll(".target").forEach((x) => x.classList.remove("target"));
  e.classList.add("target");
};
