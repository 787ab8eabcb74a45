// Draw every figure of the page: <div class="plot" data-figure="ID"> gets the Plotly figure
// in <script type="application/json" id="ID">. body[data-plots] says when all are drawn
// ("ready") or that one failed ("error: ..."), for people and for the browser tests.
(function () {
  "use strict";
  const divs = Array.from(document.querySelectorAll("div.plot[data-figure]"));
  if (!divs.length) { document.body.dataset.plots = "ready"; return; }
  if (typeof Plotly === "undefined") {
    document.body.dataset.plots = "error: plotly.js did not load";
    return;
  }
  const config = { responsive: true, displaylogo: false };
  Promise.all(divs.map(function (div) {
    const fig = JSON.parse(document.getElementById(div.dataset.figure).textContent);
    return Plotly.newPlot(div, fig.data, fig.layout, Object.assign({}, config, fig.config || {}));
  })).then(function () {
    document.body.dataset.plots = "ready";
  }, function (err) {
    document.body.dataset.plots = "error: " + err;
  });
})();
