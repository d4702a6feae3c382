// Copy buttons: <button data-copy-target="element-id" data-copied="Copied!">; the page gives
// the word to show once copied, in its own language. Loaded as a file so the page's
// Content-Security-Policy can forbid inline script.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyTarget);
  const text = source.value !== undefined ? source.value : source.textContent.trim();
  const done = () => {
    const label = button.textContent;
    button.textContent = button.dataset.copied || "Copied!";
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else if (source.select) {
    source.select();
    document.execCommand("copy");
    done();
  }
});
