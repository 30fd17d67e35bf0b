/* WhatsApp-like chat page of the simulator. Plain JS, no build step, no CDN.
 *
 * Safety: message text is NEVER parsed as HTML. Every node is built with createElement /
 * textContent / createTextNode, and links only ever get http(s) URLs.
 *
 * Sides: business messages are shown on the left (class "in"), the simulated patient's on
 * the right (class "out") - the patient's point of view.
 */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(window.location.search);
  var RANK = { accepted: 0, sent: 1, delivered: 2, read: 3 };
  var SVG_NS = "http://www.w3.org/2000/svg";
  var EXTRA_PATIENTS = [
    { wa_id: "15550199999", name: "Sam Rivera" },
    { wa_id: "15550177777", name: "Jordan Lee" },
    { wa_id: "15550166666", name: "Maria Santos" }
  ];

  var state = {
    config: null,
    user: null,
    name: null,
    items: new Map(),      // wamid -> {item, row, bubble}
    lastSide: null,
    pendingRead: new Set(),
    readTimer: null,
    typingTimer: null,
    stream: null
  };

  // ------------------------------------------------------------------ DOM helpers

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function ticks(status) {
    var span = el("span", "ticks" + (status === "read" ? " read" : ""));
    var label = status === "read" ? "Read" : status === "delivered" ? "Delivered" : "Sent";
    span.setAttribute("aria-label", label);
    span.setAttribute("title", label);
    span.dataset.status = status;
    var svg = document.createElementNS(SVG_NS, "svg");
    var double = status === "delivered" || status === "read";
    svg.setAttribute("viewBox", double ? "0 0 18 11" : "0 0 12 11");
    svg.setAttribute("width", double ? "17" : "12");
    svg.setAttribute("height", "11");
    var lines = double ? ["1,6 4.3,9.3 11,1.7", "7,9.3 8.6,9.3 15.6,1.7"] : ["1,6 4.3,9.3 11,1.7"];
    lines.forEach(function (points) {
      var line = document.createElementNS(SVG_NS, "polyline");
      line.setAttribute("points", points);
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", "currentColor");
      line.setAttribute("stroke-width", "1.6");
      line.setAttribute("stroke-linecap", "round");
      line.setAttribute("stroke-linejoin", "round");
      svg.appendChild(line);
    });
    span.appendChild(svg);
    return span;
  }

  function clock(t) {
    var d = t ? new Date(t * 1000) : new Date();
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function link(url, text) {
    var a = el("a", null, text || url);
    if (/^https?:\/\//i.test(url)) {
      a.href = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    return a;
  }

  // ------------------------------------------------------------------ WhatsApp formatting

  var MARKS = { "*": "strong", "_": "em", "~": "s" };
  var WORD = /[\p{L}\p{N}_]/u;

  function findClose(text, start, mark) {
    var first = text.charAt(start + 1);
    if (!first || /\s/.test(first) || first === mark) return -1;
    for (var j = start + 2; j < text.length; j++) {
      var c = text.charAt(j);
      if (c === "\n") return -1;
      if (c === mark && !/\s/.test(text.charAt(j - 1)) &&
          (j + 1 === text.length || (!WORD.test(text.charAt(j + 1)) && text.charAt(j + 1) !== mark))) {
        return j;
      }
    }
    return -1;
  }

  function appendInline(parent, text) {
    var buf = "";
    var i = 0;
    function flush() {
      if (buf) { parent.appendChild(document.createTextNode(buf)); buf = ""; }
    }
    while (i < text.length) {
      var ch = text.charAt(i);
      var prev = i > 0 ? text.charAt(i - 1) : "";
      if ((ch === "h" || ch === "H") && (!prev || /[\s(]/.test(prev))) {
        var m = /^https?:\/\/[^\s<>"]+/i.exec(text.slice(i));
        if (m) {
          var url = m[0].replace(/[.,;:!?)\]'"]+$/, "");
          flush();
          parent.appendChild(link(url));
          i += url.length;
          continue;
        }
      }
      if (MARKS[ch] && (!prev || (!WORD.test(prev) && prev !== ch))) {
        var close = findClose(text, i, ch);
        if (close > 0) {
          flush();
          var node = document.createElement(MARKS[ch]);
          appendInline(node, text.slice(i + 1, close));
          parent.appendChild(node);
          i = close + 1;
          continue;
        }
      }
      buf += ch;
      i++;
    }
    flush();
  }

  function formatted(text, cls) {
    var box = el("div", cls || "text");
    var parts = String(text || "").split(/```([\s\S]*?)```/);
    parts.forEach(function (part, index) {
      if (index % 2 === 1) box.appendChild(el("span", "mono", part));
      else appendInline(box, part);
    });
    return box;
  }

  // ------------------------------------------------------------------ API

  function api(method, path, body) {
    var options = { method: method, headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(function (resp) {
      // An error page is not always JSON (a proxy's, a 404): say what failed, never "Unexpected
      // non-whitespace character after JSON".
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (!resp.ok) throw new Error(data && data.error ? data.error : "HTTP " + resp.status + " from " + path);
        if (data === null) throw new Error("The simulator sent an answer that is not JSON (" + path + ")");
        return data;
      });
    });
  }

  function userPath(suffix) {
    return "/_sim/users/" + encodeURIComponent(state.user) + suffix;
  }

  function sendSpec(spec) {
    spec.name = state.name;
    spec.wait = "none";
    return api("POST", userPath("/messages"), spec).then(function (result) {
      render({ direction: "in", wamid: result.wamid, message: result.message, status: "sent",
               time: Date.now() / 1000 });
    }).catch(showError);
  }

  function tap(wamid, choiceId) {
    return api("POST", userPath("/tap"), { message_id: wamid, id: choiceId, wait: "none" })
      .then(function (result) {
        render({ direction: "in", wamid: result.wamid, message: result.message, status: "sent",
                 time: Date.now() / 1000 });
      }).catch(showError);
  }

  function showError(err) {
    var row = el("div", "notice error");
    row.appendChild(el("span", null, "⚠️ " + (err && err.message ? err.message : err)));
    $("messages").appendChild(row);
    scrollDown();
  }

  // ------------------------------------------------------------------ read receipts

  function markRead(wamid) {
    state.pendingRead.add(wamid);
    scheduleRead();
  }

  function scheduleRead() {
    if (state.readTimer || document.visibilityState !== "visible") return;
    state.readTimer = setTimeout(function () {
      state.readTimer = null;
      if (!state.pendingRead.size || document.visibilityState !== "visible") return;
      var ids = Array.from(state.pendingRead);
      state.pendingRead.clear();
      api("POST", userPath("/read"), { message_ids: ids }).catch(function () {});
    }, 300);
  }

  document.addEventListener("visibilitychange", scheduleRead);
  window.addEventListener("focus", scheduleRead);

  // ------------------------------------------------------------------ typing

  function setTyping(on, timeout) {
    clearTimeout(state.typingTimer);
    state.typingTimer = null;
    $("presence").textContent = on ? "typing…" : "online";
    $("presence").classList.toggle("typing", !!on);
    $("typing-row").hidden = !on;
    if (on) {
      state.typingTimer = setTimeout(function () { setTyping(false); }, (timeout || 25) * 1000);
      scrollDown();
    }
  }

  // ------------------------------------------------------------------ rendering

  function scrollDown() {
    var chat = $("chat");
    chat.scrollTop = chat.scrollHeight;
  }

  function textOf(item) {
    if (!item) return "";
    if (item.direction === "out") {
      var p = item.payload || {};
      if (p.type === "text") return p.text.body;
      if (p.type === "interactive") return (p.interactive.body || {}).text || "";
      if (p.type === "template") return item.rendered ? item.rendered.body : p.template.name;
      if (p[p.type] && p[p.type].caption) return p[p.type].caption;
      return p.type;
    }
    var m = item.message || {};
    if (m.type === "text") return m.text.body;
    if (m.type === "interactive") {
      var r = m.interactive[m.interactive.type] || {};
      return r.title || "";
    }
    if (m.type === "button") return m.button.text;
    return m.type;
  }

  function quote(contextId) {
    var entry = state.items.get(contextId);
    if (!entry) return null;
    var box = el("div", "quote");
    box.appendChild(el("b", null, entry.item.direction === "out" ? state.config.business_name : "You"));
    box.appendChild(formatted(textOf(entry.item).slice(0, 160), "quote-text"));
    return box;
  }

  // Icons are inline SVG (not emoji) so they render even without an emoji font.
  var ICON_PATHS = {
    image: "M21 19V5c0-1.1-.9-2-2-2H5c-1.1 0-2 .9-2 2v14c0 1.1.9 2 2 2h14c1.1 0 2-.9 2-2zM8.5 13.5l2.5 3 3.5-4.5 4.5 6H5l3.5-4.5z",
    video: "M17 10.5V7c0-.55-.45-1-1-1H4c-.55 0-1 .45-1 1v10c0 .55.45 1 1 1h12c.55 0 1-.45 1-1v-3.5l4 4v-11l-4 4z",
    audio: "M12 14c1.66 0 3-1.34 3-3V5c0-1.66-1.34-3-3-3S9 3.34 9 5v6c0 1.66 1.34 3 3 3zm5.3-3c0 3-2.54 5.1-5.3 5.1S6.7 14 6.7 11H5c0 3.41 2.72 6.23 6 6.72V21h2v-3.28c3.28-.48 6-3.3 6-6.72h-1.7z",
    document: "M14 2H6c-1.1 0-2 .9-2 2v16c0 1.1.9 2 2 2h12c1.1 0 2-.9 2-2V8l-6-6zm-1 7V3.5L18.5 9H13z",
    location: "M12 2C8.1 2 5 5.1 5 9c0 5.3 7 13 7 13s7-7.7 7-13c0-3.9-3.1-7-7-7zm0 9.5a2.5 2.5 0 1 1 0-5 2.5 2.5 0 0 1 0 5z",
    contact: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm0 2c-2.7 0-8 1.3-8 4v2h16v-2c0-2.7-5.3-4-8-4z",
    unknown: "M11 18h2v-2h-2v2zm1-16C6.48 2 2 6.48 2 12s4.48 10 10 10 10-4.48 10-10S17.52 2 12 2zm0 18c-4.41 0-8-3.59-8-8s3.59-8 8-8 8 3.59 8 8-3.59 8-8 8zm0-14c-2.21 0-4 1.79-4 4h2c0-1.1.9-2 2-2s2 .9 2 2c0 2-3 1.75-3 5h2c0-2.25 3-2.5 3-5 0-2.21-1.79-4-4-4z"
  };
  ICON_PATHS.sticker = ICON_PATHS.image;

  function icon(name, size) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size || 22));
    svg.setAttribute("height", String(size || 22));
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", ICON_PATHS[name] || ICON_PATHS.unknown);
    svg.appendChild(path);
    return svg;
  }

  function iconBox(cls, name, size) {
    var box = el("div", cls);
    box.appendChild(icon(name, size));
    return box;
  }

  var MEDIA_ICON = { image: 1, video: 1, audio: 1, document: 1, sticker: 1 };
  var MEDIA_LABEL = { image: "Photo", video: "Video", audio: "Audio", document: "Document", sticker: "Sticker" };

  function mediaCard(kind, media) {
    media = media || {};
    if (kind === "image" || kind === "video" || kind === "sticker") {
      var card = el("div", "card image");
      card.appendChild(iconBox("image-box", kind, 48));
      var sub = el("div", "card-sub", MEDIA_LABEL[kind] + (media.link ? " · " + media.link : ""));
      card.appendChild(sub);
      return card;
    }
    var c = el("div", "card " + kind);
    c.appendChild(iconBox("card-icon " + kind, kind));
    var body = el("div");
    var title = media.filename || (kind === "audio" && media.voice ? "Voice message" : MEDIA_LABEL[kind] || kind);
    body.appendChild(el("div", "card-title", title));
    var detail = media.mime_type || (media.link ? media.link : media.id ? "media id " + media.id : "");
    body.appendChild(el("div", "card-sub", detail));
    c.appendChild(body);
    if (media.link && /^https?:\/\//i.test(media.link)) {
      c.appendChild(link(media.link, "Open"));
    }
    return c;
  }

  function genericCard(iconName, title, sub) {
    var c = el("div", "card");
    c.appendChild(iconBox("card-icon " + iconName, iconName));
    var body = el("div");
    body.appendChild(el("div", "card-title", title));
    if (sub) body.appendChild(el("div", "card-sub", sub));
    c.appendChild(body);
    return c;
  }

  function actionButton(label, icon, onClick) {
    var b = el("button", "action-btn");
    b.type = "button";
    if (icon) b.appendChild(el("span", "ico", icon));
    b.appendChild(el("span", "label", label));
    b.addEventListener("click", onClick);
    return b;
  }

  function actionLink(label, url, cls) {
    var a = link(url, null);
    a.textContent = "";
    a.className = cls;
    a.appendChild(el("span", "ico", "↗"));
    a.appendChild(el("span", "label", label));
    return a;
  }

  function header(bubble, h) {
    if (!h) return;
    if (h.type === "text") bubble.appendChild(el("div", "header-text", h.text));
    else bubble.appendChild(mediaCard(h.type, h[h.type]));
  }

  function businessContent(item, bubble, below) {
    var p = item.payload || {};
    var type = p.type || "text";
    if (item.context_id) {
      var q = quote(item.context_id);
      if (q) bubble.appendChild(q);
    }
    if (type === "text") {
      bubble.appendChild(formatted(p.text.body));
    } else if (type === "interactive") {
      var it = p.interactive;
      header(bubble, it.header);
      bubble.appendChild(formatted(it.body ? it.body.text : ""));
      if (it.footer) bubble.appendChild(el("div", "footer-text", it.footer.text));
      if (it.type === "button") {
        it.action.buttons.forEach(function (b) {
          below.appendChild(actionButton(b.reply.title, "↩", function () { tap(item.wamid, b.reply.id); }));
        });
      } else if (it.type === "list") {
        var lb = el("button", "in-bubble-action list-open");
        lb.type = "button";
        lb.appendChild(el("span", "ico", "☰"));
        lb.appendChild(el("span", "label", it.action.button));
        lb.addEventListener("click", function () { openSheet(item); });
        bubble.appendChild(lb);
      } else if (it.type === "cta_url") {
        bubble.appendChild(actionLink(it.action.parameters.display_text, it.action.parameters.url,
                                      "in-bubble-action cta"));
      } else if (it.type === "flow" && window.SimFlows) {  // WhatsApp Flows: chat/flows.js
        bubble.appendChild(window.SimFlows.button(function () { return state.user; }, item));
      } else if (it.type === "location_request_message") {
        var loc = el("button", "in-bubble-action send-location");
        loc.type = "button";
        var pin = el("span", "ico");
        pin.appendChild(icon("location", 16));
        loc.appendChild(pin);
        loc.appendChild(el("span", "label", "Send location"));
        loc.addEventListener("click", function () { tap(item.wamid, "send_location"); });
        bubble.appendChild(loc);
      } else if (it.type === "call_permission_request" && window.simCallPermission) {
        // Voice calls (calls.js): the patient allows the clinic to call them, or not.
        below.appendChild(actionButton("Allow calls", "✆", function () { window.simCallPermission(item.wamid, "accept"); }));
        below.appendChild(actionButton("Don't allow", null, function () { window.simCallPermission(item.wamid, "reject"); }));
      }
    } else if (type === "template") {
      var r = item.rendered || { body: "Template " + p.template.name, buttons: [] };
      header(bubble, r.header);
      bubble.appendChild(formatted(r.body));
      if (r.footer) bubble.appendChild(el("div", "footer-text", r.footer));
      (r.buttons || []).forEach(function (b) {
        if (b.type === "quick_reply") {
          below.appendChild(actionButton(b.text, "↩", function () { tap(item.wamid, b.payload); }));
        } else if (b.type === "url") {
          below.appendChild(actionLink(b.text, b.url, "action-btn"));
        } else {
          below.appendChild(actionButton(b.text, null, function () {}));
        }
      });
    } else if (MEDIA_ICON[type]) {
      bubble.appendChild(mediaCard(type, p[type]));
      if (p[type] && p[type].caption) bubble.appendChild(formatted(p[type].caption));
    } else if (type === "location") {
      var l = p.location;
      bubble.appendChild(genericCard("location", l.name || "Location",
        (l.address ? l.address + " · " : "") + l.latitude + ", " + l.longitude));
    } else if (type === "contacts") {
      p.contacts.forEach(function (c) {
        var phones = (c.phones || []).map(function (ph) { return ph.phone; }).join(", ");
        bubble.appendChild(genericCard("contact", c.name.formatted_name, phones));
      });
    } else {
      bubble.appendChild(genericCard("unknown", "Message", type));
    }
  }

  function userContent(item, bubble) {
    var m = item.message || {};
    if (m.context && m.context.id) {
      var q = quote(m.context.id);
      if (q) bubble.appendChild(q);
    }
    if (m.type === "text") {
      bubble.appendChild(formatted(m.text.body));
    } else if (m.type === "interactive") {
      var kind = m.interactive.type;
      var r = m.interactive[kind] || {};
      bubble.appendChild(formatted(r.title || r.body || kind));  // nfm_reply (a Flow sent): its body
      if (r.description) bubble.appendChild(el("div", "footer-text", r.description));
    } else if (m.type === "button") {
      bubble.appendChild(formatted(m.button.text));
    } else if (m.type === "location") {
      var l = m.location;
      bubble.appendChild(genericCard("location", l.name || "Location", l.latitude + ", " + l.longitude));
    } else if (MEDIA_ICON[m.type]) {
      bubble.appendChild(mediaCard(m.type, m[m.type]));
      if (m[m.type].caption) bubble.appendChild(formatted(m[m.type].caption));
    } else if (m.type === "contacts") {
      m.contacts.forEach(function (c) {
        bubble.appendChild(genericCard("contact", (c.name || {}).formatted_name || "Contact", ""));
      });
    } else {
      bubble.appendChild(genericCard("unknown", "Unsupported message", m.type || "unknown"));
    }
  }

  function applyReaction(reaction) {
    if (!reaction) return;
    var target = state.items.get(reaction.message_id);
    if (!target) return;
    var existing = target.row.querySelector(":scope > .reaction");
    if (existing) existing.remove();
    if (reaction.emoji) {
      var badge = el("div", "reaction", reaction.emoji);
      target.row.insertBefore(badge, target.bubble.nextSibling);
    }
  }

  function render(item) {
    if (!item || !item.wamid) return;
    var known = state.items.get(item.wamid);
    if (known) {
      if (item.direction === "in") updateUserStatus(item.wamid, item.status);
      return;
    }
    var fromBusiness = item.direction === "out";
    var kind = fromBusiness ? (item.payload || {}).type : (item.message || {}).type;
    if (kind === "reaction") {
      state.items.set(item.wamid, { item: item, row: null, bubble: null });
      applyReaction(fromBusiness ? item.payload.reaction : item.message.reaction);
      return;
    }
    var side = fromBusiness ? "in" : "out";
    var row = el("div", "row " + side + (state.lastSide !== side ? " first" : ""));
    row.dataset.wamid = item.wamid;
    row.dataset.from = fromBusiness ? "business" : "user";
    state.lastSide = side;
    var bubble = el("div", "bubble " + side);
    var below = el("div", "actions-stack");
    if (fromBusiness) businessContent(item, bubble, below);
    else userContent(item, bubble);

    var meta = el("span", "meta");
    meta.appendChild(el("span", "time", clock(item.time)));
    if (!fromBusiness) {
      row.dataset.status = item.status || "sent";
      meta.appendChild(ticks(item.status || "sent"));
    }
    // the time sits at the end of the last text block (before an in-bubble button), WhatsApp-style
    var blocks = bubble.querySelectorAll(":scope > .text, :scope > .footer-text");
    var action = bubble.querySelector(":scope > .in-bubble-action");
    if (blocks.length) {
      blocks[blocks.length - 1].appendChild(meta);
    } else if (action) {
      bubble.insertBefore(meta, action);
    } else {
      bubble.appendChild(meta);
    }
    row.appendChild(bubble);
    if (below.childNodes.length) row.appendChild(below);
    if (fromBusiness) {
      bubble.addEventListener("dblclick", function () {
        sendSpec({ type: "reaction", reaction: { message_id: item.wamid, emoji: "👍" } });
      });
      if (item.status === "failed") markFailed(row, null);
    }
    state.items.set(item.wamid, { item: item, row: row, bubble: bubble });
    $("messages").appendChild(row);
    if (fromBusiness && item.status !== "read" && item.status !== "failed") markRead(item.wamid);
    scrollDown();
  }

  function updateUserStatus(wamid, status) {
    var entry = state.items.get(wamid);
    if (!entry || !entry.row || entry.item.direction !== "in") return;
    var current = entry.row.dataset.status || "sent";
    if ((RANK[status] || 0) <= (RANK[current] || 0)) return;
    entry.row.dataset.status = status;
    entry.item.status = status;
    var old = entry.row.querySelector(".ticks");
    if (old) old.replaceWith(ticks(status));
  }

  function markFailed(row, error) {
    if (row.querySelector(".failed-note")) return;
    var note = "⚠ Not delivered" + (error && error.code ? " (error " + error.code + ")" : "");
    row.appendChild(el("div", "failed-note", note));
  }

  // ------------------------------------------------------------------ list sheet

  function openSheet(item) {
    var it = item.payload.interactive;
    $("sheet-title").textContent = it.action.button;
    var body = $("sheet-body");
    body.replaceChildren();
    it.action.sections.forEach(function (section) {
      if (section.title) body.appendChild(el("div", "sheet-section-title", section.title));
      section.rows.forEach(function (row) {
        var b = el("button", "sheet-row");
        b.type = "button";
        b.dataset.rowId = row.id;
        var text = el("div", "row-text");
        text.appendChild(el("div", "row-title", row.title));
        if (row.description) text.appendChild(el("div", "row-desc", row.description));
        b.appendChild(text);
        b.appendChild(el("span", "radio"));
        b.addEventListener("click", function () {
          closeSheet();
          tap(item.wamid, row.id);
        });
        body.appendChild(b);
      });
    });
    $("sheet-backdrop").hidden = false;
  }

  function closeSheet() { $("sheet-backdrop").hidden = true; }

  $("sheet-close").addEventListener("click", closeSheet);
  $("sheet-backdrop").addEventListener("click", function (e) {
    if (e.target === $("sheet-backdrop")) closeSheet();
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { closeSheet(); $("attach-menu").hidden = true; $("user-panel").hidden = true; }
  });

  // ------------------------------------------------------------------ composer

  function sendText() {
    var input = $("input");
    var text = input.value;
    if (!text.trim()) return;
    input.value = "";
    autosize();
    sendSpec({ type: "text", text: { body: text } });
    input.focus();
  }

  function autosize() {
    var input = $("input");
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  }

  $("send").addEventListener("click", sendText);
  $("input").addEventListener("input", autosize);
  $("input").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendText();
    }
  });
  $("attach").addEventListener("click", function () {
    $("attach-menu").hidden = !$("attach-menu").hidden;
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-attach]"), function (b) {
    b.addEventListener("click", function () {
      $("attach-menu").hidden = true;
      var kind = b.dataset.attach;
      var spec = { type: kind };
      if (kind === "audio") spec.voice = true;
      sendSpec(spec);
    });
  });

  // A real file from this computer: sent as the patient's image, voice note, video or
  // document (by its type), with its bytes, so the clinic's side downloads exactly those.
  $("attach-file-button").addEventListener("click", function () {
    $("attach-menu").hidden = true;
    $("attach-file").click();
  });
  $("attach-file").addEventListener("change", function () {
    var file = this.files && this.files[0];
    this.value = "";
    if (!file) return;
    if (file.size > 2.5 * 1024 * 1024) { showError(new Error("The simulator takes files up to 2.5 MB.")); return; }
    var reader = new FileReader();
    reader.onload = function () {
      var data = String(reader.result);
      var mime = file.type || "application/octet-stream";
      var kind = mime.indexOf("image/") === 0 ? "image" : mime.indexOf("audio/") === 0 ? "audio"
        : mime.indexOf("video/") === 0 ? "video" : "document";
      var spec = { type: kind, data_base64: data.slice(data.indexOf(",") + 1), mime_type: mime };
      if (kind === "document") spec.filename = file.name;
      if (kind === "audio") spec.voice = true;
      sendSpec(spec);
    };
    reader.onerror = function () { showError(new Error("Could not read the file.")); };
    reader.readAsDataURL(file);
  });

  // ------------------------------------------------------------------ user switcher

  function buildUserPanel() {
    var list = $("user-list");
    list.replaceChildren();
    var patients = [{ wa_id: state.config.default_user_wa_id, name: state.config.default_user_name }]
      .concat(EXTRA_PATIENTS);
    if (state.user && !patients.some(function (p) { return p.wa_id === state.user; })) {
      patients.unshift({ wa_id: state.user, name: state.name });
    }
    patients.forEach(function (p) {
      var b = el("button", p.wa_id === state.user ? "current" : "");
      b.type = "button";
      b.appendChild(document.createTextNode(p.name));
      b.appendChild(el("small", null, "+" + p.wa_id));
      b.addEventListener("click", function () { openAs(p.wa_id, p.name); });
      list.appendChild(b);
    });
    describeUser();
  }

  // A username user: the business gets their business-scoped user id (BSUID), not the number.
  function describeUser() {
    var who = state.username
      ? "@" + state.username + ", number hidden from the business, user id " + (state.userId || "…")
      : "+" + state.user + (state.userId ? ", user id " + state.userId : "");
    $("user-current").textContent = "You are " + state.name + " (" + who + "). " +
      "Business number +" + state.config.display_phone_number + ".";
    $("change-user-id").hidden = !state.userId;
  }

  function startUser() {
    if (!state.username) return Promise.resolve();
    return api("POST", userPath(""), { name: state.name, username: state.username, phone_hidden: true })
      .then(function (user) { state.userId = user.user_id; describeUser(); });
  }

  $("change-user-id").addEventListener("click", function () {
    api("POST", userPath("/change-user-id"), {}).then(function (result) {
      state.userId = result.user_id;
      describeUser();
    }).catch(showError);
  });

  function openAs(waId, name, username) {
    var q = new URLSearchParams();
    q.set("user", waId);
    if (name) q.set("name", name);
    if (username) q.set("username", username);
    window.location.search = q.toString();
  }

  $("switch-user").addEventListener("click", function () {
    $("user-panel").hidden = !$("user-panel").hidden;
  });
  $("user-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var wa = $("user-wa").value.replace(/\D/g, "");
    if (wa.length < 7 || wa.length > 15) { $("user-wa").focus(); return; }
    openAs(wa, $("user-name").value.trim() || "Patient " + wa.slice(-4),
      $("user-username").value.trim().toLowerCase());
  });

  // ------------------------------------------------------------------ start

  function clearChat() {
    state.items.clear();
    state.lastSide = null;
    Array.prototype.slice.call($("messages").querySelectorAll(".row, .notice.error")).forEach(function (n) {
      n.remove();
    });
    setTyping(false);
  }

  function loadConversation() {
    return api("GET", "/_sim/conversations/" + encodeURIComponent(state.user)).then(function (data) {
      data.items.forEach(render);
      data.items.forEach(function (item) {
        if (item.direction === "in") updateUserStatus(item.wamid, item.status);
      });
      if (data.typing) setTyping(true, 25);
      document.body.dataset.ready = "1";
    });
  }

  function connect() {
    var es = new EventSource("/_sim/stream?user=" + encodeURIComponent(state.user));
    state.stream = es;
    es.addEventListener("hello", function () { loadConversation().catch(showError); });
    es.addEventListener("business_message", function (e) {
      setTyping(false);
      render(JSON.parse(e.data));
    });
    es.addEventListener("user_message", function (e) { render(JSON.parse(e.data)); });
    es.addEventListener("user_status", function (e) {
      var d = JSON.parse(e.data);
      updateUserStatus(d.wamid, d.status);
    });
    es.addEventListener("business_status", function (e) {
      var d = JSON.parse(e.data);
      var entry = state.items.get(d.wamid);
      if (entry && entry.row && d.status === "failed") markFailed(entry.row, d.error);
    });
    es.addEventListener("typing", function (e) {
      var d = JSON.parse(e.data);
      setTyping(d.on, d.timeout);
    });
    es.addEventListener("reset", clearChat);
  }

  if (window.SimFlows) {
    window.SimFlows.onSent = function (result) {
      render({ direction: "in", wamid: result.wamid, message: result.message, status: "sent",
               time: Date.now() / 1000 });
    };
    window.SimFlows.onError = showError;
  }

  api("GET", "/_sim/config").then(function (config) {
    state.config = config;
    var asked = params.get("user");
    state.user = (asked || config.default_user_wa_id).replace(/\D/g, "");
    state.name = params.get("name") || (state.user === config.default_user_wa_id
      ? config.default_user_name : "Patient " + state.user.slice(-4));
    document.title = config.business_name + " · WhatsApp simulator";
    $("biz-name").textContent = config.business_name;
    var initials = config.business_name.split(/\s+/).map(function (w) { return w.charAt(0); })
      .join("").slice(0, 2).toUpperCase();
    $("avatar").textContent = initials;
    state.username = params.get("username") || "";
    if (state.user.length < 7 || state.user.length > 15) {
      // ?user=alice: a WhatsApp id is the phone number's digits. Say so and offer the form
      // instead of opening a chat no number can have.
      state.user = "";
      state.name = "";
      buildUserPanel();
      $("user-current").textContent = "No patient chosen yet.";
      $("user-panel").hidden = false;
      $("user-wa").focus();
      showError("“" + asked + "” is not a WhatsApp number: use 7 to 15 digits (e.g. " +
        config.default_user_wa_id + ") in ?user=, or choose a patient below.");
      $("input").disabled = true;
      $("send").disabled = true;
      document.body.dataset.ready = "invalid-user";
      return null;
    }
    buildUserPanel();
    return startUser().then(connect);
  }).catch(showError);
})();
