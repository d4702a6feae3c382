// Staff panel: autocomplete for inputs with data-suggest-url. The endpoint answers
// {"results": [{name, email, codes, url}]}; each suggestion is a link, so choosing one opens
// that page. Without JavaScript the search form still works; this only saves typing.
(() => {
  const DELAY_MS = 150;
  const MIN_LENGTH = 2;

  function attach(input) {
    const list = document.getElementById(input.getAttribute("aria-controls"));
    let timer = null;
    let latest = 0;

    const hide = () => { list.hidden = true; input.setAttribute("aria-expanded", "false"); };

    const show = (results) => {
      list.replaceChildren(...results.map((person) => {
        const link = document.createElement("a");
        link.className = "list-group-item list-group-item-action";
        link.href = person.url;
        link.setAttribute("role", "option");
        const name = document.createElement("strong");
        name.textContent = person.name;
        const details = document.createElement("small");
        details.className = "text-muted ms-2";
        details.textContent = [person.email, person.codes].filter(Boolean).join(" · ");
        link.append(name, details);
        return link;
      }));
      list.hidden = results.length === 0;
      input.setAttribute("aria-expanded", String(!list.hidden));
    };

    const lookUp = () => {
      const query = input.value.trim();
      if (query.length < MIN_LENGTH) { hide(); return; }
      const asked = ++latest;
      const url = `${input.dataset.suggestUrl}?q=${encodeURIComponent(query)}`;
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : { results: [] }))
        .then((body) => { if (asked === latest) show(body.results || []); })
        .catch(hide);
    };

    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(lookUp, DELAY_MS);
    });
    input.addEventListener("keydown", (event) => {
      const first = list.querySelector("a");
      if (event.key === "ArrowDown" && first && !list.hidden) {
        event.preventDefault();
        first.focus();
      } else if (event.key === "Escape") {
        hide();
      }
    });
    list.addEventListener("keydown", (event) => {
      const options = [...list.querySelectorAll("a")];
      const current = options.indexOf(document.activeElement);
      if (event.key === "ArrowDown" && current < options.length - 1) {
        event.preventDefault();
        options[current + 1].focus();
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        (current > 0 ? options[current - 1] : input).focus();
      } else if (event.key === "Escape") {
        hide();
        input.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (!list.contains(event.target) && event.target !== input) hide();
    });
  }

  document.querySelectorAll("input[data-suggest-url]").forEach(attach);
})();
