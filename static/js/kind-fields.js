// Shows only the fields that apply: an element with data-switch="<field>" data-kinds="a b" is visible
// when the form field named <field> has one of those values (a checkbox: "on" while ticked).
(function () {
  function update() {
    document.querySelectorAll("[data-switch]").forEach((box) => {
      const input = document.querySelector(`[name="${box.dataset.switch}"]`);
      if (!input) return;
      const kinds = box.dataset.kinds.split(" ");
      // A checkbox switches on its state: data-kinds="on" shows the box while it is ticked.
      const value = input.type === "checkbox" ? (input.checked ? "on" : "") : input.value;
      box.hidden = !kinds.includes(value);
    });
  }
  document.addEventListener("change", (event) => {
    if (event.target.name && document.querySelector(`[data-switch="${event.target.name}"]`)) update();
  });
  update();
})();
