// kscope report: decodes the page data and draws the interactive fault scatter panels.
// Vanilla JS, no network. Data format: src/render/report_html.cpp (encode_points).
'use strict';
window.kscopeErrors = window.kscopeErrors || [];
window.addEventListener('error', (e) => window.kscopeErrors.push(String(e.message || e)));
window.addEventListener('unhandledrejection', (e) => window.kscopeErrors.push('unhandled: ' + String(e.reason)));
(function () {
  const origError = console.error;
  console.error = function (...args) { window.kscopeErrors.push(args.join(' ')); origError.apply(console, args); };
})();

const Kscope = (window.Kscope = {});

Kscope.hex = (n) => '0x' + Math.floor(n).toString(16);
Kscope.fmtTime = function (ns) {
  const a = Math.abs(ns);
  if (a >= 1e9) return +(ns / 1e9).toPrecision(4) + ' s';
  if (a >= 1e6) return +(ns / 1e6).toPrecision(4) + ' ms';
  if (a >= 1e3) return +(ns / 1e3).toPrecision(4) + ' us';
  return Math.round(ns) + ' ns';
};
Kscope.fmtBytes = function (b) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (b < 10 ? b.toFixed(1) : Math.round(b)) + ' ' + u[i];
};
Kscope.niceStep = function (range, target) {
  if (range <= 0) return 1;
  const raw = range / target, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
};

function b64ToBytes(s) {
  const bin = atob(s), u = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
  return u;
}
async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// Inverse of encode_points(): typed arrays, one entry per fault in time order.
Kscope.decodePoints = function (buf, n) {
  const t = new Float64Array(n), addr = new Float64Array(n), flags = new Uint8Array(n);
  const loc = new Uint32Array(n), pid = new Uint32Array(n);
  let pos = 0, tt = 0, aa = 0;
  for (let i = 0; i < n; i++) {
    let r = 0, mul = 1, b;
    do { b = buf[pos++]; r += (b & 127) * mul; mul *= 128; } while (b & 128);
    tt += r; t[i] = tt;
    r = 0; mul = 1;
    do { b = buf[pos++]; r += (b & 127) * mul; mul *= 128; } while (b & 128);
    aa += (r % 2 === 0) ? r / 2 : -(r + 1) / 2; addr[i] = aa;
    flags[i] = buf[pos++];
    r = 0; mul = 1;
    do { b = buf[pos++]; r += (b & 127) * mul; mul *= 128; } while (b & 128);
    loc[i] = r;
    r = 0; mul = 1;
    do { b = buf[pos++]; r += (b & 127) * mul; mul *= 128; } while (b & 128);
    pid[i] = r;
  }
  if (pos !== buf.length) throw new Error('point data: ' + (buf.length - pos) + ' bytes left over');
  return { t, addr, flags, loc, pid };
};

// The gap-compressed axis of compress_page_axis(): ranges [lo, hi, rows, first_row].
class PageAxis {
  constructor(ranges) {
    this.r = ranges;
    const last = ranges[ranges.length - 1];
    this.units = last ? last[3] + last[2] : 1;
  }
  y(page) {
    const r = this.r;
    let lo = 0, hi = r.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (r[mid][0] <= page) lo = mid; else hi = mid - 1; }
    const g = r[lo];
    return g[3] + (page - g[0] + 0.5) / (g[1] - g[0] + 1) * g[2];
  }
  // The page at axis position y, or null inside a break.
  page(y) {
    for (const g of this.r) {
      if (y >= g[3] && y <= g[3] + g[2]) return g[0] + Math.min(g[1] - g[0], Math.floor((y - g[3]) / g[2] * (g[1] - g[0] + 1)));
    }
    return null;
  }
}

function hexToRgb(h) { return [parseInt(h.substr(1, 2), 16), parseInt(h.substr(3, 2), 16), parseInt(h.substr(5, 2), 16)]; }

class Scatter {
  constructor(el, P, D) {
    this.el = el; this.P = P; this.D = D;
    this.segment = +el.dataset.segment;
    this.canvas = el.querySelector('canvas');
    this.tip = el.querySelector('.tip');
    this.cssHeight = +el.dataset.height || 300;
    this.axis = new PageAxis(this.segment < 0 ? D.axis : D.segment_axes[this.segment]);
    const idx = [];
    for (let i = 0; i < P.t.length; i++) if (this.segment < 0 || (P.flags[i] & 7) === this.segment) idx.push(i);
    this.idx = Uint32Array.from(idx);
    this.y = new Float32Array(this.idx.length);
    for (let k = 0; k < this.idx.length; k++) this.y[k] = this.axis.y(Math.floor(P.addr[this.idx[k]] / 4096));
    this.full = { x0: 0, x1: Math.max(1, D.t_max), y0: 0, y1: this.axis.units };
    this.view = Object.assign({}, this.full);
    this.margin = { l: 118, r: 92, t: 8, b: 34 };
    this.colors = D.colors.map(hexToRgb);
    this.mode = '';
    this.visibleCount = 0;
    this.hit = null;
    this.bind();
    this.resize();
  }
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(300, this.el.clientWidth || 800);
    this.w = w; this.h = this.cssHeight;
    this.canvas.width = Math.round(w * dpr); this.canvas.height = Math.round(this.h * dpr);
    this.canvas.style.height = this.h + 'px';
    this.dpr = dpr;
    this.draw();
  }
  plotRect() { const m = this.margin; return { x: m.l, y: m.t, w: this.w - m.l - m.r, h: this.h - m.t - m.b }; }
  sx(t) { const p = this.plotRect(), v = this.view; return p.x + (t - v.x0) / (v.x1 - v.x0) * p.w; }
  sy(y) { const p = this.plotRect(), v = this.view; return p.y + p.h - (y - v.y0) / (v.y1 - v.y0) * p.h; }
  visibleRange() { return Object.assign({ points: this.visibleCount, mode: this.mode }, this.view); }
  // Zoom by `factor` (<1 zooms in) about screen point (px, py); the wheel handler calls this.
  zoomAt(px, py, factor, axes) {
    const p = this.plotRect(), v = this.view;
    const fx = Math.min(1, Math.max(0, (px - p.x) / p.w)), fy = Math.min(1, Math.max(0, 1 - (py - p.y) / p.h));
    if (axes !== 'y') {
      const t = v.x0 + fx * (v.x1 - v.x0), span = Math.max(1000, (v.x1 - v.x0) * factor);
      v.x0 = t - fx * span; v.x1 = v.x0 + span;
    }
    if (axes !== 'x') {
      const y = v.y0 + fy * (v.y1 - v.y0), span = Math.max(1e-4, (v.y1 - v.y0) * factor);
      v.y0 = y - fy * span; v.y1 = v.y0 + span;
    }
    this.clamp();
    this.draw();
  }
  clamp() {
    const v = this.view, f = this.full;
    for (const [a, b] of [['x0', 'x1'], ['y0', 'y1']]) {
      const span = Math.min(v[b] - v[a], f[b] - f[a]);
      if (v[a] < f[a]) { v[a] = f[a]; v[b] = f[a] + span; }
      if (v[b] > f[b]) { v[b] = f[b]; v[a] = f[b] - span; }
    }
  }
  reset() { this.view = Object.assign({}, this.full); this.draw(); }
  onWheel(e) {
    e.preventDefault();
    const r = this.canvas.getBoundingClientRect();
    const factor = Math.pow(1.0015, e.deltaY);
    this.zoomAt(e.clientX - r.left, e.clientY - r.top, factor, e.shiftKey ? 'x' : e.altKey ? 'y' : 'xy');
  }
  bind() {
    this.canvas.addEventListener('wheel', (e) => this.onWheel(e), { passive: false });
    let drag = null;
    this.canvas.addEventListener('mousedown', (e) => { drag = { x: e.clientX, y: e.clientY, v: Object.assign({}, this.view) }; });
    window.addEventListener('mouseup', () => { drag = null; });
    this.canvas.addEventListener('mousemove', (e) => {
      const r = this.canvas.getBoundingClientRect(), px = e.clientX - r.left, py = e.clientY - r.top;
      if (drag) {
        const p = this.plotRect(), dv = drag.v;
        const dx = (e.clientX - drag.x) / p.w * (dv.x1 - dv.x0), dy = (e.clientY - drag.y) / p.h * (dv.y1 - dv.y0);
        this.view = { x0: dv.x0 - dx, x1: dv.x1 - dx, y0: dv.y0 + dy, y1: dv.y1 + dy };
        this.clamp(); this.draw(); this.tip.style.display = 'none';
        return;
      }
      this.showTip(px, py);
    });
    this.canvas.addEventListener('mouseleave', () => { this.tip.style.display = 'none'; });
    this.canvas.addEventListener('dblclick', () => this.reset());
    this.el.querySelector('.sc-reset').addEventListener('click', () => this.reset());
  }
  describe(i) {
    const P = this.P, D = this.D, f = P.flags[i];
    const access = ['read', 'write', 'exec', '?'][(f >> 4) & 3];
    return 'time     ' + Kscope.fmtTime(P.t[i]) + '\naddress  ' + Kscope.hex(P.addr[i]) +
      '\nsegment  ' + D.segments[f & 7] + '\nkind     ' + ((f & 8) ? 'MAJOR' : 'minor') + ', ' + access +
      ((f & 64) ? ', kernel mode' : '') + '\nfunction ' + D.locations[P.loc[i]] +
      '\nprocess  ' + D.pids[P.pid[i]] + ' ' + D.comms[P.pid[i]];
  }
  showTip(px, py) {
    let text = null;
    if (this.hit && this.mode === 'points') {
      let best = -1, bd = 64;
      const hx = this.hit.x, hy = this.hit.y, hi = this.hit.i;
      for (let k = 0; k < hi.length; k++) {
        const dx = hx[k] - px, dy = hy[k] - py, d = dx * dx + dy * dy;
        if (d < bd) { bd = d; best = hi[k]; }
      }
      if (best >= 0) text = this.describe(best);
    } else if (this.hit && this.mode === 'density') {
      const p = this.plotRect(), c = this.hit;
      const gx = Math.floor((px - p.x) / c.cell), gy = Math.floor((py - p.y) / c.cell);
      if (gx >= 0 && gy >= 0 && gx < c.gw && gy < c.gh && c.counts[gy * c.gw + gx]) {
        const v = this.view, t0 = v.x0 + (gx * c.cell) / p.w * (v.x1 - v.x0);
        const page = this.axis.page(v.y0 + (1 - (gy * c.cell) / p.h) * (v.y1 - v.y0));
        text = c.counts[gy * c.gw + gx] + ' faults in this cell\ntime    ~' + Kscope.fmtTime(t0) +
          (page !== null ? '\naddress ~' + Kscope.hex(page * 4096) : '') + '\nsegment  ' + this.D.segments[c.seg[gy * c.gw + gx]] +
          '\n(zoom in to see single faults)';
      }
    }
    if (!text) { this.tip.style.display = 'none'; return; }
    this.tip.textContent = text;
    this.tip.style.display = 'block';
    this.tip.style.left = Math.min(px + 14, this.w - 260) + 'px';
    this.tip.style.top = (py + 14) + 'px';
  }
  draw() {
    const ctx = this.canvas.getContext('2d'), dpr = this.dpr, P = this.P, v = this.view;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, this.w, this.h);
    const p = this.plotRect();
    // Which points are in view.
    const inView = [];
    const idx = this.idx, ys = this.y;
    for (let k = 0; k < idx.length; k++) {
      const t = P.t[idx[k]], y = ys[k];
      if (t >= v.x0 && t <= v.x1 && y >= v.y0 && y <= v.y1) inView.push(k);
    }
    this.visibleCount = inView.length;
    const sxk = p.w / (v.x1 - v.x0), syk = p.h / (v.y1 - v.y0);
    ctx.save();
    ctx.beginPath(); ctx.rect(p.x, p.y, p.w, p.h); ctx.clip();
    const majors = [];
    if (inView.length > this.D.density_threshold) {
      // Density heatmap: cells of 2 CSS pixels, colour of the last segment seen, alpha by log count.
      this.mode = 'density';
      const cell = 2, gw = Math.ceil(p.w / cell), gh = Math.ceil(p.h / cell);
      const counts = new Uint32Array(gw * gh), seg = new Uint8Array(gw * gh);
      let max = 1;
      for (const k of inView) {
        const i = idx[k];
        const gx = Math.min(gw - 1, Math.floor((P.t[i] - v.x0) * sxk / cell));
        const gy = Math.min(gh - 1, Math.floor((v.y1 - ys[k]) * syk / cell));
        const c = gy * gw + gx;
        if (++counts[c] > max) max = counts[c];
        seg[c] = P.flags[i] & 7;
        if (P.flags[i] & 8) majors.push(k);
      }
      const img = ctx.createImageData(gw * cell * dpr | 0, gh * cell * dpr | 0);
      const W = img.width, lm = Math.log1p(max), d = img.data;
      for (let gy = 0; gy < gh; gy++) for (let gx = 0; gx < gw; gx++) {
        const c = gy * gw + gx;
        const n = counts[c];
        const col = n ? this.colors[seg[c]] : [255, 255, 255];
        const a = n ? 0.3 + 0.7 * Math.log1p(n) / lm : 0;
        const r = 255 + (col[0] - 255) * a, g = 255 + (col[1] - 255) * a, b = 255 + (col[2] - 255) * a;
        const x0 = Math.round(gx * cell * dpr), x1 = Math.min(W, Math.round((gx + 1) * cell * dpr));
        const y0 = Math.round(gy * cell * dpr), y1 = Math.min(img.height, Math.round((gy + 1) * cell * dpr));
        for (let yy = y0; yy < y1; yy++) for (let xx = x0; xx < x1; xx++) {
          const o = (yy * W + xx) * 4; d[o] = r; d[o + 1] = g; d[o + 2] = b; d[o + 3] = 255;
        }
      }
      ctx.putImageData(img, Math.round(p.x * dpr), Math.round(p.y * dpr));
      this.hit = { cell, gw, gh, counts, seg };
    } else {
      this.mode = 'points';
      const hx = new Float32Array(inView.length), hy = new Float32Array(inView.length), hi = new Uint32Array(inView.length);
      let last = -1;
      for (let j = 0; j < inView.length; j++) {
        const k = inView[j], i = idx[k];
        const x = p.x + (P.t[i] - v.x0) * sxk, y = p.y + (v.y1 - ys[k]) * syk;
        hx[j] = x; hy[j] = y; hi[j] = i;
        const s = P.flags[i] & 7;
        if (s !== last) { ctx.fillStyle = this.D.colors[s]; last = s; }
        ctx.fillRect(x - 1, y - 1, 2.2, 2.2);
        if (P.flags[i] & 8) majors.push(k);
      }
      this.hit = { x: hx, y: hy, i: hi };
    }
    ctx.strokeStyle = '#000'; ctx.lineWidth = 1.1;
    for (const k of majors.slice(0, 20000)) {
      const i = idx[k];
      ctx.beginPath(); ctx.arc(p.x + (P.t[i] - v.x0) * sxk, p.y + (v.y1 - ys[k]) * syk, 3, 0, 2 * Math.PI); ctx.stroke();
    }
    ctx.restore();
    this.drawAxes(ctx, p);
    this.el.querySelector('.sc-mode').textContent = this.mode === 'density' ? 'density heatmap (' + this.visibleCount.toLocaleString() + ' faults in view)' : this.visibleCount.toLocaleString() + ' faults in view';
    this.el.querySelector('.sc-range').textContent = 'time ' + Kscope.fmtTime(v.x0) + ' .. ' + Kscope.fmtTime(v.x1);
  }
  drawAxes(ctx, p) {
    const v = this.view, r = this.axis.r;
    ctx.strokeStyle = '#333'; ctx.lineWidth = 1; ctx.strokeRect(p.x + 0.5, p.y + 0.5, p.w, p.h);
    ctx.fillStyle = '#222'; ctx.font = '11px sans-serif';
    // Time ticks.
    const step = Kscope.niceStep(v.x1 - v.x0, Math.max(2, Math.floor(p.w / 110)));
    ctx.textAlign = 'center';
    for (let t = Math.ceil(v.x0 / step) * step; t <= v.x1; t += step) {
      const x = this.sx(t);
      ctx.fillRect(x, p.y + p.h, 1, 4);
      ctx.fillText(Kscope.fmtTime(t), x, p.y + p.h + 15);
    }
    ctx.fillText('time since start', p.x + p.w / 2, p.y + p.h + 29);
    // Page labels: each range's ends, and more pages inside a range when it is tall on screen.
    ctx.textAlign = 'right';
    let lastLabelY = -1e9, lastPage = -1, lastGapY = -1e9;
    const label = (y, page) => {
      const sy = this.sy(y);
      if (sy < p.y - 1 || sy > p.y + p.h + 1 || Math.abs(sy - lastLabelY) < 13 || page === lastPage) return;
      lastLabelY = sy; lastPage = page;
      ctx.fillText(Kscope.hex(page), p.x - 5, sy + 4);
      ctx.fillRect(p.x - 3, sy, 3, 1);
    };
    for (let g = r.length - 1; g >= 0; g--) {
      const [lo, hi, rows, first] = r[g];
      const top = this.sy(first + rows), bottom = this.sy(first);
      label(first + rows - 0.5 * rows / (hi - lo + 1), hi);
      const n = Math.floor((bottom - top) / 40);
      for (let j = n - 1; j >= 1; j--) {
        const y = first + rows * j / n, page = this.axis.page(y);
        if (page !== null) label(y, page);
      }
      if (hi !== lo) label(first + 0.5 * rows / (hi - lo + 1), lo);
      if (g > 0) {
        // The break between range g-1 and g: one axis unit, drawn as a dashed line.
        const yb = this.sy(first - 0.5);
        if (yb > p.y && yb < p.y + p.h && Math.abs(yb - lastGapY) >= 12) {
          lastGapY = yb;
          ctx.save(); ctx.setLineDash([4, 3]); ctx.strokeStyle = '#999';
          ctx.beginPath(); ctx.moveTo(p.x, yb); ctx.lineTo(p.x + p.w, yb); ctx.stroke(); ctx.restore();
          ctx.textAlign = 'left'; ctx.fillStyle = '#666';
          ctx.fillText(Kscope.fmtBytes((lo - r[g - 1][1] - 1) * 4096) + ' gap', p.x + p.w + 4, yb + 4);
          ctx.textAlign = 'right'; ctx.fillStyle = '#222';
        }
      }
    }
    ctx.save(); ctx.translate(12, p.y + p.h / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = 'center';
    ctx.fillText('virtual page (addr>>12), gaps cut', 0, 0); ctx.restore();
  }
}

Kscope.scatters = [];
Kscope.ready = (async function () {
  const el = document.getElementById('kscope-data');
  if (!el) return;
  const D = JSON.parse(el.textContent);
  if (!D.n) return;
  const P = Kscope.decodePoints(await gunzip(b64ToBytes(D.points)), D.n);
  Kscope.points = P;
  for (const s of document.querySelectorAll('.scatter')) Kscope.scatters.push(new Scatter(s, P, D));
  let pending = null;
  window.addEventListener('resize', () => {
    clearTimeout(pending);
    pending = setTimeout(() => Kscope.scatters.forEach((s) => s.resize()), 150);
  });
})();

// ?selftest: checks what a person would look at, and writes the result into the page title and
// <pre id="kscope-selftest"> for tests (chromium --headless --dump-dom).
Kscope.nonBlank = function (canvas) {
  const c = canvas.getContext('2d'), d = c.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) n++;
  return n;
};
Kscope.selftest = async function () {
  const result = { ok: true, checks: [] };
  const check = (name, ok, detail) => { result.checks.push({ name, ok: !!ok, detail }); if (!ok) result.ok = false; };
  try {
    await Kscope.ready;
    if (window.KscopeFlame) await window.KscopeFlame.ready;
    result.noFaults = !!document.getElementById('no-faults');
    result.scatters = Kscope.scatters.length;
    for (const s of Kscope.scatters) check('scatter ' + s.el.id + ' drawn', Kscope.nonBlank(s.canvas) > 500, Kscope.nonBlank(s.canvas));
    const main = Kscope.scatters[0];
    if (main) {
      const before = main.visibleRange();
      result.modeBefore = before.mode;
      const r = main.canvas.getBoundingClientRect(), p = main.plotRect();
      main.canvas.dispatchEvent(new WheelEvent('wheel', { deltaY: -600, clientX: r.left + p.x + p.w / 2, clientY: r.top + p.y + p.h / 2, bubbles: true, cancelable: true }));
      const after = main.visibleRange();
      result.zoom = { before, after };
      check('wheel zoom narrows the time range', after.x1 - after.x0 < (before.x1 - before.x0) * 0.6, [before.x1 - before.x0, after.x1 - after.x0]);
      check('wheel zoom narrows the address range', after.y1 - after.y0 < (before.y1 - before.y0) * 0.6, [before.y1 - before.y0, after.y1 - after.y0]);
      check('zoomed view still drawn', Kscope.nonBlank(main.canvas) > 500, Kscope.nonBlank(main.canvas));
      main.canvas.dispatchEvent(new MouseEvent('dblclick', { bubbles: true }));
      check('double-click resets', main.visibleRange().x1 === before.x1 && main.visibleRange().points === before.points, main.visibleRange());
    }
    // ?selftest&fgsearch=f,g: what the search box says each flame graph holds of those functions
    // (value of the frames named exactly f, not counted twice under themselves).
    const fgsearch = (new URLSearchParams(location.search).get('fgsearch') || '').split(',').filter((x) => x);
    result.flames = {};
    for (const fg of (window.KscopeFlame ? window.KscopeFlame.instances : [])) {
      const found = {};
      for (const name of fgsearch) {
        fg.search('^' + name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '$');
        found[name] = { value: fg.matchedValue || 0, text: fg.el.querySelector('.fg-match').textContent };
      }
      if (fgsearch.length) fg.search('');
      result.flames[fg.id] = { unit: fg.D.unit, total: fg.value[0], pixels: Kscope.nonBlank(fg.canvas), found };
    }
    for (const fg of (window.KscopeFlame ? window.KscopeFlame.instances : [])) {
      check('flame graph ' + fg.id + ' drawn', Kscope.nonBlank(fg.canvas) > 500, Kscope.nonBlank(fg.canvas));
      const target = fg.firstZoomTarget();
      if (target) {
        const r = fg.canvas.getBoundingClientRect();
        fg.canvas.dispatchEvent(new MouseEvent('click', { clientX: r.left + target.x, clientY: r.top + target.y, bubbles: true }));
        check('flame graph click zooms', fg.zoomed === target.node, { zoomed: fg.zoomed, wanted: target.node });
      }
    }
    for (const svg of document.querySelectorAll('svg')) check('svg has content', svg.querySelectorAll('rect,path,circle').length > 1, svg.querySelector('title') && svg.querySelector('title').textContent);
  } catch (e) {
    check('exception', false, String(e && e.stack || e));
  }
  result.errors = window.kscopeErrors;
  if (result.errors.length) result.ok = false;
  const pre = document.createElement('pre');
  pre.id = 'kscope-selftest';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
  document.title = 'KSCOPE-SELFTEST ' + (result.ok ? 'PASS' : 'FAIL');
  return result;
};
if (/[?&]selftest\b/.test(location.search)) window.addEventListener('load', () => setTimeout(Kscope.selftest, 0));
