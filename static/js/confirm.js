// A form with data-confirm="question" asks before it is sent (instead of an onsubmit attribute, which the
// Content-Security-Policy forbids). The text comes from a data attribute, so it is never parsed as script.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
