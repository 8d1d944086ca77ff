// weir's console: progressive enhancement only, every page works without
// it. It follows a running node's log as it grows, and shows an execution's
// instants in the viewer's own time zone beside the UTC ones. Text is only ever set
// with textContent: nothing from the server is parsed as HTML.
"use strict";

function followLog(pre) {
  const url = pre.dataset.follow;
  if (!url || !window.fetch || !window.TextDecoder) return;
  const status = document.getElementById("log-status");
  fetch(url, { credentials: "same-origin" }).then((response) => {
    if (!response.ok || !response.body) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let first = true;
    const pump = () => reader.read().then(({ done, value }) => {
      if (done) {
        if (status) status.textContent = "ended";
        return;
      }
      // The stream starts from the beginning of the log: it replaces what
      // the page was rendered with.
      if (first) { pre.textContent = ""; first = false; }
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += decoder.decode(value, { stream: true });
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      return pump();
    });
    if (status) status.textContent = "following";
    return pump();
  }).catch(() => {
    if (status) status.textContent = "not following (connection lost): reload the page";
  });
}

function localTimes() {
  for (const el of document.querySelectorAll("time[data-local]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (isNaN(at)) continue;
    const local = document.createElement("span");
    local.className = "local";
    local.textContent = "(" + at.toLocaleString() + ")";
    el.after(local);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const pre of document.querySelectorAll("pre[data-follow]")) followLog(pre);
  localTimes();
});
