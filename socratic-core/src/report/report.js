"use strict";
// The run explorer. Runs are parsed from the embedded data only when first needed; every
// model, scenario and judge text is inserted as text, never as HTML.
(function () {
  var data = null;
  function load() {
    if (!data) data = JSON.parse(document.getElementById("socratic-data").textContent);
    return data;
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function num(v, digits) { return v === null || v === undefined ? "—" : v.toFixed(digits); }
  function turnText(t) { return t === null || t === undefined ? "—" : "turn " + t; }
  var form = document.getElementById("filters");
  var list = document.getElementById("run-list");
  var detail = document.getElementById("run-detail");
  if (!form) return; // a report made without its runs

  function filters() {
    return { model: form.model.value, scenario: form.scenario.value, vector: form.vector.value };
  }
  function setFilters(f) {
    ["model", "scenario", "vector"].forEach(function (k) { form[k].value = f[k] || ""; });
  }

  // Model → scenarios → runs: one table, grouped by scenario.
  function showList() {
    var f = filters();
    list.textContent = "";
    if (!f.model && !f.scenario && !f.vector) {
      list.appendChild(el("p", { "class": "note", text: "Choose a model, a scenario or a vector, or open a model in the leaderboard." }));
      return;
    }
    var d = load();
    var runs = d.runs.filter(function (r) {
      return (!f.model || r.tutor === f.model) && (!f.scenario || r.scenario === f.scenario) &&
        (!f.vector || r.vector === f.vector);
    });
    runs.sort(function (a, b) {
      return a.scenario < b.scenario ? -1 : a.scenario > b.scenario ? 1 :
        a.tutor < b.tutor ? -1 : a.tutor > b.tutor ? 1 : a.rep - b.rep;
    });
    var parts = [f.model, f.scenario, f.vector].filter(Boolean).join(", ");
    var table = el("table", { "class": "runs" }, [
      el("caption", { text: runs.length + " run(s): " + parts }),
      el("thead", {}, [el("tr", {}, ["run", "model", "repetition", "status", "overall", "answer leaked", "student reached a goal", "tutor told first", "cost $"].map(function (h) {
        return el("th", { scope: "col", text: h });
      }))])
    ]);
    var body = el("tbody");
    var current = null;
    runs.forEach(function (r) {
      if (r.scenario !== current) {
        current = r.scenario;
        var s = d.scenarios[r.scenario];
        var label = r.scenario + (s ? " — " + s.title + " (" + s.vector + (s.level ? ", " + s.level.replace("_", " ") : "") + ")" : "");
        body.appendChild(el("tr", { "class": "group" }, [el("th", { colspan: "9", scope: "colgroup", text: label })]));
      }
      body.appendChild(el("tr", {}, [
        el("td", {}, [el("a", { href: "#run/" + r.id, text: "open " + r.id.slice(-6) })]),
        el("td", { text: r.tutor }),
        el("td", { text: String(r.rep) }),
        el("td", { text: r.status }),
        el("td", { text: num(r.overall, 2) }),
        el("td", { text: r.leak ? "turn " + r.leak : "no" }),
        el("td", { text: turnText(r.reached) }),
        el("td", { text: turnText(r.told) }),
        el("td", { text: num(r.cost, 4) })
      ]));
    });
    table.appendChild(body);
    list.appendChild(runs.length ? table : el("p", { "class": "note", text: "No runs match." }));
  }

  function judgmentNode(j, dims) {
    var head = el("strong", { text: "Judge " + j.judge });
    if (j.unscored !== undefined) {
      return el("div", { "class": "judgment" }, [head, el("p", { "class": "unscored", text: "Unscored: " + j.unscored })]);
    }
    var row = el("tr", {}, dims.map(function (dim) {
      return el("td", { text: j.scores[dim] === undefined ? "—" : String(j.scores[dim]) });
    }));
    var flags = Object.keys(j.flags || {}).map(function (k) {
      return el("span", { "class": "badge" + (j.flags[k] && k === "reveals_answer" ? " bad" : ""), text: k.replace(/_/g, " ") + ": " + (j.flags[k] ? "yes" : "no") });
    });
    var violations = (j.violations || []).map(function (v) {
      return el("span", { "class": "badge bad", text: v.replace(/_/g, " ") });
    });
    return el("div", { "class": "judgment" }, [
      head,
      el("table", {}, [
        el("thead", {}, [el("tr", {}, dims.map(function (dim) { return el("th", { scope: "col", text: dim.replace(/_/g, " ") }); }))]),
        el("tbody", {}, [row])
      ]),
      el("div", {}, flags.concat(violations)),
      el("p", { text: j.rationale })
    ]);
  }

  function showRun(id) {
    var d = load();
    var r = d.runs.find(function (x) { return x.id === id; });
    detail.textContent = "";
    if (!r) {
      detail.appendChild(el("p", { "class": "note", text: "Run " + id + " is not in this report." }));
      return;
    }
    var s = d.scenarios[r.scenario];
    var facts = el("ul", { "class": "facts" }, [
      el("li", { text: "model " + r.tutor }),
      el("li", { text: "scenario " + r.scenario + (s ? " — " + s.title : "") }),
      el("li", { text: "vector " + r.vector }),
      el("li", { text: "repetition " + r.rep }),
      el("li", { text: "status " + r.status }),
      el("li", { text: "overall " + num(r.overall, 2) }),
      el("li", { text: "answer leaked: " + (r.leak ? "turn " + r.leak : "no") }),
      el("li", { text: "student reached a goal: " + turnText(r.reached) }),
      el("li", { text: "tutor told first: " + turnText(r.told) }),
      el("li", { text: "cost $" + num(r.cost, 4) })
    ]);
    var box = el("article", { "class": "run", "aria-label": "Run " + r.id }, [
      el("h3", { text: r.tutor + " on " + r.scenario + " (repetition " + r.rep + ")" }),
      facts,
      r.failure ? el("p", { "class": "unscored", text: "Stopped at " + r.failure }) : null,
      el("p", {}, [el("a", { href: "#model/" + encodeURIComponent(r.tutor), text: "All runs of " + r.tutor })])
    ]);
    var previous = s ? s.opening : null;
    r.turns.forEach(function (t, i) {
      var n = i + 1;
      var leak = r.leak === n;
      var turn = el("section", { "class": "turn", "aria-label": "Turn " + n }, [
        el("h4", {}, ["Turn " + n, leak ? el("span", { "class": "badge bad", text: "answer leaked here" }) : null,
          r.reached === n ? el("span", { "class": "badge good", text: "student reached a goal" }) : null,
          r.told === n ? el("span", { "class": "badge bad", text: "tutor told the goal" }) : null]),
        previous !== null ? el("div", { "class": "msg student" }, [el("strong", { text: "Student: " }), previous]) : null,
        el("div", { "class": "msg tutor" + (leak ? " leak" : "") }, [el("strong", { text: "Tutor: " }), t[0]])
      ]);
      r.judgments.filter(function (j) { return j.turn === n; }).forEach(function (j) {
        turn.appendChild(judgmentNode(j, d.dimensions));
      });
      box.appendChild(turn);
      previous = t[1];
    });
    if (previous !== null && r.turns.length) {
      box.appendChild(el("div", { "class": "msg student" }, [el("strong", { text: "Student: " }), previous]));
    }
    if (!r.turns.length) box.appendChild(el("p", { "class": "note", text: "No turn was stored." }));
    detail.appendChild(box);
    detail.focus();
  }

  function route() {
    var hash = decodeURIComponent(location.hash.slice(1));
    var parts = hash.split("/");
    if (parts[0] === "model" && parts[1]) {
      setFilters({ model: parts[1] });
      detail.textContent = "";
      showList();
      list.scrollIntoView();
    } else if (parts[0] === "cell" && parts[2]) {
      setFilters({ model: parts[1], scenario: parts[2] });
      detail.textContent = "";
      showList();
      list.scrollIntoView();
    } else if (parts[0] === "run" && parts[1]) {
      showRun(parts[1]);
    }
  }
  form.addEventListener("change", function () { detail.textContent = ""; showList(); });
  window.addEventListener("hashchange", route);
  if (location.hash) route();
})();
