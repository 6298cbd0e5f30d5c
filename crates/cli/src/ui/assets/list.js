// The environments list: rows from the list stream, filtered by text and phase.
"use strict";

let rows = [];
const text = document.getElementById("filter-text");
const phase = document.getElementById("filter-phase");

function requester(r) {
  if (r.source === "fieldManager") return `${r.name} (field manager)`;
  return r.name || "unknown";
}

function render() {
  const wanted = text.value.trim().toLowerCase();
  const tbody = document.querySelector("#environments tbody");
  const shown = rows.filter((row) =>
    (!phase.value || row.phase === phase.value) &&
    (!wanted || [row.name, row.namespace, row.requester.name].some((s) => s.toLowerCase().includes(wanted))));
  tbody.replaceChildren(...shown.map((row) => el("tr", { "data-name": row.name },
    el("td", {}, el("a", { href: `/environments/${encodeURIComponent(row.name)}` }, row.name)),
    el("td", {}, requester(row.requester)),
    el("td", {}, badge(row.phase, row.phase === "Ready")),
    el("td", {}, `${row.readyServices}/${row.totalServices}`),
    el("td", {}, row.timeToReadySeconds == null ? "—" : duration(row.timeToReadySeconds)),
    el("td", {}, row.expiresAt ? when(row.expiresAt) : "never"))));
  document.getElementById("count").textContent = `${shown.length} of ${rows.length}`;
  document.getElementById("empty").hidden = shown.length > 0;
}

text.addEventListener("input", render);
phase.addEventListener("change", render);
subscribe("/api/stream/environments", (data) => { rows = data; render(); });
