// The page's main script: the association list (filtered, paged; a row
// opens the association's facts, ladder and negotiation, drawn when first
// opened), the findings and query lists, and navigation by address:
// #ev-A-S (an arrow), #assoc-A, #idle-A-I, #finding-N.
"use strict";
DW.byId = {};
DW.M.associations.forEach((a) => { DW.byId[a.id] = a; });
DW.PAGE = 50;

DW.assocList = {
  rows: DW.M.associations, pager: null, open: new Set(),
  init: function () {
    const input = document.getElementById("assoc-filter");
    input.addEventListener("input", () => this.filter(input.value));
    if (DW.M.associations.length <= 10) DW.M.associations.forEach((a) => this.open.add(a.id));
    this.filter("");
  },
  filter: function (text) {
    const q = text.trim().toLowerCase();
    this.rows = DW.M.associations.filter((a) => !q || [a.calling, a.called, a.client, a.server, a.outcome, "#" + a.id]
      .some((v) => v && String(v).toLowerCase().includes(q)));
    this.pager = DW.pager(document.getElementById("assoc-pager"), this.rows.length, DW.PAGE, (p) => this.show(p));
  },
  show: function (page) {
    const body = document.querySelector("#assoc-table tbody");
    body.textContent = "";
    if (!this.rows.length) DW.el("td", { colspan: 9, text: "No association to show." }, DW.el("tr", {}, body));
    this.rows.slice(page * DW.PAGE, (page + 1) * DW.PAGE).forEach((a) => this.row(body, a));
  },
  row: function (body, a) {
    const tr = DW.el("tr", { class: "assoc-row", id: "assoc-" + a.id }, body);
    const cells = ["#" + a.id, DW.ae(a), a.client + " \u2192 " + a.server, null, DW.at(a.start) + " s",
                   DW.seconds(a.end - a.start), DW.num(a.messages), DW.num(a.objects), null];
    cells.forEach((c) => DW.el("td", { text: c }, tr));
    DW.el("span", { class: "outcome " + DW.cls(a.outcome), text: a.outcome + (a.callback_of ? " (callback)" : "") }, tr.children[3]);
    ["error", "warn", "note", "chat"].forEach(function (s) {
      if (a.findings[s]) DW.el("span", { class: "sev " + s, text: a.findings[s] + " " + s }, tr.children[8]);
    });
    const detail = DW.el("tr", { class: "detail-row" }, body);
    const td = DW.el("td", { class: "detail", colspan: 9 }, detail);
    const toggle = () => {
      const show = !this.open.has(a.id);
      show ? this.open.add(a.id) : this.open.delete(a.id);
      this.render(a, tr, detail, td);
    };
    tr.addEventListener("click", toggle);
    this.render(a, tr, detail, td);
  },
  render: function (a, tr, detail, td) {
    const open = this.open.has(a.id);
    tr.classList.toggle("open", open);
    detail.style.display = open ? "" : "none";
    if (open && !td.firstChild) DW.assocDetail(a, td);
  },
  // Show association `id` opened, on its page; returns its row.
  reveal: function (id) {
    let i = this.rows.findIndex((a) => a.id === id);
    if (i < 0) {
      document.getElementById("assoc-filter").value = "";
      this.filter("");
      i = this.rows.findIndex((a) => a.id === id);
    }
    if (i < 0) return null;
    this.open.add(id);
    this.pager.go(Math.floor(i / DW.PAGE));
    DW.tl && DW.tl.select(id);
    return document.getElementById("assoc-" + id);
  },
};

DW.assocDetail = function (a, td) {
  const facts = DW.el("div", { class: "facts" }, td);
  const fact = (k, v) => { const s = DW.el("span", {}, facts); DW.el("b", { text: k + " " }, s); s.appendChild(document.createTextNode(v)); return s; };
  fact("TCP stream", a.stream);
  fact("frames", DW.frames(a.frames));
  fact("PDUs", "\u2192 " + DW.num(a.pdus[0]) + " (" + DW.bytes(a.bytes[0]) + "), \u2190 " + DW.num(a.pdus[1]) + " (" + DW.bytes(a.bytes[1]) + ")");
  fact("messages", DW.num(a.messages) + ", " + DW.num(a.datasets) + " with a data set");
  if (a.left_out) fact("left out", DW.num(a.left_out) + " ladder event(s)");
  if (a.idle_seen > a.idle.length) fact("idle periods", DW.num(a.idle_seen) + " (first " + a.idle.length + " drawn)");
  if (a.callback_of) {
    const s = fact("callback of", "");
    DW.el("a", { href: "#ev-" + a.callback_of.assoc + "-" + a.callback_of.seq, text: "the C-MOVE of association #" + a.callback_of.assoc }, s);
    s.appendChild(document.createTextNode(" (by " + a.callback_of.by + ")"));
  }
  (a.callbacks || []).forEach(function (c) {
    DW.el("a", { href: "#assoc-" + c.assoc, text: "#" + c.assoc }, fact("callback association", ""));
  });
  DW.el("div", { class: "ladder-box" }, td).appendChild(DW.ladder(a));
  DW.el("h3", { text: "Negotiation" }, td);
  DW.negotiation(a, td);
};

DW.findingList = {
  init: function () {
    const sel = document.getElementById("finding-severity");
    sel.addEventListener("change", () => this.filter(sel.value));
    this.filter("");
  },
  filter: function (sev) {
    this.rows = DW.M.findings.filter((f) => !sev || f.severity === sev);
    this.pager = DW.pager(document.getElementById("finding-pager"), this.rows.length, 200, (p) => this.show(p));
  },
  show: function (page) {
    const body = document.querySelector("#finding-table tbody");
    body.textContent = "";
    this.rows.slice(page * 200, (page + 1) * 200).forEach(function (f) {
      const tr = DW.el("tr", { id: "finding-" + f.n }, body);
      DW.el("span", { class: "sev " + f.severity, text: f.severity }, DW.el("td", {}, tr));
      const where = DW.el("td", {}, tr);
      const text = (f.frames.length ? "frame " + f.frames.join(", ") : "capture") + (f.assoc != null ? " \u00b7 #" + f.assoc : "");
      const href = f.event != null ? "#ev-" + f.assoc + "-" + f.event : f.assoc != null ? "#assoc-" + f.assoc : null;
      href ? DW.el("a", { href: href, class: "finding-link", text: text }, where) : where.appendChild(document.createTextNode(text));
      const hint = DW.M.finding_kinds[f.name].hint;
      DW.el("code", { text: f.name }, DW.el("td", { title: hint }, tr));
      const m = DW.el("td", { text: f.message }, tr);
      DW.el("div", { class: "help", text: hint }, m);
    });
  },
  reveal: function (n) {
    let i = this.rows.findIndex((f) => f.n === n);
    if (i < 0) { document.getElementById("finding-severity").value = ""; this.filter(""); i = n; }
    this.pager.go(Math.floor(i / 200));
    return document.getElementById("finding-" + n);
  },
};

DW.queryList = function () {
  const qs = DW.M.queries, body = document.querySelector("#query-table tbody");
  DW.pager(document.getElementById("query-pager"), qs.length, 100, function (page) {
    body.textContent = "";
    if (!qs.length) { DW.el("td", { colspan: 8, text: "No C-FIND in the capture." }, DW.el("tr", {}, body)); return; }
    qs.slice(page * 100, (page + 1) * 100).forEach(function (q) {
      const tr = DW.el("tr", {}, body), a = DW.byId[q.assoc];
      DW.el("a", { href: "#assoc-" + q.assoc, text: "#" + q.assoc + " " + DW.ae(a) }, DW.el("td", {}, tr));
      DW.el("a", { href: "#ev-" + q.assoc + "-" + q.seq, text: q.frame }, DW.el("td", {}, tr));
      DW.el("td", { text: q.level || "-" }, tr);
      DW.el("td", { text: q.sop || "-" }, tr);
      const keys = DW.el("td", {}, tr);
      q.keys.forEach(function (k) {
        const s = DW.el("span", { class: "key" + (k.matching ? " key-matching" : "") }, keys);
        s.textContent = k.keyword;
        if (k.value != null) DW.el("span", { class: "val", text: "=" + k.value }, s);
      });
      DW.el("td", { text: DW.num(q.matches) }, tr);
      DW.el("td", { text: q.status == null ? "no final response" : "0x" + DW.hex(q.status) }, tr);
      DW.el("td", { text: DW.seconds(q.seconds) }, tr);
    });
  });
};

// Follow the address: open what it names, then scroll to it and mark it.
DW.go = function () {
  const h = decodeURIComponent(location.hash.slice(1));
  let m;
  if ((m = /^(ev|idle)-(\d+)-(\d+)$/.exec(h)) || (m = /^assoc-(\d+)$/.exec(h))) {
    const id = +(m.length === 4 ? m[2] : m[1]);
    const row = DW.assocList.reveal(id);
    DW.reveal(m.length === 4 ? document.getElementById(h) || row : row);
  } else if ((m = /^finding-(\d+)$/.exec(h))) {
    DW.reveal(DW.findingList.reveal(+m[1]));
  }
};

DW.main = function () {
  DW.assocList.init();
  DW.tl = DW.timeline((id) => { location.hash = "#assoc-" + id; });
  DW.charts();
  DW.queryList();
  DW.findingList.init();
  window.addEventListener("hashchange", DW.go);
  // A link to where the address already is changes nothing: follow it anyway.
  document.addEventListener("click", function (e) {
    const link = e.target.closest && e.target.closest("a[href^='#']");
    if (link && link.getAttribute("href") === location.hash) DW.go();
  });
  if (location.hash) DW.go();
  // The browser scrolls to the address itself once the page has loaded
  // (the element was not there yet, or it aligns it to the top): again.
  window.addEventListener("load", () => { if (location.hash) DW.go(); });
  document.body.setAttribute("data-ready", "1");
};
DW.main();
