/* The analytics dashboard's charts with the bundled ECharts. Each chart is an element with
   data-chart='{"kind": "bar"|"line"|"funnel"|"heatmap", ...}':
   bar/line: {"x": [...], "series": [{"name", "values"}], "percent": bool, "stack": bool}
   funnel:   {"data": [{"name", "value"}]}
   heatmap:  {"x": [...], "y": [...], "values": [[xIndex, yIndex, value], ...]} (value in %). */
(function () {
  "use strict";
  var PALETTE = ["#0b6e4f", "#175cd3", "#b54708", "#6941c6", "#d92d20", "#0e9384"];
  var FONT = '"PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei","Noto Sans CJK SC",system-ui,sans-serif';

  function option(spec) {
    var base = { color: PALETTE, textStyle: { fontFamily: FONT }, animation: false };
    if (spec.kind === "funnel") {
      base.tooltip = { trigger: "item", formatter: "{b}: {c}" };
      base.series = [{ type: "funnel", sort: "none", left: "8%", width: "84%", top: 8, bottom: 8, minSize: "8%",
                       gap: 2, label: { show: true, position: "inside", formatter: "{b} {c}" }, data: spec.data }];
      return base;
    }
    if (spec.kind === "heatmap") {
      base.tooltip = { position: "top", formatter: function (p) {
        return spec.y[p.value[1]] + " · " + spec.x[p.value[0]] + ": " + p.value[2] + "%"; } };
      base.grid = { left: 8, right: 8, top: 8, bottom: 56, containLabel: true };
      base.xAxis = { type: "category", data: spec.x, splitArea: { show: true } };
      base.yAxis = { type: "category", data: spec.y, splitArea: { show: true } };
      base.visualMap = { min: 0, max: 100, calculable: false, orient: "horizontal", left: "center", bottom: 0,
                         itemHeight: 120, inRange: { color: ["#f0f9f4", "#0b6e4f"] }, text: ["100%", "0%"] };
      base.series = [{ type: "heatmap", data: spec.values, label: { show: spec.y.length <= 12, fontSize: 10,
                       formatter: function (p) { return p.value[2]; } } }];
      return base;
    }
    base.tooltip = { trigger: "axis" };
    base.legend = { top: 0, type: "scroll" };
    base.grid = { left: 8, right: 12, top: 36, bottom: 8, containLabel: true };
    base.xAxis = { type: "category", data: spec.x, axisLabel: { hideOverlap: true } };
    base.yAxis = { type: "value", axisLabel: spec.percent ? { formatter: "{value}%" } : {} };
    base.series = spec.series.map(function (s) {
      return { name: s.name, type: spec.kind === "line" ? "line" : "bar", data: s.values, barMaxWidth: 18,
               stack: spec.stack ? "all" : undefined, areaStyle: spec.stack ? {} : undefined };
    });
    return base;
  }

  function draw(el) {
    var spec;
    try { spec = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    var chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption(option(spec));
    el.setAttribute("data-drawn", "1");
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function drawAll() {
    if (typeof echarts === "undefined") return;
    document.querySelectorAll("[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", drawAll); } else { drawAll(); }
})();
