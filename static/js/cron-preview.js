// Project form: a typed cron expression is described, with its next five times, as it is typed.
(function () {
  document.querySelectorAll(".cron-box").forEach((box) => {
    const input = box.querySelector("input.cron-expression");
    const answer = box.querySelector(".cron-answer");
    if (!input) return;
    let waiting = null;
    async function show() {
      const row = box.closest(".trigger-row");
      const zoneInput = row && row.querySelector('[name$="-time_zone"]');
      const zone = (zoneInput && zoneInput.value.trim()) || box.dataset.zone;
      const url = box.dataset.url + "?expression=" + encodeURIComponent(input.value) + "&zone=" + encodeURIComponent(zone);
      try {
        const response = await fetch(url, {credentials: "same-origin"});
        answer.innerHTML = response.ok ? await response.text() : "";
      } catch (error) {
        answer.textContent = "The expression could not be checked.";
      }
    }
    input.addEventListener("input", () => { clearTimeout(waiting); waiting = setTimeout(show, 300); });
    if (input.value) show();
  });
})();
