// Links to "another site": the same collector under another host name, on whatever port it
// listens on, so that a visit from there has a cross-site referrer.
document.querySelectorAll("a[data-host]").forEach(function (link) {
  link.href = location.protocol + "//" + link.dataset.host + ":" + location.port +
    link.getAttribute("href");
});
