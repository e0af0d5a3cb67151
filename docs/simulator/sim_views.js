// The simulator page's canvases and the pool's cells: drawing only, from what sim.js hands
// over (the module's state, the chart points, a sweep's rows). No state of the run lives here.
"use strict";

(function (root) {
  let cells_key = "";
  function draw_cells(el, slots, max_size) {
    const key = slots + "/" + max_size;
    if (key === cells_key) return;
    cells_key = key;
    // Empty cells up to max_size: the room the pool may still open.
    let h = "";
    let shown = 0;
    for (const c of slots) {
      if (c === "e") continue;
      h += `<span class="cell ${c}"></span>`;
      shown++;
    }
    for (; shown < Math.min(max_size, 400); shown++) h += '<span class="cell e"></span>';
    el.innerHTML = h;
  }

  function ctx_of(c) {
    const g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    return [c, g];
  }

  // Returns the line under the bar, and whether the instances ask for more than the budget.
  function draw_db(canvas, sv, max_size) {
    const [c, g] = ctx_of(canvas);
    const limit = sv.max_connections > 0 ? sv.max_connections : 0;
    const budget = limit > 0 ? sv.budget_share * (limit - sv.reserved) : 0;
    const want = sv.instances * max_size;
    const full = Math.max(limit, sv.connections, want, 1) * 1.1;
    const x = (v) => (v / full) * c.width;
    g.fillStyle = "#eceef3"; g.fillRect(0, 8, c.width, 14);
    g.fillStyle = "#2f6fdf"; g.fillRect(0, 8, x(sv.connections), 14);
    g.font = "10px sans-serif";
    if (limit > 0) {
      g.fillStyle = "#1d2330"; g.fillRect(x(limit - sv.reserved), 2, 2, 26);
      g.fillStyle = "#d64545"; g.fillRect(x(budget), 2, 2, 26);
      g.fillText("80 %", Math.min(x(budget) + 3, c.width - 24), 33);
    }
    g.fillStyle = "#8a94a8"; g.fillRect(x(want), 22, 1, 10);
    const txt = limit > 0
      ? `${sv.instances} instance(s) × max_size ${max_size} = ${want}; budget 80 % × (${limit} − ${sv.reserved}) = ${Math.floor(budget)}, ${sv.budget_per_instance} per instance` + (want > budget ? " — over budget" : "")
      : `${sv.instances} instance(s) × max_size ${max_size} = ${want}; set max_connections to see the 80 % budget`;
    return [txt, limit > 0 && want > budget];
  }

  function draw_lines(canvas, series, chart_s, lines, opts = {}) {
    const [c, g] = ctx_of(canvas);
    const L = 34, B = 16, W = c.width - L - 4, H = c.height - B - 4;
    const t1 = series.length ? series.at(-1)[0] : 0, t0 = Math.max(0, t1 - chart_s);
    let ymax = opts.min_max || 1;
    for (const ln of lines) for (const p of series) ymax = Math.max(ymax, ln.get(p));
    ymax *= 1.08;
    g.strokeStyle = "#e3e6ec"; g.fillStyle = "#5b6477"; g.font = "10px sans-serif"; g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = 4 + H - (H * i) / 4;
      g.beginPath(); g.moveTo(L, y); g.lineTo(L + W, y); g.stroke();
      const v = (ymax * i) / 4;
      g.fillText(v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2), 2, y + 3);
    }
    g.fillText(`${t0.toFixed(0)} s`, L, c.height - 3);
    g.fillText(`${t1.toFixed(0)} s`, L + W - 24, c.height - 3);
    const span = Math.max(t1 - t0, 1e-9);
    for (const ln of lines) {
      g.strokeStyle = ln.color; g.lineWidth = ln.width || 1.5;
      g.beginPath();
      let first = true;
      for (const p of series) {
        const v = ln.get(p);
        if (v === null) { first = true; continue; }
        const px = L + ((p[0] - t0) / span) * W, py = 4 + H - (v / ymax) * H;
        if (first) { g.moveTo(px, py); first = false; } else g.lineTo(px, py);
      }
      g.stroke();
    }
  }

  let hist_key = "";
  function draw_hist(canvas, buckets) {
    const key = buckets.join(",");
    if (key === hist_key) return;
    hist_key = key;
    const [c, g] = ctx_of(canvas);
    // Buckets: [0, 1) µs, then [2^(i-1), 2^i) µs; shown from the first to the last non-empty one.
    let lo = buckets.findIndex((b) => b > 0), hi = buckets.length - 1 - [...buckets].reverse().findIndex((b) => b > 0);
    if (lo < 0) return;
    lo = Math.min(lo, 1); hi = Math.max(hi, lo + 8);
    const n = hi - lo + 1, W = c.width - 8, H = c.height - 30;
    const max = Math.log10(1 + Math.max(...buckets));
    g.font = "10px sans-serif";
    for (let i = lo; i <= hi; i++) {
      const h = (Math.log10(1 + buckets[i]) / max) * H;
      const x = 4 + ((i - lo) * W) / n;
      g.fillStyle = i === 0 ? "#3a9d5d" : "#2f6fdf";
      g.fillRect(x, 4 + H - h, W / n - 2, h);
      g.fillStyle = "#5b6477";
      if ((i - lo) % 2 === 0) g.fillText(bucket_label(i), x, c.height - 14);
    }
    g.fillText("count (log scale) per wait bucket; green: served at once", 4, c.height - 2);
  }
  function bucket_label(i) {
    if (i === 0) return "0";
    const us = 2 ** i;
    return us < 1000 ? us + "µs" : us < 1e6 ? +(us / 1000).toPrecision(2) + "ms" : +(us / 1e6).toPrecision(2) + "s";
  }

  function draw_sweep(canvas, sweep_result) {
    const [c, g] = ctx_of(canvas);
    if (!sweep_result) return;
    const rows = sweep_result.rows;
    const L = 40, B = 18, W = c.width - L - 6, H = c.height - B - 6;
    const target = sweep_result.target_p99_ms;
    const ymax = Math.max(target * 2, ...rows.map((r) => r.p99)) * 1.05;
    const ylog = (v) => Math.log10(1 + v) / Math.log10(1 + ymax);
    const x = (n) => L + ((n - rows[0].max_size) / Math.max(1, rows.at(-1).max_size - rows[0].max_size)) * W;
    const y = (v) => 6 + H - ylog(v) * H;
    g.font = "10px sans-serif"; g.fillStyle = "#5b6477";
    for (const v of [0, target, ymax / 10, ymax]) g.fillText(v.toFixed(v < 10 ? 2 : 0), 2, y(v) + 3);
    g.strokeStyle = "#d64545"; g.setLineDash([4, 3]);
    g.beginPath(); g.moveTo(L, y(target)); g.lineTo(L + W, y(target)); g.stroke();
    g.setLineDash([]);
    if (sweep_result.budget_limit !== null) {
      g.fillStyle = "rgba(214,69,69,.08)";
      g.fillRect(x(sweep_result.budget_limit + 0.5), 6, L + W - x(sweep_result.budget_limit + 0.5), H);
    }
    for (const [key, color] of [["p50", "#2f6fdf"], ["p99", "#d64545"]]) {
      g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
      rows.forEach((r, i) => (i ? g.lineTo(x(r.max_size), y(r[key])) : g.moveTo(x(r.max_size), y(r[key]))));
      g.stroke();
    }
    g.fillStyle = "#5b6477";
    for (const r of rows) {
      if (rows.length <= 20 || r.max_size % 2 === 0) g.fillText(r.max_size, x(r.max_size) - 3, c.height - 4);
      if (r.timeouts > 0) { g.fillStyle = "#c0392b"; g.fillRect(x(r.max_size) - 2, 6, 4, 4); g.fillStyle = "#5b6477"; }
    }
    const best = sweep_result.smallest_meeting;
    if (best !== null) {
      const r = rows.find((q) => q.max_size === best);
      g.fillStyle = "#3a9d5d"; g.beginPath(); g.arc(x(best), y(r.p99), 4, 0, 7); g.fill();
    }
  }

  root.connpool_sim_views = { draw_cells, draw_db, draw_lines, draw_hist, draw_sweep };
})(window);
