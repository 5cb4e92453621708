// Panel 3: live training. Run starts a session on the server (POST /api/train) and
// opens its WebSocket; the server pushes a frame several times a second (losses,
// accuracy, the decision boundary on a grid, optionally λmax against 2/η). Pause and
// Run toggle it; Reset closes the socket, which stops and forgets the session.

import {COLORS, api, el, fmt, lineChart, showError, svg} from "./util.js";

const $ = (id) => document.getElementById(id);
const CLASS_RGB = [[31, 119, 180], [255, 127, 14], [44, 160, 44]];
const SIZE = 360;

export function setupTraining(options) {
  const state = {socket: null, running: false, points: null, history: [], config: null};
  const error = $("train-error"), runButton = $("train-run"), lossText = $("train-loss");
  const optimizer = $("train-optimizer");
  for (const [select, names] of [[$("dataset"), options.datasets], [$("activation"), options.activations],
                                 [$("schedule"), options.schedules],
                                 [optimizer, options.optimizers.filter((o) => o.minibatch).map((o) => o.name)]]) {
    for (const name of names) select.append(el("option", {value: name, text: name}));
  }
  optimizer.value = "adam";
  const lr = $("train-lr");
  lr.addEventListener("input", () => { $("train-lr-value").textContent = fmt(10 ** Number(lr.value), 3); });

  function config() {
    const hidden = $("hidden").value.split(/[,\s-]+/).filter(Boolean).map(Number);
    return {dataset: $("dataset").value, hidden, activation: $("activation").value,
            optimizer: `${optimizer.value}:lr=${fmt(10 ** Number(lr.value), 3)}`,
            schedule: $("schedule").value, batch_size: Number($("batch").value),
            noise: Number($("noise").value), lambda_max: $("lambda").checked};
  }

  function drawBoundary(frame) {
    const canvas = $("boundary-canvas"), b = frame.boundary, n = b.n;
    canvas.width = canvas.height = n;
    const ctx = canvas.getContext("2d"), image = ctx.createImageData(n, n);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        const j = r * n + c, rgb = CLASS_RGB[b.cls[j] % CLASS_RGB.length];
        const a = Math.max(0, (b.p[j] - 1 / state.points.classes) / (1 - 1 / state.points.classes));
        const i = ((n - 1 - r) * n + c) * 4;
        image.data.set([...rgb.map((v) => Math.round(255 - a * 0.55 * (255 - v))), 255], i);
      }
    }
    ctx.putImageData(image, 0, 0);
  }

  function drawPoints() {
    const p = state.points, [[x0, x1], [y0, y1]] = p.bounds;
    const layer = svg("svg", {viewBox: `0 0 ${SIZE} ${SIZE}`, class: "points"});
    p.x.forEach(([x, y], i) => layer.append(svg("circle", {
      cx: (x - x0) / (x1 - x0) * SIZE, cy: SIZE - (y - y0) / (y1 - y0) * SIZE, r: 3,
      fill: `rgb(${CLASS_RGB[p.cls[i] % 3].join(",")})`, class: i >= p.val_from ? "val" : "train"})));
    $("boundary-points").replaceChildren(layer);
  }

  function show(frame) {
    if (frame.points) { state.points = frame.points; drawPoints(); }
    drawBoundary(frame);
    state.history.push(frame);
    lossText.textContent = fmt(frame.train_loss, 4);
    $("val-loss").textContent = fmt(frame.val_loss, 4);
    $("train-acc").textContent = `${(100 * frame.train_accuracy).toFixed(1)}% / ${(100 * frame.val_accuracy).toFixed(1)}%`;
    $("train-step").textContent = `step ${frame.step}, epoch ${frame.epoch}, lr ${fmt(frame.lr, 3)}` +
      (frame.diverged ? " — diverged (the loss is not finite)" : "") + (frame.done ? " — step cap reached" : "");
    const edge = $("lambda-text");
    edge.textContent = frame.lambda_max === undefined ? "" :
      `λmax = ${fmt(frame.lambda_max, 4)} vs 2/η = ${fmt(frame.edge, 4)}` +
      (frame.lambda_max > frame.edge ? " (above the edge of stability)" : "");
    const series = [{name: "train", color: COLORS[0], values: state.history.map((f) => f.train_loss)},
                    {name: "val", color: COLORS[1], values: state.history.map((f) => f.val_loss)}];
    lineChart($("train-chart"), series, {logY: true, yLabel: "loss",
                                         xLabel: `step (0–${frame.step}), one point per frame`});
    if ((frame.done || frame.diverged) && state.running) setRunning(false);  // the server stopped
  }

  function setRunning(on) {
    state.running = on;
    runButton.textContent = on ? "Pause" : "Run";
  }

  function stop() {
    if (state.socket) state.socket.close();
    state.socket = null;
    setRunning(false);
  }

  async function start() {
    const body = config();
    const {id} = await api("/api/train", body);
    state.config = JSON.stringify(body);
    state.history = [];
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/api/train/${id}`);
    state.socket = socket;
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.error) showError(error, frame.error); else show(frame);
    };
    socket.onclose = () => { if (state.socket === socket) { state.socket = null; setRunning(false); } };
    await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  }

  runButton.addEventListener("click", async () => {
    showError(error, null);
    try {
      if (state.running) { state.socket.send(JSON.stringify({action: "pause"})); setRunning(false); return; }
      if (!state.socket || state.config !== JSON.stringify(config())) { stop(); await start(); }
      state.socket.send(JSON.stringify({action: "run"}));
      setRunning(true);
    } catch (e) {
      showError(error, e);
      stop();
    }
  });
  $("train-reset").addEventListener("click", () => {
    stop();
    state.history = [];
    lossText.textContent = "—";
    $("train-step").textContent = "reset: the training on the server stopped";
  });
  window.addEventListener("pagehide", stop);
}
