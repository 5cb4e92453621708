// Panel 2: the optimizer race. Every change asks the server (POST /api/race, the real
// study.race.race) and redraws: contours, paths up to the step slider, line-search
// trial points, loss curves and the steps/evaluations-to-tolerance table.

import {COLORS, api, el, fmt, lineChart, showError, svg, viridis} from "./util.js";

const $ = (id) => document.getElementById(id);

// The sliders the page has for hyperparameters: range and scale.
const KNOBS = {
  lr: {min: -5, max: 1, step: 0.05, log: true},
  momentum: {min: 0, max: 0.99, step: 0.01},
  beta1: {min: 0, max: 0.999, step: 0.001},
  beta2: {min: 0.9, max: 0.9999, step: 0.0001},
  alpha: {min: 0.5, max: 0.999, step: 0.001},
  rho: {min: 0.5, max: 0.999, step: 0.001},
  lam: {min: -6, max: 3, step: 0.1, log: true},
  damping: {min: 0, max: 5, step: 0.01},
};
const DEFAULT_PICK = ["sgd", "momentum", "adam", "newton"];
const W = 520;
const MAX_TRIALS = 400;  // trial points drawn per run (a derivative-free run tries thousands)

export function setupRace(options) {
  const state = {options, picked: new Set(DEFAULT_PICK), touched: {}, start: null,
                 landscape: null, result: null, timer: null, playing: null};
  const select = $("landscape"), kappa = $("kappa"), angle = $("angle"), stepsInput = $("steps");
  const list = $("optimizers"), plot = $("race-plot"), slider = $("race-step");
  const error = $("race-error"), table = $("race-table"), status = $("race-status");

  for (const name of options.landscapes) select.append(el("option", {value: name, text: name}));

  function landscapeName() {
    if (select.value !== "quadratic") return select.value;
    return `quadratic:kappa=${kappa.value},angle=${angle.value}`;
  }

  function knobValues(opt) {
    // The knob values shown for an optimizer: what the user set, else the default.
    const shown = {};
    for (const [key, value] of Object.entries(opt.knobs)) {
      if (key === "betas") { shown.beta1 = value[0]; shown.beta2 = value[1]; }
      else shown[key] = value;
    }
    return Object.assign(shown, state.touched[opt.name] || {});
  }

  function spec(opt) {
    // "adam:lr=0.05,betas=0.9/0.999": only what the user changed, as `tinygrad-opt race`.
    const touched = state.touched[opt.name] || {};
    const parts = [];
    const shown = knobValues(opt);
    for (const key of Object.keys(touched)) {
      if (key === "beta1" || key === "beta2") continue;
      parts.push(`${key}=${fmt(touched[key], 4)}`);
    }
    if ("beta1" in touched || "beta2" in touched) parts.push(`betas=${shown.beta1}/${shown.beta2}`);
    return parts.length ? `${opt.name}:${parts.join(",")}` : opt.name;
  }

  function knobRow(opt) {
    const row = el("div", {class: "knobs"});
    for (const [key, value] of Object.entries(knobValues(opt))) {
      const k = KNOBS[key];
      if (!k) continue;
      const position = value === null ? (k.min + k.max) / 2 : (k.log ? Math.log10(value) : value);
      const input = el("input", {type: "range", min: k.min, max: k.max, step: k.step,
                                 value: position, "data-knob": `${opt.name}.${key}`});
      const label = el("span", {class: "num", text: value === null ? "auto" : fmt(value, 3)});
      input.addEventListener("input", () => {
        const v = k.log ? 10 ** Number(input.value) : Number(input.value);
        state.touched[opt.name] = {...(state.touched[opt.name] || {}), [key]: Number(v.toPrecision(3))};
        label.textContent = fmt(v, 3);
        schedule();
      });
      row.append(el("label", {}, `${key} `, input, " ", label));
    }
    return row;
  }

  function renderList() {
    list.replaceChildren();
    for (const opt of state.options.optimizers) {
      const box = el("input", {type: "checkbox", value: opt.name, "data-optimizer": opt.name});
      box.checked = state.picked.has(opt.name);
      box.addEventListener("change", () => {
        if (box.checked) state.picked.add(opt.name); else state.picked.delete(opt.name);
        renderList();
        schedule();
      });
      const item = el("div", {class: "optimizer" + (box.checked ? " on" : ""), title: opt.description},
                      el("label", {}, box, ` ${opt.name}`,
                         el("small", {text: opt.kind === "first order" ? "" : ` ${opt.kind}`})));
      if (box.checked) item.append(knobRow(opt));
      list.append(item);
    }
  }

  function toPlot(p) {
    const [[x0, x1], [y0, y1]] = state.landscape.bounds;
    const H = W * (y1 - y0) / (x1 - x0);
    return [(p[0] - x0) / (x1 - x0) * W, H - (p[1] - y0) / (y1 - y0) * H];
  }

  function heatmap(grid) {
    // The landscape as filled contour bands (a 64 x 64 image, smoothed when scaled).
    const n = grid.n, canvas = document.createElement("canvas");
    canvas.width = canvas.height = n;
    const ctx = canvas.getContext("2d"), image = ctx.createImageData(n, n);
    const values = grid.shade.flat().filter((v) => v !== null);
    const lo = Math.min(...values), hi = Math.max(...values), bands = 16;
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        const v = grid.shade[r][c];
        const t = v === null ? 1 : Math.floor((v - lo) / (hi - lo + 1e-12) * bands) / bands;
        const [R, G, B] = viridis(t);
        const i = ((n - 1 - r) * n + c) * 4;  // row 0 is the bottom (y0)
        image.data.set([R, G, B, 255], i);
      }
    }
    ctx.putImageData(image, 0, 0);
    return canvas.toDataURL();
  }

  function drawPlot() {
    const grid = state.landscape;
    const [[x0, x1], [y0, y1]] = grid.bounds;
    const H = W * (y1 - y0) / (x1 - x0);
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "contour"});
    root.append(svg("image", {href: grid.image, x: 0, y: 0, width: W, height: H,
                              preserveAspectRatio: "none"}));
    for (const m of grid.minima) {
      const [x, y] = toPlot(m);
      root.append(svg("path", {d: `M${x - 6},${y}h12M${x},${y - 6}v12`, class: "minimum"}));
    }
    const result = state.result, k = Number(slider.value);
    if (result) {
      result.runs.forEach((run, i) => {
        const color = COLORS[i % COLORS.length];
        const shown = run.path.slice(0, k + 1).filter((p) => p[0] !== null && p[1] !== null);
        const points = shown.map(toPlot).map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`);
        root.append(svg("polyline", {points: points.join(" "), stroke: color, class: "path",
                                     "data-run": run.label}));
        if (shown.length) {
          const [x, y] = toPlot(shown[shown.length - 1]);
          root.append(svg("circle", {cx: x, cy: y, r: 4, fill: color, class: "head"}));
        }
        if (run.kind !== "first order") {
          for (const t of run.trials.slice(0, MAX_TRIALS)) {
            const [x, y] = toPlot(t);
            if (x < 0 || x > W || y < 0 || y > H) continue;
            root.append(svg("path", {d: `M${x - 3},${y - 3}l6,6M${x - 3},${y + 3}l6,-6`,
                                     stroke: color, class: "trial"}));
          }
        }
      });
    }
    const start = state.start || grid.start;
    const [sx, sy] = toPlot(start);
    root.append(svg("circle", {cx: sx, cy: sy, r: 5, class: "start"}));
    root.addEventListener("click", (event) => {
      const box = root.getBoundingClientRect();
      const px = (event.clientX - box.left) / box.width, py = (event.clientY - box.top) / box.height;
      state.start = [Number((x0 + px * (x1 - x0)).toFixed(3)), Number((y1 - py * (y1 - y0)).toFixed(3))];
      schedule(0);
    });
    const legend = el("div", {class: "legend"});
    (result ? result.runs : []).forEach((run, i) => legend.append(
      el("span", {style: `color:${COLORS[i % COLORS.length]}`, text: `■ ${run.label} `})));
    plot.replaceChildren(root, legend);
    if (result) {  // what is drawn, for tests and for the curious: landscape and start
      plot.dataset.landscape = result.landscape;
      plot.dataset.start = result.start.join(",");
    }
    $("race-step-label").textContent = `step ${k}`;
  }

  function drawTable() {
    const result = state.result;
    const head = ["optimizer", "lr", `steps→${result.tol}`, "evals→tol", "final f", "‖x−x*‖", "evals", "status"];
    table.replaceChildren(el("tr", {}, ...head.map((h) => el("th", {text: h}))));
    result.table.forEach((row, i) => table.append(el("tr", {},
      el("td", {style: `color:${COLORS[i % COLORS.length]}`, text: row.optimizer}),
      el("td", {class: "num", text: fmt(row.lr, 3)}),
      el("td", {class: "num", text: row.steps_to_tol ?? "—"}),
      el("td", {class: "num", text: row.evals_to_tol ?? "—"}),
      el("td", {class: "num", text: fmt(row.final_loss, 4)}),
      el("td", {class: "num", text: fmt(row.final_dist, 4)}),
      el("td", {class: "num", text: row.evals}),
      el("td", {text: row.status}))));
    const fmin = state.landscape.f_min, known = fmin !== null;
    const series = result.runs.map((run, i) => ({name: run.label, color: COLORS[i % COLORS.length],
      values: run.loss.map((v) => (v === null ? null : v - (known ? fmin : 0)))}));
    lineChart($("race-loss"), series, {logY: known, yLabel: known ? "f − f*" : "f",
                                       xLabel: `step (0–${result.steps})`});
  }

  async function loadLandscape() {
    const name = landscapeName();
    const [grid, opts] = await Promise.all([api("/api/landscape", {landscape: name}),
                                            api(`/api/options?landscape=${encodeURIComponent(name)}`)]);
    grid.image = heatmap(grid);
    state.landscape = grid;
    state.options = opts;
    $("landscape-note").textContent = `${grid.title}: ${grid.note}`;
    $("quadratic-knobs").hidden = select.value !== "quadratic";
    renderList();
  }

  async function runRace() {
    showError(error, null);
    const optimizers = state.options.optimizers.filter((o) => state.picked.has(o.name)).map(spec);
    if (!optimizers.length) { showError(error, "pick at least one optimizer."); return; }
    const body = {landscape: landscapeName(), optimizers, steps: Number(stepsInput.value),
                  noise: Number($("noise-sigma").value)};
    if (state.start) body.start = state.start;
    status.textContent = "racing on the server…";
    const t0 = performance.now();
    try {
      state.result = await api("/api/race", body);
      slider.max = state.result.steps;
      slider.value = Math.max(...state.result.runs.map((r) => r.path.length - 1));
      status.textContent = `${optimizers.length} optimizers × ${body.steps} steps: ` +
                           `${Math.round(performance.now() - t0)} ms round trip`;
      $("race-caption").textContent = state.result.caption || "";
      drawPlot();
      drawTable();
    } catch (e) {
      status.textContent = "";
      showError(error, e);
    }
  }

  function schedule(delay = 250) {
    clearTimeout(state.timer);
    state.timer = setTimeout(runRace, delay);
  }

  async function landscapeChanged() {
    state.start = null;
    try { await loadLandscape(); } catch (e) { showError(error, e); return; }
    await runRace();
  }

  select.addEventListener("change", landscapeChanged);
  for (const knob of [kappa, angle]) {
    knob.addEventListener("change", landscapeChanged);
    knob.addEventListener("input", () => { $(`${knob.id}-value`).textContent = knob.value; });
  }
  stepsInput.addEventListener("change", () => schedule(0));
  $("noise-sigma").addEventListener("change", () => schedule(0));
  slider.addEventListener("input", () => state.landscape && drawPlot());
  $("race-run").addEventListener("click", () => schedule(0));
  $("race-play").addEventListener("click", () => {
    clearInterval(state.playing);
    slider.value = 0;
    state.playing = setInterval(() => {
      if (Number(slider.value) >= Number(slider.max)) { clearInterval(state.playing); return; }
      slider.value = Number(slider.value) + Math.max(1, Math.round(slider.max / 100));
      drawPlot();
    }, 30);
  });
  return landscapeChanged();
}
