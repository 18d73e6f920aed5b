// tryit.js enhances the developer portal's API reference (web/devportal/docs):
// copy buttons on code, and the try-it console, which POSTs each request as
// JSON to the portal's relay (data-relay on .ref) and shows the gateway's
// status, headers, body and latency. Without JavaScript the reference reads
// the same; only the consoles stay disabled. Results are built with
// textContent only: nothing from a response is parsed as HTML.
(function () {
  "use strict";
  var root = document.querySelector(".ref");
  if (!root) {
    return;
  }

  // Copy buttons.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.className = "sr-only";
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      ta.remove();
      if (ok) {
        resolve();
      } else {
        reject(new Error("copy failed"));
      }
    });
  }
  function flash(button, text) {
    var old = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", old);
    button.textContent = text;
    window.setTimeout(function () { button.textContent = old; }, 1500);
  }
  root.querySelectorAll("button[data-copy]").forEach(function (b) { b.hidden = false; });
  root.addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-copy]");
    if (!b) {
      return;
    }
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el) {
      return;
    }
    copyText(el.textContent).then(
      function () { flash(b, "Copied"); },
      function () {
        var range = document.createRange();
        range.selectNodeContents(el);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        flash(b, "Press Ctrl+C");
      });
  });

  // The try-it console.
  var relay = root.getAttribute("data-relay");
  if (!relay || !window.fetch) {
    return;
  }
  var authHeader = root.getAttribute("data-auth-header") || "";
  var authPrefix = root.getAttribute("data-auth-prefix") || "";
  var csrf = root.getAttribute("data-csrf") || "";
  root.querySelectorAll(".ref-try-fields").forEach(function (fs) { fs.disabled = false; });

  // One key for every console: typing it in one fills the others.
  root.addEventListener("input", function (ev) {
    var t = ev.target;
    if (!t.matches || !t.matches("[data-role=key]")) {
      return;
    }
    root.querySelectorAll("[data-role=key]").forEach(function (k) {
      if (k !== t) {
        k.value = t.value;
      }
    });
  });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) {
      e.className = cls;
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }
  function hasHeader(headers, name) {
    name = name.toLowerCase();
    return Object.keys(headers).some(function (k) { return k.toLowerCase() === name; });
  }
  function pretty(text, contentType) {
    if (!text) {
      return text;
    }
    var looksJSON = /json/i.test(contentType || "") || /^\s*[\[{]/.test(text);
    if (!looksJSON) {
      return text;
    }
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (e) {
      return text;
    }
  }
  function headerValue(headers, name) {
    name = name.toLowerCase();
    for (var k in headers) {
      if (Object.prototype.hasOwnProperty.call(headers, k) && k.toLowerCase() === name) {
        var v = headers[k];
        return Array.isArray(v) ? v.join(", ") : String(v);
      }
    }
    return "";
  }

  function showError(box, message) {
    box.replaceChildren(el("p", "ref-try-error", message));
    box.hidden = false;
  }

  function showResult(box, r) {
    var status = Number(r.status) || 0;
    var meta = el("p", "ref-try-meta");
    var badge = el("span", "ref-status", String(status));
    badge.setAttribute("data-c", Math.floor(status / 100) + "xx");
    meta.appendChild(badge);
    meta.appendChild(el("span", "ref-muted", (Math.round((Number(r.duration_ms) || 0) * 10) / 10) + " ms"));
    if (r.truncated) {
      meta.appendChild(el("span", "ref-badge ref-badge-warn", "body truncated"));
    }
    var headers = r.headers || {};
    var lines = Object.keys(headers).sort().map(function (k) {
      var v = headers[k];
      return k + ": " + (Array.isArray(v) ? v.join(", ") : v);
    });
    var hd = el("details");
    hd.appendChild(el("summary", "", "Response headers (" + lines.length + ")"));
    var hpre = el("pre", "ref-code");
    hpre.appendChild(el("code", "", lines.join("\n")));
    hd.appendChild(hpre);
    var body;
    if (r.body_base64) {
      body = "(binary body, base64)\n" + r.body_base64;
    } else {
      body = pretty(r.body || "", headerValue(headers, "content-type"));
    }
    var bpre = el("pre", "ref-code");
    bpre.appendChild(el("code", "", body === "" ? "(empty body)" : body));
    box.replaceChildren(meta, hd, bpre);
    box.hidden = false;
  }

  root.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.matches || !form.matches("form.ref-try-form")) {
      return;
    }
    ev.preventDefault();
    if (!form.reportValidity()) {
      return;
    }
    var path = form.getAttribute("data-path") || "/";
    var query = {};
    var headers = {};
    form.querySelectorAll("[data-in]").forEach(function (input) {
      var v = input.value;
      if (v === "") {
        return;
      }
      var name = input.getAttribute("data-name");
      switch (input.getAttribute("data-in")) {
        case "path":
          path = path.split("{" + name + "}").join(encodeURIComponent(v));
          break;
        case "query":
          query[name] = v;
          break;
        case "header":
          headers[name] = v;
          break;
      }
    });
    var key = form.querySelector("[data-role=key]");
    if (key && authHeader && key.value.trim() !== "") {
      headers[authHeader] = authPrefix + key.value.trim();
    }
    var payload = { method: form.getAttribute("data-method"), path: path, query: query, headers: headers };
    var bodyEl = form.querySelector("[data-role=body]");
    if (bodyEl && bodyEl.value !== "") {
      payload.body = bodyEl.value;
      var ct = form.getAttribute("data-content-type");
      if (ct && !hasHeader(headers, "content-type")) {
        headers["Content-Type"] = ct;
      }
    }
    var box = form.parentNode.querySelector(".ref-try-result");
    var button = form.querySelector("button[type=submit]");
    var label = button.textContent;
    button.disabled = true;
    button.textContent = "Sending…";
    fetch(relay, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(payload)
    })
      .then(function (resp) {
        return resp.text().then(function (text) {
          var data = null;
          try {
            data = JSON.parse(text);
          } catch (e) {
            data = null;
          }
          if (resp.ok && data && typeof data.status === "number") {
            showResult(box, data);
          } else if (data && (data.title || data.detail)) {
            showError(box, (data.title || "Error") + (data.detail ? ": " + data.detail : ""));
          } else {
            showError(box, "The console could not send the request (HTTP " + resp.status + ").");
          }
        });
      })
      .catch(function (err) {
        showError(box, "The console could not reach the portal: " + err.message);
      })
      .finally(function () {
        button.disabled = false;
        button.textContent = label;
      });
  });
})();
