// 고객 목록 가져오기: sends the chosen file with the CSRF token as the X-CSRF-Token header, so
// the server streams it and counts it as it arrives (a form field would make the CSRF check
// read the whole body first, within the small form limit). Without this script the form
// posts as it is. Messages come from the server; they are written with textContent.
(function () {
  "use strict";

  var form = document.getElementById("import-upload");
  var box = document.getElementById("import-error");
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (!form || !box || !meta || !window.FormData || !window.fetch) return;
  var csrf = meta.getAttribute("content");
  var busy = false;

  function show(text) {
    box.textContent = text;
    box.hidden = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    var input = form.querySelector('input[type="file"]');
    if (!input || !input.files || !input.files.length) {
      show("올릴 파일을 골라 주세요.");
      return;
    }
    var body = new FormData();
    body.append("file", input.files[0]);
    busy = true;
    var button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
      body: body
    })
      .then(function (res) {
        return res.json().then(function (data) { return { ok: res.ok, data: data }; });
      })
      .then(function (result) {
        if (result.ok && result.data && result.data.location) {
          window.location.assign(result.data.location);
          return;
        }
        show((result.data && result.data.message) || "파일을 올리지 못했어요. 다시 시도해 주세요.");
      })
      .catch(function () {
        show("파일을 올리지 못했어요. 연결을 확인하고 다시 시도해 주세요.");
      })
      .then(function () {
        busy = false;
        if (button) button.disabled = false;
      });
  });
})();
