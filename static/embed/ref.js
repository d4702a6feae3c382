/* InviteLoop storefront snippet, v1 (docs/guarantees.md #42).
 * Keeps a visitor's ?ref=CODE on the shop's own domain for the program's attribution window
 * and records the visit with InviteLoop. The shop's checkout reads InviteLoop.refCode().
 * No other request is made and nothing else is read. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script.src).origin;
  var KEY = "inviteloop_ref";
  var VISITOR_KEY = "inviteloop_visitor";
  var FALLBACK_DAYS = 30; // when InviteLoop cannot be reached, until it tells the real window

  function storage() {
    try { return window.localStorage; } catch (blocked) { return null; }
  }

  function readCookie() {
    var found = document.cookie.split("; ").filter(function (pair) {
      return pair.indexOf(KEY + "=") === 0;
    })[0];
    return found ? decodeURIComponent(found.slice(KEY.length + 1)) : null;
  }

  function stored() {
    var store = storage();
    if (store) {
      try {
        var kept = JSON.parse(store.getItem(KEY) || "null");
        if (kept && kept.code && kept.expires > Date.now()) { return kept.code; }
      } catch (unreadable) { /* treated as none */ }
    }
    return readCookie(); // the cookie expires by itself
  }

  function keep(code, days) {
    var seconds = Math.round(days * 86400);
    var store = storage();
    if (store) {
      store.setItem(KEY, JSON.stringify({ code: code, expires: Date.now() + seconds * 1000 }));
    }
    var secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = KEY + "=" + encodeURIComponent(code) + "; Max-Age=" + seconds +
      "; Path=/; SameSite=Lax" + secure;
  }

  function visitor() {
    var store = storage();
    var id = store && store.getItem(VISITOR_KEY);
    if (!id || !/^[0-9a-f]{32}$/.test(id)) {
      var bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      id = Array.prototype.map.call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
      if (store) { store.setItem(VISITOR_KEY, id); }
    }
    return id;
  }

  function announce(code) {
    window.dispatchEvent(new CustomEvent("inviteloop:ref", { detail: { code: code } }));
  }

  var params = new URLSearchParams(location.search);
  var clicked = (params.get("ref") || "").trim();
  var utm = {};
  ["source", "medium", "campaign", "term", "content"].forEach(function (key) {
    if (params.get("utm_" + key)) { utm[key] = params.get("utm_" + key).slice(0, 200); }
  });

  var ready = Promise.resolve(stored());
  if (clicked && clicked.length <= 64) {
    var earlier = stored();
    ready = fetch(base + "/embed/v1/clicks", {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        code: clicked, visitor: visitor(), referrer: document.referrer.slice(0, 2000), utm: utm
      })
    }).then(function (response) {
      if (response.status === 404) { return earlier; } // not a code in use: nothing kept
      if (!response.ok) {
        if (!earlier) { keep(clicked, FALLBACK_DAYS); }
        return stored();
      }
      return response.json().then(function (answer) {
        if (!(answer.attribution_model === "first" && earlier)) {
          keep(answer.code, answer.attribution_window_days);
        }
        return stored();
      });
    }, function () {
      if (!earlier) { keep(clicked, FALLBACK_DAYS); }
      return stored();
    });
  }

  window.InviteLoop = window.InviteLoop || {};
  window.InviteLoop.refCode = stored;
  window.InviteLoop.ready = ready;
  ready.then(function (code) { if (code) { announce(code); } });
})();
