/*
 * dlhub-gpu-notices: warns in JupyterLab before dlhub's GPU scheduler takes this
 * server's GPUs back. Every 30 s it asks the server (GET <baseUrl>dlhub/gpu-notices)
 * and shows each notice once, as a notification that stays until the notice is gone.
 *
 * Its second plugin shows this server's GPUs in the status bar (memory used of total,
 * utilisation), beside jupyter-resource-usage's memory and CPU, from
 * GET <baseUrl>dlhub/gpu-usage every 5 s; a server without GPUs shows nothing.
 *
 * A prebuilt JupyterLab extension without build step: it registers itself as the
 * container JupyterLab loads (window._JUPYTERLAB[name] with init/get). The notices use
 * only JupyterLab's notification commands; the status bar item takes the status bar's
 * token and Lumino's Widget from the shared modules JupyterLab hands to init().
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

  var USAGE_EVERY_MS = 5000;
  var shared = {}; // JupyterLab's share scope, given to init()

  // a shared module of JupyterLab's (major version 4 of `name`), or null
  function sharedModule(name) {
    var versions = shared[name] || {};
    var version = Object.keys(versions).find(function (v) {
      return v.split(".")[0] === "4" || name.indexOf("@lumino/") === 0;
    });
    if (!version) {
      return Promise.resolve(null);
    }
    return Promise.resolve(versions[version].get()).then(function (factory) {
      return factory();
    });
  }

  function gib(bytes) {
    return (bytes / Math.pow(1024, 3)).toFixed(1);
  }

  // "GPU 0: 1.2 / 16.0 GiB, 35 %" for each GPU
  function usageText(gpus) {
    return gpus
      .map(function (gpu) {
        var text = "GPU " + gpu.index + ": " + gib(gpu.memory_used) + " / ";
        text += gib(gpu.memory_total) + " GiB";
        if (gpu.utilization !== null && gpu.utilization !== undefined) {
          text += ", " + gpu.utilization + " %";
        }
        return text;
      })
      .join(" | ");
  }

  function usagePlugin(statusbar, widgets) {
    return {
      id: NAME + ":gpu-usage",
      description: "Shows this server's GPU memory and utilisation in the status bar.",
      autoStart: true,
      requires: [statusbar.IStatusBar],
      activate: function (app, bar) {
        var item = null;
        function check() {
          return fetch(baseUrl() + "dlhub/gpu-usage", {
            credentials: "same-origin",
            headers: xsrfHeaders(),
          })
            .then(function (response) {
              return response.ok ? response.json() : { gpus: [] };
            })
            .then(function (data) {
              var gpus = data.gpus || [];
              if (!gpus.length) {
                if (item) {
                  item.hide();
                }
                return;
              }
              if (!item) {
                item = new widgets.Widget();
                item.id = "dlhub-gpu-usage";
                item.addClass("jp-StatusBar-TextItem");
                item.node.style.padding = "0 5px";
                bar.registerStatusItem(NAME + ":gpu-usage", { item: item, align: "left", rank: 3 });
              }
              item.node.textContent = usageText(gpus);
              item.node.title = gpus
                .map(function (gpu) {
                  return gpu.name + " (" + gpu.uuid + ")";
                })
                .join("\n");
              item.show();
            })
            .catch(function () {});
        }
        check();
        setInterval(check, USAGE_EVERY_MS);
      },
    };
  }

  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = {
    init: function (scope) {
      shared = scope || {};
    },
    get: function (request) {
      if (request !== "./extension") {
        return Promise.reject(new Error(NAME + " has no module " + request));
      }
      return Promise.all([sharedModule("@jupyterlab/statusbar"), sharedModule("@lumino/widgets")])
        .then(function (found) {
          var plugins = [plugin];
          if (found[0] && found[0].IStatusBar && found[1] && found[1].Widget) {
            plugins.push(usagePlugin(found[0], found[1]));
          }
          return plugins;
        })
        .catch(function () {
          return [plugin];
        })
        .then(function (plugins) {
          var module = { __esModule: true, default: plugins };
          return function () {
            return module;
          };
        });
    },
  };
})();
