/* circleci-analytics dashboard: filters embedded query rows and (re)draws charts.
 * Data: <script id="dash-data" type="application/json"> (see dashboards/render.py).
 * Filter state lives in the URL hash (#project=..&branch=..&from=..&to=..) so it
 * follows the reader across pages. Vanilla JS, no network. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("dash-data").textContent);
  // Low-cardinality text columns arrive dictionary-encoded: {dict: [...], codes: [...]}.
  Object.keys(D.datasets).forEach(function (name) {
    var cols = D.datasets[name].columns;
    Object.keys(cols).forEach(function (c) {
      var v = cols[c];
      if (v && !Array.isArray(v) && v.dict) cols[c] = v.codes.map(function (k) { return k === null ? null : v.dict[k]; });
    });
  });
  var state = { project: "", branch: "", from: "", to: "" };

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
  function dataset(name) { return D.datasets[name] || { columns: {}, n: 0, error: "query not embedded" }; }

  function keep(ds, el) {
    var c = ds.columns, idx = [];
    var pcol = c.project_slug, bcol = c.branch, dcol = el.date ? c[el.date] : null;
    for (var i = 0; i < ds.n; i++) {
      if (state.project && pcol && pcol[i] !== state.project) continue;
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
    if (state.project) parts.push("project " + state.project);
    if (state.branch) parts.push("branch " + state.branch);
    if (state.from || state.to) parts.push("dates " + (state.from || "…") + " to " + (state.to || "…"));
    return parts.length ? parts.join(", ") : "none";
  }

  // Why an element has nothing to draw: the query failed, returned nothing, or filters removed all.
  function emptyReason(el, ds, idx, needed) {
    if (ds.error) return "Not available: " + (D.query_errors_hint || "") + ds.error;
    var miss = missingColumns(ds, needed);
    if (miss.length) return "Not available: the query result has no column " + miss.join(", ") + ".";
    if (!ds.n) return el.empty || "No data.";
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
  function drawSeries(el, box) {
    var ds = dataset(el.query), idx = keep(ds, el);
    var needed = [el.x].concat(el.series, measureCols(el.y));
    var why = emptyReason(el, ds, idx, needed);
    if (why) return showEmpty(box, why);
    clearEmpty(box);
    var scale = el.y_scale || 1;
    var bySeries = groupBy(ds, idx, function (i) { return el.series.length ? label(ds, i, el.series) : "total"; });
    var traces = [];
    Array.from(bySeries.keys()).sort().forEach(function (name) {
      var byX = groupBy(ds, bySeries.get(name), function (i) { return ds.columns[el.x][i]; });
      var xs = Array.from(byX.keys()).sort(), ys = xs.map(function (x) {
        var v = measure(ds, byX.get(x), el.y);
        return v === null ? null : v * scale;
      });
      var t = { name: name, x: xs, y: ys, type: el.mode === "bar" ? "bar" : "scatter" };
      if (el.mode !== "bar") { t.mode = "lines+markers"; t.connectgaps = false; }
      traces.push(t);
    });
    if (el.markers) {
      var mds = dataset(el.markers.query), midx = keep(mds, { date: el.markers.x });
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

  function drawBarh(el, box) {
    var ds = dataset(el.query), idx = keep(ds, el);
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

  function drawTable(el, box) {
    var ds = dataset(el.query), idx = keep(ds, el);
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

  function drawKpi(k, card) {
    var ds = dataset(k.query), idx = keep(ds, {});
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
    var cur = why ? null : measure(ds, idx, k.current), prev = why ? null : measure(ds, idx, k.previous);
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
    deltaEl.textContent = text ? text + " WoW" + (k.delta_label ? " (" + k.delta_label + ")" : "") : "no WoW change (no prior week)";
    deltaEl.setAttribute("data-delta", d === null ? "" : String(d));
    deltaEl.className = "kpi-delta " + cls;
  }

  function drawAll() {
    (D.page.kpis || []).forEach(function (k) {
      drawKpi(k, document.querySelector('[data-kpi="' + k.id + '"]'));
    });
    (D.page.elements || []).forEach(function (el) {
      var box = document.querySelector('[data-element="' + el.id + '"]');
      try {
        if (el.type === "series") drawSeries(el, box);
        else if (el.type === "barh") drawBarh(el, box);
        else if (el.type === "table") drawTable(el, box);
      } catch (e) {
        showEmpty(box, "Could not draw this chart: " + e.message);
        throw e;
      }
    });
    document.body.setAttribute("data-drawn", String(Date.now()));
  }

  // ---------- filter UI ----------
  function readHash() {
    var h = new URLSearchParams(location.hash.slice(1));
    state.project = h.get("project") || "";
    state.branch = h.get("branch") || "";
    state.from = h.get("from") || "";
    state.to = h.get("to") || "";
  }
  function writeHash() {
    var h = new URLSearchParams();
    ["project", "branch", "from", "to"].forEach(function (k) { if (state[k]) h.set(k, state[k]); });
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
  function branchesFor(project) {
    var b = D.options.branches_by_project || {};
    if (!project) return D.options.branches;
    return b[project] || [];
  }
  function initFilters() {
    var p = document.getElementById("f-project"), b = document.getElementById("f-branch");
    var from = document.getElementById("f-from"), to = document.getElementById("f-to");
    fillSelect(p, D.options.projects, state.project);
    fillSelect(b, branchesFor(state.project), state.branch);
    [from, to].forEach(function (i) { i.min = D.options.min_date || ""; i.max = D.options.max_date || ""; });
    from.value = state.from; to.value = state.to;
    function changed() {
      state.project = p.value;
      if (p.value && branchesFor(p.value).indexOf(b.value) < 0) b.value = "";
      fillSelect(b, branchesFor(state.project), b.value);
      state.branch = b.value; state.from = from.value; state.to = to.value;
      writeHash();
      drawAll();
    }
    [p, b, from, to].forEach(function (i) { i.addEventListener("change", changed); });
    document.getElementById("f-reset").addEventListener("click", function () {
      p.value = ""; b.value = ""; from.value = ""; to.value = ""; changed();
    });
  }

  readHash();
  initFilters();
  writeHash();
  drawAll();
  window.dashboard = { state: state, redraw: drawAll, data: D };
})();
