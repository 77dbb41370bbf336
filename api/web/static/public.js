// Validation as the citizen types, from the same JSON Schema the server checks against
// (embedded in the page as #form-schema). Messages go to each field's error paragraph, which
// the field names in aria-describedby; on submit, a summary with links to the fields gets the
// focus. Without JavaScript the form still posts and the server answers with the same rules.
(function () {
  "use strict";
  var form = document.querySelector("form[data-schema]");
  if (!form) return;
  var schema = JSON.parse(document.getElementById(form.getAttribute("data-schema")).textContent);
  var msg = JSON.parse(document.getElementById("form-messages").textContent);
  var props = schema.properties || {};
  var required = schema.required || [];
  var touched = {};

  function fmt(s, vars) {
    return s.replace(/\{(\w+)\}/g, function (_, k) { return vars[k]; });
  }

  function valueOf(name) {
    var el = form.elements[name];
    if (!el) return "";
    if (el.type === "checkbox") return el.checked;
    if (el instanceof RadioNodeList || (el.length && !el.tagName)) {
      for (var i = 0; i < el.length; i++) if (el[i].checked) return el[i].value;
      return "";
    }
    return el.value.trim();
  }

  function problem(name) {
    if (name === "unit") return valueOf("unit") ? "" : msg.required;
    var p = props[name];
    if (!p) return "";
    var v = valueOf(name);
    var isRequired = required.indexOf(name) >= 0;
    if (p.type === "boolean") return isRequired && p.const === true && !v ? msg.required : "";
    if (v === "") return isRequired ? msg.required : "";
    if (p.type === "integer" || p.type === "number") {
      var n = Number(String(v).replace(",", "."));
      if (isNaN(n) || (p.type === "integer" && Math.floor(n) !== n)) return msg.number;
      if (p.minimum !== undefined && n < p.minimum) return fmt(msg.min, {n: p.minimum});
      if (p.exclusiveMinimum !== undefined && n <= p.exclusiveMinimum) return fmt(msg.min, {n: p.exclusiveMinimum});
      if (p.maximum !== undefined && n > p.maximum) return fmt(msg.max, {n: p.maximum});
      return "";
    }
    if (p.minLength && v.length < p.minLength) return fmt(msg.tooShort, {n: p.minLength});
    if (p.maxLength && v.length > p.maxLength) return fmt(msg.tooLong, {n: p.maxLength});
    if (p.format === "email" && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v)) return msg.email;
    if (p.format === "date" && !/^\d{4}-\d{2}-\d{2}$/.test(v)) return msg.date;
    if (p.pattern && !(new RegExp(p.pattern, "u")).test(v)) return msg.pattern;
    return "";
  }

  var ALLOWED = /\.(pdf|jpe?g|png|odt|docx)$/i;
  function fileProblem() {
    var input = form.elements.attachments;
    if (!input || !input.files) return "";
    var maxFiles = Number(input.getAttribute("data-max-files"));
    var maxBytes = Number(input.getAttribute("data-max-bytes"));
    if (input.files.length > maxFiles) return fmt(msg.tooManyFiles, {n: maxFiles});
    for (var i = 0; i < input.files.length; i++) {
      var f = input.files[i];
      if (f.size > maxBytes) return fmt(msg.fileTooBig, {name: f.name});
      if (!ALLOWED.test(f.name)) return fmt(msg.fileType, {name: f.name});
    }
    return "";
  }

  function show(name, text) {
    var out = document.getElementById(name + "-error");
    if (out && out.textContent !== text) out.textContent = text;
    var target = form.elements[name];
    var list = target && !target.tagName ? Array.prototype.slice.call(target) : [target];
    list.forEach(function (el) {
      if (!el || !el.setAttribute) return;
      if (text) el.setAttribute("aria-invalid", "true"); else el.removeAttribute("aria-invalid");
    });
  }

  function check(name) {
    var text = name === "attachments" ? fileProblem() : problem(name);
    show(name, text);
    return text;
  }

  function names() {
    // In the order of the page (the schema's JSON has its keys sorted).
    var seen = [];
    Array.prototype.forEach.call(form.querySelectorAll("[name]"), function (el) {
      var n = el.name;
      if (seen.indexOf(n) < 0 && (n === "unit" || n === "attachments" || props[n])) seen.push(n);
    });
    return seen;
  }

  function onEdit(e) {
    var name = e.target && e.target.name;
    if (!name || name === "idempotency_key") return;
    if (e.type === "input" && !touched[name] && e.target.type !== "checkbox" && e.target.type !== "radio") {
      // While typing the first time, only clear errors; judge when the field is left.
      if (!problem(name)) show(name, "");
      return;
    }
    touched[name] = true;
    check(name);
  }

  form.addEventListener("input", onEdit);
  form.addEventListener("change", onEdit);
  form.addEventListener("focusout", function (e) {
    if (e.target && e.target.name) { touched[e.target.name] = true; check(e.target.name); }
  });
  form.addEventListener("submit", function (e) {
    var bad = [];
    names().forEach(function (n) {
      touched[n] = true;
      var t = check(n);
      if (t) bad.push([n, t]);
    });
    if (!bad.length) return;
    e.preventDefault();
    var box = document.getElementById("error-summary");
    box.textContent = "";
    var wrap = document.createElement("div");
    wrap.className = "flash flash-error";
    var p = document.createElement("p");
    p.textContent = msg.summary;
    wrap.appendChild(p);
    var ul = document.createElement("ul");
    bad.forEach(function (b) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = "#f-" + b[0];
      var label = document.querySelector("label[for='f-" + b[0] + "']") ||
        (document.getElementById("f-" + b[0]) || {}).querySelector && document.getElementById("f-" + b[0]).querySelector("legend");
      a.textContent = (label ? label.textContent.replace(/\s*\(.*\)\s*$/, "") + ": " : "") + b[1];
      li.appendChild(a);
      ul.appendChild(li);
    });
    wrap.appendChild(ul);
    box.appendChild(wrap);
    box.focus();
  });
})();
