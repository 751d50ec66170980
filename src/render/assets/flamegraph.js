// kscope flame graphs (render_flamegraph_section): canvas, click a frame to zoom into it, search
// highlights frames matching a regex, kernel and user frames coloured apart. Root at the bottom.
'use strict';
window.KscopeFlame = (function () {
  const ROW = 18;
  const instances = [];
  function hash(s) { let h = 2166136261; for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619); return (h >>> 0) % 1000 / 1000; }
  function color(kind, name) {
    const v = hash(name);
    if (kind === 1) return 'rgb(' + (80 + 60 * v | 0) + ',' + (140 + 50 * v | 0) + ',230)';
    if (kind === 2) return 'rgb(190,190,190)';
    if (kind === 3) return 'rgb(220,220,220)';
    return 'rgb(230,' + (100 + 110 * v | 0) + ',' + (40 + 40 * v | 0) + ')';
  }
  function fmtValue(v, unit) {
    if (unit === 'nanoseconds') return window.Kscope ? Kscope.fmtTime(v) : v + ' ns';
    return v.toLocaleString() + (unit && unit !== 'count' ? ' ' + unit : '');
  }
  class FlameGraph {
    constructor(el) {
      this.el = el; this.id = el.dataset.fg;
      const D = JSON.parse(document.getElementById(this.id + '-data').textContent);
      this.D = D;
      const n = D.nodes.length / 4;
      this.n = n;
      this.name = new Array(n); this.value = new Float64Array(n); this.kind = new Uint8Array(n);
      this.parent = new Int32Array(n); this.depth = new Uint16Array(n); this.x = new Float64Array(n);
      const next = new Float64Array(n);
      let maxDepth = 0;
      for (let i = 0; i < n; i++) {
        this.name[i] = D.names[D.nodes[4 * i]]; this.value[i] = D.nodes[4 * i + 1];
        this.kind[i] = D.nodes[4 * i + 2]; const p = this.parent[i] = D.nodes[4 * i + 3];
        if (p >= 0) { this.depth[i] = this.depth[p] + 1; this.x[i] = next[p]; next[p] += this.value[i]; next[i] = this.x[i]; }
        else { this.x[i] = 0; next[i] = 0; }
        if (this.depth[i] > maxDepth) maxDepth = this.depth[i];
      }
      this.maxDepth = maxDepth;
      this.zoomed = 0;
      this.match = null;
      this.canvas = el.querySelector('canvas');
      this.info = el.querySelector('.fg-info');
      this.canvas.addEventListener('click', (e) => this.onClick(e));
      this.canvas.addEventListener('mousemove', (e) => this.onMove(e));
      el.querySelector('.fg-reset').addEventListener('click', () => this.zoom(0));
      el.querySelector('.fg-search').addEventListener('input', (e) => this.search(e.target.value));
      this.resize();
    }
    resize() {
      const dpr = window.devicePixelRatio || 1;
      this.w = Math.max(300, this.el.clientWidth || 900);
      this.h = (this.maxDepth + 1) * ROW + 4;
      this.canvas.width = Math.round(this.w * dpr); this.canvas.height = Math.round(this.h * dpr);
      this.canvas.style.height = this.h + 'px';
      this.dpr = dpr;
      this.draw();
    }
    range() { const z = this.zoomed; return [this.x[z], this.x[z] + this.value[z]]; }
    rect(i) {
      const [a, b] = this.range(), k = this.w / (b - a);
      const x0 = Math.max(0, (this.x[i] - a) * k), x1 = Math.min(this.w, (this.x[i] + this.value[i] - a) * k);
      return { x: x0, w: x1 - x0, y: this.h - 2 - (this.depth[i] + 1) * ROW };
    }
    draw() {
      const ctx = this.canvas.getContext('2d');
      ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
      ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, this.w, this.h);
      ctx.font = '11px sans-serif'; ctx.textBaseline = 'middle';
      const [a, b] = this.range();
      for (let i = 0; i < this.n; i++) {
        if (this.x[i] + this.value[i] <= a || this.x[i] >= b) continue;
        const r = this.rect(i);
        if (r.w < 0.4) continue;
        const inZoom = this.isAncestorOf(i, this.zoomed) && i !== this.zoomed;
        ctx.fillStyle = this.match && this.match[i] ? 'rgb(230,60,230)' : color(this.kind[i], this.name[i]);
        ctx.globalAlpha = inZoom ? 0.55 : 1;
        ctx.fillRect(r.x, r.y, Math.max(0.5, r.w - 0.5), ROW - 1);
        ctx.globalAlpha = 1;
        if (r.w > 24) {
          ctx.fillStyle = '#000';
          let text = this.name[i];
          const max = Math.floor((r.w - 6) / 6.2);
          if (text.length > max) text = text.substr(0, Math.max(0, max - 2)) + '..';
          ctx.fillText(text, r.x + 3, r.y + ROW / 2);
        }
      }
    }
    isAncestorOf(a, i) { while (i >= 0) { if (i === a) return true; i = this.parent[i]; } return false; }
    nodeAt(px, py) {
      const depth = Math.floor((this.h - 2 - py) / ROW);
      const [a, b] = this.range(), v = a + px / this.w * (b - a);
      let best = -1;
      for (let i = 0; i < this.n; i++)
        if (this.depth[i] === depth && this.x[i] <= v && v < this.x[i] + this.value[i]) best = i;
      return best;
    }
    onClick(e) {
      const r = this.canvas.getBoundingClientRect();
      const i = this.nodeAt(e.clientX - r.left, e.clientY - r.top);
      if (i >= 0) this.zoom(i);
    }
    zoom(i) { this.zoomed = i; this.draw(); }
    onMove(e) {
      const r = this.canvas.getBoundingClientRect();
      const i = this.nodeAt(e.clientX - r.left, e.clientY - r.top);
      if (i < 0) { this.info.textContent = '\u00a0'; return; }
      const pct = (100 * this.value[i] / this.value[0]).toFixed(2);
      this.info.textContent = this.name[i] + (this.kind[i] === 1 ? ' [kernel]' : '') + ': ' + fmtValue(this.value[i], this.D.unit) + ' (' + pct + '%)';
    }
    search(text) {
      const m = this.el.querySelector('.fg-match');
      if (!text) { this.match = null; m.textContent = ''; this.draw(); return; }
      let re;
      try { re = new RegExp(text); } catch (err) { m.textContent = 'invalid regex'; return; }
      this.match = new Uint8Array(this.n);
      let total = 0;
      for (let i = 0; i < this.n; i++) {
        if (!re.test(this.name[i])) continue;
        this.match[i] = 1;
        let p = this.parent[i], counted = false;
        while (p >= 0) { if (this.match[p]) { counted = true; break; } p = this.parent[p]; }
        if (!counted) total += this.value[i];
      }
      this.matchedValue = total;
      m.textContent = 'matched ' + (100 * total / this.value[0]).toFixed(1) + '% of ' + fmtValue(this.value[0], this.D.unit);
      this.draw();
    }
    // For the self-test: the widest frame that is not the root, as a click target.
    firstZoomTarget() {
      let best = -1;
      for (let i = 1; i < this.n; i++) if (this.depth[i] >= 1 && this.value[i] < this.value[0] && (best < 0 || this.value[i] > this.value[best])) best = i;
      if (best < 0) return null;
      const r = this.rect(best);
      return { node: best, x: r.x + r.w / 2, y: r.y + ROW / 2 };
    }
  }
  const api = { instances };
  api.ready = Promise.resolve().then(() => {
    for (const el of document.querySelectorAll('.fg')) instances.push(new FlameGraph(el));
    let pending = null;
    window.addEventListener('resize', () => { clearTimeout(pending); pending = setTimeout(() => instances.forEach((f) => f.resize()), 150); });
  });
  return api;
})();
