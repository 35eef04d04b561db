// The console's one script beside htmx: copy a shown-once key (or commands) to the clipboard.
// The Clipboard API exists only in a secure context (HTTPS, or localhost); a deployment served over
// plain HTTP on a host name gets the older copy command on the selected text, from the same click.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const text = source ? source.textContent.trim() : "";
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(
      () => { button.textContent = "Copied"; },
      () => copySelected(button, source),
    );
  } else {
    copySelected(button, source);
  }
});

function copySelected(button, element) {
  if (!element) return;
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch (error) {
    copied = false;
  }
  button.textContent = copied ? "Copied" : "Selected: press Ctrl+C to copy";
}
