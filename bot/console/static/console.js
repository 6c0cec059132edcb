// dangol owner console: live updates and a few conveniences on top of pages that work
// without any script (every form posts and redirects on its own).
//
// Customer text never passes through this file as HTML. New rows and messages are fetched
// as fragments the server rendered with the same escaping templates as the page, parsed
// with DOMParser (inert: nothing in them runs or loads) and moved into the page; anything
// this script writes itself goes in with textContent. The Korean strings it needs are
// data-* attributes of #console (see _layout.html).
(function () {
  "use strict";

  var root = document.getElementById("console");
  if (!root) return;
  var t = root.dataset;
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var inbox = document.getElementById("inbox");
  var conversation = document.getElementById("conversation");
  var timeline = document.getElementById("timeline");
  var liveStatus = document.getElementById("live-status");
  var LIST_REFRESH_MS = 60000; // waiting times tick even when nothing happens

  // ------------------------------------------------------------------ requests

  function toLogin() {
    window.location.assign(t.loginUrl + "?next=" + encodeURIComponent(window.location.pathname));
  }

  function getHTML(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) {
        if (res.redirected && res.url.indexOf(t.loginUrl) !== -1) {
          toLogin();
          throw new Error("signed out");
        }
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.text();
      });
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
      body: body || null
    }).then(function (res) {
      return res.json().then(
        function (data) { return { ok: res.ok, status: res.status, data: data }; },
        function () { return { ok: res.ok, status: res.status, data: null }; }
      );
    });
  }

  // Inert nodes from a server-rendered fragment. `wrap` gives list items their list.
  function fragmentNodes(html, wrap) {
    var doc = new DOMParser().parseFromString(
      "<!doctype html><body>" + (wrap ? "<" + wrap + ">" + html + "</" + wrap + ">" : html),
      "text/html"
    );
    var box = wrap ? doc.body.firstElementChild : doc.body;
    return Array.prototype.slice.call(box ? box.childNodes : []);
  }

  function adopt(node) {
    return document.adoptNode(node);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // ------------------------------------------------------------------ status line

  var statusClick = null;

  function showStatus(text, onClick) {
    if (!liveStatus) return;
    liveStatus.textContent = text;
    liveStatus.hidden = false;
    liveStatus.classList.toggle("clickable", Boolean(onClick));
    statusClick = onClick || null;
  }

  function hideStatus() {
    if (liveStatus) liveStatus.hidden = true;
    statusClick = null;
  }

  if (liveStatus) {
    liveStatus.addEventListener("click", function () {
      if (statusClick) statusClick();
    });
  }

  // ------------------------------------------------------------------ counts and states

  // Every count and state shown around the content (the nav's waiting count, what customers
  // are told, the inbox's filter counts, a conversation's waiting time) carries a data-live
  // name. When something changes they are taken from a fresh copy of this same page, which
  // the server rendered and escaped; DOMParser keeps it inert.
  var chromeTimer = null;

  function refreshChrome() {
    getHTML(window.location.pathname + window.location.search).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), function (old) {
        var fresh = doc.querySelector('[data-live="' + old.dataset.live + '"]');
        if (fresh) old.replaceWith(adopt(fresh));
      });
    }).catch(function () { /* the next event or the timer tries again */ });
  }

  function chromeChanged() {
    clearTimeout(chromeTimer);
    chromeTimer = setTimeout(refreshChrome, 200);
  }

  setInterval(refreshChrome, LIST_REFRESH_MS); // waiting times tick without events

  // ------------------------------------------------------------------ the inbox

  var inboxTimer = null;

  function refreshInbox() {
    if (!inbox) return;
    getHTML(inbox.dataset.listUrl).then(function (html) {
      var box = document.getElementById("inbox-list");
      var nodes = fragmentNodes(html).map(adopt);
      box.replaceChildren.apply(box, nodes);
    }).catch(function () { /* the next event or the timer tries again */ });
  }

  function inboxChanged() {
    if (!inbox) return;
    if (inbox.dataset.firstPage !== "1") {
      // Further pages are not rewritten under the reader's thumb.
      showStatus(t.msgUpdates, function () { window.location.reload(); });
      return;
    }
    clearTimeout(inboxTimer);
    inboxTimer = setTimeout(refreshInbox, 150);
  }

  if (inbox && inbox.dataset.firstPage === "1") {
    setInterval(refreshInbox, LIST_REFRESH_MS);
  }

  // ------------------------------------------------------------------ a conversation

  var convId = conversation ? conversation.dataset.id : null;
  var timelineBusy = false;
  var timelineAgain = false;

  function messages() {
    return timeline ? timeline.querySelectorAll("li.msg") : [];
  }

  function previousMessage(node) {
    var prev = node.previousElementSibling;
    while (prev && !prev.classList.contains("msg")) prev = prev.previousElementSibling;
    return prev;
  }

  // Where the thread ends: the composer's place in the flow, under the newest message. The
  // composer is sticky, so scrolling *it* into view does nothing (it is always in view) and
  // the page's own end lies below the customer panel: both are measured from the thread.
  function threadEnd() {
    var composer = document.getElementById("composer");
    var thread = composer ? composer.parentElement : null;
    return thread ? thread.getBoundingClientRect().bottom + window.scrollY : null;
  }

  function nearBottom() {
    var end = threadEnd();
    return end !== null && window.innerHeight + window.scrollY >= end - 200;
  }

  function scrollToComposer() {
    var end = threadEnd();
    if (end !== null) window.scrollTo(0, Math.max(0, end - window.innerHeight));
  }

  function mergeTimeline(html) {
    var stick = nearBottom();
    var divider = null;
    var added = false;
    fragmentNodes(html, "ol").forEach(function (node) {
      if (node.nodeType !== 1) return;
      if (node.classList.contains("day")) { divider = node; return; }
      var existing = node.id ? document.getElementById(node.id) : null;
      if (existing) {
        existing.replaceWith(adopt(node));
        divider = null;
        return;
      }
      if (divider) timeline.appendChild(adopt(divider));
      divider = null;
      timeline.appendChild(adopt(node));
      added = true;
    });
    if (added && stick) scrollToComposer();
  }

  function refreshTimeline() {
    if (!timeline) return;
    if (timelineBusy) { timelineAgain = true; return; }
    var all = messages();
    // From the first message whose delivery state may still change, else the last one.
    var pending = timeline.querySelector("li.msg[data-pending]");
    var anchor = pending ? previousMessage(pending) : all[all.length - 1];
    var after = anchor ? anchor.dataset.id : "0";
    var day = anchor ? anchor.dataset.day : "";
    timelineBusy = true;
    getHTML(conversation.dataset.timelineUrl + "?after=" + encodeURIComponent(after) +
            "&day=" + encodeURIComponent(day))
      .then(mergeTimeline)
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        timelineBusy = false;
        if (timelineAgain) { timelineAgain = false; refreshTimeline(); }
      });
  }

  var readPending = false;

  function markRead() {
    if (!conversation) return;
    if (document.hidden) { readPending = true; return; }
    readPending = false;
    post(conversation.dataset.readUrl).catch(function () { readPending = true; });
  }

  if (conversation) {
    if (Number(conversation.dataset.unread) > 0) markRead();
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && readPending) markRead();
    });
    if (!window.location.hash) scrollToComposer();
  }

  // ------------------------------------------------------------------ the composer

  var composer = document.getElementById("composer");
  if (composer && composer.tagName === "FORM") {
    var input = document.getElementById("reply-text");
    var errorBox = document.getElementById("composer-error");
    var nonceField = composer.querySelector('input[name="nonce"]');
    var buttons = composer.querySelectorAll("button[type=submit]");
    var lastButton = null;
    var sending = false;

    var errors = {
      empty: t.msgEmpty,
      too_long: t.msgTooLong,
      resolved: t.msgResolved,
      no_path: t.msgNoPath,
      bad_photo: t.msgFailed
    };

    var newNonce = function () {
      var bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      return Array.prototype.map.call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    };

    var showError = function (text) {
      errorBox.textContent = text;
      errorBox.hidden = !text;
    };

    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () { lastButton = button; });
    });

    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = event.submitter || lastButton;
      var kind = button && button.dataset.kind === "note" ? "note" : "reply";
      if (sending) return;
      if (!input.value.trim() && !(kind === "reply" && photosAttached())) {
        showError(t.msgEmpty);
        return;
      }
      var url = kind === "note" ? composer.dataset.noteUrl : composer.action;
      var body = new FormData(composer);
      sending = true;
      Array.prototype.forEach.call(buttons, function (b) { b.classList.add("busy"); });
      post(url, body)
        .then(function (result) {
          if (result.ok) {
            input.value = "";
            if (previews && kind === "reply") previews.replaceChildren();
            nonceField.value = newNonce(); // the next message is a new one
            showError("");
            refreshTimeline();
            return;
          }
          if (result.status === 401) { toLogin(); return; }
          var code = result.data && result.data.error;
          showError(errors[code] || t.msgFailed);
        })
        .catch(function () { showError(t.msgFailed); })
        .then(function () {
          sending = false;
          Array.prototype.forEach.call(buttons, function (b) { b.classList.remove("busy"); });
        });
    });

    // Photos: uploaded as soon as they are picked (bot/console/photos.py answers with the
    // photo's id), then sent with the reply as `photo` fields.
    var pick = document.getElementById("photo-pick");
    var fileInput = document.getElementById("photo-input");
    var previews = document.getElementById("photo-previews");
    var photosAttached = function () {
      return previews ? previews.querySelectorAll('input[name="photo"]').length : 0;
    };

    if (pick && fileInput && previews && window.FormData) {
      pick.hidden = false;
      fileInput.addEventListener("change", function () {
        var file = fileInput.files && fileInput.files[0];
        fileInput.value = "";
        if (!file) return;
        if (previews.children.length >= (Number(previews.dataset.max) || 4)) {
          showError(previews.dataset.msgTooMany);
          return;
        }
        var item = el("li");
        item.appendChild(el("span", "uploading", previews.dataset.msgUploading));
        previews.appendChild(item);
        var body = new FormData();
        body.append("photo", file, file.name || "photo");
        post(pick.dataset.uploadUrl, body).then(function (result) {
          var id = result.ok && result.data ? Number(result.data.id) : 0;
          if (!id) {
            item.remove();
            showError(result.data && result.data.message ? String(result.data.message) : t.msgFailed);
            return;
          }
          var image = el("img");
          image.src = "/console/photos/" + id;
          image.alt = "";
          var field = document.createElement("input");
          field.type = "hidden";
          field.name = "photo";
          field.value = String(id);
          var remove = el("button", "small", previews.dataset.labelRemove);
          remove.type = "button";
          remove.addEventListener("click", function () { item.remove(); });
          item.replaceChildren(image, field, remove);
          showError("");
        }).catch(function () {
          item.remove();
          showError(t.msgFailed);
        });
      });
    }

    input.addEventListener("keydown", function (event) {
      // On a phone Enter is a new line; on a keyboard Ctrl/⌘+Enter sends.
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing) {
        event.preventDefault();
        var send = composer.querySelector('button[data-kind="reply"]');
        if (composer.requestSubmit) composer.requestSubmit(send); else send.click();
      }
    });

    var picker = composer.querySelector(".saved-picker");
    if (picker) {
      picker.addEventListener("click", function (event) {
        var link = event.target.closest ? event.target.closest(".saved-pick") : null;
        if (!link) return;
        event.preventDefault();
        input.value = link.dataset.text || "";
        picker.open = false;
        input.focus();
      });
    }
  }

  // ------------------------------------------------------------------ saved-reply variables

  // A chip inserts its variable ({{ customer.name }}…) where the cursor is in its textarea.
  document.addEventListener("click", function (event) {
    var chip = event.target.closest ? event.target.closest(".var-chips .chip") : null;
    if (!chip) return;
    var box = document.getElementById(chip.parentNode.dataset.target);
    if (!box) return;
    var text = chip.dataset.insert || "";
    var start = box.selectionStart === null ? box.value.length : box.selectionStart;
    var end = box.selectionEnd === null ? start : box.selectionEnd;
    box.setRangeText(text, start, end, "end");
    box.focus();
  });

  // ------------------------------------------------------------------ phone reveal

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("reveal-form")) return;
    event.preventDefault();
    post(form.action, new FormData(form)).then(function (result) {
      if (!result.ok || !result.data || !result.data.phone) return;
      var shown = document.getElementById("phone-value");
      var link = el("a", null, result.data.phone);
      link.id = "phone-value";
      link.href = "tel:" + String(result.data.e164).replace(/[^+0-9]/g, "");
      if (shown) shown.replaceWith(link);
      form.remove();
    });
  });

  // ------------------------------------------------------------------ jobs

  // A form marked data-once posts once: a second tap while the next page loads would book
  // the job twice or try a move the job has already made.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-once") || event.defaultPrevented) return;
    if (form.dataset.sent === "1") { event.preventDefault(); return; }
    form.dataset.sent = "1";
    Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) {
      b.classList.add("busy");
    });
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return; // back from the next page: the forms may post again
    Array.prototype.forEach.call(document.querySelectorAll("form[data-once]"), function (form) {
      form.dataset.sent = "";
      Array.prototype.forEach.call(form.querySelectorAll("button.busy"), function (b) {
        b.classList.remove("busy");
      });
    });
  });

  var jobPage = document.getElementById("job");
  var jobPhoto = document.getElementById("job-photo");

  // 사진 추가: the photo goes up into the job's conversation (bot/console/photos.py answers
  // with its id), then the form attaches it to the job with its phase and caption.
  if (jobPhoto && window.FormData) {
    var photoFile = document.getElementById("job-photo-file");
    var photoPreview = document.getElementById("job-photo-preview");
    var photoError = document.getElementById("job-photo-error");
    var photoButton = document.getElementById("btn-photo");
    var photoBusy = false;
    var showPhotoError = function (text) {
      photoError.textContent = text || "";
      photoError.hidden = !text;
    };
    jobPhoto.hidden = false;
    photoFile.addEventListener("change", function () {
      var file = photoFile.files && photoFile.files[0];
      showPhotoError("");
      if (!file || !window.URL) { photoPreview.hidden = true; return; }
      photoPreview.src = window.URL.createObjectURL(file);
      photoPreview.hidden = false;
    });
    jobPhoto.addEventListener("submit", function (event) {
      event.preventDefault();
      if (photoBusy) return;
      var file = photoFile.files && photoFile.files[0];
      if (!file) { showPhotoError(jobPhoto.dataset.msgPick); return; }
      photoBusy = true;
      photoButton.classList.add("busy");
      showPhotoError("");
      var upload = new FormData();
      upload.append("photo", file, file.name || "photo.jpg");
      post(jobPhoto.dataset.uploadUrl, upload).then(function (uploaded) {
        var id = uploaded.ok && uploaded.data ? Number(uploaded.data.id) : 0;
        if (!id) {
          if (uploaded.status === 401) { toLogin(); return null; }
          throw new Error(uploaded.data && uploaded.data.message ? String(uploaded.data.message) : t.msgFailed);
        }
        jobPhoto.querySelector('input[name="photo"]').value = String(id);
        var body = new FormData(jobPhoto);
        return post(jobPhoto.action, body);
      }).then(function (attached) {
        if (attached === null) return;
        if (!attached.ok) {
          throw new Error(attached.data && attached.data.message ? String(attached.data.message) : t.msgFailed);
        }
        photoFile.value = "";
        photoPreview.hidden = true;
        jobPhoto.querySelector('input[name="caption"]').value = "";
        refreshChrome();
      }).catch(function (error) {
        showPhotoError(error && error.message ? error.message : t.msgFailed);
      }).then(function () {
        photoBusy = false;
        photoButton.classList.remove("busy");
      });
    });
  }

  // A job changed elsewhere (another phone, the customer's answer to the reminder): the
  // page's live parts refresh with every event; a new status also changes which buttons
  // apply, and those are not swapped under the owner's thumb.
  function jobChanged(event) {
    if (!jobPage || String(event.job_id) !== jobPage.dataset.id) return;
    var change = String(event.change || "");
    var moves = ["on_the_way", "in_progress", "done", "cancelled", "no_show", "rescheduled"];
    if (moves.indexOf(change) !== -1 && change !== jobPage.dataset.status) {
      showStatus(t.msgUpdates, function () { window.location.reload(); });
    }
  }

  // ------------------------------------------------------------------ notifications

  var notifyButton = document.getElementById("notify-on");
  var worker = null; // Android Chrome shows notifications only through a service worker

  function canNotify() {
    return "Notification" in window && Notification.permission === "granted";
  }

  if ("serviceWorker" in navigator && root.dataset.workerUrl) {
    navigator.serviceWorker.register(root.dataset.workerUrl)
      .then(function (registration) { worker = registration; })
      .catch(function () { worker = null; });
    navigator.serviceWorker.addEventListener("message", function (message) {
      var open = message.data && message.data.open;
      if (typeof open === "string" && /^\/console\/c\/\d+$/.test(open)) window.location.assign(open);
    });
  }

  if (notifyButton && "Notification" in window && Notification.permission === "default") {
    notifyButton.hidden = false;
    notifyButton.addEventListener("click", function () {
      // Asked from a tap, as browsers require.
      Notification.requestPermission().then(function () {
        notifyButton.hidden = Notification.permission !== "default";
      });
    });
  }

  function notify(event) {
    if (!canNotify() || !document.hidden) return;
    var id = Number(event.conversation_id) || 0;
    var options = {
      body: event.preview ? String(event.preview) : t.notifyBody,
      tag: "dangol-conversation-" + id,
      data: { url: "/console/c/" + id }
    };
    if (worker && worker.showNotification) {
      worker.showNotification(t.notifyTitle, options).catch(function () { /* blocked */ });
      return;
    }
    try {
      var note = new Notification(t.notifyTitle, options);
      note.onclick = function () {
        window.focus();
        window.location.assign(options.data.url);
        note.close();
      };
    } catch (e) { /* a browser that allows them only from a service worker */ }
  }

  // ------------------------------------------------------------------ live events

  var connectedOnce = false;
  var offlineTimer = null;

  function refreshAll() {
    chromeChanged();
    inboxChanged();
    if (conversation) refreshTimeline();
  }

  function onEvent(event) {
    var sameConversation = convId !== null && String(event.conversation_id) === convId;
    if (event.type !== "hello" && event.type !== "signed_out") chromeChanged();
    switch (event.type) {
      case "hello":
        if (connectedOnce) refreshAll(); // we may have missed events while away
        connectedOnce = true;
        break;
      case "resync":
        refreshAll();
        break;
      case "signed_out":
        toLogin();
        break;
      case "message":
        if (event.direction === "in") notify(event);
        if (sameConversation) {
          refreshTimeline();
          if (event.direction === "in") markRead();
        }
        inboxChanged();
        break;
      case "status":
        if (timeline && document.getElementById("m-" + Number(event.message_id))) refreshTimeline();
        inboxChanged();
        break;
      case "job":
        jobChanged(event);
        break;
      case "conversation":
        if (sameConversation && event.change !== "read") {
          refreshTimeline();
          showStatus(t.msgUpdates, function () { window.location.reload(); });
        }
        inboxChanged();
        break;
      default:
        inboxChanged();
    }
  }

  var leaving = false;
  var source = null;

  window.addEventListener("pagehide", function () {
    leaving = true; // navigating away closes the stream: that is not an outage
    if (source) source.close();
  });

  function connect() {
    if (!("EventSource" in window) || leaving) return;
    source = new EventSource(t.eventsUrl);
    source.onopen = function () {
      clearTimeout(offlineTimer);
      if (liveStatus && liveStatus.textContent === t.msgOffline) hideStatus();
    };
    source.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (event && typeof event === "object") onEvent(event);
    };
    source.onerror = function () {
      if (leaving) return;
      clearTimeout(offlineTimer);
      offlineTimer = setTimeout(function () { showStatus(t.msgOffline, null); }, 3000);
      if (!source || source.readyState !== EventSource.CLOSED) return; // the browser retries
      // Refused (signed out, too many consoles…): find out which, then try again later.
      fetch("/console/api/me", { credentials: "same-origin" }).then(function (res) {
        if (res.status === 401) { toLogin(); return; }
        setTimeout(connect, 10000);
      }, function () { setTimeout(connect, 10000); });
    };
  }

  connect();
})();
