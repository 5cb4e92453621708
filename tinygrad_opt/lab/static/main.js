// The lab page: three panels over the JSON API; everything is computed on the server.

import {api, showError} from "./util.js";
import {setupBackprop} from "./backprop.js";
import {setupRace} from "./race.js";
import {setupTraining} from "./train.js";

async function main() {
  try {
    const [health, options] = await Promise.all([api("/api/health"), api("/api/options")]);
    document.getElementById("version").textContent = `tinygrad-opt ${health.version}`;
    setupTraining(options);
    await Promise.all([setupBackprop(), setupRace(options)]);
    document.body.dataset.ready = "true";
  } catch (e) {
    showError(document.getElementById("page-error"), e);
  }
}

main();
