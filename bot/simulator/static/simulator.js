// dangol customer simulator: a KakaoTalk-like chat room that speaks to /simulator/api/say.
// Every piece of text goes into the page with textContent — customer and bot text alike are
// untrusted. The Korean UI strings come from data-* attributes on #sim (see index.html).
(function () {
  "use strict";

  var FOLD_AT = 500; // Kakao folds a simpleText after 500 characters behind "전체 보기"

  var root = document.getElementById("sim");
  if (!root) return;
  var t = root.dataset;
  var chat = document.getElementById("chat");
  var form = document.getElementById("composer");
  var input = document.getElementById("text");
  var sendButton = document.getElementById("send");
  var resetButton = document.getElementById("reset");
  var shopField = document.getElementById("shop");
  var examples = document.getElementById("examples");
  var examplesBox = examples; // shown again whenever the room starts over

  var busy = false;
  var memory = {}; // used when localStorage is unavailable (private mode, file://)
  var lastDay = "";

  // ------------------------------------------------------------------ identity and shop

  function storageGet(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return memory[key] || null; }
  }

  function storageSet(key, value) {
    memory[key] = value;
    try { window.localStorage.setItem(key, value); } catch (e) { /* memory copy is enough */ }
  }

  function newUserKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function currentShop() {
    return shopField ? shopField.value : "";
  }

  function shopName() {
    if (!shopField) return "";
    if (shopField.tagName === "SELECT") {
      var option = shopField.options[shopField.selectedIndex];
      return option ? option.dataset.name || option.textContent : "";
    }
    return shopField.dataset.name || "";
  }

  function userKey(fresh) {
    var key = "dangol-simulator:user:" + currentShop();
    var value = storageGet(key);
    if (fresh || !value || !/^[A-Za-z0-9_-]{8,64}$/.test(value)) {
      value = newUserKey();
      storageSet(key, value);
    }
    return value;
  }

  // ------------------------------------------------------------------ the transcript

  // The room is kept in localStorage, per shop and customer, so a reload shows it again.
  // Entries hold plain strings and are drawn again with textContent, like live ones.
  var TRANSCRIPT_MAX = 200;
  var replaying = false;

  function transcriptKey() {
    return "dangol-simulator:chat:" + currentShop() + ":" + userKey(false);
  }

  function loadTranscript() {
    try {
      var entries = JSON.parse(storageGet(transcriptKey()) || "[]");
      return Array.isArray(entries) ? entries : [];
    } catch (e) {
      return [];
    }
  }

  function remember(entry) {
    if (replaying) return;
    var entries = loadTranscript();
    entries.push(entry);
    storageSet(transcriptKey(), JSON.stringify(entries.slice(-TRANSCRIPT_MAX)));
  }

  function replay() {
    var entries = loadTranscript();
    if (entries.length === 0) return;
    if (examples) { examples.remove(); examples = null; }
    replaying = true;
    entries.forEach(function (e) {
      if (!e || typeof e !== "object") return;
      var at = new Date(Number(e.at) || Date.now());
      if (e.kind === "me") {
        addCustomer(String(e.text || ""), at);
      } else if (e.kind === "bot" && Array.isArray(e.texts)) {
        var body = botGroup();
        e.texts.forEach(function (text, index) { addBotBubble(body, String(text), index === 0); });
      } else if (e.kind === "owner") {
        addOwnerReply(String(e.text || ""), e.photos, at, e.from);
      }
    });
    replaying = false;
  }

  // ------------------------------------------------------------------ building the room

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function clockText(date) {
    var h = date.getHours();
    var label = h < 12 ? t.am : t.pm;
    var h12 = h % 12 === 0 ? 12 : h % 12;
    return label + " " + h12 + ":" + pad(date.getMinutes());
  }

  function dayDivider(date) {
    var weekdays = (t.weekdays || "").split(",");
    var text = (t.dateFormat || "{y}.{m}.{d}")
      .replace("{y}", String(date.getFullYear()))
      .replace("{m}", String(date.getMonth() + 1))
      .replace("{d}", String(date.getDate()))
      .replace("{w}", weekdays[date.getDay()] || "");
    if (text === lastDay) return;
    lastDay = text;
    chat.appendChild(el("div", "day", text));
  }

  function scrollDown() {
    chat.scrollTop = chat.scrollHeight;
  }

  function note(text, warn) {
    chat.appendChild(el("p", warn ? "notice notice-warn" : "notice", text));
    scrollDown();
  }

  function fillText(bubble, text) {
    if (text.length <= FOLD_AT) {
      bubble.appendChild(el("span", "text", text));
      return;
    }
    var span = el("span", "text", text.slice(0, FOLD_AT) + "…");
    var more = el("button", "more", t.more);
    more.type = "button";
    more.addEventListener("click", function () {
      span.textContent = text;
      more.remove();
    });
    bubble.appendChild(span);
    bubble.appendChild(more);
  }

  function addCustomer(text, at) {
    var now = at || new Date();
    remember({ kind: "me", text: text, at: now.getTime() });
    dayDivider(now);
    var row = el("div", "row row-me");
    row.appendChild(el("span", "meta", clockText(now)));
    var bubble = el("div", "bubble bubble-me");
    fillText(bubble, text);
    row.appendChild(bubble);
    chat.appendChild(row);
    scrollDown();
  }

  function isOwnerReply(text) {
    return text.charAt(0) === "[" && text.indexOf("사장님 답장]") !== -1;
  }

  function botGroup() {
    var group = el("div", "group");
    var avatar = el("div", "avatar", (shopName() || "?").charAt(0));
    avatar.setAttribute("aria-hidden", "true");
    group.appendChild(avatar);
    var body = el("div", "group-body");
    body.appendChild(el("div", "name", shopName()));
    group.appendChild(body);
    chat.appendChild(group);
    return body;
  }

  function addBotBubble(body, text, first) {
    var owner = isOwnerReply(text);
    var row = el("div", "row row-bot");
    var bubble = el("div", "bubble bubble-bot" + (first ? " tail" : "") + (owner ? " bubble-owner" : ""));
    if (owner) bubble.appendChild(el("span", "owner-label", t.labelOwner));
    fillText(bubble, text);
    row.appendChild(bubble);
    body.appendChild(row);
    return row;
  }

  // The texts a component would show, for the few shapes we draw; null if we do not draw it.
  function componentTexts(output) {
    if (!output || typeof output !== "object") return null;
    if (output.simpleText) return [String(output.simpleText.text || "")];
    var card = output.textCard || output.basicCard;
    if (card) return [[card.title, card.description].filter(Boolean).join("\n")];
    if (output.simpleImage) return [String(output.simpleImage.altText || "")];
    return null;
  }

  function showTyping() {
    var body = botGroup();
    body.parentNode.classList.add("typing-group");
    var row = el("div", "row row-bot");
    var bubble = el("div", "bubble bubble-bot tail typing");
    for (var i = 0; i < 3; i++) bubble.appendChild(el("span", "dot"));
    row.appendChild(bubble);
    body.appendChild(row);
    scrollDown();
    return body.parentNode;
  }

  function clearQuickReplies() {
    var old = chat.querySelectorAll(".quick");
    for (var i = 0; i < old.length; i++) old[i].remove();
  }

  function addQuickReplies(replies) {
    if (!Array.isArray(replies) || replies.length === 0) return;
    var box = el("div", "quick");
    replies.forEach(function (reply) {
      if (!reply || typeof reply !== "object") return;
      var label = String(reply.label || "");
      if (!label) return;
      var chip = el("button", "chip", label);
      chip.type = "button";
      chip.addEventListener("click", function () {
        var extra = reply.extra && typeof reply.extra === "object" ? reply.extra : {};
        // A tapped quick reply is sent as its messageText, exactly as KakaoTalk does.
        send(String(reply.messageText || label), extra);
      });
      box.appendChild(chip);
    });
    chat.appendChild(box);
  }

  function renderAnswer(data) {
    var response = data.response || {};
    var template = response.template || {};
    var outputs = Array.isArray(template.outputs) ? template.outputs : [];
    var body = botGroup();
    var lastRow = null;
    if (response.useCallback && outputs.length === 0) {
      var waiting = response.data && response.data.text ? String(response.data.text) : t.msgCallback;
      lastRow = addBotBubble(body, waiting, true);
    }
    var shown = [];
    outputs.forEach(function (output, index) {
      var texts = componentTexts(output);
      var text = texts ? texts.join("\n") : t.msgUnsupported;
      shown.push(text);
      lastRow = addBotBubble(body, text, index === 0);
    });
    remember({ kind: "bot", texts: shown, at: Date.now() });
    var meta = el("span", "meta");
    var seconds = (Number(data.elapsed_ms) || 0) / 1000;
    meta.textContent = t.labelElapsed + " " + seconds.toFixed(2) + t.seconds;
    meta.title = t.titleElapsed;
    if (data.status !== 200) {
      meta.textContent += " · " + t.msgStatus + " " + data.status;
      meta.classList.add("meta-warn");
    }
    if (lastRow) {
      lastRow.appendChild(meta);
    } else {
      body.appendChild(meta);
    }
    addQuickReplies(template.quickReplies);
    scrollDown();
  }

  // ------------------------------------------------------------------ the owner's replies

  // The owner answers from the console; the simulator's customer gets it pushed, as a
  // KakaoTalk user would see the shop's reply arrive. A long poll: the server holds each
  // request until a reply comes (or ~20 s pass), then we ask again.
  var pollGeneration = 0;
  var lastOwnerId = null;

  // `from`: "owner" (a reply from the console) or "bot" (a journey message: a booking
  // confirmation, a survey), which the shop's channel sends with no owner label.
  function addOwnerReply(text, photos, at, from) {
    var now = at || new Date();
    remember({ kind: "owner", text: text, photos: photos, at: now.getTime(), from: from });
    if (examples) { examples.remove(); examples = null; }
    dayDivider(now);
    var body = botGroup();
    var row = el("div", "row row-bot");
    var bubble = el("div", from === "bot" ? "bubble bubble-bot tail" : "bubble bubble-bot tail bubble-owner");
    if (from !== "bot") bubble.appendChild(el("span", "owner-label", t.labelOwner));
    if (text) fillText(bubble, text); // a photo may come alone
    (Array.isArray(photos) ? photos : []).forEach(function (url) {
      // Only our own capability URLs (/p/<random name>), as the server sends them.
      if (typeof url !== "string" || !/^\/p\/[A-Za-z0-9_-]+\.jpg$/.test(url)) return;
      var image = el("img", "photo");
      image.src = url;
      image.alt = t.labelPhoto || "";
      image.addEventListener("load", scrollDown);
      bubble.appendChild(image);
    });
    row.appendChild(bubble);
    row.appendChild(el("span", "meta", clockText(now)));
    body.appendChild(row);
    scrollDown();
  }

  function updatesUrl() {
    var query = "?shop=" + encodeURIComponent(currentShop()) +
      "&user=" + encodeURIComponent(userKey(false));
    if (lastOwnerId !== null) query += "&after=" + lastOwnerId + "&wait=1";
    return root.dataset.updatesUrl + query;
  }

  function poll(generation) {
    if (generation !== pollGeneration || !currentShop() || !root.dataset.updatesUrl) return;
    fetch(updatesUrl(), { credentials: "same-origin" })
      .then(function (res) { return res.ok ? res.json() : Promise.reject(res.status); })
      .then(function (data) {
        if (generation !== pollGeneration) return; // the room was reset meanwhile
        if (lastOwnerId !== null && Array.isArray(data.messages)) {
          data.messages.forEach(function (m) {
            addOwnerReply(String(m && m.text || ""), m && m.photos, null, m && m.from);
            if (m && Array.isArray(m.quick_replies) && m.quick_replies.length) {
              clearQuickReplies();
              addQuickReplies(m.quick_replies);
              scrollDown();
            }
          });
        }
        lastOwnerId = Number(data.last) || 0;
        setTimeout(function () { poll(generation); }, 200);
      }, function () {
        setTimeout(function () { poll(generation); }, 5000);
      });
  }

  function followOwnerReplies() {
    pollGeneration += 1;
    lastOwnerId = null; // first ask where to start: earlier replies are not replayed
    poll(pollGeneration);
  }

  // ------------------------------------------------------------------ talking

  function setBusy(value) {
    busy = value;
    sendButton.disabled = value || !input.value.trim();
  }

  function send(text, extra) {
    text = String(text || "").trim();
    if (busy || !text || !currentShop()) return;
    if (examples) { examples.remove(); examples = null; }
    clearQuickReplies();
    addCustomer(text);
    var typing = showTyping();
    setBusy(true);
    var shop = currentShop();
    var payload = { shop: shop, user: userKey(false), text: text, extra: extra || null };
    fetch(root.dataset.sayUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
      credentials: "same-origin"
    })
      .then(function (res) {
        return res.json().then(
          function (data) { return { ok: res.ok, data: data }; },
          function () { return { ok: false, data: null }; }
        );
      })
      .then(function (result) {
        typing.remove();
        if (shop !== currentShop()) return; // the room was switched while we waited
        if (result.ok && result.data && result.data.response) {
          renderAnswer(result.data);
        } else {
          note(result.data && result.data.message ? result.data.message : t.msgNetwork, true);
        }
      })
      .catch(function () {
        typing.remove();
        note(t.msgNetwork, true);
      })
      .then(function () {
        setBusy(false);
        input.focus();
      });
  }

  function resetRoom(freshCustomer) {
    var keep = chat.querySelector(".notice");
    while (chat.firstChild) chat.removeChild(chat.firstChild);
    if (keep) chat.appendChild(keep);
    lastDay = "";
    if (freshCustomer) {
      storageSet(transcriptKey(), "[]"); // the old customer's room is over
      userKey(true);
      note(t.msgNewCustomer, false);
    }
    if (examplesBox) {
      examples = examplesBox;
      chat.appendChild(examples);
    }
    if (!freshCustomer) replay(); // another shop's room, as it was left
    followOwnerReplies();
  }

  function growInput() {
    var border = input.offsetHeight - input.clientHeight; // scrollHeight leaves the border out
    input.style.height = "auto";
    var wanted = input.scrollHeight + border;
    input.style.height = Math.min(wanted, 120) + "px";
    input.style.overflowY = wanted > 120 ? "auto" : "hidden";
    sendButton.disabled = busy || !input.value.trim();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim() || busy) return;
    input.value = "";
    growInput();
    send(text, null);
  });

  input.addEventListener("keydown", function (event) {
    // isComposing: Enter that ends a Hangul syllable in the IME must not send the message.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  input.addEventListener("input", growInput);

  resetButton.addEventListener("click", function () {
    resetRoom(true);
    input.focus();
  });

  if (shopField && shopField.tagName === "SELECT") {
    var saved = storageGet("dangol-simulator:shop");
    if (saved) {
      for (var i = 0; i < shopField.options.length; i++) {
        if (shopField.options[i].value === saved) shopField.selectedIndex = i;
      }
    }
    shopField.addEventListener("change", function () {
      storageSet("dangol-simulator:shop", shopField.value);
      resetRoom(false);
    });
  }

  if (examplesBox) {
    examplesBox.addEventListener("click", function (event) {
      var target = event.target;
      if (target && target.classList && target.classList.contains("example")) {
        send(target.dataset.text, null);
      }
    });
  }

  growInput();
  replay();
  followOwnerReplies();
})();
