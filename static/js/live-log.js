// Polls the run's new log lines until it finishes, then reloads once to show its files.
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
      if (data.finished) { window.location.reload(); return; }
    } catch (error) { /* a missed poll is retried on the next tick */ }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
