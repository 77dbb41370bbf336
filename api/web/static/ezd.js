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
