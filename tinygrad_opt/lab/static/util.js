// Small helpers shared by the panels: the API, number formatting, SVG and colours.

export async function api(path, body) {
  // POST `body` as JSON (GET without one); a 4xx/5xx answer throws its one-sentence error.
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `${path} answered ${response.status}`);
  return data;
}

export function fmt(value, digits = 6) {
  // A number (or nested list) as the page shows it: `digits` significant digits.
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) return "[" + value.map((v) => fmt(v, digits)).join(", ") + "]";
  if (value === 0) return "0";
  const text = Number(value).toPrecision(digits);
  return text.includes("e") ? text : String(Number(text));
}

export function el(tag, attrs = {}, ...children) {
  // document.createElement with attributes and children (strings become text).
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// Distinct line colours (Tableau 10), one per optimizer in a race.
export const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                       "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

// A perceptual colour map (viridis, 6 stops), t in [0, 1] -> [r, g, b].
const VIRIDIS = [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81],
                 [253, 231, 37]];

export function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

export function showError(box, error) {
  // One sentence in the panel's error line (cleared with null).
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

export function lineChart(host, series, {logY = false, xLabel = "", yLabel = "",
                                         width = 420, height = 220} = {}) {
  // Draw `series` ([{name, color, values}]) as lines in an SVG inside `host`.
  const pad = {l: 52, r: 10, t: 10, b: 30};
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height}`, class: "chart"});
  const transform = (v) => (logY ? Math.log10(v) : v);
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && (!logY || v > 0))
                                          .map(transform));
  const n = Math.max(2, ...series.map((s) => s.values.length));
  host.replaceChildren(chart);
  if (!all.length) return chart;
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi - lo < 1e-12) { lo -= 1; hi += 1; }
  const X = (i) => pad.l + (i / (n - 1)) * (width - pad.l - pad.r);
  const Y = (v) => pad.t + (1 - (transform(v) - lo) / (hi - lo)) * (height - pad.t - pad.b);
  chart.append(svg("rect", {x: pad.l, y: pad.t, width: width - pad.l - pad.r,
                            height: height - pad.t - pad.b, class: "frame"}));
  for (const [v, anchor] of [[lo, height - pad.b], [hi, pad.t + 8]]) {
    const label = svg("text", {x: pad.l - 4, y: anchor, "text-anchor": "end", class: "tick"});
    label.textContent = fmt(logY ? 10 ** v : v, 3);
    chart.append(label);
  }
  const xl = svg("text", {x: width / 2, y: height - 6, "text-anchor": "middle", class: "tick"});
  xl.textContent = xLabel;
  const yl = svg("text", {x: 12, y: height / 2, class: "tick",
                          transform: `rotate(-90 12 ${height / 2})`, "text-anchor": "middle"});
  yl.textContent = yLabel;
  chart.append(xl, yl);
  for (const s of series) {
    const points = s.values.map((v, i) => (v === null || (logY && v <= 0)) ? null
                                          : `${X(i).toFixed(1)},${Y(v).toFixed(1)}`)
                           .filter((p) => p !== null);
    chart.append(svg("polyline", {points: points.join(" "), stroke: s.color, class: "line"}));
  }
  return chart;
}
