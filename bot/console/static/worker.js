// dangol console service worker: only so that phones (Android Chrome allows page
// notifications only through a service worker) can show "new message" notifications,
// and a tap on one opens the conversation. It intercepts no requests and caches nothing.
"use strict";

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var data = event.notification.data || {};
  var url = typeof data.url === "string" && /^\/console\/c\/\d+$/.test(data.url) ? data.url : "/console/";
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        var client = windows[i];
        if (client.url.indexOf("/console/") !== -1 && "focus" in client) {
          // The console page is not controlled by this worker (its scope is the static
          // folder), so it is asked to go there itself.
          client.postMessage({ open: url });
          return client.focus();
        }
      }
      return self.clients.openWindow(url);
    })
  );
});
