/* InviteLoop widget, v1 (docs/guarantees.md #42): frames InviteLoop's widget page where the
 * script tag stands (or in the element named by data-target), passing on the referral code
 * the storefront snippet kept. The frame loads only from a shop InviteLoop allows. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = new URL(script.src).origin;
  var frame = document.createElement("iframe");
  var url = new URL(base + "/embed/v1/widget");
  var code = window.InviteLoop && window.InviteLoop.refCode && window.InviteLoop.refCode();
  if (code) { url.searchParams.set("ref", code); }
  frame.src = url.toString();
  frame.title = script.getAttribute("data-title") || "Invite friends";
  frame.className = "inviteloop-widget";
  frame.style.border = "0";
  frame.style.width = "100%";
  frame.style.height = script.getAttribute("data-height") || "460px";
  var target = script.getAttribute("data-target");
  var place = target && document.getElementById(target);
  if (place) {
    place.appendChild(frame);
  } else {
    script.parentNode.insertBefore(frame, script.nextSibling);
  }
})();
