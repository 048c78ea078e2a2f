// Search pickers (etl_portal/widgets.py SearchSelect): typing asks the picker's data-url for matches (an HTML
// fragment of [data-pick-value] buttons); choosing one puts it in the <select>, which holds only what is chosen.
(function () {
  function choose(picker, button) {
    const select = picker.querySelector("select");
    const value = button.dataset.pickValue;
    let option = Array.from(select.options).find((item) => item.value === value);
    if (!select.multiple) {
      Array.from(select.options).forEach((item) => { if (item.value && item !== option) item.remove(); });
    }
    if (!option) {
      option = new Option(button.dataset.pickLabel, value);
      select.add(option);
    }
    option.selected = true;
    select.dispatchEvent(new Event("change", {bubbles: true}));
    picker.querySelector(".search-picker-matches").replaceChildren();
    picker.querySelector(".search-picker-input").value = "";
  }
  async function search(picker, input) {
    const url = picker.dataset.url + (picker.dataset.url.includes("?") ? "&" : "?") + "q=" + encodeURIComponent(input.value);
    const matches = picker.querySelector(".search-picker-matches");
    try {
      const response = await fetch(url, {credentials: "same-origin"});
      matches.innerHTML = response.ok ? await response.text() : "";
    } catch (error) {
      matches.textContent = "The search did not answer.";
    }
  }
  document.querySelectorAll(".search-picker").forEach((picker) => {
    const input = picker.querySelector(".search-picker-input");
    let waiting = null;
    input.addEventListener("input", () => { clearTimeout(waiting); waiting = setTimeout(() => search(picker, input), 250); });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {  // Enter picks the first match instead of submitting the task form
        event.preventDefault();
        const first = picker.querySelector("[data-pick-value]");
        if (first) choose(picker, first);
      }
    });
    picker.addEventListener("click", (event) => {
      const button = event.target.closest("[data-pick-value]");
      if (button) choose(picker, button);
    });
  });
})();
