// anomstream explorer: live alert list, plots, feedback buttons. No build step, no external fetches.
"use strict";

function token() {
  const input = document.getElementById("token");
  if (input && input.value) { localStorage.setItem("anomstream-token", input.value); }
  return input ? input.value : "";
}

async function sendFeedback(body) {
  const status = document.getElementById("feedback-status");
  const headers = { "Content-Type": "application/json" };
  const t = token();
  if (t) { headers["Authorization"] = "Bearer " + t; }
  const resp = await fetch("/api/feedback", { method: "POST", headers, body: JSON.stringify(body) });
  const doc = await resp.json().catch(() => ({}));
  status.textContent = resp.ok
    ? "published: " + doc.verdict + (doc.alert_id ? " on " + doc.alert_id : "")
    : "refused (" + resp.status + "): " + (doc.error || resp.statusText);
  status.className = resp.ok ? "ok" : "refused";
  const verdict = document.getElementById("verdict");
  if (resp.ok && verdict) { verdict.textContent = doc.verdict; }
}

function wireFeedback() {
  const input = document.getElementById("token");
  if (input && !input.value) { input.value = localStorage.getItem("anomstream-token") || ""; }
  document.querySelectorAll("button[data-verdict]").forEach((button) => {
    button.addEventListener("click", () => sendFeedback({
      alert_id: button.dataset.alert, verdict: button.dataset.verdict,
    }));
  });
  const missed = document.getElementById("missed-form");
  if (missed) {
    missed.addEventListener("submit", (event) => {
      event.preventDefault();
      const form = new FormData(missed);
      sendFeedback({
        verdict: "missed", stream: form.get("stream"), entity_id: form.get("entity_id"),
        start: new Date(form.get("start")).toISOString(), end: new Date(form.get("end")).toISOString(),
      });
    });
  }
}

function drawPlot() {
  const data = document.getElementById("figure");
  if (!data || typeof Plotly === "undefined") { return; }
  const fig = JSON.parse(data.textContent);
  Plotly.newPlot("plot", fig.data, fig.layout, { responsive: true, displaylogo: false });
}

function liveList() {
  const body = document.querySelector("#alerts tbody");
  if (!body) { return; }
  setInterval(async () => {
    const resp = await fetch("/fragments/alerts" + window.location.search);
    if (resp.ok) { body.innerHTML = await resp.text(); }
  }, 2000);
}

document.addEventListener("DOMContentLoaded", () => { drawPlot(); wireFeedback(); liveList(); });
