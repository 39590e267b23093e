// actdb's interactive map, drawn with plotly.js (scattergl: WebGL, tens of thousands of
// points). Shared by the page (actdb serve) and the HTML report. No network: the page serves
// plotly.js from the plotly package; the report inlines it.
"use strict";
(function (global) {
  // Okabe-Ito, then Tableau's: distinct for the highlighted classes; the rest stay grey.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31"];
  const TYPES = {float64: Float64Array, float32: Float32Array, int32: Int32Array};
  // Nothing that talks to a network: plotly.js would otherwise offer to send the chart (and
  // its data) to Plotly's cloud ("Share chart", "Edit in Chart Studio").
  const CONFIG = {scrollZoom: true, displaylogo: false, responsive: true,
                  showSendToCloud: false, showEditInChartStudio: false, showLink: false,
                  plotlyServerURL: ""};

  // The binary payload of GET /api/maps/{id}/points, described by GET /api/maps/{id}.
  function decodePoints(buffer, meta) {
    const cols = {};
    for (const f of meta.layout) cols[f.name] = new TYPES[f.dtype](buffer, f.offset, meta.n);
    return {n: meta.n, ids: cols.image_id, x: cols.x, y: cols.y, cls: cols["class"],
            classes: meta.classes, method: meta.method, mapId: meta.map_id};
  }

  function base64Floats(text) {
    const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }

  class ActdbMap {
    // el: a <div>; pts: decodePoints(...); opts: {topN, onHover(i, event), onUnhover(),
    // onClick(i), onSelect(indices)} (i: the point's index in pts).
    constructor(el, pts, opts = {}) {
      this.el = el;
      this.pts = pts;
      this.opts = opts;
      this.topN = opts.topN || 10;
      this.colour = "top";  // "top": the query's top-N classes (before a query, the largest)
      this.topClasses = [];
      this.queries = [];
      this.distances = null;
      this.index = [];
      this.bound = false;
    }

    highlighted() {
      if (this.colour === "none") return [];
      const names = this.topClasses.length ? this.topClasses : this.pts.classes;
      const codes = [];
      for (const name of names) {
        const c = this.pts.classes.indexOf(name);
        if (c >= 0 && !codes.includes(c)) codes.push(c);
        if (codes.length === this.topN) break;
      }
      return codes;
    }

    traces() {
      const {n, x, y, cls, classes} = this.pts;
      const codes = this.highlighted();
      const slot = new Map(codes.map((c, i) => [c, i + 1]));
      const counts = new Int32Array(codes.length + 1);
      const where = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        where[i] = slot.get(cls[i]) || 0;
        counts[where[i]]++;
      }
      this.index = Array.from(counts, (c) => new Int32Array(c));
      const fill = new Int32Array(codes.length + 1);
      for (let i = 0; i < n; i++) this.index[where[i]][fill[where[i]]++] = i;
      const traces = this.index.map((idx, t) => ({
        type: "scattergl", mode: "markers", hoverinfo: "none",
        x: Float32Array.from(idx, (i) => x[i]), y: Float32Array.from(idx, (i) => y[i]),
        name: t === 0 ? (codes.length ? "other classes" : "all classes") + ` (${idx.length})`
                      : `${classes[codes[t - 1]]} (${idx.length})`,
        marker: {size: t === 0 ? 3 : 5, color: t === 0 ? "#b8b8b8" : PALETTE[(t - 1) % PALETTE.length],
                 opacity: t === 0 ? 0.5 : 0.85},
      }));
      if (this.queries.length) {
        traces.push({type: "scattergl", mode: "markers+text", hoverinfo: "none",
          x: this.queries.map((q) => q.x), y: this.queries.map((q) => q.y),
          text: this.queries.map((q) => q.name), textposition: "top right",
          name: "query", marker: {symbol: "star", size: 20, color: "#000",
                                  line: {color: "#fff", width: 1.5}}});
      }
      return traces;
    }

    async draw() {
      const layout = {
        margin: {l: 40, r: 10, t: 30, b: 30}, hovermode: "closest",
        // a redraw (new colours, a placed query) keeps the drag mode the user chose
        dragmode: (this.el.layout && this.el.layout.dragmode) || "zoom",
        uirevision: this.pts.mapId,  // keep the zoom when the colours or the query change
        title: {text: `${this.pts.method.toUpperCase()} map of ${this.pts.n} stored images`,
                font: {size: 13}},
        legend: {itemsizing: "constant", font: {size: 11}},
        xaxis: {zeroline: false, showticklabels: false},
        yaxis: {zeroline: false, showticklabels: false},
      };
      await global.Plotly.react(this.el, this.traces(), layout, CONFIG);
      if (!this.bound) this.bind();
    }

    pointOf(ev) {
      const p = ev.points && ev.points[0];
      if (!p || p.curveNumber >= this.index.length) return null;  // the query marker
      return this.index[p.curveNumber][p.pointIndex];
    }

    bind() {
      this.bound = true;
      const o = this.opts;
      this.el.on("plotly_hover", (ev) => {
        const i = this.pointOf(ev);
        if (i != null && o.onHover) o.onHover(i, ev.event);
      });
      this.el.on("plotly_unhover", () => o.onUnhover && o.onUnhover());
      this.el.on("plotly_click", (ev) => {
        const i = this.pointOf(ev);
        if (i != null && o.onClick) o.onClick(i);
      });
      this.el.on("plotly_selected", (ev) => {
        if (!ev || !o.onSelect) return;
        const chosen = ev.points.filter((p) => p.curveNumber < this.index.length)
          .map((p) => this.index[p.curveNumber][p.pointIndex]);
        o.onSelect(chosen);
      });
    }

    // Place queries ([{name, x, y}]) and colour by their top classes (names, best first).
    setQueries(queries, topClasses, distances) {
      this.queries = queries;
      this.topClasses = topClasses || [];
      this.distances = distances || null;
      return this.draw();
    }

    setColour(mode, topN) {
      this.colour = mode;
      if (topN) this.topN = topN;
      return this.draw();
    }

    describe(i) {
      const d = this.distances ? ` · distance to the query ${this.distances[i].toPrecision(4)}` : "";
      const c = this.pts.cls[i];
      return `#${this.pts.ids[i]} · ${c >= 0 ? this.pts.classes[c] : "unlabelled"}${d}`;
    }

    // A SQL predicate that selects these points (for the SQL box and nearest --where).
    where(indices) {
      return `image_id IN (${indices.map((i) => this.pts.ids[i]).join(", ")})`;
    }

    csv(indices) {
      const rows = ["image_id,class_name,x,y" + (this.distances ? ",distance" : "")];
      for (const i of indices) {
        const c = this.pts.cls[i];
        const name = c >= 0 ? this.pts.classes[c] : "";
        rows.push([this.pts.ids[i], `"${name.replace(/"/g, '""')}"`, this.pts.x[i], this.pts.y[i]]
          .concat(this.distances ? [this.distances[i]] : []).join(","));
      }
      return rows.join("\n") + "\n";
    }
  }

  global.actdbMap = {ActdbMap, decodePoints, base64Floats, PALETTE};
})(window);
