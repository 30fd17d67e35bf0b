/* The patient's phone in the chat page (simulator/calls.py): rings when the clinic calls,
   answers with the microphone (WebRTC: the SDP answer goes back through the simulator, as
   Meta relays it), hangs up, and calls the clinic ("Call the clinic": the SDP offer goes out
   in the `calls` webhook). window.simCall exposes the live RTCPeerConnection so a browser
   test can read its getStats(). */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(window.location.search);
  var call = { id: null, pc: null, stream: null, direction: null, timer: null, startedAt: null };
  window.simCall = call;

  function post(path, body) {
    return fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.json().then(function (data) {
        if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
        return data;
      });
    });
  }

  function show(state, title, sub) {
    var screen = $("call-screen");
    screen.hidden = state === "idle";
    screen.dataset.state = state;
    $("call-title").textContent = title || "";
    $("call-sub").textContent = sub || "";
    $("call-accept").hidden = state !== "incoming";
    $("call-decline").hidden = state !== "incoming";
    $("call-hangup").hidden = state === "incoming" || state === "ended" || state === "idle";
    $("call-close").hidden = state !== "ended";
  }

  // Full SDP (no trickle ICE): the Calling API carries one offer and one answer.
  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      var done = function () {
        if (pc.iceGatheringState === "complete") {
          pc.removeEventListener("icegatheringstatechange", done);
          resolve();
        }
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000);  // enough candidates by then on a local network
    });
  }

  function peer() {
    return navigator.mediaDevices.getUserMedia({ audio: true, video: false }).then(function (stream) {
      var pc = new RTCPeerConnection({ iceServers: [] });
      stream.getTracks().forEach(function (track) { pc.addTrack(track, stream); });
      pc.addEventListener("track", function (e) { $("call-audio").srcObject = e.streams[0]; });
      pc.addEventListener("connectionstatechange", function () {
        document.body.dataset.callConnection = pc.connectionState;
        if (pc.connectionState === "connected") startTimer();
      });
      call.pc = pc;
      call.stream = stream;
      call.remoteSet = false;
      return pc;
    });
  }

  function startTimer() {
    if (call.timer) return;
    call.startedAt = Date.now();
    show("connected", $("call-title").textContent, "00:00");
    call.timer = setInterval(function () {
      var s = Math.floor((Date.now() - call.startedAt) / 1000);
      $("call-sub").textContent = String(Math.floor(s / 60)).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
    }, 1000);
  }

  function cleanUp() {
    if (call.timer) clearInterval(call.timer);
    if (call.stream) call.stream.getTracks().forEach(function (t) { t.stop(); });
    if (call.pc) call.pc.close();
    call.timer = null; call.stream = null; call.id = null; call.direction = null;
    // call.pc stays readable (closed) for a test's last look.
  }

  function failed(err) {
    show("ended", "Call failed", err && err.message ? err.message : String(err));
    cleanUp();
  }

  function incoming(data) {
    if (call.id) return;  // busy: the phone shows one call at a time
    call.id = data.call_id;
    call.direction = "BUSINESS_INITIATED";
    call.offer = data.sdp;
    show("incoming", data.name || "Clinic", "WhatsApp voice call");
  }

  function accept() {
    var id = call.id;
    show("connecting", $("call-title").textContent, "Connecting…");
    peer().then(function (pc) {
      return pc.setRemoteDescription({ type: "offer", sdp: call.offer }).then(function () {
        return pc.createAnswer();
      }).then(function (answer) {
        return pc.setLocalDescription(answer);
      }).then(function () { return gathered(pc); }).then(function () {
        return post("/_sim/calls/" + encodeURIComponent(id) + "/accept", { sdp: pc.localDescription.sdp });
      });
    }).catch(failed);
  }

  function decline() {
    var id = call.id;
    post("/_sim/calls/" + encodeURIComponent(id) + "/decline").catch(function () {});
    show("ended", "Call declined", "");
    cleanUp();
  }

  function hangUp() {
    var id = call.id;
    if (id) post("/_sim/calls/" + encodeURIComponent(id) + "/hangup").catch(function () {});
    show("ended", "Call ended", "");
    cleanUp();
  }

  function callClinic(user) {
    if (call.id) return;
    call.direction = "USER_INITIATED";
    show("outgoing", $("biz-name").textContent, "Calling…");
    peer().then(function (pc) {
      return pc.createOffer().then(function (offer) {
        return pc.setLocalDescription(offer);
      }).then(function () { return gathered(pc); }).then(function () {
        return post("/_sim/users/" + encodeURIComponent(user) + "/calls", { sdp: pc.localDescription.sdp });
      }).then(function (result) {
        call.id = result.id;
        $("call-sub").textContent = "Ringing…";
      });
    }).catch(failed);
  }

  function showIcon(settings) {
    $("call-clinic").hidden = !settings.icon_visible;
    document.body.dataset.callIcon = settings.icon_visible ? "shown" : "hidden";
  }

  function answered(data) {
    if (!call.pc || data.call_id !== call.id) return;
    // pre_accept and accept carry the same answer, often milliseconds apart: set it once (a
    // second setRemoteDescription while the first is pending would fail and end the call).
    if (call.remoteSet || call.pc.signalingState !== "have-local-offer") return;
    call.remoteSet = true;
    call.pc.setRemoteDescription({ type: "answer", sdp: data.sdp }).catch(failed);
    if (data.action === "pre_accept") $("call-sub").textContent = "Connecting…";
  }

  function ended(data) {
    if (data.call_id !== call.id) return;
    var words = { rejected: "Call declined", cancelled: "Missed call", completed: "Call ended" };
    show("ended", words[data.outcome] || "Call ended", "");
    cleanUp();
  }

  // The answer to a call-permission request (the chat page's buttons, chat.js).
  window.simCallPermission = function (wamid, response) {
    var user = (params.get("user") || "").replace(/\D/g, "") || window.simCallUser;
    return post("/_sim/users/" + encodeURIComponent(user) + "/call-permission",
      { response: response, context_id: wamid }).then(function () {
      document.body.dataset.callPermission = response;
    });
  };

  fetch("/_sim/config").then(function (resp) { return resp.json(); }).then(function (config) {
    var user = (params.get("user") || config.default_user_wa_id).replace(/\D/g, "");
    window.simCallUser = user;
    var es = new EventSource("/_sim/stream?user=" + encodeURIComponent(user));
    es.addEventListener("call_incoming", function (e) { incoming(JSON.parse(e.data)); });
    es.addEventListener("call_answer", function (e) { answered(JSON.parse(e.data)); });
    es.addEventListener("call_ended", function (e) { ended(JSON.parse(e.data)); });
    es.addEventListener("hello", function () { document.body.dataset.callReady = "1"; });
    $("call-clinic").addEventListener("click", function () { callClinic(user); });
    // The call button as the business's calling settings say (POST /settings): hidden when
    // calling is off or the icon is disabled; outside call hours a call says so.
    fetch("/_sim/calling").then(function (resp) { return resp.json(); }).then(showIcon);
    es.addEventListener("calling_settings", function (e) { showIcon(JSON.parse(e.data)); });
  });
  $("call-accept").addEventListener("click", accept);
  $("call-decline").addEventListener("click", decline);
  $("call-hangup").addEventListener("click", hangUp);
  $("call-close").addEventListener("click", function () { show("idle"); });
})();
