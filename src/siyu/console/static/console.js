/* Console behaviours that pages ask for with data attributes: no inline script or event handler
   anywhere (the Content-Security-Policy allows scripts from this origin's files only). */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var select = target.closest("[data-select-on-click]");
    if (select && typeof select.select === "function") select.select();
    if (target.closest("[data-print]")) window.print();
    if (target.closest("[data-back]") && window.history.length > 1) { event.preventDefault(); window.history.back(); }
    var copy = target.closest("[data-copy-from]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy-from"));
      var status = document.getElementById(copy.getAttribute("data-copy-status") || "");
      var text = source ? source.textContent : "";
      var done = function () { if (status) status.textContent = copy.getAttribute("data-copied") || ""; };
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); return; }
      var area = document.createElement("textarea");
      area.value = text; document.body.appendChild(area); area.select();
      document.execCommand("copy"); document.body.removeChild(area); done();
    }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute("data-confirm") && !form.hasAttribute("hx-post")
        && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
  });
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof Element && target.matches("[data-submit-on-change]") && target.form) target.form.submit();
    // A picker keeps what was chosen while the person searches again: a ticked choice moves to the
    // chosen list (a radio replaces the one there); unticked there, it goes.
    var picker = target instanceof Element ? target.closest(".picker") : null;
    if (picker && target.matches("input[type=checkbox], input[type=radio]")) {
      var chosen = picker.querySelector(".picker-chosen");
      var label = target.closest("label");
      if (!chosen || !label) return;
      if (target.checked && !chosen.contains(label)) {
        if (target.type === "radio") chosen.innerHTML = "";
        chosen.appendChild(label);
      } else if (!target.checked && chosen.contains(label)) {
        label.remove();
      }
    }
  });
})();
