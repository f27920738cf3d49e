// A "Reported" badge on the chat messages this user promoted to reports (only their own view: the server
// answers with the seqs of this user's own reports). Refreshed when the thread comes back into view, e.g.
// after filing the report.
const REPORTED_API = "/api/v1/reports/reported-messages";

export function markReported(list, group) {
  let seqs = new Set();
  const mark = (node) => {
    if (!(node instanceof HTMLLIElement) || !seqs.has(Number(node.dataset.seq)) || node.querySelector(".msg-reported")) return;
    const badge = document.createElement("span");
    badge.className = "badge msg-reported";
    badge.textContent = "Reported";
    badge.title = "You reported this message";
    const foot = node.querySelector(".msg-foot");
    (foot || node).prepend(badge, " ");
  };
  const markAll = () => list.querySelectorAll("li.msg[data-seq]").forEach(mark);
  new MutationObserver((records) => {
    for (const record of records) record.addedNodes.forEach(mark);
  }).observe(list, { childList: true });
  const refresh = async () => {
    try {
      const response = await fetch(`${REPORTED_API}?group=${encodeURIComponent(group)}`, { credentials: "same-origin" });
      if (!response.ok) return;
      seqs = new Set((await response.json()).seqs || []);
      markAll();
    } catch (error) {
      // offline: the badges come with the next refresh
    }
  };
  refresh();
  window.addEventListener("pageshow", (event) => { if (event.persisted) refresh(); });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refresh(); });
}
