// Phones: a data table is shown as one card per row, each cell under its column's heading. The
// headings are copied once from <th> into data-label on every cell (CSS shows them at 640 px and
// narrower), and again after HTMX swaps new rows in.
(function () {
  function label(root) {
    (root.querySelectorAll ? root : document).querySelectorAll("table.data").forEach(function (table) {
      var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
        return th.textContent.trim();
      });
      if (!heads.length) return;
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        Array.prototype.forEach.call(tr.children, function (td, i) {
          if (!td.hasAttribute("data-label") && heads[i] && !td.hasAttribute("colspan")) {
            td.setAttribute("data-label", heads[i]);
          }
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { label(document); });
  document.addEventListener("htmx:afterSwap", function (e) { label(e.target); });
})();
