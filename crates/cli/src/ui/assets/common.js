// Helpers shared by the web view's pages: DOM building (text only, never HTML from data),
// durations, phase classes, and a server-sent-events subscription.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

// 5s, 3m4s, 1h2m (as `upstart status` writes them).
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${r}s`;
  return `${r}s`;
}

// The colour family of a phase.
function phaseClass(phase, ready) {
  if (ready || phase === "Ready") return "ready";
  if (phase === "Failed" || phase === "Degraded") return "failed";
  if (phase === "NotCreated" || phase === "Pending" || phase === "WaitingForDependencies") return "waiting";
  return "progress";
}

function badge(phase, ready) {
  return el("span", { class: `badge ${phaseClass(phase, ready)}` }, phase);
}

function when(rfc3339) {
  if (!rfc3339) return "never";
  const date = new Date(rfc3339);
  const delta = (date.getTime() - Date.now()) / 1000;
  const rel = delta >= 0 ? `in ${duration(delta)}` : `${duration(-delta)} ago`;
  return `${date.toLocaleString()} (${rel})`;
}

// Subscribes to a server-sent events stream: `view` events carry the JSON to show, `problem`
// events a message. The browser reconnects by itself; the page never polls.
function subscribe(url, onView) {
  const live = document.getElementById("live");
  const problem = document.getElementById("problem");
  const source = new EventSource(url);
  source.addEventListener("open", () => { if (live) live.textContent = "live"; });
  source.addEventListener("error", () => { if (live) live.textContent = "reconnecting…"; });
  source.addEventListener("view", (event) => {
    if (problem) problem.hidden = true;
    onView(JSON.parse(event.data));
  });
  source.addEventListener("problem", (event) => {
    if (problem) { problem.textContent = event.data; problem.hidden = false; }
  });
  return source;
}
