// Definition upload: draw the uploaded (not yet deployed) BPMN with the bpmn-js viewer.
(function () {
  "use strict";
  function draw() {
    document.querySelectorAll(".diagram[data-xml-source]").forEach(function (box) {
      var src = document.getElementById(box.getAttribute("data-xml-source"));
      if (!src || typeof window.BpmnJS !== "function") return;
      var viewer = new window.BpmnJS({ container: box });
      viewer.importXML(src.value).then(function () {
        viewer.get("canvas").zoom("fit-viewport");
        box.setAttribute("data-rendered", "true");
        window.ezdQuietDiagram(box);
      }).catch(function () { box.setAttribute("data-rendered", "error"); });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
