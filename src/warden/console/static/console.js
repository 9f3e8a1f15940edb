// The console's only script of its own: keep the live table bounded. (No inline scripts: the
// console's Content-Security-Policy allows scripts from /console/static only.)
(function () {
  "use strict";
  var MAX_ROWS = 300;
  document.addEventListener("htmx:sseMessage", function () {
    var body = document.getElementById("live-rows");
    if (!body) { return; }
    while (body.rows.length > MAX_ROWS) { body.deleteRow(-1); }
  });
})();
