// Case view: BPMN diagrams with completed and active elements highlighted (bpmn-js viewer),
// previews of document versions.
(function () {
  "use strict";
  function drawDiagrams() {
    var boxes = document.querySelectorAll(".diagram[data-instance]");
    if (!boxes.length || typeof window.BpmnJS !== "function") return;
    boxes.forEach(function (box) {
      var id = box.getAttribute("data-instance");
      fetch("/api/v1/process-instances/" + encodeURIComponent(id) + "/diagram", {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (data) {
        var viewer = new window.BpmnJS({ container: box });
        return viewer.importXML(data.bpmn_xml).then(function () {
          var canvas = viewer.get("canvas");
          var registry = viewer.get("elementRegistry");
          canvas.zoom("fit-viewport");
          data.completed_elements.forEach(function (el) {
            if (registry.get(el)) canvas.addMarker(el, "ezd-completed");
          });
          data.active_elements.forEach(function (el) {
            if (registry.get(el)) canvas.addMarker(el, "ezd-active");
          });
          box.setAttribute("data-rendered", "true");
          window.ezdQuietDiagram(box);
        });
      }).catch(function () {
        box.setAttribute("data-rendered", "error");
      });
    });
  }

  function setupPreviews() {
    document.querySelectorAll(".preview-button").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.getElementById(button.getAttribute("aria-controls"));
        if (!target) return;
        target.textContent = "";
        var frame = document.createElement("iframe");
        frame.src = button.getAttribute("data-src");
        frame.title = button.getAttribute("data-title");
        target.appendChild(frame);
        target.hidden = false;
        button.setAttribute("aria-expanded", "true");
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawDiagrams(); setupPreviews(); });
  } else { drawDiagrams(); setupPreviews(); }
})();
