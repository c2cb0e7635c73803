// Operator console: confirmation dialogs and the live-calls list. No dependencies.
"use strict";

(function () {
  var dialog = document.getElementById("confirm");

  // Forms with data-confirm ask first, in an accessible modal dialog.
  function askThenSubmit(form, message) {
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(message)) { form.submit(); }
      return;
    }
    document.getElementById("confirm-text").textContent = message;
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "ok") { form.submit(); }
    });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) { return; }
    ev.preventDefault();
    askThenSubmit(form, form.getAttribute("data-confirm"));
  });

  // ------------------------------------------------------------------ live calls
  var table = document.getElementById("live-table");
  if (!table) { return; }
  var rows = document.getElementById("live-rows");
  var empty = document.getElementById("live-empty");
  var conn = document.getElementById("conn");
  var connText = document.getElementById("conn-text");
  var template = document.getElementById("hangup-template");
  var prefix = table.getAttribute("data-prefix");
  var calls = [];
  var skew = 0; // server clock minus ours, so durations do not drift with a wrong clock

  function fmt(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }

  function now() { return Date.now() / 1000 + skew; }

  function cell(label, content, cls) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (cls) { td.className = cls; }
    if (content instanceof Node) { td.appendChild(content); } else { td.textContent = content; }
    return td;
  }

  function render() {
    var seen = {};
    rows.querySelectorAll("tr").forEach(function (tr) { seen[tr.getAttribute("data-sid")] = tr; });
    var keep = {};
    calls.forEach(function (c) {
      keep[c.call_sid] = true;
      var tr = seen[c.call_sid];
      var fresh = !tr;
      if (fresh) {
        tr = document.createElement("tr");
        tr.setAttribute("data-sid", c.call_sid);
        tr.className = "appear";
        var number = document.createElement("a");
        number.href = prefix + "/calls/" + encodeURIComponent(c.call_sid);
        number.className = "rowlink";
        tr.appendChild(cell("Number", number, "c-number"));
        tr.appendChild(cell("Caller", "", "c-caller nowrap"));
        tr.appendChild(cell("Agent", document.createElement("code"), "c-agent"));
        tr.appendChild(cell("Duration", "", "dur"));
        var badge = document.createElement("span");
        badge.className = "badge badge-live";
        tr.appendChild(cell("State", badge, "c-state"));
        tr.appendChild(cell("Audio", "", "c-audio"));
        tr.appendChild(cell("Relay p99", "", "c-p99 nowrap"));
        tr.appendChild(cell("Turns", "", "c-turns"));
        tr.appendChild(cell("Instance", document.createElement("code"), "c-instance"));
        var form = template.content.firstElementChild.cloneNode(true);
        form.action = prefix + "/calls/" + encodeURIComponent(c.call_sid) + "/hangup";
        tr.appendChild(cell("", form, "right"));
      }
      // Update in place: a hang-up dialog open on this row keeps its form.
      tr.querySelector(".c-number a").textContent = c.number;
      tr.querySelector(".c-caller").textContent = c.caller;
      var agentCell = tr.querySelector(".c-agent code");
      agentCell.textContent = c.agent_name;
      agentCell.title = c.agent_id;
      tr.querySelector(".dur").textContent = fmt(now() - c.started_at);
      tr.querySelector(".c-state .badge").textContent = c.state.replace("-", " ");
      tr.querySelector(".c-audio").textContent = c.audio_format;
      tr.querySelector(".c-p99").textContent =
        c.relay_p99_ms === null ? "—" : c.relay_p99_ms.toFixed(1) + " ms";
      tr.querySelector(".c-turns").textContent = c.turns === null ? "—" : String(c.turns);
      tr.querySelector(".c-instance code").textContent = c.instance;
      var f = tr.querySelector("form");
      f.setAttribute("data-confirm", "Hang up the call to " + c.number + " from " + c.caller +
        "? The caller is disconnected at once.");
      f.querySelector("button").setAttribute("aria-label", "Hang up the call to " + c.number);
      if (fresh) { rows.appendChild(tr); }
    });
    Object.keys(seen).forEach(function (sid) { if (!keep[sid]) { seen[sid].remove(); } });
    empty.hidden = calls.length > 0;
    table.hidden = calls.length === 0;
    summary();
  }

  function summary() {
    document.getElementById("live-count").textContent = String(calls.length);
    var longest = calls.reduce(function (a, c) { return Math.max(a, now() - c.started_at); }, 0);
    document.getElementById("live-longest").textContent = calls.length ? fmt(longest) : "–";
    var agents = {};
    calls.forEach(function (c) { agents[c.agent_id] = true; });
    document.getElementById("live-agents").textContent = String(Object.keys(agents).length);
  }

  function tick() {
    rows.querySelectorAll("tr").forEach(function (tr) {
      var sid = tr.getAttribute("data-sid");
      var c = calls.find(function (x) { return x.call_sid === sid; });
      if (c) { tr.querySelector(".dur").textContent = fmt(now() - c.started_at); }
    });
    summary();
  }

  function state(name, text) {
    conn.setAttribute("data-state", name);
    connText.textContent = text;
  }

  table.hidden = true;
  var source = new EventSource(table.getAttribute("data-events"));
  source.addEventListener("open", function () { state("open", "Live"); });
  source.addEventListener("error", function () {
    state(source.readyState === EventSource.CLOSED ? "closed" : "connecting",
      source.readyState === EventSource.CLOSED ? "Disconnected: reload the page" : "Reconnecting…");
  });
  source.addEventListener("calls", function (ev) {
    var snap = JSON.parse(ev.data);
    skew = snap.at - Date.now() / 1000;
    calls = snap.calls;
    if (snap.complete) { state("open", "Live"); } else { state("partial", "Live: this instance only (store unavailable)"); }
    render();
  });
  setInterval(tick, 500);
})();
