// The simulator page: controls, the frame loop and the views over connpool-sim's engine
// (sim_module.js). The scenario is a set of connpool-sim flags: the URL's query string holds
// the ones that differ from the CLI's defaults, the module parses them with the CLI's own
// parser, and the command line shown is made of them.
"use strict";

(async function () {
  const $ = (id) => document.getElementById(id);
  const views = connpool_sim_views;
  const DT = 0.05;              // virtual seconds per step and chart point
  const CHART_S = 60;           // the charts show the last minute of virtual time
  const FRAME_WORK_MS = 9;      // simulation work per frame, at most: the page stays responsive
  // The exact percentiles sort every wait of the run: while playing, only up to this many
  // (about a millisecond), else the histogram's; paused, always.
  const EXACT_WHILE_PLAYING = 50000;
  const LIVE = new Set(["rate", "hold", "connect-time", "max-size", "min-idle", "target-p99", "tenants",
                        "acquire-timeout", "max-connections", "reserved"]);
  const PRESET = { rate: "400", hold: "exp:10ms", "max-size": "6" };  // an empty query string

  let mod;
  try {
    mod = await connpool_sim_module.load();
  } catch (e) {
    $("error").textContent = "could not load the module: " + e.message;
    return;
  }
  const defaults = mod.defaults();

  // ------------------------------------------------------------ the scenario
  const sc = Object.assign({}, defaults);
  let speed = 10;
  {
    const q = new URLSearchParams(location.search);
    const given = [...q.keys()].length > 0 ? Object.fromEntries(q) : PRESET;
    for (const [k, v] of Object.entries(given)) {
      if (k === "speed") speed = Math.min(1000, Math.max(1, +v || 10));
      else if (k in defaults) sc[k] = v;
    }
  }
  let playing = new URLSearchParams(location.search).get("play") !== "0";

  function args() {
    const a = [];
    for (const k of Object.keys(defaults)) {
      if (sc[k] !== defaults[k] && sc[k] !== "") a.push("--" + k, sc[k]);
    }
    return a;
  }
  function query() {
    const q = new URLSearchParams();
    for (const k of Object.keys(defaults)) if (sc[k] !== defaults[k] && sc[k] !== "") q.set(k, sc[k]);
    q.set("speed", String(speed));
    return "?" + q.toString().replace(/%3A/g, ":").replace(/%2C/g, ",");
  }

  // "10ms", "2.5s", "300us", a bare number in ms, as the CLI reads them.
  function duration_ms(text) {
    const m = /^([0-9.eE+-]+)(ns|us|ms|s|m|min|h)?$/.exec(String(text).trim());
    if (!m) return NaN;
    const f = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3, m: 6e4, min: 6e4, h: 3.6e6 }[m[2] || "ms"];
    return +m[1] * f;
  }
  const ms_text = (x) => String(+(+x).toPrecision(10)) + "ms";

  // ------------------------------------------------------------ controls <-> scenario
  function show_scenario() {
    $("rate").value = sc.rate;
    $("seed").value = sc.seed;
    const [kind, mean, sigma] = sc.hold.split(":");
    $("hold-kind").value = kind === "exp" || kind === "lognormal" ? kind : "fixed";
    const s = sigma !== undefined ? +sigma : 0.5;
    $("hold-sigma").value = s;
    // A log-normal is given by its median here; the CLI's flag takes the mean.
    const m = duration_ms(mean);
    $("hold-ms").value = +(kind === "lognormal" ? m / Math.exp((s * s) / 2) : m).toPrecision(6);
    $("hold-ms-label").textContent = kind === "lognormal" ? "median" : "mean";
    $("sigma-row").style.display = kind === "lognormal" ? "" : "none";
    $("connect-ms").value = +duration_ms(sc["connect-time"].split(":")[1]).toPrecision(6);
    for (const k of ["max-size", "min-idle", "instances", "max-connections", "reserved", "validation", "handoff"]) $(k).value = sc[k];
    $("acquire-timeout").value = duration_ms(sc["acquire-timeout"]);
    $("max-lifetime").value = duration_ms(sc["max-lifetime"]) / 1000;
    $("reset-on-return").checked = sc["reset-on-return"] !== "0";
    $("reset-ms").value = duration_ms(sc["reset-time"]);
    $("target-p99").value = duration_ms(sc["target-p99"]);
    const ts = sc.tenants ? sc.tenants.split(",").map((t) => t.split(":")) : [];
    $("tenants-on").checked = ts.length > 0;
    for (let i = 0; i < 2; i++) {
      const t = ts[i] || [i ? 1 : 3, i ? 3 : 1, 0];
      $(`t${i + 1}-share`).value = t[0];
      $(`t${i + 1}-weight`).value = t[1];
      $(`t${i + 1}-quota`).value = t[2] || 0;
    }
    $("speed").value = Math.log10(speed);
    $("speed-text").textContent = Math.round(speed) + "×";
  }

  // The flags the controls say now.
  function read_controls() {
    const out = {};
    out.rate = String(+$("rate").value);
    out.seed = String(Math.max(1, Math.round(+$("seed").value)));
    const kind = $("hold-kind").value, ms = +$("hold-ms").value, sigma = +$("hold-sigma").value;
    out.hold = kind === "lognormal" ? `lognormal:${ms_text(ms * Math.exp((sigma * sigma) / 2))}:${sigma}` : `${kind}:${ms_text(ms)}`;
    out["connect-time"] = "fixed:" + ms_text(+$("connect-ms").value);
    for (const k of ["max-size", "min-idle", "instances", "max-connections", "reserved"]) out[k] = String(Math.round(+$(k).value));
    out.validation = $("validation").value;
    out.handoff = $("handoff").value;
    out["acquire-timeout"] = Math.round(+$("acquire-timeout").value) + "ms";
    out["max-lifetime"] = Math.round(+$("max-lifetime").value * 1000) + "ms";
    out["reset-on-return"] = $("reset-on-return").checked ? "1" : "0";
    out["reset-time"] = ms_text(+$("reset-ms").value);
    out["target-p99"] = ms_text(+$("target-p99").value);
    out.tenants = $("tenants-on").checked
      ? [1, 2].map((i) => [+$(`t${i}-share`).value, Math.round(+$(`t${i}-weight`).value), Math.round(+$(`t${i}-quota`).value)].join(":")).join(",")
      : "";
    return out;
  }

  // A control changed: live where the library has a setter, else a restart.
  function on_control() {
    const prev = Object.assign({}, sc);
    const want = read_controls();
    let restart = false;
    const live = [];
    for (const [k, v] of Object.entries(want)) {
      if (sc[k] === v) continue;
      if (k === "tenants" && (sc.tenants === "") !== (v === "")) restart = true;
      else if (LIVE.has(k)) live.push([k, v]);
      else restart = true;
      sc[k] = v;
    }
    $("error").textContent = "";
    if (restart) return start(prev);
    for (const [k, v] of live) {
      try {
        if (!mod.set(k, v)) throw new Error("cannot change " + k + " live");
        live_changes.push(`${k}=${v} at ${now_s.toFixed(2)} s`);
      } catch (e) {
        // The module threw (and was reloaded): back to the settings that ran, from t = 0.
        Object.assign(sc, prev);
        show_scenario();
        start();
        $("error").textContent = e.message + " (not applied; the run restarted)";
        return;
      }
    }
    scenario_changed();
  }

  // ------------------------------------------------------------ the run
  let k_step = 0, now_s = 0, target_s = 0, last_ts = null, last_state = null;
  let live_changes = [];
  let series = [];               // chart points [t, p50, p99, in_use, waiting, timeouts, open, n]
  let summary = null, summary_at = 0;
  const frame_times = [];
  let speed_window = [];         // [wall ms, virtual s] for the achieved speed

  // Starts the run from t = 0. If the scenario does not run, back to prev (the settings
  // before the change that broke it), else to the preset.
  function start(prev) {
    try {
      mod.start(args());
    } catch (e) {
      Object.assign(sc, prev || Object.fromEntries(Object.keys(defaults).map((k) => [k, k in PRESET ? PRESET[k] : defaults[k]])));
      mod.start(args());
      show_scenario();
      scenario_changed();
      $("error").textContent = "this scenario does not run: " + e.message + (prev ? " (not applied)" : " (back to the preset)");
    }
    k_step = 0; now_s = 0; target_s = 0; series = []; live_changes = []; summary = null; peak_w = 0;
    sweep_result = null;
    draw_sweep();
    scenario_changed();
  }

  function advance(until_s, deadline) {
    while ((k_step + 1) * DT <= until_s + 1e-9) {
      if (deadline !== undefined && performance.now() > deadline) return false;
      k_step++;
      mod.step(k_step * DT);
    }
    return true;
  }

  function frame(ts) {
    const f0 = performance.now();
    if (last_ts === null) last_ts = ts;
    const wall_dt = Math.min(ts - last_ts, 100) / 1000;  // a hidden tab does not catch up
    last_ts = ts;
    let behind = false;
    if (playing) {
      target_s += wall_dt * speed;
      if (!advance(target_s, f0 + FRAME_WORK_MS)) {
        behind = true;
        target_s = k_step * DT;  // fall behind rather than freeze: the achieved speed drops
      }
    }
    render(behind);
    const f1 = performance.now();
    if (playing) {
      frame_times.push(f1 - f0);
      if (frame_times.length > 2000) frame_times.shift();
      speed_window.push([f1, now_s]);
      while (speed_window.length > 2 && speed_window[0][0] < f1 - 2000) speed_window.shift();
    }
    requestAnimationFrame(frame);
  }

  // ------------------------------------------------------------ views
  const fmt_int = (n) => Number(n).toLocaleString("en-US");
  function set_text(id, v) {
    const el = $(id);
    const s = String(v);
    if (el.textContent !== s) el.textContent = s;
  }

  function render(behind) {
    const st = mod.state();
    last_state = st;
    now_s = st.now_s;
    for (const p of st.points) {
      series.push(p);
      peak_w = Math.max(peak_w, p[4]);
    }
    const keep = Math.ceil(CHART_S / DT) + 1;
    if (series.length > keep) series.splice(0, series.length - keep);

    set_text("now", now_s.toFixed(2));
    const achieved = speed_window.length > 1
      ? (speed_window.at(-1)[1] - speed_window[0][1]) / ((speed_window.at(-1)[0] - speed_window[0][0]) / 1000) : speed;
    set_text("behind", behind || (playing && achieved < speed * 0.8 && speed_window.length > 30) ? `running at ${achieved.toFixed(0)}×` : "");
    const s = st.stats, all = st.all;
    set_text("rate-now", st.advice.measured ? st.advice.arrival_rate.toFixed(0) : "–");
    set_text("requests", fmt_int(st.run.requests));
    set_text("acquired", fmt_int(st.run.served));
    set_text("timeouts", fmt_int(st.run.timeouts));
    set_text("waiting", all.waiting + (all.backlog ? ` (+${all.backlog})` : ""));
    set_text("peak-waiting", fmt_int(peak_w));
    set_text("waited", fmt_int(s.waited));
    $("queue-fill").style.width = Math.min(100, (all.waiting / Math.max(1, +sc["max-size"] * 4)) * 100) + "%";
    set_text("open", s.open); set_text("idle", s.idle); set_text("in_use", s.in_use);
    set_text("creating", s.creating); set_text("max_size", s.max_size);
    views.draw_cells($("cells"), st.slots, s.max_size);
    show_tenants(s.tenants);
    set_text("server-conns", st.server.connections);
    const [budget_text, over_budget] = views.draw_db($("db-bar"), st.server, +sc["max-size"]);
    set_text("budget-text", budget_text);
    $("budget-text").style.color = over_budget ? "#b00020" : "";
    draw_charts();
    views.draw_hist($("chart-hist"), s.wait_time);
    show_advice(st.advice);

    // The run's percentiles exactly as connpool-sim computes them: whenever paused, and
    // while playing twice a second as long as that stays cheap.
    const t = performance.now();
    if (!playing ? summary === null || summary.now_ns !== st.now_ns : t - summary_at > 500 && st.run.served < EXACT_WHILE_PLAYING) {
      summary = mod.summary();
      summary.now_ns = st.now_ns;
      summary_at = t;
    }
    if (summary && summary.now_ns === st.now_ns) {
      set_text("p50", summary.p50_text); set_text("p99", summary.p99_text); set_text("pmax", summary.max_text);
      set_text("exact", summary.exact ? "(exact, as connpool-sim prints it)" : "(exact over the first 8 M acquires)");
    } else if (playing && st.run.served >= EXACT_WHILE_PLAYING) {
      set_text("p50", "≈" + (s.wait_p50_us / 1000).toFixed(3)); set_text("p99", "≈" + (s.wait_p99_us / 1000).toFixed(3));
      set_text("pmax", (s.wait_max_us / 1000).toFixed(3));
      set_text("exact", "(stats(): histogram bucket edges; pause for the exact figures)");
    }
    if (!playing || t - cli_at > 500) show_cli(st);
  }

  let peak_w = 0;

  function show_tenants(ts) {
    $("tenant-view").style.display = ts.length ? "" : "none";
    if (!ts.length) return;
    const mix = sc.tenants ? sc.tenants.split(",").map((t) => t.split(":")) : [];
    let h = "";
    for (const t of ts) {
      const share = t.id > 0 && mix[t.id - 1] ? mix[t.id - 1][0] : "–";
      h += `<tr><td>${t.id === 0 ? "default (0)" : "tenant " + t.id}</td><td>${share}</td><td>${t.weight}</td><td>${t.quota || "none"}</td>` +
           `<td>${t.held}</td><td>${t.waiting}</td><td>${fmt_int(t.acquired)}</td><td>${fmt_int(t.timeouts)}</td><td>${(t.wait_p99_us / 1000).toFixed(3)} ms</td></tr>`;
    }
    if ($("tenant-rows").innerHTML !== h) $("tenant-rows").innerHTML = h;
  }





  function draw_charts() {
    views.draw_lines($("chart-wait"), series, CHART_S, [
      { get: (p) => (p[7] > 0 ? p[1] : null), color: "#2f6fdf" },
      { get: (p) => (p[7] > 0 ? p[2] : null), color: "#d64545" },
    ], { min_max: 1 });
    views.draw_lines($("chart-busy"), series, CHART_S, [
      { get: (p) => p[8], color: "#8a94a8", width: 1 },
      { get: (p) => p[3], color: "#2f6fdf" },
      { get: (p) => p[4], color: "#e0782f" },
    ], { min_max: 2 });
    views.draw_lines($("chart-timeouts"), series, CHART_S, [{ get: (p) => p[5], color: "#c0392b" }], { min_max: 1 });
  }


  function show_advice(a) {
    set_text("advice-size", a.measured ? a.max_size : "–");
    set_text("advice-why", a.reason || "measuring…");
    set_text("advice-little", a.measured
      ? `Little's law: busy = arrival_rate ${a.arrival_rate.toFixed(1)}/s × mean hold ${(a.mean_hold_us / 1000).toFixed(2)} ms = ${a.busy.toFixed(2)}; Erlang C gives the smallest max_size with P(wait > ${(a.target_wait_us / 1000).toFixed(2)} ms) ≤ 1 %` +
        (a.budget_per_instance ? `; budget headroom ${a.budget_headroom}` : "")
      : "");
    $("apply-advice").disabled = !a.measured || a.max_size === +sc["max-size"];
  }

  let cli_at = 0;
  function show_cli(st) {
    cli_at = performance.now();
    const a = args().map((x) => (/^[\w.:,+-]+$/.test(x) ? x : `'${x}'`));
    set_text("cli", `connpool-sim ${a.join(" ")} --duration ${st.now_ns}ns`);
    set_text("live-note", live_changes.length
      ? `this run had live changes (${live_changes.slice(-3).join("; ")}); the command runs today's settings from t = 0.`
      : "");
  }

  function snippet() {
    const o = [];
    o.push(`    .min_idle = ${sc["min-idle"]},`);
    o.push(`    .max_size = ${sc["max-size"]},`);
    o.push(`    .max_lifetime = std::chrono::milliseconds(${duration_ms(sc["max-lifetime"])}),`);
    o.push(`    .acquire_timeout = std::chrono::milliseconds(${duration_ms(sc["acquire-timeout"])}),`);
    o.push(`    .validation = connpool::validation_mode::${sc.validation},`);
    o.push(`    .reset_on_return = ${sc["reset-on-return"] !== "0"},`);
    o.push(`    .handoff = connpool::handoff_policy::${sc.handoff},`);
    let s = `connpool::options opts{\n${o.join("\n")}\n};`;
    if (sc.tenants) {
      sc.tenants.split(",").forEach((t, i) => {
        const [, w, q] = t.split(":");
        s += `\npool.add_tenant(connpool::tenant_id{${i + 1}}, {.quota = ${q || 0}, .weight = ${w}});`;
      });
    }
    return s;
  }

  function scenario_changed() {
    history.replaceState(null, "", query());
    $("link").href = query();
    set_text("snippet", snippet());
    summary = null;
    cli_at = 0;
  }

  // ------------------------------------------------------------ the sweep
  let sweep_result = null;
  const draw_sweep = () => views.draw_sweep($("chart-sweep"), sweep_result);

  $("sweep").onclick = () => {
    const hi = Math.min(40, Math.max(12, 2 * +sc["max-size"]));
    set_text("sweep-text", "running…");
    setTimeout(() => {
      try {
        const t0 = performance.now();
        sweep_result = mod.sweep(args(), 1, hi, 20);
        sweep_result.args = [...args(), "--sweep", `1:${hi}`, "--sweep-duration", "20s"];
        const best = sweep_result.smallest_meeting;
        set_text("sweep-text", (best !== null ? `smallest max_size meeting p99 ≤ ${sweep_result.target_p99_ms} ms without timeouts: ${best}` : "the target is not met in 1.." + hi) +
          (sweep_result.budget_limit !== null ? `; budget allows ≤ ${sweep_result.budget_limit}` : "") +
          ` (${(performance.now() - t0).toFixed(0)} ms in the page; connpool-sim ${args().join(" ")} --sweep 1:${hi} --sweep-duration 20s)`);
      } catch (e) {
        set_text("sweep-text", e.message);
        start();
      }
      draw_sweep();
    }, 20);
  };

  // ------------------------------------------------------------ wiring
  for (const el of document.querySelectorAll("#controls input, #controls select")) {
    if (el.id === "speed" || el.id === "burst-n") continue;
    el.addEventListener("change", on_control);
  }
  $("hold-kind").addEventListener("change", () => show_scenario());
  $("speed").addEventListener("input", () => {
    speed = Math.round(10 ** +$("speed").value);
    set_text("speed-text", speed + "×");
    speed_window = [];
    history.replaceState(null, "", query());
  });
  $("play").onclick = () => { playing = true; last_ts = null; speed_window = []; };
  $("pause").onclick = () => { playing = false; target_s = k_step * DT; };
  $("step").onclick = () => { playing = false; target_s = (k_step + 2) * DT; advance(target_s); };
  $("restart").onclick = () => start();
  $("burst").onclick = () => {
    const n = Math.max(1, Math.round(+$("burst-n").value));
    const t = mod.burst(n);
    sc.bursts = (sc.bursts ? sc.bursts + "," : "") + `${t.toFixed(3)}:${n}`;
    scenario_changed();
  };
  $("apply-advice").onclick = () => {
    if (!last_state || !last_state.advice.measured) return;
    $("max-size").value = last_state.advice.max_size;
    on_control();
  };

  // For the browser test (tools/sim/web/test_page.js) and anyone at the console.
  window.connpool_sim = {
    module: mod,
    scenario: sc,
    state: () => last_state,
    summary: () => mod.summary(),
    playing: () => playing,
    series: () => series,
    sweep: () => sweep_result,
    frame_stats() {
      const f = [...frame_times].sort((a, b) => a - b);
      const achieved = speed_window.length > 1
        ? (speed_window.at(-1)[1] - speed_window[0][1]) / ((speed_window.at(-1)[0] - speed_window[0][0]) / 1000) : 0;
      return { frames: f.length, mean_ms: f.reduce((a, b) => a + b, 0) / Math.max(1, f.length),
               p95_ms: f[Math.floor(f.length * 0.95)] || 0, max_ms: f.at(-1) || 0, speed, achieved_speed: achieved };
    },
    reset_frame_stats() { frame_times.length = 0; speed_window = []; },
  };

  show_scenario();
  start();
  requestAnimationFrame(frame);
})();
