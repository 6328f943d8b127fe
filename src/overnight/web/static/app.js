// overnight dashboard: a run page that updates itself, and a log that follows its tail.
// Plain JavaScript shipped in the package; nothing is fetched from the internet.
"use strict";

function followRun(root) {
  const url = root.dataset.liveUrl;
  let settled = 0;
  // What the server last sent for each part: a part is replaced only when that changes (the
  // browser's own innerHTML never equals the server's text, and replacing every second
  // loses the pointer's place and any tooltip).
  const last = {};
  async function poll() {
    try {
      const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (r.status === 401) { location.reload(); return; }
      if (r.ok) {
        const d = await r.json();
        const badge = document.getElementById("run-state");
        badge.textContent = d.state;
        badge.className = "badge s-" + (d.state === "not started" ? "pending" : d.state);
        document.getElementById("live-dot").classList.toggle("on", d.live);
        for (const id of ["steps", "launches", "gantt", "dag", "outlook"]) {
          const el = document.getElementById(id);
          if (el && last[id] !== d[id]) { el.innerHTML = d[id]; last[id] = d[id]; }
        }
        // Keep polling while it runs (or has not started yet); stop a little after it ends.
        settled = d.live || d.state === "running" || d.state === "not started" ? 0 : settled + 1;
      }
    } catch (e) { /* the server restarts: try again */ }
    if (settled < 3) setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
}

function followLog(pre) {
  const url = pre.dataset.tailUrl;
  const status = document.getElementById("log-status");
  const decoder = new TextDecoder();
  let offset = Number(pre.dataset.offset || 0);
  async function poll() {
    let finished = false, got = 0;
    try {
      const r = await fetch(url + "?offset=" + offset, { cache: "no-store" });
      if (r.ok) {
        const buf = await r.arrayBuffer();
        got = buf.byteLength;
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
        if (got) pre.appendChild(document.createTextNode(decoder.decode(buf, { stream: true })));
        if (atBottom) pre.scrollTop = pre.scrollHeight;
        offset = Number(r.headers.get("X-Next-Offset"));
        finished = r.headers.get("X-Finished") === "1" && got === 0;
        const state = r.headers.get("X-State"), badge = document.getElementById("attempt-state");
        if (state && badge) { badge.textContent = state; badge.className = "badge s-" + state; }
      }
    } catch (e) { /* try again */ }
    if (finished) { status.textContent = "the attempt has ended: this is the whole log"; return; }
    status.textContent = "following the log as it grows…";
    setTimeout(poll, got ? 100 : 1000);
  }
  poll();
}

// The history grid: name the night, step and state under the pointer. Its columns stretch
// with the page, so a night's width is measured, not assumed.
function explainGrid(svg) {
  const holder = svg.closest(".grid-wrap").querySelector("script.grid-data");
  if (!holder) return;
  const data = JSON.parse(holder.textContent);
  const [top, rowHeight] = svg.dataset.geometry.split(" ").map(Number);
  const tip = document.createElement("div");
  tip.className = "tip";
  document.body.appendChild(tip);
  svg.addEventListener("mousemove", (e) => {
    const box = svg.getBoundingClientRect();
    const col = Math.floor((e.clientX - box.left) / (box.width / data.dates.length));
    const y = e.clientY - box.top;
    const row = Math.floor((y - top) / rowHeight);
    let text = "";
    if (col >= 0 && col < data.dates.length) {
      if (y < top - 4) text = data.dates[col] + ": run " + data.codes[data.runs[col]];
      else if (row >= 0 && row < data.steps.length) {
        const code = data.cells[col][row];
        text = data.steps[row] + " on " + data.dates[col] + ": " + (code === "." ? "not in that night" : data.codes[code]);
      }
    }
    tip.textContent = text;
    tip.style.display = text ? "block" : "none";
    tip.style.left = e.clientX + 14 + "px";
    tip.style.top = e.clientY + 14 + "px";
  });
  svg.addEventListener("mouseleave", () => { tip.style.display = "none"; });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("svg.grid").forEach(explainGrid);
  const run = document.getElementById("run");
  if (run) followRun(run);
  const log = document.getElementById("log");
  if (log) followLog(log);
});
