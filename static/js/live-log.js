// Appends the run's new log lines until it finishes; the lines stay on the page afterwards. The status, time,
// rows and controls around it follow the run through htmx (templates/runs/_live.html), not through this file.
(function () {
  const box = document.getElementById("run-log");
  if (!box || box.dataset.finished === "1") return;
  const lastId = () => { const rows = box.querySelectorAll("[data-id]"); return rows.length ? rows[rows.length - 1].dataset.id : 0; };
  async function poll() {
    try {
      const response = await fetch(box.dataset.url + "?after=" + lastId(), {headers: {"Accept": "application/json"}});
      const data = await response.json();
      for (const line of data.lines) {
        const row = document.createElement("div");
        row.className = "level-" + line.level;
        row.dataset.id = line.id;
        row.textContent = line.time + " " + line.message;
        box.appendChild(row);
        box.scrollTop = box.scrollHeight;
      }
      if (data.finished) { box.dataset.finished = "1"; return; }
    } catch (error) { /* a missed poll is retried on the next tick */ }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
