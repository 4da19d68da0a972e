// Cornetta console: progressive enhancement only. The pages work without this file; with
// it, the QR preview follows the form as you type and the copy button appears.
"use strict";
(function () {
  function livePreview() {
    var form = document.getElementById("campaign-form");
    var img = document.getElementById("qr-preview");
    var status = document.getElementById("preview-status");
    if (!form || !img) return;
    // The no-JS Preview button is not needed any more.
    var nojs = form.querySelector("[data-nojs]");
    if (nojs) nojs.hidden = true;
    var timer = null;
    var current = null;
    var note = status ? status.textContent : "";
    function url() {
      var p = new URLSearchParams();
      ["site", "phone", "text", "fg", "bg", "ecc"].forEach(function (name) {
        var el = form.elements[name];
        if (el && el.value) p.set(name, el.value);
      });
      if (form.elements.tracked && form.elements.tracked.checked) p.set("tracked", "on");
      if (form.elements.label && form.elements.label.checked) p.set("label", "on");
      return "/console/preview?" + p.toString();
    }
    function update() {
      var u = url();
      fetch(u, { credentials: "same-origin" }).then(function (res) {
        if (res.ok) {
          return res.blob().then(function (blob) {
            if (current) URL.revokeObjectURL(current);
            current = URL.createObjectURL(blob);
            img.src = current;
            img.dataset.src = u;
            if (status) status.textContent = note;
          });
        }
        return res.json().then(function (body) {
          if (status) status.textContent = body && body.error ? body.error.message : "The preview could not be drawn.";
        });
      }).catch(function () {
        if (status) status.textContent = "The preview could not be loaded.";
      });
    }
    form.addEventListener("input", function (e) {
      if (!e.target.hasAttribute("data-preview")) return;
      clearTimeout(timer);
      timer = setTimeout(update, 150);
    });
    form.addEventListener("change", function (e) {
      if (!e.target.hasAttribute("data-preview")) return;
      clearTimeout(timer);
      timer = setTimeout(update, 0);
    });
  }
  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      var input = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById("copy-status");
      if (!input || !navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(input.value).then(function () {
          if (status) status.textContent = "Link copied.";
        }, function () {
          input.select();
          if (status) status.textContent = "Press Ctrl+C (or Cmd+C) to copy the selected link.";
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    livePreview();
    copyButtons();
  });
})();
