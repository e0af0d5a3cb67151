// connpool-sim's engine in the page: loads connpool_sim.wasm (embedded as base64 by
// connpool_sim.wasm.js, so that the page works from file:// where fetch() cannot read files)
// through a WASI shim of our own, and wraps the module's exports (tools/sim/web/sim_web.cpp).
//
// The module needs only seven WASI calls; none does I/O that matters here: the clock (the
// engine times its own run), stdout/stderr (to the console) and exit.
"use strict";

(function (root) {
  function wasi_shim(get_memory) {
    const EBADF = 8;
    const view = () => new DataView(get_memory().buffer);
    let line = "";
    return {
      environ_sizes_get(count_ptr, size_ptr) {
        view().setUint32(count_ptr, 0, true);
        view().setUint32(size_ptr, 0, true);
        return 0;
      },
      environ_get() { return 0; },
      clock_time_get(_id, _precision, out_ptr) {
        const ns = BigInt(Math.round(performance.now() * 1e6));
        view().setBigUint64(out_ptr, ns, true);
        return 0;
      },
      fd_close() { return EBADF; },
      fd_seek() { return EBADF; },
      fd_write(fd, iovs, iovs_len, written_ptr) {
        if (fd !== 1 && fd !== 2) return EBADF;
        const v = view(), mem = new Uint8Array(get_memory().buffer);
        let n = 0;
        for (let i = 0; i < iovs_len; i++) {
          const p = v.getUint32(iovs + 8 * i, true), len = v.getUint32(iovs + 8 * i + 4, true);
          line += new TextDecoder().decode(mem.subarray(p, p + len));
          n += len;
        }
        let nl;
        while ((nl = line.indexOf("\n")) >= 0) {
          console.log("connpool-sim: " + line.slice(0, nl));
          line = line.slice(nl + 1);
        }
        v.setUint32(written_ptr, n, true);
        return 0;
      },
      proc_exit(code) { throw new Error("connpool-sim module exited with " + code); },
    };
  }

  function wasm_bytes() {
    const b64 = root.CONNPOOL_SIM_WASM;
    if (!b64) throw new Error("connpool_sim.wasm.js is not loaded");
    if (typeof Buffer !== "undefined") return new Uint8Array(Buffer.from(b64, "base64"));
    const bin = atob(b64), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // One instance of the module. A C++ exception traps (see sim_web.cpp): call() turns the
  // trap into an Error with the exception's message and makes a fresh instance, since a
  // trapped instance has lost its stack pointer.
  class sim_module {
    static async load() {
      const m = new sim_module();
      m.module = await WebAssembly.compile(wasm_bytes());
      m.instantiate();
      return m;
    }
    // A compiled module instantiates synchronously, also after a trap, in the middle of a call.
    instantiate() {
      let memory = null;
      const inst = new WebAssembly.Instance(this.module, { wasi_snapshot_preview1: wasi_shim(() => memory) });
      memory = inst.exports.memory;
      inst.exports._initialize();
      this.x = inst.exports;
      this.mem = memory;
    }
    put(text) {
      const bytes = new TextEncoder().encode(text);
      const p = this.x.sim_in(bytes.length);
      new Uint8Array(this.mem.buffer, p, bytes.length).set(bytes);
    }
    out() {
      const p = this.x.sim_out(), n = this.x.sim_out_len();
      return new TextDecoder().decode(new Uint8Array(this.mem.buffer, p, n));
    }
    call(fn) {
      try {
        return fn();
      } catch (e) {
        if (!(e instanceof WebAssembly.RuntimeError)) throw e;
        let msg = "the module trapped";
        try { this.x.sim_last_error(); msg = this.out() || msg; } catch (_) { /* keep the generic message */ }
        this.instantiate();
        this.running = false;
        throw new Error(msg);
      }
    }
    // args: connpool-sim's arguments, e.g. ["--rate", "40", "--max-size", "5"].
    defaults() { return this.call(() => { this.x.sim_defaults(); return JSON.parse(this.out()); }); }
    start(args) {
      return this.call(() => {
        this.put(args.join("\n"));
        this.x.sim_start();
        this.running = true;
        return JSON.parse(this.out());
      });
    }
    step(t_s) { return this.call(() => this.x.sim_step(t_s)); }
    state() { return this.call(() => { this.x.sim_state(); return JSON.parse(this.out()); }); }
    summary() { return this.call(() => { this.x.sim_summary(); return JSON.parse(this.out()); }); }
    burst(n) { return this.call(() => this.x.sim_burst(n)); }
    set(key, value) {
      return this.call(() => {
        this.put(key + "\n" + value);
        return this.x.sim_set() === 0;
      });
    }
    sweep(args, lo, hi, duration_s) {
      return this.call(() => { this.put(args.join("\n")); this.x.sim_sweep(lo, hi, duration_s); return JSON.parse(this.out()); });
    }
    run(args) {
      return this.call(() => { this.put(args.join("\n")); this.x.sim_run(); return JSON.parse(this.out()); });
    }
  }

  root.connpool_sim_module = sim_module;
  if (typeof module !== "undefined") module.exports = sim_module;
})(typeof window !== "undefined" ? window : globalThis);
