// live.js refreshes the live parts of a portal page (the element with id
// "live-health") every five seconds while the page is visible, by fetching
// the same page and swapping that element in. Without JavaScript the page
// is simply as fresh as its last load.
(function () {
  "use strict";
  var id = "live-health";
  if (!document.getElementById(id) || !window.fetch || !window.DOMParser) {
    return;
  }
  function refresh() {
    if (document.hidden) {
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (html) {
        if (!html) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        var cur = document.getElementById(id);
        if (fresh && cur) {
          cur.replaceWith(document.importNode(fresh, true));
        }
      })
      .catch(function () { /* keep the last state; try again later */ });
  }
  window.setInterval(refresh, 5000);
})();
