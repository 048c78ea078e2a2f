// Task form: the source connection picker lists only the connections that can serve the chosen kind of source
// (each option's data-capabilities against the kind's data-needs, tasks/forms.py). The server checks it again.
(function () {
  const kind = document.querySelector('select[name="source_kind"]');
  const picker = document.querySelector('select[name="source_connection"]');
  if (!kind || !picker) return;
  function update() {
    const chosen = kind.options[kind.selectedIndex];
    const needs = chosen ? chosen.dataset.needs : "";
    Array.from(picker.options).forEach((option) => {
      if (!option.value) return;
      const fits = !needs || (option.dataset.capabilities || "").split(" ").includes(needs);
      option.hidden = !fits;
      option.disabled = !fits;
      if (!fits && option.selected) picker.value = "";
    });
  }
  kind.addEventListener("change", update);
  update();
})();
