// Registration form: scans dropped or chosen with a preview, Ctrl+Enter = "register and next".
(function () {
  "use strict";
  var form = document.getElementById("register-form");
  if (!form) return;
  var input = document.getElementById("files");
  var zone = document.getElementById("dropzone");
  var list = document.getElementById("file-list");
  var preview = document.getElementById("preview");
  var lang = document.documentElement.lang;
  var T = lang === "pl"
    ? { show: "Podgląd", remove: "Usuń", none: "Brak załączonych plików.", preview: "Podgląd pliku" }
    : { show: "Preview", remove: "Remove", none: "No files attached.", preview: "File preview" };
  var previewUrl = null;

  function size(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " kB";
    return (n / 1048576).toFixed(1) + " MB";
  }

  function setFiles(files) {
    var dt = new DataTransfer();
    files.forEach(function (f) { dt.items.add(f); });
    input.files = dt.files;
    render();
  }

  function showPreview(file) {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    preview.textContent = "";
    var el;
    if (file.type.indexOf("image/") === 0) {
      el = document.createElement("img");
      el.alt = T.preview + ": " + file.name;
    } else {
      el = document.createElement("iframe");
      el.title = T.preview + ": " + file.name;
    }
    el.src = previewUrl;
    preview.appendChild(el);
    preview.hidden = false;
  }

  function render() {
    list.textContent = "";
    var files = Array.prototype.slice.call(input.files);
    if (!files.length) { preview.hidden = true; return; }
    files.forEach(function (f, i) {
      var li = document.createElement("li");
      li.appendChild(document.createTextNode(f.name + " (" + size(f.size) + ") "));
      if (f.type === "application/pdf" || f.type.indexOf("image/") === 0) {
        var show = document.createElement("button");
        show.type = "button"; show.className = "link-button";
        show.textContent = T.show;
        show.setAttribute("aria-label", T.show + ": " + f.name);
        show.addEventListener("click", function () { showPreview(f); });
        li.appendChild(show);
        li.appendChild(document.createTextNode(" "));
      }
      var rm = document.createElement("button");
      rm.type = "button"; rm.className = "link-button";
      rm.textContent = T.remove;
      rm.setAttribute("aria-label", T.remove + ": " + f.name);
      rm.addEventListener("click", function () {
        var rest = files.filter(function (_, j) { return j !== i; });
        setFiles(rest);
        input.focus();
      });
      li.appendChild(rm);
      list.appendChild(li);
    });
    showPreview(files[0]);
  }

  input.addEventListener("change", render);
  ["dragenter", "dragover"].forEach(function (ev) {
    zone.addEventListener(ev, function (e) { e.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (ev) {
    zone.addEventListener(ev, function () { zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (e) {
    e.preventDefault();
    var files = Array.prototype.slice.call(input.files).concat(
      Array.prototype.slice.call(e.dataTransfer.files));
    setFiles(files);
  });

  form.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit(form.querySelector('button[value="next"]'));
    }
  });
  form.addEventListener("submit", function () {
    // An empty file input would send a nameless part: leave it out.
    if (!input.files.length) input.disabled = true;
  });
  window.addEventListener("pageshow", function () { input.disabled = false; });
})();
