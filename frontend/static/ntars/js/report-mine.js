// My reports: tell the reporter, in the page, when one of their reports changes status.
// Listens on the hub socket for {"type": "report.status", report, status, label}.

const notice = document.getElementById("status-notice");
const MAX_ATTEMPTS = 5;

function applyStatus(event) {
  const card = document.querySelector(`[data-report-id="${Number(event.report)}"]`);
  if (card) {
    const status = card.querySelector("[data-status]");
    if (status) {
      status.textContent = event.label;
      status.className = `status status-${event.status}`;
    }
    card.classList.add("updated");
  }
  if (notice) {
    notice.textContent = `Report ${Number(event.report)} is now: ${event.label}.`;
    notice.hidden = false;
  }
}

function listen(attempt = 0) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/`);
  socket.addEventListener("open", () => { attempt = 0; });
  socket.addEventListener("message", (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (error) {
      return;
    }
    if (event && event.type === "report.status") applyStatus(event);
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4401 || attempt >= MAX_ATTEMPTS) return;
    window.setTimeout(() => listen(attempt + 1), 1000 * 2 ** attempt);
  });
}

if (document.querySelector(".report-list") && "WebSocket" in window) listen();
