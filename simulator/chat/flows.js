/* WhatsApp Flows on the simulator's chat page: the Flow message's button opens the Flow's
 * screens in a sheet, as the WhatsApp app does. The simulator (simulator/flows.py) talks to
 * the business's data endpoint, encrypted like Meta; this page only renders the screens
 * (Flow JSON components) and sends the footer's action.
 *
 * Safety as in chat.js: texts are never parsed as HTML (textContent only).
 */
(function () {
  "use strict";

  var current = null;   // {session, wa_id, stack: [{screen, data}], form}

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function post(path, body) {
    return fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify(body || {}) })
      .then(function (resp) {
        return resp.json().then(function (data) {
          if (!resp.ok) throw new Error(data && data.error ? data.error : "HTTP " + resp.status);
          return data;
        });
      });
  }

  // "${data.x}" and "${form.x}" (the whole string), as Flow JSON binds them.
  function resolve(value, data, form) {
    if (typeof value === "string") {
      var m = /^\$\{(data|form)\.([A-Za-z0-9_]+)\}$/.exec(value);
      if (m) return m[1] === "data" ? data[m[2]] : form[m[2]];
      return value;
    }
    if (Array.isArray(value)) return value.map(function (v) { return resolve(v, data, form); });
    if (value && typeof value === "object") {
      var out = {};
      Object.keys(value).forEach(function (k) { out[k] = resolve(value[k], data, form); });
      return out;
    }
    return value;
  }

  function sheet() {
    var root = document.getElementById("flow-sheet");
    if (root) return root;
    root = el("div", "flow-backdrop");
    root.id = "flow-sheet";
    root.hidden = true;
    root.setAttribute("role", "dialog");
    root.setAttribute("aria-modal", "true");
    document.getElementById("app").appendChild(root);
    return root;
  }

  function close() {
    current = null;
    sheet().hidden = true;
    sheet().replaceChildren();
  }

  function isoDay(d) {
    return d.getUTCFullYear() + "-" + String(d.getUTCMonth() + 1).padStart(2, "0") + "-" +
      String(d.getUTCDate()).padStart(2, "0");
  }

  // A calendar of the days between min-date and max-date; unavailable days cannot be chosen.
  function dayGrid(name, c, data, form) {
    var min = resolve(c["min-date"], data, form), max = resolve(c["max-date"], data, form);
    var off = new Set(resolve(c["unavailable-dates"], data, form) || []);
    var grid = el("div", "flow-days");
    grid.dataset.name = name;
    var day = new Date(min + "T00:00:00Z"), end = new Date(max + "T00:00:00Z");
    for (var i = 0; day <= end && i < 400; i++) {
      var iso = isoDay(day);
      var b = el("button", "flow-day", iso.slice(8) + "." + iso.slice(5, 7));
      b.type = "button";
      b.dataset.date = iso;
      b.title = iso;
      if (off.has(iso)) { b.disabled = true; b.classList.add("off"); }
      (function (button, value) {
        button.addEventListener("click", function () {
          form[name] = value;
          Array.prototype.forEach.call(grid.children, function (x) { x.classList.remove("chosen"); });
          button.classList.add("chosen");
        });
      })(b, iso);
      grid.appendChild(b);
      day = new Date(day.getTime() + 86400000);
    }
    return grid;
  }

  function component(c, data, form, body) {
    var type = c.type;
    if (type === "Form") { (c.children || []).forEach(function (x) { component(x, data, form, body); }); return; }
    if (type === "TextHeading" || type === "TextSubheading" || type === "TextBody" || type === "TextCaption") {
      var t = resolve(c.text, data, form);
      (String(t || "").split("\n")).forEach(function (line) {
        body.appendChild(el("div", "flow-text " + type, line));
      });
      return;
    }
    if (type === "Footer") return;  // drawn at the bottom
    var field = el("label", "flow-field");
    field.appendChild(el("span", "flow-label", resolve(c.label, data, form)));
    var name = c.name;
    if (type === "RadioButtonsGroup") {
      var group = el("div", "flow-radios");
      group.dataset.name = name;
      (resolve(c["data-source"], data, form) || []).forEach(function (opt) {
        var b = el("button", "flow-option", opt.title);
        b.type = "button";
        b.dataset.id = opt.id;
        b.addEventListener("click", function () {
          form[name] = opt.id;
          Array.prototype.forEach.call(group.children, function (x) { x.classList.remove("chosen"); });
          b.classList.add("chosen");
        });
        group.appendChild(b);
      });
      field.appendChild(group);
    } else if (type === "Dropdown") {
      var select = el("select", "flow-select");
      select.name = name;
      select.appendChild(el("option", null, "—"));
      select.firstChild.value = "";
      (resolve(c["data-source"], data, form) || []).forEach(function (opt) {
        var o = el("option", null, opt.title);
        o.value = opt.id;
        select.appendChild(o);
      });
      select.addEventListener("change", function () { form[name] = select.value || undefined; });
      field.appendChild(select);
    } else if (type === "DatePicker" && c["min-date"]) {
      field.appendChild(dayGrid(name, c, data, form));
    } else if (type === "DatePicker" || type === "TextInput" || type === "TextArea") {
      var input = el(type === "TextArea" ? "textarea" : "input", "flow-input");
      input.name = name;
      if (type === "DatePicker") {
        input.type = "date";
        if (c["max-date"]) input.max = resolve(c["max-date"], data, form);
      }
      input.addEventListener("input", function () { form[name] = input.value || undefined; });
      field.appendChild(input);
    } else {
      field.appendChild(el("span", "flow-unsupported", "(" + type + ")"));
    }
    if (c.required) field.dataset.required = name;
    body.appendChild(field);
  }

  function show(screen, data) {
    var root = sheet();
    root.replaceChildren();
    var panel = el("div", "flow-sheet");
    panel.dataset.screen = screen.id;
    var head = el("div", "flow-head");
    var back = el("button", "icon-btn flow-back", current.stack.length > 1 ? "←" : "✕");
    back.type = "button";
    back.setAttribute("aria-label", current.stack.length > 1 ? "Back" : "Close");
    back.addEventListener("click", function () {
      if (current.stack.length > 1) {
        current.stack.pop();
        var prev = current.stack[current.stack.length - 1];
        current.form = {};
        show(prev.screen, prev.data);
      } else {
        close();
      }
    });
    head.appendChild(back);
    head.appendChild(el("div", "flow-title", resolve(screen.title, data, {})));
    panel.appendChild(head);
    var body = el("div", "flow-body");
    if (data.error_message) body.appendChild(el("div", "flow-error", data.error_message));
    var form = current.form = {};
    var children = ((screen.layout || {}).children) || [];
    var footer = null;
    function walk(list) {
      list.forEach(function (c) {
        if (c.type === "Footer") footer = c;
        if (c.type === "Form") walk(c.children || []);
      });
    }
    walk(children);
    children.forEach(function (c) { component(c, data, form, body); });
    panel.appendChild(body);
    if (footer) {
      var button = el("button", "flow-footer", resolve(footer.label, data, form));
      button.type = "button";
      button.addEventListener("click", function () { submit(screen, data, footer, panel, button); });
      panel.appendChild(button);
    }
    root.appendChild(panel);
    root.hidden = false;
  }

  function submit(screen, data, footer, panel, button) {
    var form = current.form;
    var missing = Array.prototype.filter.call(panel.querySelectorAll("[data-required]"), function (f) {
      return form[f.dataset.required] === undefined || form[f.dataset.required] === "";
    });
    panel.querySelectorAll(".flow-field.missing").forEach(function (f) { f.classList.remove("missing"); });
    if (missing.length) { missing.forEach(function (f) { f.classList.add("missing"); }); return; }
    var action = footer["on-click-action"] || {};
    var payload = resolve(action.payload || {}, data, form);
    button.disabled = true;
    if (action.name === "navigate") {
      var next = action.next || {};
      var screenDef = (current.flow_json || {}).screens;  // navigate needs no endpoint
      button.disabled = false;
      if (screenDef) {
        var target = screenDef.filter(function (s) { return s.id === next.name; })[0];
        if (target) { current.stack.push({ screen: target, data: payload }); show(target, payload); }
      }
      return;
    }
    var path = "/_sim/flows/" + encodeURIComponent(current.session) +
      (action.name === "complete" ? "/complete" : "/exchange");
    post(path, { screen: screen.id, payload: payload }).then(function (result) {
      if (result.error) { failed(result.error.message); return; }
      if (result.completed) {
        close();
        if (window.SimFlows.onSent) window.SimFlows.onSent(result);
        return;
      }
      current.stack.push({ screen: result.screen, data: result.data });
      show(result.screen, result.data);
    }).catch(function (err) { button.disabled = false; failed(err.message); });
  }

  function failed(message) {
    var root = sheet();
    var panel = root.querySelector(".flow-sheet");
    if (!panel) return;
    var body = panel.querySelector(".flow-body");
    var note = el("div", "flow-error", "⚠️ " + message);
    body.insertBefore(note, body.firstChild);
  }

  function open(waId, messageId) {
    return post("/_sim/users/" + encodeURIComponent(waId) + "/flows/open", { message_id: messageId })
      .then(function (result) {
        current = { session: result.session, wa_id: waId, stack: [], form: {} };
        if (result.error) {
          current.stack.push({ screen: { id: "ERROR", title: "", layout: { children: [] } }, data: {} });
          show(current.stack[0].screen, { error_message: result.error.message });
          return;
        }
        current.stack.push({ screen: result.screen, data: result.data });
        show(result.screen, result.data);
      });
  }

  // The Flow message's button in the chat.
  function button(waIdGetter, item) {
    var params = item.payload.interactive.action.parameters;
    var b = el("button", "in-bubble-action flow-open");
    b.type = "button";
    b.appendChild(el("span", "ico", "▤"));
    b.appendChild(el("span", "label", params.flow_cta));
    b.addEventListener("click", function () {
      open(waIdGetter(), item.wamid).catch(function (err) {
        if (window.SimFlows.onError) window.SimFlows.onError(err);
      });
    });
    return b;
  }

  window.SimFlows = { open: open, button: button, close: close, onSent: null, onError: null };
})();
