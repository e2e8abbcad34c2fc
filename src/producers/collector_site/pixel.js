// The tracking pixel: one image request per page view, carrying the page's address and where
// the visitor came from, and a heartbeat (a POST) every 15 s while the page stays visible.
(function () {
  var page = "url=" + encodeURIComponent(location.href) +
    "&ref=" + encodeURIComponent(document.referrer);
  new Image(1, 1).src = "/tracking/img.png?" + page + "&t=" + Date.now();
  setInterval(function () {
    if (document.visibilityState === "visible" && navigator.sendBeacon) {
      navigator.sendBeacon("/tracking/tick.png?" + page);
    }
  }, 15000);
})();
