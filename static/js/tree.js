// The referral tree, loaded a piece at a time. A <details data-tree-src="..."> fetches the
// people it holds the first time it opens; a page link (a[data-tree-page]) inside a
// [data-tree-body] replaces that list in place. Without this file every one of them is a
// plain link to a server-rendered page, so nothing here is needed to use the tree.
(() => {
  const asFragment = (href) => {
    const url = new URL(href, window.location.href);
    url.searchParams.set("partial", "1");
    return url.toString();
  };

  const load = (body, url, fallback) => {
    body.setAttribute("aria-busy", "true");
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((response) => {
        // A redirect means the session ended (the login page): go there properly.
        if (!response.ok || response.redirected) throw new Error(String(response.status));
        return response.text();
      })
      .then((html) => {
        body.innerHTML = html;
        body.removeAttribute("aria-busy");
      })
      .catch(() => {
        window.location.assign(fallback);
      });
  };

  // `toggle` does not bubble: listen while it travels down (capture).
  document.addEventListener(
    "toggle",
    (event) => {
      const node = event.target;
      if (!(node instanceof HTMLDetailsElement) || !node.open) return;
      if (!node.dataset.treeSrc || node.dataset.treeLoaded) return;
      const body = node.querySelector(":scope > [data-tree-body]");
      if (!body) return;
      node.dataset.treeLoaded = "1";
      const link = body.querySelector("a[href]");
      load(body, node.dataset.treeSrc, link ? link.href : window.location.href);
    },
    true,
  );

  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey) return;
    const link = event.target.closest("a[data-tree-page]");
    const body = link && link.closest("[data-tree-body]");
    if (!body) return;
    event.preventDefault();
    load(body, asFragment(link.href), link.href);
  });
})();
