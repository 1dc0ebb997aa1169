// The timeline: one bar per association on one time axis, in the lanes the
// model assigned (layout.py), coloured by outcome; dashed lines from a
// C-MOVE to its callback association. Wheel and buttons zoom around a
// point, dragging pans; bars are moved on each change, never rebuilt, so
// 10,000 associations stay responsive.
"use strict";
DW.timeline = function (onPick) {
  const svg = document.getElementById("timeline-svg");
  const A = DW.M.associations, T = DW.M.timeline;
  if (!A.length) {
    svg.setAttribute("height", 40);
    DW.svg("text", { class: "empty", x: 12, y: 24, text: "No DICOM association in the capture." }, svg);
    return { select: function () {} };
  }
  const lanes = Math.max(1, T.lanes);
  const laneH = lanes > 60 ? Math.max(2, Math.floor(900 / lanes)) : 18;
  const top = 6, axisH = 26, H = top + lanes * laneH + axisH;
  const labels = A.length <= 2000 && laneH >= 14;
  svg.setAttribute("height", H);
  const pad = Math.max((T.end - T.start) * 0.02, 0.0005);
  const full = [T.start - pad, T.end + pad];
  let view = full.slice(), dragged = false, W = 1100;
  // Read once per drawing: reading a layout size after each bar moved would
  // lay the page out again for every bar.
  const width = () => W;
  const measure = () => { W = svg.clientWidth || 1100; };
  const x = (t) => (t - view[0]) / (view[1] - view[0]) * W;
  const mid = (a) => top + a.lane * laneH + laneH / 2;

  const barLayer = DW.svg("g", {}, svg), linkLayer = DW.svg("g", {}, svg);
  const axis = DW.svg("g", { class: "axis" }, svg);
  const bars = A.map(function (a) {
    const r = DW.svg("rect", {
      class: "bar " + DW.cls(a.outcome), id: "tl-" + a.id, "data-assoc": a.id,
      y: top + a.lane * laneH + 1, height: Math.max(1, laneH - 2), rx: 2,
      title: "#" + a.id + " " + DW.ae(a) + " \u00b7 " + a.outcome + " \u00b7 " + DW.at(a.start) +
             " s, " + DW.seconds(a.end - a.start) + " \u00b7 " + a.messages + " message(s)",
    }, barLayer);
    r.addEventListener("click", () => { if (!dragged) onPick(a.id); });
    return r;
  });
  const texts = labels ? A.map((a) => DW.svg("text", { class: "bar-label", y: mid(a) + 3.5 }, barLayer)) : [];
  const links = [];
  A.forEach(function (a) {
    const cb = a.callback_of, src = cb && DW.byId[cb.assoc];
    if (!src) return;
    const ev = src.events.find((e) => e.seq === cb.seq);
    const p = DW.svg("path", { class: "cb-link", title: "callback of the C-MOVE in association #" + src.id }, linkLayer);
    links.push({ p: p, from: ev ? ev.t : src.start, src: src, a: a });
  });

  function draw() {
    A.forEach(function (a, i) {
      const x0 = x(a.start), w = Math.max(2, x(a.end) - x0);
      bars[i].setAttribute("x", x0);
      bars[i].setAttribute("width", w);
      if (labels) {
        const t = texts[i];
        t.setAttribute("x", Math.max(x0, 0) + 3);
        t.textContent = w > 90 ? DW.ae(a) : "";
      }
    });
    links.forEach(function (l) {
      const x1 = x(l.from), y1 = mid(l.src), x2 = x(l.a.start), y2 = mid(l.a);
      l.p.setAttribute("d", "M" + x1 + "," + y1 + " C" + (x1 + 20) + "," + y1 + " " + (x2 - 20) + "," + y2 + " " + x2 + "," + y2);
    });
    drawAxis();
  }

  function drawAxis() {
    axis.textContent = "";
    const y = H - axisH + 4;
    DW.svg("line", { x1: 0, x2: width(), y1: y, y2: y }, axis);
    DW.ticks(view[0], view[1], Math.max(2, Math.floor(width() / 110))).forEach(function (v) {
      DW.svg("line", { x1: x(v), x2: x(v), y1: y, y2: y + 4 }, axis);
      DW.svg("text", { x: x(v) + 2, y: y + 16, text: DW.tickText(v) + " s" }, axis);
    });
  }

  function zoom(factor, px) {
    const span = view[1] - view[0], at = view[0] + px / width() * span;
    const next = Math.min(Math.max(span * factor, 1e-6), (full[1] - full[0]) * 4);
    view = [at - px / width() * next, at + (1 - px / width()) * next];
    draw();
  }

  svg.addEventListener("wheel", function (e) {
    e.preventDefault();
    zoom(e.deltaY < 0 ? 0.8 : 1.25, e.offsetX);
  }, { passive: false });
  svg.addEventListener("mousedown", function (e) {
    const x0 = e.clientX, v0 = view.slice();
    dragged = false;
    svg.classList.add("dragging");
    function move(ev) {
      const dx = ev.clientX - x0;
      if (Math.abs(dx) > 3) dragged = true;
      const dt = dx / width() * (v0[1] - v0[0]);
      view = [v0[0] - dt, v0[1] - dt];
      draw();
    }
    function up() {
      svg.classList.remove("dragging");
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
    }
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });
  document.querySelectorAll("[data-zoom]").forEach(function (b) {
    b.addEventListener("click", function () {
      const how = b.getAttribute("data-zoom");
      if (how === "reset") { view = full.slice(); draw(); } else zoom(how === "in" ? 0.5 : 2, width() / 2);
    });
  });
  const legend = document.getElementById("timeline-legend");
  ["released", "rejected", "aborted", "closed", "open"].forEach(function (o) {
    DW.el("i", { style: "background: var(--" + o + ")" }, legend);
    legend.appendChild(document.createTextNode(o));
  });
  window.addEventListener("resize", () => { measure(); draw(); });
  measure();
  draw();

  return {
    // Mark an association's bar, and bring it into view if it is outside.
    select: function (id) {
      document.querySelectorAll(".bar.selected").forEach((b) => b.classList.remove("selected"));
      const a = DW.byId[id], bar = document.getElementById("tl-" + id);
      if (!a || !bar) return;
      bar.classList.add("selected");
      if (a.end < view[0] || a.start > view[1]) {
        const span = view[1] - view[0], c = (a.start + a.end) / 2;
        view = [c - span / 2, c + span / 2];
        draw();
      }
    },
  };
};
