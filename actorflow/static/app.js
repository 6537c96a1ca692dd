// actorflow monitor dashboard: draws the task graph and keeps it live from the monitor's websocket.
// No build step, no dependencies. The protocol is described in docs/monitor-protocol.md.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 190, NODE_H = 66, GAP_X = 70, GAP_Y = 26, PAD = 20;
const MAX_EVENTS = 200;

const state = {
  ws: null,
  graph: null,
  view: null,         // the viewBox shown: {x, y, w, h}; the graph's own size is state.size
  size: { w: 1, h: 1 },
  readOnly: false,
  tasks: new Map(),   // name -> {spec, count, rate, status, node, countEl, rateEl, errorsEl, row}
  edges: [],          // in hello's edge order: {from, to, path, label, rate, lastSent, lastTime}
  status: "connecting",
  paused: false,
};

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(n) {
  return Math.round(n).toLocaleString("en-US");
}

// ---- drawing ------------------------------------------------------------------------------

function layout(graph) {
  const layers = [];
  for (const t of graph.tasks) {
    (layers[t.layer] = layers[t.layer] || []).push(t.name);
  }
  const pos = new Map();
  const tallest = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  layers.forEach((names, i) => {
    if (!names) return;
    const column = names.length * NODE_H + (names.length - 1) * GAP_Y;
    const top = (height - column) / 2;
    names.forEach((name, j) => {
      pos.set(name, { x: PAD + i * (NODE_W + GAP_X), y: top + j * (NODE_H + GAP_Y) });
    });
  });
  const width = PAD * 2 + layers.length * NODE_W + Math.max(0, layers.length - 1) * GAP_X;
  return { pos, width, height };
}

// The point of the edge's curve (control points at x = mid) whose x is `x` (found by bisection).
function curvePoint(x1, y1, mid, x2, y2, x) {
  const at = (t) => {
    const u = 1 - t;
    return { x: u * u * u * x1 + 3 * u * t * mid + t * t * t * x2, y: y1 + (y2 - y1) * t * t * (3 - 2 * t) };
  };
  let lo = 0, hi = 1;
  for (let i = 0; i < 30; i++) {
    const t = (lo + hi) / 2;
    if (at(t).x < x) lo = t; else hi = t;
  }
  return at((lo + hi) / 2);
}

// Labels of edges into one reader end near one point: keep them a line apart.
function spreadLabels(labels) {
  const byReader = new Map();
  for (const l of labels) {
    const key = l.dataset.to;
    if (!byReader.has(key)) byReader.set(key, []);
    byReader.get(key).push(l);
  }
  for (const group of byReader.values()) {
    group.sort((a, b) => Number(a.getAttribute("y")) - Number(b.getAttribute("y")));
    for (let i = 1; i < group.length; i++) {
      const above = Number(group[i - 1].getAttribute("y"));
      if (Number(group[i].getAttribute("y")) < above + 13) group[i].setAttribute("y", above + 13);
    }
  }
}

function drawGraph(graph) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  const { pos, width, height } = layout(graph);
  state.size = { w: width, h: height };
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  const edges = svgEl("g", { class: "edges" });
  const labels = [];
  state.edges = [];
  for (const [up, down] of graph.edges) {
    const a = pos.get(up), b = pos.get(down);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    const path = svgEl("path", {
      class: "edge", "data-from": up, "data-to": down,
      d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
    });
    const tip = svgEl("title", {}, `${up} → ${down}`);
    path.appendChild(tip);
    edges.appendChild(path);
    // The queue label sits on the edge in the gap just before its reader (where edges into one
    // reader still run apart), so an edge that skips columns does not put it on a node.
    const at = curvePoint(x1, y1, mid, x2, y2, x2 - GAP_X / 2);
    const label = svgEl("text", { class: "queue", "data-from": up, "data-to": down, "data-queued": 0,
      x: at.x, y: at.y - 5, "text-anchor": "middle" }, "");
    labels.push(label);
    state.edges.push({ from: up, to: down, path, tip, label, rate: 0, lastSent: 0, lastTime: null });
  }
  svg.appendChild(edges);
  const nodes = svgEl("g", { class: "nodes" });
  const tbody = document.querySelector("#tasks tbody");
  tbody.replaceChildren();
  state.tasks.clear();
  for (const spec of graph.tasks) {
    const p = pos.get(spec.name);
    const g = svgEl("g", { class: "node", "data-task": spec.name, "data-state": "pending",
      transform: `translate(${p.x},${p.y})` });
    g.appendChild(svgEl("rect", { width: NODE_W, height: NODE_H }));
    const title = svgEl("title", {}, `${spec.name} (${spec.kind}) → ${spec.out_type}` +
      (spec.description ? `\n${spec.description}` : "") +
      (Object.keys(spec.options).length ? `\noptions: ${JSON.stringify(spec.options)}` : ""));
    g.appendChild(title);
    g.appendChild(svgEl("text", { class: "name", x: 10, y: 20 }, spec.name));
    g.appendChild(svgEl("text", { class: "kind", x: NODE_W - 10, y: 20, "text-anchor": "end" },
      spec.external ? "external" : spec.kind));
    const count = svgEl("text", { class: "count", x: 10, y: 42 }, "0 items");
    const rate = svgEl("text", { class: "rate", x: 10, y: 58 }, "");
    const errors = svgEl("text", { class: "errors", x: NODE_W - 10, y: 58, "text-anchor": "end" }, "");
    g.appendChild(count);
    g.appendChild(rate);
    g.appendChild(errors);
    nodes.appendChild(g);

    const row = el("tr", { "data-task": spec.name, title: spec.kind });
    row.append(el("td", {}, spec.name), el("td", { class: "state" }, "pending"),
      el("td", { class: "num count" }, "0"), el("td", { class: "num rate" }, "-"),
      el("td", { class: "num failures" }, "0"), el("td", { class: "num retries" }, "0"),
      el("td", { class: "num dead" }, "0"));
    tbody.appendChild(row);
    state.tasks.set(spec.name, { spec, count: 0, rate: 0, status: "pending",
      node: g, countEl: count, rateEl: rate, errorsEl: errors, row });
  }
  svg.appendChild(nodes);
  spreadLabels(labels);
  const queues = svgEl("g", { class: "queues" });  // above the nodes, so a label is never hidden
  queues.append(...labels);
  svg.appendChild(queues);
  fit();
}

// ---- fit, zoom and pan --------------------------------------------------------------------

function showView() {
  const v = state.view;
  const svg = document.getElementById("graph");
  svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
  svg.dataset.zoom = (state.size.w / v.w).toFixed(3);
}

// The whole graph in the box (the SVG keeps its aspect ratio, centred), never enlarged past 1.5x.
function fit() {
  const box = document.getElementById("graph").getBoundingClientRect();
  const { w, h } = state.size;
  const scale = Math.min(1.5, box.width / w || 1, box.height / h || 1);
  const vw = box.width ? box.width / scale : w, vh = box.height ? box.height / scale : h;
  state.view = { x: (w - vw) / 2, y: (h - vh) / 2, w: vw, h: vh };
  showView();
}

// Zoom by `factor` (>1: closer) around the point (px, py) of the box, in pixels.
function zoom(factor, px, py) {
  const box = document.getElementById("graph").getBoundingClientRect();
  const v = state.view;
  if (!v || !box.width) return;
  const zoomNow = state.size.w / v.w;
  const next = Math.min(8, Math.max(0.1, zoomNow * factor));
  factor = next / zoomNow;
  const fx = px === undefined ? 0.5 : px / box.width, fy = py === undefined ? 0.5 : py / box.height;
  const cx = v.x + fx * v.w, cy = v.y + fy * v.h;
  v.w /= factor; v.h /= factor;
  v.x = cx - fx * v.w; v.y = cy - fy * v.h;
  showView();
}

function installViewControls() {
  const svg = document.getElementById("graph");
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY };
    svg.classList.add("panning");
    svg.setPointerCapture(e.pointerId);
  });
  svg.addEventListener("pointermove", (e) => {
    if (!drag || !state.view) return;
    const r = svg.getBoundingClientRect();
    const k = Math.max(state.view.w / r.width, state.view.h / r.height);  // graph units per pixel
    state.view.x -= (e.clientX - drag.x) * k;
    state.view.y -= (e.clientY - drag.y) * k;
    drag = { x: e.clientX, y: e.clientY };
    showView();
  });
  const stop = () => { drag = null; svg.classList.remove("panning"); };
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);
  document.getElementById("zoom-in").onclick = () => zoom(1.25);
  document.getElementById("zoom-out").onclick = () => zoom(1 / 1.25);
  document.getElementById("fit").onclick = fit;
  window.addEventListener("resize", () => { if (state.graph) fit(); });
}

// ---- live figures -------------------------------------------------------------------------

function setStatus(status, paused) {
  state.status = status;
  state.paused = paused;
  const s = document.getElementById("status");
  const shown = paused && status === "running" ? "paused" : status;
  s.textContent = shown;
  s.dataset.status = shown;
}

function applyStats(msg) {
  setStatus(msg.status, msg.paused);
  if (!state.readOnly) document.getElementById("elapsed").textContent = `${msg.elapsed.toFixed(1)} s`;
  const now = performance.now() / 1000;
  for (const [name, t] of Object.entries(msg.tasks)) {
    const task = state.tasks.get(name);
    if (!task) continue;
    const count = task.spec.kind === "source" ? t.items_out : t.items_in;
    task.rate = t.rate || 0;   // the server's figure (TaskStats.rate): the one the console shows too
    task.count = count;
    const base = msg.paused && t.status === "running" ? "paused" : t.status;
    const shown = base + (t.cache === "hit" || t.cache === "cutoff" ? " (cached)" : "");
    if (t.cache) task.node.dataset.cache = t.cache;
    task.status = shown;
    task.node.dataset.state = base;
    task.node.dataset.count = String(count);
    task.countEl.textContent = `${fmt(count)} items` + (task.spec.kind === "task" ? ` → ${fmt(t.items_out)}` : "");
    task.rateEl.textContent = (state.readOnly ? "" : `${fmt(task.rate)} items/s · `) + shown + windowsText(t);
    task.node.dataset.late = String(t.late || 0);
    task.row.querySelector(".state").textContent = shown;
    task.row.querySelector(".count").textContent = fmt(count);
    task.row.querySelector(".rate").textContent = state.readOnly ? "-" : fmt(task.rate);
    const failures = t.failures || 0, retries = t.retries || 0, dead = t.dead_letters || 0;
    for (const [cls, n] of [["failures", failures], ["retries", retries], ["dead", dead]]) {
      const cell = task.row.querySelector(`.${cls}`);
      cell.textContent = fmt(n);
      cell.classList.toggle("bad", n > 0 && cls !== "retries");
    }
    task.node.dataset.failures = String(failures);
    task.node.dataset.deadLetters = String(dead);
    task.errorsEl.textContent = dead ? `${fmt(dead)} dead` : failures ? `${fmt(failures)} errors` : "";
  }
  applyEdges(msg.edges, now);
}

// Keyed collectors and window tasks: keys held, open windows, watermark and late items.
function windowsText(t) {
  if (!t.keys && !t.open_windows && !t.late && (t.watermark === null || t.watermark === undefined)) return "";
  let text = ` · ${fmt(t.keys)} keys`;
  if (t.watermark !== null && t.watermark !== undefined) text += `, ${fmt(t.open_windows)} open, wm ${t.watermark.toFixed(1)}`;
  if (t.late) text += `, ${fmt(t.late)} late`;
  return text;
}

// Edge width follows the items/s along the edge (from successive `sent` counts), on a log scale.
function edgeWidth(rate) {
  return rate > 0 ? Math.min(12, 2 + 1.5 * Math.log10(1 + rate)) : 2;
}

function applyEdges(list, now) {
  (list || []).forEach((e, i) => {
    const edge = state.edges[i];
    if (!edge || edge.from !== e.from || edge.to !== e.to) return;
    if (edge.lastTime !== null && now > edge.lastTime) {
      const instant = Math.max(0, e.sent - edge.lastSent) / (now - edge.lastTime);
      edge.rate = edge.rate ? 0.6 * edge.rate + 0.4 * instant : instant;
    }
    edge.lastSent = e.sent;
    edge.lastTime = now;
    edge.path.style.strokeWidth = `${edgeWidth(edge.rate).toFixed(1)}px`;
    edge.path.dataset.sent = String(e.sent);
    edge.path.dataset.rate = String(Math.round(edge.rate));
    edge.tip.textContent = `${e.from} → ${e.to}: ${fmt(e.sent)} items sent, ${fmt(edge.rate)} items/s, ` +
      `${fmt(e.queued)} queued`;
    edge.label.dataset.queued = String(e.queued);
    edge.label.textContent = e.queued > 0 ? `${fmt(e.queued)} queued` : "";
  });
}

const ERROR_KINDS = ["task_failed", "item_retried", "dead_lettered", "actor_restarted"];

function showLastError(ev) {
  if (!ev) return;
  const box = document.getElementById("last-error");
  const seq = ev.seq === undefined || ev.seq === null ? "" : ` at item ${JSON.stringify(ev.seq)}`;
  const item = ev.item ? ` (${ev.item})` : "";
  const where = ev.where ? `\nat ${ev.where}` : "";
  box.querySelector(".text").textContent = `${ev.kind} in ${ev.task}${seq}${item}: ${ev.error}${where}`;
  box.hidden = false;
}

function logEvent(ev) {
  if (ev.kind === "batch_processed") return; // too many to list; the figures show them
  if (ERROR_KINDS.includes(ev.kind)) showLastError(ev);
  const list = document.getElementById("events");
  const when = new Date(ev.time * 1000).toLocaleTimeString();
  const what = ev.task ? `${ev.kind} ${ev.task}` : `${ev.kind}${ev.status ? " " + ev.status : ""}`;
  const slow = ev.kind === "item_slow" ? ` item ${JSON.stringify(ev.seq)} running ${ev.seconds.toFixed(1)}s` : "";
  const li = el("li", { class: ev.kind === "task_failed" ? "failed" : ev.kind === "item_slow" ? "slow" : "" },
    `${when} ${what}${slow}${ev.error ? ": " + ev.error : ""}`);
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  if (ev.task && state.tasks.has(ev.task)) {
    const task = state.tasks.get(ev.task);
    const next = { task_started: "running", task_finished: "finished", task_failed: "failed" }[ev.kind];
    if (next) task.node.dataset.state = next;
    if (ev.kind === "cache_hit" || ev.kind === "cache_miss") task.node.dataset.cache = ev.outcome;
  }
  if (ev.kind === "run_finished") setStatus(ev.status, false);
}

// ---- connection ---------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/${location.search}`, ["actorflow.json"]);
  state.ws = ws;
  ws.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.type === "hello") {
      state.graph = msg.graph;
      state.readOnly = Boolean(msg.read_only);
      document.body.dataset.readOnly = String(state.readOnly);
      document.getElementById("read-only").hidden = !state.readOnly;
      for (const b of document.querySelectorAll("nav button")) b.disabled = !(msg.commands || []).length;
      document.getElementById("flow").textContent = msg.graph.flow;
      document.getElementById("run-id").textContent = `run ${msg.run_id}`;
      document.title = `${msg.graph.flow} · actorflow`;
      drawGraph(msg.graph);
      document.getElementById("events").replaceChildren();
      for (const ev of msg.history || []) logEvent(ev);   // what happened before this page connected
      showLastError(msg.last_error);
      applyStats({ ...msg, type: "stats" });
    } else if (msg.type === "stats") {
      applyStats(msg);
    } else if (msg.type === "event") {
      logEvent(msg.event);
    } else if (msg.type === "error") {
      document.getElementById("message").textContent = msg.error;
    } else if (msg.type === "ack") {
      document.getElementById("message").textContent = `${msg.op}: ok`;
    }
  };
  ws.onclose = () => {
    if (!state.readOnly && !["ok", "failed", "cancelled", "interrupted"].includes(state.status)) {
      setStatus("disconnected", false);
    }
  };
}

function command(op) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ op }));
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("pause").onclick = () => command("pause");
  document.getElementById("resume").onclick = () => command("resume");
  document.getElementById("checkpoint").onclick = () => command("checkpoint-now");
  document.getElementById("cancel").onclick = () => command("cancel");
  installViewControls();
  connect();
});
