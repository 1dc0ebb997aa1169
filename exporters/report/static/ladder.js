// The ladder diagram of one association (the sequence diagram DICOM
// engineers draw): requestor on the left, acceptor on the right, one arrow
// per association PDU and DIMSE message in the rows the model assigned,
// markers for idle periods and events left out. Every arrow carries its
// frame numbers and has the id ev-ASSOC-SEQ, which findings link to.
"use strict";
DW.LADDER = { W: 960, head: 58, row: 40, left: 250, right: 770 };

DW.ladder = function (a) {
  const L = DW.LADDER, mid = (L.left + L.right) / 2;
  const svg = DW.svg("svg", { class: "ladder", id: "ladder-" + a.id, width: L.W,
                              height: L.head + a.rows * L.row + 16 });
  const yOf = (row) => L.head + row * L.row + L.row / 2;
  DW.actors(svg, a, L);
  const bottom = L.head + a.rows * L.row + 10;
  [L.left, L.right].forEach((x) => DW.svg("line", { class: "lifeline", x1: x, x2: x, y1: L.head - 6, y2: bottom }, svg));
  const answers = {};                          // request seq -> its responses' seqs
  a.events.forEach(function (ev) {
    if (ev.pair != null) (answers[ev.pair] = answers[ev.pair] || []).push(ev.seq);
  });
  a.events.forEach((ev) => DW.arrow(svg, a, ev, yOf(ev.row), answers));
  a.markers.forEach((m) => DW.marker(svg, a, m, yOf(m.row), mid));
  return svg;
};

DW.actors = function (svg, a, L) {
  [[L.left, a.calling, a.client, "requestor"], [L.right, a.called, a.server, "acceptor"]].forEach(function (s) {
    const g = DW.svg("g", { class: "actor" }, svg);
    DW.svg("rect", { x: s[0] - 110, y: 6, width: 220, height: 40, rx: 5 }, g);
    DW.svg("text", { x: s[0], y: 23, "text-anchor": "middle", text: (s[1] || "?") + " (" + s[3] + ")" }, g);
    DW.svg("text", { class: "addr", x: s[0], y: 39, "text-anchor": "middle", text: s[2] }, g);
  });
};

DW.arrow = function (svg, a, ev, y, answers) {
  const L = DW.LADDER, mid = (L.left + L.right) / 2;
  const bad = ev.name === "A-ASSOCIATE-RJ" || ev.name === "A-ABORT" || ev.category === "Failure";
  const kind = ev.kind === "assoc" ? (bad ? "assoc bad" : ev.name.startsWith("A-RELEASE") ? "assoc release" : "assoc") : (bad ? "bad" : "");
  const g = DW.svg("g", { class: "arrow " + kind + (ev.incomplete ? " incomplete" : "") + (ev.match ? " matched" : ""),
                          id: "ev-" + a.id + "-" + ev.seq, "data-seq": ev.seq }, svg);
  DW.svg("rect", { class: "hit", x: 0, y: y - L.row / 2, width: L.W, height: L.row }, g);
  DW.svg("text", { class: "when", x: 8, y: y - 3, text: "+" + DW.at(ev.t) + " s" }, g);
  DW.svg("text", { class: "when", x: 8, y: y + 11, text: "frame " + DW.frames(ev.frames) }, g);
  const x1 = ev.dir === 0 ? L.left : L.right, x2 = ev.dir === 0 ? L.right : L.left;
  DW.svg("line", { x1: x1, x2: x2 + (ev.dir === 0 ? -9 : 9), y1: y, y2: y }, g);
  const d = ev.dir === 0 ? -1 : 1;
  DW.svg("path", { class: "head", d: "M" + x2 + "," + y + " l" + (10 * d) + ",-5 l0,10 z" }, g);
  DW.svg("text", { class: "label", x: mid, y: y - 6, "text-anchor": "middle", text: DW.label(ev) }, g);
  const sub = DW.svg("text", { class: "sub", x: mid, y: y + 14, "text-anchor": "middle" }, g);
  DW.subParts(a, ev).forEach((p) => DW.svg("tspan", { class: p[1] || "", text: p[0] }, sub));
  DW.timing(g, ev, y);
  DW.findingMarks(g, ev, y);
  DW.tip(g, DW.details(a, ev));
  const partners = (answers[ev.seq] || []).concat(ev.pair != null ? [ev.pair] : []);
  g.addEventListener("mouseenter", () => partners.forEach((s) => DW.partner(a, s, true)));
  g.addEventListener("mouseleave", () => partners.forEach((s) => DW.partner(a, s, false)));
  return g;
};

// A dot per finding at the arrow's end (its message as tooltip, a link to
// the list), and the name of the most severe one when it is a note or worse.
DW.findingMarks = function (g, ev, y) {
  const L = DW.LADDER, fs = (ev.findings || []).map((n) => DW.M.findings[n]);
  fs.forEach(function (f, i) {
    const c = DW.svg("circle", { class: "fmark " + f.severity, cx: L.W - 14 - i * 14, cy: y, r: 5.5,
                                 title: f.severity + ": " + f.name + ": " + f.message }, g);
    c.addEventListener("click", (e) => { e.stopPropagation(); location.hash = "#finding-" + f.n; });
  });
  const rank = { error: 3, warn: 2, note: 1, chat: 0 };
  const worst = fs.slice().sort((p, q) => rank[q.severity] - rank[p.severity])[0];
  if (worst && rank[worst.severity] > 0) {
    DW.svg("text", { class: "ftext " + worst.severity, x: L.right + 16, y: y + 17,
                     text: worst.name + (fs.length > 1 ? " +" + (fs.length - 1) : "") }, g);
  }
};

DW.partner = function (a, seq, on) {
  const e = document.getElementById("ev-" + a.id + "-" + seq);
  if (e) e.classList.toggle("partner", on);
};

DW.label = function (ev) {
  let s = ev.name + (ev.msg_id != null ? " ID=" + ev.msg_id : "");
  if (ev.sop && !ev.name.endsWith("-RSP")) s += " \u00b7 " + ev.sop;
  return s.length > 86 ? s.slice(0, 85) + "\u2026" : s;
};

// The line under an arrow: [text, class] parts.
DW.subParts = function (a, ev) {
  const out = [];
  const add = (t, c) => out.push([(out.length ? " \u00b7 " : "") + t, c]);
  if (ev.category) add(!ev.meaning ? ev.category : ev.meaning.length <= 40 ? ev.meaning : ev.category + " 0x" + DW.hex(ev.status), "st-" + ev.category);
  if (ev.ds != null) add("data set " + DW.bytes(ev.ds) + (ev.dt > 0 ? " in " + DW.seconds(ev.dt) : ""));
  if (ev.size != null && ev.kind === "assoc") add(DW.bytes(ev.size));
  if (ev.detail) add(ev.detail);
  if (ev.dest) add("move to " + ev.dest);
  if (ev.subops) add("sub-operations: " + ["completed", "failed", "warning", "remaining"].filter((k) => ev.subops[k] != null).map((k) => ev.subops[k] + " " + k).join(", "));
  if (ev.cancels != null) {
    const rq = a.events.find((e) => e.seq === ev.cancels);
    add("cancels " + (rq ? rq.name + " ID=" + rq.msg_id + " (frame " + rq.frames[1] + ")" : "a request left out here"));
  }
  if (ev.callbacks) add("callback association(s) #" + ev.callbacks.join(", #"));
  if (ev.missing) add(DW.bytes(ev.missing) + " missing from the capture", "st-Failure");
  if (ev.incomplete) add("incomplete", "st-Failure");
  if (ev.patient) add(Object.keys(ev.patient).map((k) => k + "=" + ev.patient[k]).join(", "));
  return out;
};

// Right of the acceptor: how long the response took, or that none came.
DW.timing = function (g, ev, y) {
  const L = DW.LADDER, x = L.right + 16;
  if (ev.rsp_time != null) {
    DW.svg("text", { class: ev.slow ? "slow" : "when", x: x, y: y + 4,
                     text: (ev.slow ? "slow response: " : "after ") + DW.seconds(ev.rsp_time) }, g);
  } else if (ev.unanswered) {
    DW.svg("text", { class: "slow", x: x, y: y + 4,
                     text: (ev.pending ? "no final response (" : "no response (") + ev.unanswered + ")" }, g);
  }
};

DW.details = function (a, ev) {
  const lines = [ev.name + (ev.msg_id != null ? " ID=" + ev.msg_id : ""),
                 "frames " + DW.frames(ev.frames) + ", at " + DW.at(ev.t) + " s" + (ev.dt ? ", lasting " + DW.seconds(ev.dt) : ""),
                 (ev.dir === 0 ? a.calling + " \u2192 " + a.called : a.called + " \u2192 " + a.calling)];
  if (ev.sop) lines.push(ev.sop);
  if (ev.category) lines.push("status 0x" + DW.hex(ev.status) + ": " + (ev.meaning || ev.category));
  if (ev.instance) lines.push("SOP Instance " + ev.instance);
  (ev.problems || []).forEach((p) => lines.push("problem: " + p));
  return lines.join("\n");
};

DW.marker = function (svg, a, m, y, mid) {
  const L = DW.LADDER;
  const id = m.kind === "idle" ? "idle-" + a.id + "-" + m.idle : null;
  const g = DW.svg("g", { class: "marker " + (m.kind === "idle" ? "idle" : "left-out"), id: id }, svg);
  DW.svg("rect", { x: L.left - 40, y: y - L.row / 2 + 5, width: L.right - L.left + 80, height: L.row - 10, rx: 4 }, g);
  let text;
  if (m.kind === "idle") {
    const p = a.idle[m.idle];
    const who = p.waiting_for ? "waiting for the " + p.waiting_for + " (" + ((p.waiting_for === "acceptor" ? a.called : a.calling) || "?") + ")"
                              : "nobody was waiting: the " + p.next_sender + " was idle";
    text = "idle " + DW.seconds(p.seconds) + " between frames " + p.from + " and " + p.to + ": " + who;
  } else {
    text = "\u2026 " + DW.num(m.count) + " event(s) left out here (the report keeps the first and last of each association) \u2026";
  }
  DW.svg("text", { x: mid, y: y + 4, "text-anchor": "middle", text: text }, g);
};

// The negotiation table and the facts of an association, as HTML.
DW.negotiation = function (a, parent) {
  const n = DW.M.negotiations[a.negotiation];
  const facts = DW.el("div", { class: "facts negotiation" }, parent);
  const fact = (k, v) => { const s = DW.el("span", {}, facts); DW.el("b", { text: k + " " }, s); s.appendChild(document.createTextNode(v)); };
  if (!n.negotiated) fact("negotiation", "not captured (the capture began later)");
  fact("max PDU", "requestor " + DW.num(n.max_pdu[0]) + ", acceptor " + DW.num(n.max_pdu[1]));
  ["requestor", "acceptor"].forEach(function (side, i) {
    const impl = n.implementation[i];
    if (impl) fact(side + " implementation", (impl[0] || "-") + (impl[1] ? " (" + impl[1] + ")" : ""));
  });
  if (n.async_window[0] || n.async_window[1]) fact("async window", JSON.stringify(n.async_window));
  if (n.user_identity) fact("user identity", n.user_identity);
  n.roles.forEach((r) => fact("role " + (r.sop[1] || r.sop[0]), "SCU/SCP proposed " + JSON.stringify(r.proposed) + ", accepted " + JSON.stringify(r.accepted)));
  if (!n.contexts.length) return;
  const t = DW.el("table", { class: "list negotiation" }, parent);
  const head = DW.el("tr", {}, DW.el("thead", {}, t));
  ["context", "abstract syntax", "transfer syntaxes offered", "result", "accepted"].forEach((h) => DW.el("th", { text: h }, head));
  const body = DW.el("tbody", {}, t);
  const nm = (u) => u ? (u[1] || u[0]) : "-";
  n.contexts.forEach(function (c) {
    const tr = DW.el("tr", { class: c.result === "acceptance" ? "" : "rejected-ctx" }, body);
    DW.el("td", { text: c.id }, tr);
    DW.el("td", { text: nm(c.abstract), title: c.abstract ? c.abstract[0] : "" }, tr);
    DW.el("td", { text: c.offered.map(nm).join(", ") }, tr);
    DW.el("td", { text: c.result }, tr);
    DW.el("td", { text: nm(c.accepted) + (c.inferred ? " (proven from the data)" : ""), title: c.accepted ? c.accepted[0] : "" }, tr);
  });
};
