// One environment: its summary, the dependency graph as one SVG (lanes: services, the
// environment's releases; columns: install levels), the critical path, the selected release's
// details, and recent Events. Drawn once; later updates from the stream only change node
// classes and texts (the SVG is rebuilt only when the graph's shape changes).
"use strict";

const NAME = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
const LABEL_W = 190, COL_W = 200, NODE_W = 168, NODE_H = 44, ROW_H = 56, LANE_HEAD = 8, PAD = 14;

let view = null;     // the last view received
let shape = "";      // what the drawn SVG was built from
const nodeById = new Map();

document.title = `${NAME} · upstart`;
document.getElementById("env-name").textContent = NAME;

function nodeLabel(n) {
  let text = `${n.label}: ${n.phase}`;
  if (n.waitsFor.length) text += `, waits for ${n.waitsFor.join(", ")}`;
  if (n.critical) text += `, on the critical path (waited ${duration(n.critical.waitSeconds)}, installed in ${duration(n.critical.installSeconds)})`;
  return text;
}

function nodeClass(n) {
  const selected = location.hash === `#r/${n.name}` ? " selected" : "";
  return `node ${phaseClass(n.phase, n.ready)}${n.critical ? " critical" : ""}${selected}`;
}

// The phase and time inside a node (the long phase name is shortened there; the label and
// the details keep it).
function nodeSub(n, long) {
  const time = n.timeSeconds == null ? "" : ` ${n.ready ? "in" : "for"} ${duration(n.timeSeconds)}`;
  const phase = !long && n.phase === "WaitingForDependencies" ? "Waiting" : n.phase;
  return `${phase}${time}`;
}

// The SVG, laid out: each lane is as tall as its most crowded level.
function draw(graph) {
  // Levels that hold releases, side by side (a service's own level holds none); releases on a
  // cycle (no level) last.
  const levels = [...new Set(graph.nodes.map((n) => (n.level == null ? Infinity : n.level)))].sort((a, b) => a - b);
  const columnOf = new Map(levels.map((level, i) => [level, i]));
  const columns = levels.length;
  const column = (n) => columnOf.get(n.level == null ? Infinity : n.level);
  const lanes = [];
  let y = 0;
  const laneAt = new Map();
  for (const lane of graph.lanes) {
    const members = graph.nodes.filter((n) => n.lane === lane.id);
    const perColumn = new Map();
    for (const n of members) perColumn.set(column(n), (perColumn.get(column(n)) || 0) + 1);
    const rows = Math.max(1, ...perColumn.values());
    const height = LANE_HEAD + rows * ROW_H + PAD;
    const entry = { lane, top: y, height, members };
    lanes.push(entry);
    laneAt.set(lane.id, entry);
    y += height;
  }
  const width = LABEL_W + Math.max(1, columns) * COL_W + PAD;
  const svg = svgEl("svg", { class: "dag", width, height: Math.max(y, 40), viewBox: `0 0 ${width} ${Math.max(y, 40)}`,
    role: "group", "aria-label": `Dependency graph of ${NAME}: ${graph.nodes.length} releases in ${graph.lanes.length} groups` });
  const edgesLayer = svgEl("g", { class: "edges", "aria-hidden": "true" });
  const lanesLayer = svgEl("g", { class: "lanes" });
  const nodesLayer = svgEl("g", { class: "nodes" });
  svg.append(lanesLayer, edgesLayer, nodesLayer);
  const position = new Map();
  for (const { lane, top, height, members } of lanes) {
    const g = svgEl("g", { class: "lane", id: lane.id, role: "group", "aria-label": lane.title });
    g.append(svgEl("rect", { class: "band", x: 0, y: top, width, height }));
    const title = svgEl("text", { class: "title", x: 10, y: top + 24 });
    title.textContent = lane.title.replace(/^UpstartService /, "");
    const sub = svgEl("text", { class: "sub", x: 10, y: top + 42, id: `${lane.id}-sub` });
    g.append(title, sub);
    lanesLayer.append(g);
    // Depending on a service is waiting for its last releases: edges go to those.
    const last = Math.max(...members.map(column));
    position.set(lane.id, { targets: members.filter((n) => column(n) === last).map((n) => n.id) });
    const used = new Map();
    for (const n of members) {
      const c = column(n), row = used.get(c) || 0;
      used.set(c, row + 1);
      const x = LABEL_W + c * COL_W, ny = top + LANE_HEAD + row * ROW_H + 6;
      position.set(n.id, { x, y: ny + NODE_H / 2 });
      const a = svgEl("a", { id: n.id, href: `#r/${n.name}`, class: nodeClass(n), "data-name": n.name, role: "link" });
      a.append(svgEl("rect", { x, y: ny, width: NODE_W, height: NODE_H }));
      const name = svgEl("text", { class: "name", x: x + 10, y: ny + 18 });
      name.textContent = n.short.length > 22 ? `${n.short.slice(0, 21)}…` : n.short;
      const phase = svgEl("text", { class: "phase", x: x + 10, y: ny + 35 });
      a.append(name, phase);
      nodesLayer.append(a);
    }
  }
  for (const e of graph.edges) {
    const from = position.get(e.from), target = position.get(e.to);
    if (!from || !target) continue;
    const ends = target.targets ? target.targets.map((id) => position.get(id)) : [target];
    for (const to of ends) {
      const x1 = from.x, y1 = from.y, x2 = to.x + NODE_W, y2 = to.y;
      const bend = Math.max(30, Math.abs(x1 - x2) / 2);
      edgesLayer.append(svgEl("path", { class: `edge${e.critical ? " critical" : ""}${target.targets ? " service" : ""}`,
        "data-from": e.from, "data-to": e.to, d: `M${x1},${y1} C${x1 - bend},${y1} ${x2 + bend},${y2} ${x2},${y2}` }));
    }
  }
  const container = document.getElementById("graph");
  container.replaceChildren(svg);
}

// Only what changes between two views of the same shape: classes, texts, labels.
function update(graph) {
  nodeById.clear();
  for (const n of graph.nodes) {
    nodeById.set(n.name, n);
    const a = document.getElementById(n.id);
    if (!a) continue;
    const cls = nodeClass(n);
    if (a.getAttribute("class") !== cls) a.setAttribute("class", cls);
    const label = nodeLabel(n);
    if (a.getAttribute("aria-label") !== label) a.setAttribute("aria-label", label);
    const phase = a.querySelector("text.phase");
    const sub = nodeSub(n);
    if (phase.textContent !== sub) phase.textContent = sub;
  }
  for (const lane of graph.lanes) {
    const sub = document.getElementById(`${lane.id}-sub`);
    if (!sub) continue;
    const text = `${lane.phase ? `${lane.phase} · ` : ""}${lane.ready}/${lane.total} ready`;
    if (sub.textContent !== text) sub.textContent = text;
  }
  const critical = new Set(graph.edges.filter((e) => e.critical).map((e) => `${e.from} ${e.to}`));
  for (const path of document.querySelectorAll("path.edge")) {
    const on = critical.has(`${path.dataset.from} ${path.dataset.to}`);
    if (path.classList.contains("critical") !== on) path.classList.toggle("critical", on);
  }
}

function summary(v) {
  const s = v.summary;
  const phase = document.getElementById("env-phase");
  phase.className = `badge ${phaseClass(s.phase, v.ready)}`;
  phase.textContent = s.phase;
  document.getElementById("env-namespace").textContent = s.namespace;
  document.getElementById("env-requester").textContent =
    s.requester.source === "fieldManager" ? `${s.requester.name} (field manager)` : (s.requester.name || "unknown");
  document.getElementById("env-services").textContent = `${s.readyServices}/${s.totalServices} ready`;
  document.getElementById("env-releases").textContent = `${v.releases[0]}/${v.releases[1]} ready`;
  document.getElementById("env-time-label").textContent = v.ready ? "Time to ready" : "Provisioning for";
  document.getElementById("env-time").textContent = duration(v.ready && s.timeToReadySeconds != null ? s.timeToReadySeconds : v.elapsedSeconds);
  document.getElementById("env-expires").textContent = s.expiresAt ? when(s.expiresAt) : "never";
  document.getElementById("env-message").textContent = v.message || "";
  const critical = document.getElementById("critical");
  document.getElementById("critical-section").hidden = v.criticalPath.length === 0;
  critical.replaceChildren(...v.criticalPath.map((step) => el("li", {},
    el("a", { class: "name", href: `#r/${step.release}` }, step.release),
    ` waited ${duration(step.waitSeconds)}, installed in ${duration(step.installSeconds)}`)));
  document.querySelector("#events tbody").replaceChildren(...v.events.map((e) => el("tr", {},
    el("td", {}, e.time ? new Date(e.time).toLocaleTimeString() : ""), el("td", {}, e.type),
    el("td", {}, e.reason), el("td", {}, e.object), el("td", {}, e.message))));
}

// The release named by the location's hash (`#r/NAME`), in the side panel.
function detail(focus) {
  const aside = document.getElementById("detail");
  const name = location.hash.startsWith("#r/") ? decodeURIComponent(location.hash.slice(3)) : "";
  const n = nodeById.get(name);
  for (const a of document.querySelectorAll("a.node")) {
    const want = nodeClass(nodeById.get(a.dataset.name) || { phase: "", ready: false });
    if (nodeById.has(a.dataset.name) && a.getAttribute("class") !== want) a.setAttribute("class", want);
  }
  if (!n) { aside.hidden = true; return; }
  aside.hidden = false;
  document.getElementById("detail-title").textContent = n.label;
  const fields = [["Object", `HelmRelease ${n.name}`], ["Chart", n.chart], ["Phase", nodeSub(n, true)],
    ["Waits for", n.waitsFor.join(", ") || "nothing"], ["Message", n.message || ""]];
  if (n.critical) fields.push(["Critical path", `waited ${duration(n.critical.waitSeconds)}, installed in ${duration(n.critical.installSeconds)}`]);
  document.getElementById("detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k }, v)]));
  document.getElementById("detail-outputs").replaceChildren(...(n.outputs.length
    ? n.outputs.map((k) => el("li", {}, el("code", {}, k))) : [el("li", { class: "muted" }, "none published yet")]));
  const wires = n.wiring.map((w) => el("li", {},
    el("strong", {}, w.alias === w.dependency ? w.dependency : `${w.dependency} as ${w.alias}`),
    w.reads.length ? el("ul", {}, ...w.reads.map(([path, ref]) => el("li", {}, el("code", {}, path), " ← ", el("code", {}, ref))))
      : el("span", { class: "muted" }, " (waited for; no values read)")));
  document.getElementById("detail-wiring").replaceChildren(...(wires.length ? wires
    : [el("li", { class: "muted" }, "no dependencies")]));
  if (focus) aside.focus();
}

function show(v) {
  view = v;
  summary(v);
  const newShape = JSON.stringify([v.graph.lanes.map((l) => l.id), v.graph.nodes.map((n) => [n.id, n.lane, n.level]), v.graph.edges.map((e) => [e.from, e.to])]);
  if (newShape !== shape) {
    draw(v.graph);
    shape = newShape;
    update(v.graph);
    if (!document.body.dataset.graph) {
      performance.mark("graph-drawn");
      document.body.dataset.graph = "drawn";
    }
  } else {
    update(v.graph);
  }
  detail(false);
}

window.addEventListener("hashchange", () => detail(true));
subscribe(`/api/stream/environments/${encodeURIComponent(NAME)}`, show);
