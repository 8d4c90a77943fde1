/*
 * dlhub-gpu-notices: warns in JupyterLab before dlhub's GPU scheduler takes this
 * server's GPUs back. Every 30 s it asks the server (GET <baseUrl>dlhub/gpu-notices)
 * and shows each notice once, as a notification that stays until the notice is gone.
 *
 * A prebuilt JupyterLab extension without build step: it registers itself as the
 * container JupyterLab loads (window._JUPYTERLAB[name] with init/get) and uses only
 * JupyterLab's notification commands, so it needs no shared packages.
 */
(function () {
  "use strict";
  var NAME = "dlhub-gpu-notices";
  var EVERY_MS = 30000;

  function baseUrl() {
    var element = document.getElementById("jupyter-config-data");
    var config = element ? JSON.parse(element.textContent) : {};
    var url = config.baseUrl || "/";
    return url.endsWith("/") ? url : url + "/";
  }

  // the server accepts the browser's cookie on API requests only with this header,
  // as JupyterLab's own requests send it
  function xsrfHeaders() {
    var match = document.cookie.match("\\b_xsrf=([^;]*)\\b");
    return match ? { "X-XSRFToken": decodeURIComponent(match[1]) } : {};
  }

  var plugin = {
    id: NAME + ":plugin",
    description: "Warns before dlhub takes back this server's GPUs.",
    autoStart: true,
    activate: function (app) {
      var shown = {}; // notice key -> {id, message} of its notification (null while shown)

      // show a notice once; if JupyterLab cannot show it yet, the next check tries again
      function show(notice) {
        if (!app.commands.hasCommand("apputils:notify")) {
          return;
        }
        shown[notice.key] = null;
        app.commands
          .execute("apputils:notify", {
            message: notice.message,
            type: notice.level,
            options: { autoClose: false },
          })
          .then(function (id) {
            shown[notice.key] = { id: id, message: notice.message };
          })
          .catch(function () {
            delete shown[notice.key];
          });
      }

      function check() {
        return fetch(baseUrl() + "dlhub/gpu-notices", {
          credentials: "same-origin",
          headers: xsrfHeaders(),
        })
          .then(function (response) {
            return response.ok ? response.json() : { notices: [] };
          })
          .then(function (data) {
            var current = {};
            (data.notices || []).forEach(function (notice) {
              current[notice.key] = true;
              if (!(notice.key in shown)) {
                show(notice);
              } else if (shown[notice.key] && shown[notice.key].message !== notice.message) {
                shown[notice.key].message = notice.message;
                app.commands.execute("apputils:update-notification", {
                  id: shown[notice.key].id,
                  message: notice.message,
                  type: notice.level,
                  autoClose: false,
                });
              }
            });
            Object.keys(shown).forEach(function (key) {
              if (!current[key]) {
                if (shown[key]) {
                  app.commands.execute("apputils:dismiss-notification", { id: shown[key].id });
                }
                delete shown[key];
              }
            });
          })
          .catch(function () {
            /* the server is busy or restarting: try again next time */
          });
      }

      app.restored.then(function () {
        check();
        setInterval(check, EVERY_MS);
      });
    },
  };

  var module = { __esModule: true, default: [plugin] };
  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = {
    init: function () {},
    get: function (request) {
      if (request !== "./extension") {
        return Promise.reject(new Error(NAME + " has no module " + request));
      }
      return Promise.resolve(function () {
        return module;
      });
    },
  };
})();
