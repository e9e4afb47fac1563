// The approvals page, live: the server sends the page's table bodies,
// rendered and escaped as the page itself, on every change (server-sent
// events); between changes the clocks tick here. Without this script the
// page is a static snapshot.
"use strict";
(function () {
  function fmt(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    s = s % 60;
    return (h ? h + "h" : "") + (h || m ? m + "m" : "") + s + "s";
  }
  var skew = 0; // the browser's clock less the gate's
  function tick() {
    var now = Date.now() - skew;
    document.querySelectorAll("[data-since]").forEach(function (e) { e.textContent = fmt(now - Number(e.dataset.since)); });
    document.querySelectorAll("span[data-until]").forEach(function (e) { e.textContent = fmt(Number(e.dataset.until) - now); });
    document.querySelectorAll("meter[data-until]").forEach(function (e) { e.value = Math.max(0, (Number(e.dataset.until) - now) / 1000); });
  }
  var live = document.getElementById("live");
  var src = new EventSource("/ui/api/events" + location.search);
  src.addEventListener("state", function (m) {
    var st = JSON.parse(m.data);
    skew = Date.now() - Date.parse(st.now);
    ["waiting", "granted", "decided"].forEach(function (k) {
      document.getElementById(k + "-rows").innerHTML = st.html[k];
    });
    var now = document.getElementById("now");
    now.dateTime = st.now;
    now.textContent = new Date(st.now).toISOString().substring(11, 19) + " UTC";
    live.textContent = "live";
    live.dataset.state = "live";
    tick();
  });
  src.onerror = function () {
    live.textContent = "reconnecting…";
    live.dataset.state = "reconnecting";
  };
  setInterval(tick, 1000);
})();
