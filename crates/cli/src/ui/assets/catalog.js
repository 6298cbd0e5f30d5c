// The catalog: templates, their Valid condition, and which environments use each.
"use strict";

fetch("/api/catalog").then((r) => r.json()).then((data) => {
  const problem = document.getElementById("problem");
  if (data.error) { problem.textContent = data.error; problem.hidden = false; return; }
  document.querySelector("#templates tbody").replaceChildren(...data.map((t) => el("tr", { "data-name": t.name },
    el("th", { scope: "row" }, t.name),
    el("td", {}, t.revision == null ? "" : String(t.revision)),
    el("td", {}, t.valid === "True" ? badge("Valid", true)
      : el("span", {}, el("span", { class: `badge ${t.valid === "False" ? "failed" : "waiting"}` }, t.valid === "False" ? "Invalid" : "Unknown"), t.message ? ` ${t.message}` : "")),
    el("td", {}, t.releases.join(", ")),
    el("td", {}, ...t.usedBy.flatMap((name, i) => [i ? ", " : "",
      el("a", { href: `/environments/${encodeURIComponent(name)}` }, name)])))));
});
