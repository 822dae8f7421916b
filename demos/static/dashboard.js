// The live pool dashboard: frames and events from /dashboard/events
// (server-sent events), controls posting to /api/load/*.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const MAX_FRAMES = 120;
  const MAX_EVENTS = 60;
  const frames = [];
  let frameCount = 0;
  let interval = 0.5;

  const fmt = (v) => (v === null || v === undefined ? "-" : String(v));
  const clock = (t) => new Date(t * 1000).toTimeString().slice(0, 8) + "." +
    String(Math.floor((t % 1) * 1000)).padStart(3, "0");

  function setLive(state) {
    const badge = $("live");
    badge.textContent = state;
    badge.className = "badge " + (state === "live" ? "on" : "off");
  }

  function renderFrame(f) {
    for (const key of ["open", "max_size", "size", "in_use", "idle", "waiting", "rate",
                       "requests", "connects", "closes", "errors_total"]) {
      $("m-" + key).textContent = fmt(f[key]);
    }
    for (const kind of ["wait", "use"]) {
      for (const q of Object.keys(f[kind + "_ms"])) {
        $("lat-" + kind + "-" + q).textContent = fmt(f[kind + "_ms"][q]);
      }
    }
    const rows = f.connections.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.id = c.id;
      tr.dataset.state = c.state;
      tr.className = "state-" + c.state.replace(" ", "-");
      const since = c.held_s !== null ? c.held_s + " held" : (c.idle_s !== null ? c.idle_s + " idle" : "");
      for (const [text, cls] of [["#" + c.id, ""], [c.state, ""], [c.age_s, "num"], [c.uses, "num"], [since, "num"]]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    });
    $("connections").tBodies[0].replaceChildren(...rows);
    const errors = Object.entries(f.errors).sort((a, b) => b[1] - a[1]);
    const body = $("errors").tBodies[0];
    if (errors.length) {
      body.replaceChildren(...errors.map(([name, count]) => {
        const tr = document.createElement("tr");
        tr.dataset.error = name;
        tr.innerHTML = "<td></td><td class='num'></td>";
        tr.cells[0].textContent = name;
        tr.cells[1].textContent = count;
        return tr;
      }));
    }
    const a = f.activity || {};
    const parts = [];
    if (a.bursts) parts.push("burst " + a.burst_done + "/" + a.burst_total);
    if (a.held) parts.push(a.held + " held");
    const failed = Object.entries(a.failed || {}).map(([k, v]) => v + " " + k);
    if (failed.length) parts.push("failed: " + failed.join(", "));
    $("activity").textContent = parts.length ? parts.join("; ") : "nothing";
    $("activity").dataset.busy = a.bursts || a.held ? "1" : "0";
  }

  function drawCharts() {
    const pick = (fn) => frames.map(fn);
    const conns = [
      {label: "in use", color: "#d9480f", values: pick((f) => f.in_use)},
      {label: "idle", color: "#2b8a3e", values: pick((f) => f.idle)},
      {label: "waiting", color: "#5f3dc4", values: pick((f) => f.waiting)},
    ];
    const latency = [
      {label: "wait p95", color: "#5f3dc4", values: pick((f) => f.wait_ms.p95)},
      {label: "use p95", color: "#d9480f", values: pick((f) => f.use_ms.p95)},
      {label: "use p99", color: "#f08c00", values: pick((f) => f.use_ms.p99)},
    ];
    const rate = [{label: "requests/s", color: "#1971c2", values: pick((f) => f.rate)}];
    const max = frames.length ? frames[frames.length - 1].max_size : 1;
    drawChart($("chart-conns"), conns, {max: max, interval: interval});
    drawChart($("chart-latency"), latency, {unit: "", interval: interval});
    drawChart($("chart-rate"), rate, {interval: interval});
    drawLegend($("legend-conns"), conns);
    drawLegend($("legend-latency"), latency);
    drawLegend($("legend-rate"), rate);
  }

  function addFrame(f, draw) {
    frames.push(f);
    if (frames.length > MAX_FRAMES) frames.shift();
    frameCount += 1;
    $("frames").textContent = frameCount;
    renderFrame(f);
    if (draw) drawCharts();
  }

  function addEvent(e) {
    const li = document.createElement("li");
    li.dataset.kind = e.kind;
    li.dataset.source = e.source;
    if (e.connection_id !== null) li.dataset.id = e.connection_id;
    li.className = "ev-" + e.kind;
    const time = document.createElement("time");
    time.textContent = clock(e.at);
    const kind = document.createElement("b");
    kind.textContent = e.kind;
    const text = (e.connection_id !== null ? " #" + e.connection_id : "") + (e.detail ? " " + e.detail : "");
    li.append(time, " ", kind, document.createTextNode(text));
    const list = $("events");
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }

  function listen() {
    const source = new EventSource("/dashboard/events");
    source.addEventListener("hello", (msg) => {
      const hello = JSON.parse(msg.data);
      interval = hello.interval;
      $("window").textContent = hello.window;
      frames.length = 0;
      $("events").replaceChildren();
      hello.frames.forEach((f) => addFrame(f, false));
      hello.events.forEach(addEvent);
      drawCharts();
      setLive("live");
    });
    source.addEventListener("frame", (msg) => addFrame(JSON.parse(msg.data), true));
    source.addEventListener("event", (msg) => addEvent(JSON.parse(msg.data)));
    source.onerror = () => setLive(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting");
  }

  async function post(action, body) {
    const status = $("control-status");
    status.textContent = action + " ...";
    try {
      const response = await fetch("/api/load/" + action, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(body),
      });
      const data = await response.json();
      status.textContent = response.ok
        ? action + ": " + (data.started || ("killed #" + data.killed + " (" + data.state + ")"))
        : action + " refused: " + data.error;
      status.dataset.ok = response.ok ? "1" : "0";
    } catch (err) {
      status.textContent = action + " failed: " + err;
      status.dataset.ok = "0";
    }
  }

  function formBody(form) {
    const body = {};
    for (const [k, v] of new FormData(form)) body[k] = Number(v);
    return body;
  }

  $("burst-form").addEventListener("submit", (e) => { e.preventDefault(); post("burst", formBody(e.target)); });
  $("hold-form").addEventListener("submit", (e) => { e.preventDefault(); post("hold", formBody(e.target)); });
  for (const id of ["btn-kill-busy", "btn-kill-idle"]) {
    $(id).addEventListener("click", (e) => post("kill", {state: e.target.dataset.state}));
  }
  window.addEventListener("resize", drawCharts);
  listen();
})();
