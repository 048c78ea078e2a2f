// The task form's "use inherited value" buttons: blank the field (a select to its "Inherit" choice), so saving
// drops the task's own value and the project's, organization's or portal's applies.
(function () {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-inherit-field]");
    if (!button) return;
    const input = document.querySelector(`[name="${button.dataset.inheritField}"]`);
    if (!input) return;
    if (input.tagName === "SELECT") {
      input.value = input.querySelector('option[value="unknown"]') ? "unknown" : "";
    } else {
      input.value = "";
    }
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });
})();
