// Connection pages: show only the fields of the chosen kind, and test a connection without leaving its page.
function setUpConnectionPages() {
  // Fields carry data-kinds="sftp ftp ...": on the portal form the wrapper has it, in the admin the input does.
  const kindSelect = document.querySelector("select[name='kind']");
  function showFieldsOfKind() {
    const kind = kindSelect.value;
    document.querySelectorAll("[data-kinds]").forEach(function (element) {
      const isInput = element.matches("input, select, textarea");
      const box = isInput ? (element.closest(".form-row") || element.parentElement) : element;
      const used = element.dataset.kinds.split(" ").includes(kind);
      box.style.display = used ? "" : "none";
    });
    // One column means different things per kind (a base folder, a URL, a share): relabel it.
    document.querySelectorAll("[data-labels]").forEach(function (input) {
      const text = JSON.parse(input.dataset.labels)[kind];
      const label = document.querySelector("label[for='" + input.id + "']");
      const node = label && label.firstChild;
      if (text && node && node.nodeType === Node.TEXT_NODE) {
        node.nodeValue = text + (node.nodeValue.trim().endsWith(":") ? ":" : "");
      }
    });
    document.querySelectorAll("[data-default-ports]").forEach(function (input) {
      const port = JSON.parse(input.dataset.defaultPorts)[kind];
      input.placeholder = port ? "Default: " + port : "";
    });
  }
  if (kindSelect) {
    kindSelect.addEventListener("change", showFieldsOfKind);
    showFieldsOfKind();
  }

  const testForm = document.getElementById("test-form");
  if (testForm) {
    testForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = testForm.querySelector("button");
      const spinner = button.querySelector(".spinner-border");
      const box = document.getElementById("test-result");
      button.disabled = true;
      if (spinner) spinner.classList.remove("d-none");
      box.innerHTML = '<div class="alert alert-secondary mb-0">Testing…</div>';
      try {
        const response = await fetch(testForm.action, {
          method: "POST", body: new FormData(testForm), headers: {"X-Requested-With": "fetch"},
        });
        if (!response.ok) throw new Error("HTTP " + response.status);
        // The answer holds the new result box and the new "last test" line: swap each by its id.
        const answer = new DOMParser().parseFromString(await response.text(), "text/html");
        answer.body.querySelectorAll("[id]").forEach(function (fresh) {
          const current = document.getElementById(fresh.id);
          if (current) current.replaceWith(fresh);
        });
      } catch (error) {
        box.innerHTML = '<div class="alert alert-danger mb-0">The test could not be run (' + error.message +
          "); try again.</div>";
      } finally {
        button.disabled = false;
        if (spinner) spinner.classList.add("d-none");
      }
    });
  }
}

// The admin loads its scripts in the page head, before the form exists.
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", setUpConnectionPages);
} else {
  setUpConnectionPages();
}
