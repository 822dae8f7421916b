// Small line charts on a <canvas>, no library: tornpool's dashboard draws
// its history with these.  drawChart(canvas, series, options)
//   series: [{label, color, values: [number|null, ...]}]  (one value per frame)
//   options: {min: 0, unit: ""}
"use strict";

function niceMax(value) {
  if (!(value > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (value <= m * p) return m * p;
  }
  return 10 * p;
}

function drawChart(canvas, series, options) {
  const opts = Object.assign({unit: ""}, options || {});
  const ratio = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || canvas.width;
  const cssH = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(cssW * ratio)) {
    canvas.width = Math.round(cssW * ratio);
    canvas.height = Math.round(cssH * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const left = 34, right = 6, top = 6, bottom = 14;
  const w = cssW - left - right, h = cssH - top - bottom;
  let n = 0, peak = 0;
  for (const s of series) {
    n = Math.max(n, s.values.length);
    for (const v of s.values) if (v !== null && v > peak) peak = v;
  }
  const ymax = opts.max !== undefined ? Math.max(opts.max, niceMax(peak)) : niceMax(peak);
  ctx.font = "10px sans-serif";
  ctx.fillStyle = "#777";
  ctx.strokeStyle = "#e4e4e4";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = top + h - (h * i) / 2;
    ctx.beginPath(); ctx.moveTo(left, y + 0.5); ctx.lineTo(left + w, y + 0.5); ctx.stroke();
    const label = (ymax * i) / 2;
    ctx.fillText(String(Math.round(label * 10) / 10) + opts.unit, 2, y + 3);
  }
  ctx.fillText("-" + Math.round((n * (opts.interval || 0.5))) + " s", left, cssH - 2);
  ctx.fillText("now", left + w - 18, cssH - 2);
  if (n < 2) return;
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.6;
    ctx.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      const x = left + (w * (i + n - s.values.length)) / (n - 1);
      const y = top + h - (h * Math.min(v, ymax)) / ymax;
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
  }
}

function drawLegend(element, series) {
  element.replaceChildren(...series.map((s) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color;
    item.append(swatch, document.createTextNode(s.label));
    return item;
  }));
}
