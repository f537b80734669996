/* Draws the console's charts with the bundled ECharts. Each chart is an element with
   data-chart='{"title", "kind", "x": [...], "series": [{"name", "values"}]}'. */
(function () {
  "use strict";
  var PALETTE = ["#0b6e4f", "#d92d20", "#175cd3", "#b54708", "#6941c6"];
  var FONT = '"PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei","Noto Sans CJK SC",system-ui,sans-serif';

  function draw(el) {
    var spec;
    try {
      spec = JSON.parse(el.getAttribute("data-chart"));
    } catch (e) {
      return;
    }
    var chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      color: PALETTE,
      textStyle: { fontFamily: FONT },
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 36, right: 12, top: 36, bottom: 24, containLabel: true },
      xAxis: { type: "category", data: spec.x, axisTick: { alignWithLabel: true } },
      yAxis: { type: "value", minInterval: 1 },
      series: spec.series.map(function (s) {
        return { name: s.name, type: spec.kind === "line" ? "line" : "bar", data: s.values, barMaxWidth: 16 };
      })
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function drawAll() {
    if (typeof echarts === "undefined") return;
    document.querySelectorAll("[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
