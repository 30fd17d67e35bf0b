/* WhatsApp voice calls on the ticket page (inbox/calls.py). The browser makes the WebRTC
   session: its SDP offer (or answer, for a patient's call) goes to the inbox, which queues it
   for the WhatsApp gateway; the patient's SDP comes back the same way and is read here by
   polling. One full SDP each way (no trickle ICE), as the Calling API carries them.
   window.inboxCall exposes the RTCPeerConnection so a browser test can read getStats(). */
(function () {
  "use strict";
  var box = document.getElementById("calls");
  if (!box) return;
  var $ = function (id) { return document.getElementById(id); };
  var ticket = box.dataset.ticket;
  var csrf = box.dataset.csrf;
  var call = { id: null, pc: null, stream: null, poller: null, remoteSet: false };
  window.inboxCall = call;
  var WORDS = {
    requested: "Calling… (sending to WhatsApp)", ringing: "Ringing…", pre_accepted: "Connecting…",
    accepted: "Connecting audio…", ended: "Call ended", failed: "The call could not be placed"
  };

  function api(method, path, body) {
    var options = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch("/inbox/api/v1" + path, options).then(function (resp) {
      return resp.json().then(function (data) {
        if (!resp.ok) throw new Error(data.detail || ("HTTP " + resp.status));
        return data;
      });
    });
  }

  function status(state, text) {
    $("call-status").dataset.state = state;
    $("call-status").textContent = text;
    $("call-hangup").hidden = !(call.id && ["requested", "ringing", "pre_accepted", "accepted", "connected"].indexOf(state) >= 0);
    if ($("call-patient")) $("call-patient").disabled = !!call.id;
  }

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
      setTimeout(resolve, 3000);
    });
  }

  function peer() {
    return navigator.mediaDevices.getUserMedia({ audio: true, video: false }).then(function (stream) {
      var pc = new RTCPeerConnection({ iceServers: [] });
      stream.getTracks().forEach(function (track) { pc.addTrack(track, stream); });
      pc.addEventListener("track", function (e) { $("call-audio").srcObject = e.streams[0]; });
      pc.addEventListener("connectionstatechange", function () {
        box.dataset.connection = pc.connectionState;
        if (pc.connectionState === "connected") status("connected", "Connected: you are talking with the patient.");
      });
      call.pc = pc;
      call.stream = stream;
      call.remoteSet = false;
      return pc;
    });
  }

  function cleanUp() {
    if (call.poller) clearInterval(call.poller);
    if (call.stream) call.stream.getTracks().forEach(function (t) { t.stop(); });
    if (call.pc) call.pc.close();
    call.poller = null; call.stream = null; call.id = null;
  }

  function follow(data) {
    call.id = data.id;
    if (call.poller) clearInterval(call.poller);
    call.poller = setInterval(function () {
      api("GET", "/calls/" + call.id).then(update).catch(function () {});
    }, 500);
    update(data);
  }

  function update(data) {
    if (data.state === "ended" || data.state === "failed") {
      status(data.state, (data.state === "failed" ? WORDS.failed : "Call " + data.outcome_words) +
        (data.error ? " (" + data.error + ")" : "") + (data.duration_seconds != null ? " · " + data.duration_seconds + " s" : ""));
      cleanUp();
      return;
    }
    if (!data.from_patient && data.remote_sdp && !call.remoteSet && call.pc &&
        call.pc.signalingState === "have-local-offer") {
      call.remoteSet = true;
      call.pc.setRemoteDescription({ type: "answer", sdp: data.remote_sdp }).catch(failed);
    }
    if (box.dataset.connection !== "connected") status(data.state, WORDS[data.state] || data.state);
  }

  function failed(err) {
    status("failed", "Call failed: " + (err && err.message ? err.message : err));
    if (call.id) api("POST", "/calls/" + call.id + "/terminate", {}).catch(function () {});
    cleanUp();
  }

  function placeCall() {
    status("requested", "Starting the microphone…");
    peer().then(function (pc) {
      return pc.createOffer().then(function (offer) { return pc.setLocalDescription(offer); })
        .then(function () { return gathered(pc); })
        .then(function () { return api("POST", "/tickets/" + ticket + "/calls", { sdp: pc.localDescription.sdp }); })
        .then(follow);
    }).catch(failed);
  }

  function answer(incoming) {
    $("call-incoming").hidden = true;
    status("pre_accepted", "Answering…");
    call.id = incoming.id;
    peer().then(function (pc) {
      return pc.setRemoteDescription({ type: "offer", sdp: incoming.remote_sdp })
        .then(function () { call.remoteSet = true; return pc.createAnswer(); })
        .then(function (a) { return pc.setLocalDescription(a); })
        .then(function () { return gathered(pc); })
        .then(function () {
          var sdp = { sdp: pc.localDescription.sdp };
          // pre_accept first: the media path is set up before the call is accepted (no clipped audio).
          return api("POST", "/calls/" + incoming.id + "/pre_accept", sdp).then(function () {
            return api("POST", "/calls/" + incoming.id + "/accept", sdp);
          });
        }).then(follow);
    }).catch(failed);
  }

  var ringing = null;
  function pollRinging() {
    if (call.id) return;
    api("GET", "/calls?ticket=" + ticket).then(function (data) {
      ringing = data.calls.length ? data.calls[0] : null;
      $("call-incoming").hidden = !ringing;
      box.dataset.ringing = ringing ? "1" : "0";
    }).catch(function () {});
  }

  if ($("call-patient")) $("call-patient").addEventListener("click", placeCall);
  $("call-hangup").addEventListener("click", function () {
    if (call.id) api("POST", "/calls/" + call.id + "/terminate", {}).then(update).catch(failed);
  });
  $("call-accept").addEventListener("click", function () { if (ringing) answer(ringing); });
  $("call-reject").addEventListener("click", function () {
    if (!ringing) return;
    $("call-incoming").hidden = true;
    api("POST", "/calls/" + ringing.id + "/reject", {}).then(function () { status("ended", "Call declined"); })
      .catch(failed);
  });
  setInterval(pollRinging, 1000);
  pollRinging();
})();
