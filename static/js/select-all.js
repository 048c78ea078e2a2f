// Task list: the header checkbox ticks or clears every task's checkbox (kept out of the page for the CSP).
document.getElementById("select-all")?.addEventListener("change", (event) => {
  document.querySelectorAll("input[name=task]").forEach((box) => { box.checked = event.target.checked; });
});
