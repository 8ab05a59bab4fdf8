/* circleci-analytics dashboard: loads a page's data files, filters rows and (re)draws charts.
 * The page spec and filter options: <script id="dash-data" type="application/json">. Rows:
 * scripts in data/ that call dashboardData(key, payload) (dashboards/layout.py says which
 * rows each holds): the page's own file at once, a project's or a branch shard's file when
 * that filter is chosen, the branch names when the reader searches them. Scripts, not
 * fetch(): pages opened from disk may load scripts but not fetch files.
 * Filter state lives in the URL hash (#org=..&team=..&project=..&branch=..&from=..&to=..)
 * so it follows the reader across pages. Org and team filter rows by their org_slug and
 * team columns; unfiltered by project or branch, a chart draws its scope's file (what it
 * draws for that org and/or team). Vanilla JS, no network beyond data/. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("dash-data").textContent);
  var FILTERS = ["org", "team", "project", "branch", "from", "to"];
  var state = { org: "", team: "", project: "", branch: "", from: "", to: "" };
  var base = { datasets: {}, views: {}, split: {} };
  var OTHER = "other", DAY_MS = 86400000;

  // ---------- data files ----------
  var received = {}, waiting = {}, requested = [];
  window.dashboardData = function (key, payload) {
    received[key] = payload;
    (waiting[key] || []).forEach(function (resolve) { resolve(payload); });
    delete waiting[key];
  };
  function load(key) {
    if (key in received) return Promise.resolve(received[key]);
    return new Promise(function (resolve) {
      if (waiting[key]) { waiting[key].push(resolve); return; }
      waiting[key] = [resolve];
      requested.push(key);
      var tag = document.createElement("script");
      tag.src = "data/" + key.split("/").map(encodeURIComponent).join("/") + ".js";
      tag.charset = "utf-8";
      tag.onerror = function () { window.dashboardData(key, null); };
      document.head.appendChild(tag);
    });
  }
  // Text columns may arrive dictionary-encoded: {dict: [...], codes: [...]}, or {dict: [value]}
  // when every row holds that one value; decoded on first use.
  function decoded(ds) {
    if (ds && !ds.decoded) {
      Object.keys(ds.columns).forEach(function (c) {
        var v = ds.columns[c];
        if (v && !Array.isArray(v) && v.dict) {
          ds.columns[c] = v.codes ? v.codes.map(function (k) { return k === null ? null : v.dict[k]; })
            : new Array(ds.n).fill(v.dict[0]);
        }
      });
      ds.decoded = true;
    }
    return ds;
  }
  var NOTHING = { columns: {}, n: 0, filtered: true };
  function pick(payload, group, name) {
    var ds = payload && payload[group] && payload[group][name];
    return ds ? decoded(ds) : NOTHING;
  }
  // 32-bit FNV-1a over code points, as dashboards/layout.py's branch_shard.
  function shardOf(name) {
    var h = 0x811c9dc5;
    for (var ch of name) { h ^= ch.codePointAt(0); h = Math.imul(h, 0x01000193) >>> 0; }
    return h % D.options.branch_shards;
  }
  function projectFile(project) { return D.options.projects.indexOf(project); }
  // The scope file of the chosen org and team (-1: no rows in that scope).
  function scopeFile() {
    var scopes = D.options.scopes || [];
    for (var i = 0; i < scopes.length; i++) {
      if (scopes[i][0] === state.org && scopes[i][1] === state.team) return i;
    }
    return -1;
  }
  // The rows an element draws under the current filters (a Promise of a dataset).
  function source(el) {
    var split = base.split[el.query];
    if (!split) return Promise.resolve(pick(base, "datasets", el.query));
    if (state.branch && split.branch) {
      return load(D.slug + "/branches-" + shardOf(state.branch)).then(function (p) { return pick(p, "datasets", el.query); });
    }
    if (state.project && split.project) {
      var i = projectFile(state.project);
      if (i < 0) return Promise.resolve(NOTHING);
      return load(D.slug + "/project-" + i).then(function (p) { return pick(p, "datasets", el.query); });
    }
    if ((state.org || state.team) && split.scope) {
      var s = scopeFile();
      if (s < 0) return Promise.resolve(NOTHING);
      return load(D.slug + "/scope-" + s).then(function (p) { return pick(p, "views", el.id); });
    }
    return Promise.resolve(pick(base, "views", el.id));
  }

  // ---------- formatting ----------
  function num(v, digits) {
    return Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function duration(s) {
    if (s === null || s === undefined || isNaN(s)) return "–";
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + sec + "s";
    return sec + "s";
  }
  function fmt(v, kind) {
    if (v === null || v === undefined || (typeof v === "number" && isNaN(v))) return "–";
    switch (kind) {
      case "credits": return num(v, 0);
      case "credits2": return num(v, 2);
      case "usd": return "$" + num(v, 2);
      case "bool": return v ? "yes" : "no";
      case "datetime": return String(v).replace("T", " ").slice(0, 16);
      case "int": return num(v, 0);
      case "num1": return num(v, 1);
      case "pct": return num(v * 100, 1) + "%";
      case "signed": return (v > 0 ? "+" : "") + num(v, 0);
      case "pct_signed": return (v > 0 ? "+" : "") + num(v * 100, 1) + "%";
      case "duration": return duration(v);
      default: return String(v);
    }
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // ---------- filtering and aggregation ----------
  function keep(ds, el) {
    var c = ds.columns, idx = [];
    var pcol = c.project_slug, bcol = c.branch, dcol = el.date ? c[el.date] : null, other = c.is_other;
    var ocol = c.org_slug, tcol = c.team;
    for (var i = 0; i < ds.n; i++) {
      if (state.project && pcol && pcol[i] !== state.project && !(other && other[i])) continue;
      if (state.org && ocol && ocol[i] !== state.org) continue;
      if (state.team && tcol && tcol[i] !== state.team) continue;
      if (bcol) {
        if (el.branch_rollup && c.all_branches) {
          if (state.branch ? (c.all_branches[i] || bcol[i] !== state.branch) : !c.all_branches[i]) continue;
        } else if (state.branch && bcol[i] !== state.branch) continue;
      }
      if (dcol && dcol[i] !== null) {
        var day = String(dcol[i]).slice(0, 10);
        if (state.from && day < state.from) continue;
        if (state.to && day > state.to) continue;
      }
      idx.push(i);
    }
    return idx;
  }

  function measureCols(m) { return m.sum ? [m.sum] : m.ratio; }
  function rankCol(el) { return el.rank || measureCols(el.y)[measureCols(el.y).length - 1]; }

  function measure(ds, idx, m) {
    var cols = measureCols(m), a = 0, b = 0, seen = 0;
    for (var k = 0; k < idx.length; k++) {
      var x = ds.columns[cols[0]][idx[k]];
      if (x === null || x === undefined) continue;
      seen++;
      a += x;
      if (m.ratio) b += ds.columns[cols[1]][idx[k]] || 0;
    }
    if (!seen) return null;
    if (m.ratio) return b ? a / b : null;
    return a;
  }
  function total(ds, idx, col) {
    var s = 0, v = ds.columns[col] || [];
    idx.forEach(function (i) { s += v[i] || 0; });
    return s;
  }

  function label(ds, i, keys, pattern) {
    var parts = keys.map(function (k) { var v = ds.columns[k][i]; return v === null ? "(none)" : String(v); });
    if (pattern) return pattern.replace(/\{(\d+)\}/g, function (_, j) { return parts[+j]; });
    return parts.join(" / ");
  }

  function groupBy(ds, idx, keyFn) {
    var groups = new Map();
    idx.forEach(function (i) {
      var k = keyFn(i);
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(i);
    });
    return groups;
  }

  function missingColumns(ds, cols) {
    return cols.filter(function (c) { return !(c in ds.columns); });
  }

  function filterText() {
    var parts = [];
    if (state.org) parts.push("org " + state.org);
    if (state.team) parts.push("team " + state.team);
    if (state.project) parts.push("project " + state.project);
    if (state.branch) parts.push("branch " + state.branch);
    if (state.from || state.to) parts.push("dates " + (state.from || "…") + " to " + (state.to || "…"));
    return parts.length ? parts.join(", ") : "none";
  }

  // Why an element has nothing to draw: the query failed, returned nothing, or filters removed all.
  function emptyReason(el, ds, idx, needed) {
    if (ds.error) return "Not available: " + ds.error;
    if (!ds.n) return ds.filtered ? "No rows match the current filters (" + filterText() + ")." : (el.empty || "No data.");
    var miss = missingColumns(ds, needed);
    if (miss.length) return "Not available: the query result has no column " + miss.join(", ") + ".";
    if (!idx.length) return "No rows match the current filters (" + filterText() + ").";
    return null;
  }

  function showEmpty(box, msg) {
    var chart = box.querySelector(".chart, .table-wrap");
    if (chart && chart.classList.contains("chart") && window.Plotly) Plotly.purge(chart);
    if (chart) chart.innerHTML = "";
    box.classList.add("is-empty");
    box.querySelector(".empty").textContent = msg;
  }
  function clearEmpty(box) {
    box.classList.remove("is-empty");
    box.querySelector(".empty").textContent = "";
  }

  var baseLayout = function (el, extra) {
    var l = {
      margin: { l: 60, r: 20, t: 10, b: 40 }, height: 320, hovermode: "closest",
      legend: { orientation: "h", y: -0.2 }, font: { family: "system-ui, sans-serif", size: 12 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    };
    for (var k in extra) l[k] = extra[k];
    return l;
  };
  var plotConfig = { displaylogo: false, responsive: true };

  // ---------- element renderers ----------
  // Series: one trace per series, the `top` (default 10) by their rank column; where the
  // measure adds up, the rest (and rows a data file already added up) as one "other" trace.
  function drawSeries(el, box, ds) {
    var idx = keep(ds, el);
    var needed = [el.x].concat(el.series, measureCols(el.y), el.per_day ? [el.per_day] : []);
    var why = emptyReason(el, ds, idx, needed);
    if (why) return showEmpty(box, why);
    clearEmpty(box);
    var scale = el.y_scale || 1, additive = !el.branch_rollup, top = el.top || 10;
    var other = ds.columns.is_other, folded = [], mine = [];
    idx.forEach(function (i) { (other && other[i] ? folded : mine).push(i); });
    var bySeries = groupBy(ds, mine, function (i) { return el.series.length ? label(ds, i, el.series) : "total"; });
    var names = Array.from(bySeries.keys());
    if (names.length > top) {
      var rank = rankCol(el), totals = {};
      names.forEach(function (n) { totals[n] = total(ds, bySeries.get(n), rank); });
      names.sort(function (a, b) { return totals[b] - totals[a] || (a < b ? -1 : 1); });
      names.slice(top).forEach(function (n) { folded = folded.concat(bySeries.get(n)); });
      names = names.slice(0, top);
    }
    var days = el.per_day ? ds.columns[el.per_day] : null;
    function trace(name, rows) {
      var byX = groupBy(ds, rows, function (i) { return ds.columns[el.x][i]; });
      var xs = Array.from(byX.keys()).sort(), width = [];
      var ys = xs.map(function (x) {
        var ix = byX.get(x), v = measure(ds, ix, el.y), d = days ? days[ix[0]] || 1 : 1;
        width.push(d * DAY_MS * 0.9);
        return v === null ? null : v * scale / d;
      });
      var t = { name: name, x: xs, y: ys, type: el.mode === "bar" ? "bar" : "scatter" };
      if (el.mode === "bar" && days) { t.width = width; t.offset = 0; }
      if (el.mode !== "bar") { t.mode = "lines+markers"; t.connectgaps = false; }
      return t;
    }
    var traces = names.sort().map(function (n) { return trace(n, bySeries.get(n)); });
    if (additive && folded.length) traces.push(trace(OTHER, folded));
    if (el.markers) {
      var mds = pick(base, "datasets", el.markers.query), midx = keep(mds, { date: el.markers.x });
      if (!mds.error && midx.length && !missingColumns(mds, [el.markers.x, el.markers.y]).length) {
        traces.push({
          name: el.markers.name, type: "scatter", mode: "markers",
          x: midx.map(function (i) { return mds.columns[el.markers.x][i]; }),
          y: midx.map(function (i) { return mds.columns[el.markers.y][i]; }),
          text: midx.map(function (i) { return label(mds, i, el.markers.label); }),
          marker: { symbol: "x", size: 12, color: "#d62728", line: { width: 2 } },
        });
      }
    }
    var yaxis = { title: { text: el.y_title || "" }, rangemode: "tozero" };
    if (el.y_format === "pct") { yaxis.tickformat = ".0%"; yaxis.range = [0, 1.02]; }
    Plotly.react(box.querySelector(".chart"), traces,
      baseLayout(el, { barmode: "stack", yaxis: yaxis, xaxis: { type: "date" }, showlegend: traces.length > 1 }),
      plotConfig);
    return traces;
  }

  function drawBarh(el, box, ds) {
    var idx = keep(ds, el);
    var why = emptyReason(el, ds, idx, el.category.concat(measureCols(el.value)));
    if (why) return showEmpty(box, why);
    var groups = groupBy(ds, idx, function (i) { return label(ds, i, el.category, el.category_format); });
    var rows = [];
    groups.forEach(function (ix, name) {
      var v = measure(ds, ix, el.value);
      if (v === null || v === 0 || (el.positive_only && v < 0)) return;
      rows.push([name, v * (el.x_scale || 1)]);
    });
    if (!rows.length) return showEmpty(box, el.empty || "No data.");
    clearEmpty(box);
    rows.sort(function (a, b) { return b[1] - a[1]; });
    rows = rows.slice(0, el.limit || 15).reverse();
    var trace = { type: "bar", orientation: "h", y: rows.map(function (r) { return r[0]; }),
                  x: rows.map(function (r) { return r[1]; }), marker: { color: "#1f77b4" } };
    Plotly.react(box.querySelector(".chart"), [trace],
      baseLayout(el, { height: Math.max(220, 26 * rows.length + 60), margin: { l: 20, r: 20, t: 10, b: 40 },
                       xaxis: { title: { text: el.x_title || "" } }, yaxis: { automargin: true } }),
      plotConfig);
  }

  function drawTable(el, box, ds) {
    var idx = keep(ds, el);
    var cols = el.columns.filter(function (c) { return c[0] in ds.columns; });
    var why = emptyReason(el, ds, idx, cols.length ? [] : [el.columns[0][0]]);
    if (why) return showEmpty(box, why);
    clearEmpty(box);
    var s = ds.columns[el.sort];
    if (s) idx.sort(function (a, b) {
      var x = s[a], y = s[b];
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return x < y ? 1 : -1;
    });
    var shown = idx.slice(0, el.limit || 100);
    var html = "<table><thead><tr>" + cols.map(function (c) { return "<th>" + esc(c[1]) + "</th>"; }).join("") +
      "</tr></thead><tbody>";
    shown.forEach(function (i) {
      html += "<tr>" + cols.map(function (c) {
        var v = ds.columns[c[0]][i];
        return '<td class="' + (c[2] === "text" ? "t" : "n") + '">' + esc(fmt(v, c[2])) + "</td>";
      }).join("") + "</tr>";
    });
    html += "</tbody></table>";
    if (idx.length > shown.length) html += '<p class="note">Showing ' + shown.length + " of " + idx.length + " rows.</p>";
    box.querySelector(".table-wrap").innerHTML = html;
  }

  // A KPI's week-over-week change is "n/a" where its query says the data does not reach
  // back to the earlier period (the `covered` column false): a change against no data.
  function drawKpi(k, card, ds) {
    var idx = keep(ds, {});
    var needed = measureCols(k.value).concat(measureCols(k.current), measureCols(k.previous));
    var valueEl = card.querySelector(".kpi-value"), deltaEl = card.querySelector(".kpi-delta");
    var why = emptyReason(k, ds, idx, needed);
    var v = why ? null : measure(ds, idx, k.value);
    valueEl.textContent = fmt(v, k.fmt);
    valueEl.setAttribute("data-value", v === null ? "" : String(v));
    card.querySelector(".empty").textContent = why || (v === null ? (k.empty || "No data.") : "");
    var subEl = card.querySelector(".kpi-sub");
    if (subEl) {
      var sv = why || !k.sub || missingColumns(ds, measureCols(k.sub)).length ? null : measure(ds, idx, k.sub);
      subEl.textContent = sv === null ? "" : "≈ " + fmt(sv, k.sub_fmt);
    }
    var covered = k.covered && ds.columns[k.covered] ? ds.columns[k.covered][0] === true : true;
    var cur = why ? null : measure(ds, idx, k.current), prev = why || !covered ? null : measure(ds, idx, k.previous);
    var text = "", cls = "flat", d = null;
    if (cur !== null && prev !== null) {
      if (k.delta === "pp") { d = (cur - prev) * 100; text = (d >= 0 ? "+" : "") + num(d, 1) + " pp"; }
      else if (k.delta === "abs") { d = cur - prev; text = (d >= 0 ? "+" : "") + num(d, 0); }
      else if (prev) { d = (cur - prev) / prev * 100; text = (d >= 0 ? "+" : "") + num(d, 1) + "%"; }
      if (d !== null && Math.abs(d) > 1e-9) {
        var good = k.lower_is_better ? d < 0 : d > 0;
        cls = good ? "good" : "bad";
      }
    }
    if (!why && !covered) deltaEl.textContent = "n/a WoW (no data for the week before)";
    else deltaEl.textContent = text ? text + " WoW" + (k.delta_label ? " (" + k.delta_label + ")" : "") : "no WoW change (no prior week)";
    deltaEl.setAttribute("data-delta", d === null ? "" : String(d));
    deltaEl.className = "kpi-delta " + cls;
  }

  var generation = 0;
  function drawAll() {
    var gen = ++generation;
    document.body.removeAttribute("data-drawn");
    (D.page.kpis || []).forEach(function (k) {
      drawKpi(k, document.querySelector('[data-kpi="' + k.id + '"]'), pick(base, "datasets", k.query));
    });
    var jobs = (D.page.elements || []).map(function (el) {
      var box = document.querySelector('[data-element="' + el.id + '"]');
      return source(el).then(function (ds) {
        if (gen !== generation) return;
        try {
          if (el.type === "series") drawSeries(el, box, ds);
          else if (el.type === "barh") drawBarh(el, box, ds);
          else if (el.type === "table") drawTable(el, box, ds);
        } catch (e) {
          showEmpty(box, "Could not draw this chart: " + e.message);
          console.error(e);
        }
      });
    });
    return Promise.all(jobs).then(function () {
      if (gen === generation) document.body.setAttribute("data-drawn", String(Date.now()));
    });
  }

  // ---------- filter UI ----------
  function readHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    FILTERS.forEach(function (k) { state[k] = h.get(k) || ""; });
  }
  function writeHash() {
    var h = new URLSearchParams();
    FILTERS.forEach(function (k) { if (state[k]) h.set(k, state[k]); });
    var s = h.toString();
    history.replaceState(null, "", s ? "#" + s : location.pathname + location.search);
    document.querySelectorAll("nav a[data-page]").forEach(function (a) {
      a.setAttribute("href", a.getAttribute("data-page") + (s ? "#" + s : ""));
    });
  }
  function fillSelect(sel, values, current) {
    var opts = ['<option value="">All</option>'];
    values.forEach(function (v) {
      opts.push('<option value="' + esc(v) + '"' + (v === current ? " selected" : "") + ">" + esc(v) + "</option>");
    });
    sel.innerHTML = opts.join("");
  }
  // Branch search: the names (of the chosen project, or all) load when the reader types;
  // up to 50 suggestions, those starting with the text first.
  var SUGGESTIONS = 50;
  function suggest(input, list) {
    var text = input.value.trim().toLowerCase(), i = projectFile(state.project);
    var key = state.project && i >= 0 ? "branches/project-" + i : "branches";
    return load(key).then(function (index) {
      var names = (index && index.names) || [], first = [], rest = [];
      for (var k = 0; k < names.length && first.length < SUGGESTIONS; k++) {
        var at = names[k].toLowerCase().indexOf(text);
        if (at === 0) first.push(names[k]);
        else if (at > 0 && rest.length < SUGGESTIONS) rest.push(names[k]);
      }
      list.innerHTML = first.concat(rest).slice(0, SUGGESTIONS).map(function (n) {
        return '<option value="' + esc(n) + '"></option>';
      }).join("");
      return names.length;
    });
  }
  // The projects of the chosen org (a project slug starts with its org's slug).
  function orgProjects() {
    return D.options.projects.filter(function (p) { return !state.org || p.indexOf(state.org + "/") === 0; });
  }
  function initFilters() {
    var o = document.getElementById("f-org"), t = document.getElementById("f-team");
    var p = document.getElementById("f-project"), b = document.getElementById("f-branch");
    var list = document.getElementById("f-branch-list");
    var from = document.getElementById("f-from"), to = document.getElementById("f-to");
    fillSelect(o, D.options.orgs || [], state.org);
    fillSelect(t, D.options.teams || [], state.team);
    fillSelect(p, orgProjects(), state.project);
    b.value = state.branch;
    if (!D.options.has_branches) b.disabled = true;
    [from, to].forEach(function (i) { i.min = D.options.min_date || ""; i.max = D.options.max_date || ""; });
    from.value = state.from; to.value = state.to;
    function changed() {
      var next = { org: o.value, team: t.value, project: p.value, branch: b.value.trim(), from: from.value, to: to.value };
      if (FILTERS.every(function (k) { return state[k] === next[k]; })) return;
      if (next.org !== state.org) {  // the project list follows the org
        state.org = next.org;
        if (next.project && next.project.indexOf(next.org + "/") !== 0 && next.org) next.project = "";
        fillSelect(p, orgProjects(), next.project);
      }
      Object.assign(state, next);
      writeHash();
      drawAll();
    }
    [o, t, p, from, to, b].forEach(function (i) { i.addEventListener("change", changed); });
    b.addEventListener("keydown", function (e) { if (e.key === "Enter") changed(); });
    var pending = null;
    b.addEventListener("input", function () {
      clearTimeout(pending);
      pending = setTimeout(function () { suggest(b, list); }, 120);
    });
    b.addEventListener("focus", function () { suggest(b, list); });
    document.getElementById("f-reset").addEventListener("click", function () {
      o.value = ""; t.value = ""; p.value = ""; b.value = ""; from.value = ""; to.value = ""; changed();
    });
  }

  window.dashboard = { state: state, redraw: drawAll, data: D, load: load, requested: requested, shardOf: shardOf };
  readHash();
  initFilters();
  writeHash();
  load(D.slug).then(function (payload) {
    base = payload || base;
    ["datasets", "views", "split"].forEach(function (k) { base[k] = base[k] || {}; });
    drawAll();
  });
})();
