// Task and run lists: the header checkbox ticks or clears every row's checkbox (kept out of the page for the CSP).
// It selects the boxes named by its data-selects attribute ("task" when it has none).
document.getElementById("select-all")?.addEventListener("change", (event) => {
  const name = event.target.dataset.selects || "task";
  document.querySelectorAll(`input[name=${name}]`).forEach((box) => { box.checked = event.target.checked; });
});
