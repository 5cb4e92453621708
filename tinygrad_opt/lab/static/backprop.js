// Panel 1: backprop step by step. The server sends the graph (graphviz SVG, drawn with
// the backward functions in their own cluster, "#k XBackward"), the list of backward
// functions in the engine's order with the gradient each handed on, and the leaves'
// .grad from the engine. Stepping reveals the backward cluster one function at a time.

import {api, el, fmt, showError} from "./util.js";

const $ = (id) => document.getElementById(id);

export function parseVars(text) {
  // "a=2 b=-3 x=1,2,3" -> {a: 2, b: -3, x: [1, 2, 3]} (the `graph` command's --var syntax).
  const vars = {};
  for (const item of text.split(/[\s;]+/).filter(Boolean)) {
    const [name, value] = item.split("=");
    if (value === undefined) throw new Error(`variables are NAME=VALUE, such as a=2; got "${item}".`);
    const numbers = value.split(",").map(Number);
    vars[name] = value.includes(",") ? numbers : numbers[0];
  }
  return vars;
}

class Stepper {
  // Which parts of the SVG belong to backward step k, and revealing them in order.
  constructor(host, result) {
    this.result = result;
    this.k = 0;
    this.svgRoot = host.querySelector("svg");
    // Graphviz sizes the picture in points (1.33 px each): draw one point as one pixel.
    const box = this.svgRoot.viewBox.baseVal;
    this.svgRoot.setAttribute("width", box.width);
    this.svgRoot.setAttribute("height", box.height);
    const nodes = [...this.svgRoot.querySelectorAll("g.node")];
    this.idOf = {};      // step number -> node id (the title graphviz writes)
    let seed = null;
    for (const node of nodes) {
      const id = node.querySelector("title").textContent;
      const label = [...node.querySelectorAll("text")].map((t) => t.textContent).join(" ");
      const match = label.match(/^#(\d+) /);
      if (match) this.idOf[Number(match[1])] = id;
      if (label.startsWith("grad of output")) seed = id;
      node.dataset.id = id;
    }
    // Edges are drawn "receiver -> giver" (dir=back): the giver handed the receiver its
    // gradient. Hidden at first: every step box and whatever a step box hands to.
    this.edges = [...this.svgRoot.querySelectorAll("g.edge")].map((edge) => {
      const [tail, head] = edge.querySelector("title").textContent.split("->");
      return {edge, tail, head};
    });
    this.steps = new Set(Object.values(this.idOf));
    this.seed = seed;
    this.hidden = new Set(this.steps);
    for (const {tail, head} of this.edges) if (this.steps.has(head)) this.hidden.add(tail);
    for (const id of this.hidden) this.node(id)?.classList.add("pending");
    for (const e of this.edges) if (this.handsOn(e)) e.edge.classList.add("pending");
  }

  handsOn({tail, head}) {
    return this.steps.has(head) || (head === this.seed && this.steps.has(tail));
  }

  node(id) { return this.svgRoot.querySelector(`g.node[data-id="${id}"]`); }

  step() {
    // Run backward function k+1: highlight it, show the gradients it handed on.
    if (this.k >= this.result.backward.length) return false;
    this.k += 1;
    for (const n of this.svgRoot.querySelectorAll(".current")) n.classList.remove("current");
    const id = this.idOf[this.k];
    const box = this.node(id);
    box?.classList.remove("pending");
    box?.classList.add("current");
    box?.scrollIntoView({block: "nearest", inline: "nearest"});
    for (const {edge, tail, head} of this.edges) {
      if (head === id || (head === this.seed && tail === id)) edge.classList.remove("pending");
      if (head === id) this.node(tail)?.classList.remove("pending");
    }
    return true;
  }
}

export function setupBackprop() {
  const exprInput = $("expr"), varsInput = $("vars"), mlpSelect = $("mlp"), order2 = $("order2");
  const host = $("graph"), steps = $("bp-steps"), leaves = $("bp-leaves"), error = $("bp-error");
  const status = $("bp-status");
  let stepper = null;

  function renderTables(result) {
    steps.replaceChildren(el("tr", {}, el("th", {text: "#"}), el("th", {text: "backward function"}),
                                  el("th", {text: "gradient in (∂out/∂output)"}),
                                  el("th", {text: "handed on to its inputs"})));
    for (const entry of result.backward) {
      steps.append(el("tr", {"data-step": entry.step, class: "pending"},
        el("td", {text: entry.step}), el("td", {text: `${entry.function} (${entry.output})`}),
        el("td", {class: "num", text: "?"}), el("td", {class: "num", text: "?"})));
    }
    leaves.replaceChildren(el("tr", {}, el("th", {text: "leaf"}), el("th", {text: ".grad"})));
    for (const name of Object.keys(result.grads)) {
      leaves.append(el("tr", {"data-leaf": name}, el("td", {text: name}),
                       el("td", {class: "num grad", text: "?"})));
    }
  }

  function lastStepFor(result) {
    // The step after which each leaf's gradient is complete (its last incoming edge).
    const last = {};
    for (const entry of result.backward) {
      for (const h of entry.handed) if (h.leaf) last[h.input] = entry.step;
    }
    return last;
  }

  function showStep(result, k) {
    const entry = result.backward[k - 1];
    const row = steps.querySelector(`tr[data-step="${k}"]`);
    row.classList.remove("pending");
    row.classList.add("done");
    row.children[2].textContent = fmt(entry.grad_output);
    row.children[3].textContent = entry.handed.map((h) => `${h.input}: ${fmt(h.grad)}`).join("; ");
    const last = lastStepFor(result);
    for (const [name, step] of Object.entries(last)) {
      if (step === k) {
        leaves.querySelector(`tr[data-leaf="${name}"] .grad`).textContent = fmt(result.grads[name]);
      }
    }
    const total = result.backward.length;
    status.textContent = k < total
      ? `step ${k} of ${total}: ${entry.function} ran`
      : `backward done (${total} steps): every leaf has its .grad, as the engine computed`;
    row.scrollIntoView({block: "nearest"});
  }

  async function draw() {
    showError(error, null);
    status.textContent = "drawing…";
    const body = {order: order2.checked ? 2 : 1};
    try {
      if (mlpSelect.value) body.mlp = mlpSelect.value;
      else { body.expr = exprInput.value; body.vars = parseVars(varsInput.value); }
      const result = await api("/api/graph", body);
      host.innerHTML = result.svg;
      stepper = new Stepper(host, result);
      renderTables(result);
      status.textContent = `${result.output} = ${fmt(result.value)}; ${result.backward.length} ` +
                           "backward functions to run: press Step";
    } catch (e) {
      showError(error, e);
    }
  }

  $("draw").addEventListener("click", draw);
  $("step").addEventListener("click", () => {
    if (stepper && stepper.step()) showStep(stepper.result, stepper.k);
  });
  $("bp-all").addEventListener("click", () => {
    while (stepper && stepper.step()) showStep(stepper.result, stepper.k);
  });
  $("bp-restart").addEventListener("click", () => {
    if (!stepper) return;
    const result = stepper.result;
    host.innerHTML = result.svg;
    stepper = new Stepper(host, result);
    renderTables(result);
  });
  mlpSelect.addEventListener("change", () => { exprInput.disabled = varsInput.disabled = !!mlpSelect.value; draw(); });
  order2.addEventListener("change", draw);
  exprInput.addEventListener("keydown", (e) => { if (e.key === "Enter") draw(); });
  varsInput.addEventListener("keydown", (e) => { if (e.key === "Enter") draw(); });
  return draw();
}
