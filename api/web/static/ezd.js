// Small progressive enhancements shared by every page (the pages work without them).
(function () {
  "use strict";
  document.addEventListener("htmx:responseError", function (e) {
    var flash = document.getElementById("flash");
    if (!flash) return;
    var p = document.createElement("p");
    p.className = "flash flash-error";
    p.textContent = document.documentElement.lang === "pl"
      ? "Nie udało się wczytać danych (" + e.detail.xhr.status + ")."
      : "Could not load the data (" + e.detail.xhr.status + ").";
    flash.textContent = "";
    flash.appendChild(p);
  });
  // Confirm before dangerous actions marked with data-confirm.
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
})();

// A rendered BPMN diagram is a picture (role="img" on its box, the steps listed in text beside
// it): the viewer's SVG must not take keyboard focus, or the picture would hold a focusable
// control (axe: aria-hidden-focus, nested-interactive). The read-only viewer needs no keys.
window.ezdQuietDiagram = function (box) {
  box.querySelectorAll("[tabindex]").forEach(function (el) { el.removeAttribute("tabindex"); });
  box.querySelectorAll("svg").forEach(function (svg) {
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
  });
};
