// Syntax highlighting for SQL and Python text areas; the text area stays the submitted field.
(function () {
  if (!window.CodeMirror) return;
  document.querySelectorAll("textarea.code-editor").forEach((area) => {
    const editor = CodeMirror.fromTextArea(area, {mode: area.dataset.mode, lineNumbers: true, indentUnit: 4,
                                                  viewportMargin: Infinity});
    area.codeMirror = editor;
    // Hidden sections start collapsed; refresh when they become visible so the editor measures itself.
    document.addEventListener("change", () => setTimeout(() => editor.refresh(), 0));
  });
})();
