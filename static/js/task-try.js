// Task form: Test query and the file-name preview. Each [data-try] box posts the unsaved form to its
// data-url and shows the HTML fragment it answers; the file name is previewed again as it is typed.
(function () {
  const form = document.getElementById("task-form");
  if (!form) return;
  async function run(box) {
    document.querySelectorAll("textarea.code-editor").forEach((area) => { if (area.codeMirror) area.codeMirror.save(); });
    const data = new FormData(form);
    data.set("try", box.dataset.try);
    const target = box.querySelector(".try-result");
    target.textContent = "Working…";
    try {
      const response = await fetch(box.dataset.url, {method: "POST", body: data, credentials: "same-origin",
                                                     headers: {"X-CSRFToken": data.get("csrfmiddlewaretoken")}});
      if (response.ok) {
        target.innerHTML = await response.text();
      } else {
        target.textContent = response.status === 403 ? "You may not edit tasks of this project." : "It could not be tried: " + response.status + " " + response.statusText;
      }
    } catch (error) {
      target.textContent = "It could not be tried: the portal did not answer.";
    }
  }
  document.querySelectorAll("[data-try]").forEach((box) => {
    box.querySelector("button").addEventListener("click", () => run(box));
  });
  const name = form.elements.file_name;
  const nameBox = document.querySelector('[data-try="name"]');
  let waiting = null;
  if (name && nameBox) {
    name.addEventListener("input", () => { clearTimeout(waiting); waiting = setTimeout(() => run(nameBox), 400); });
  }
})();
