// Task page: load the parameters preview after the page, and again for another date, without leaving the page.
(function () {
  const form = document.getElementById("preview-form");
  if (!form) return;
  async function load() {
    const url = form.action + "?date=" + encodeURIComponent(form.elements.date.value || "");
    try {
      const response = await fetch(url, {headers: {"Accept": "text/html"}, credentials: "same-origin"});
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const body = page.getElementById("preview-body");
      if (body) document.getElementById("preview-body").replaceWith(body);
    } catch (error) {
      document.getElementById("preview-body").textContent = "The preview could not be loaded.";
    }
  }
  form.addEventListener("submit", function (event) { event.preventDefault(); load(); });
  load();
})();
