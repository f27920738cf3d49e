// Online/offline indicator. The region is a polite live region that stays in the page while empty,
// so a screen reader announces each change.

const OFFLINE_TEXT = "You are offline. Pages will load again when your signal returns.";
const ONLINE_TEXT = "Back online.";
const ONLINE_NOTICE_MS = 5000;

/** Keep `region` telling the person whether the device is online. */
export function watchConnection(region) {
  if (!region) return;
  let clearTimer = 0;

  const show = (state, text) => {
    window.clearTimeout(clearTimer);
    region.dataset.state = state;
    region.textContent = text;
    document.documentElement.dataset.network = state;
  };

  window.addEventListener("offline", () => show("offline", OFFLINE_TEXT));
  window.addEventListener("online", () => {
    show("online", ONLINE_TEXT);
    clearTimer = window.setTimeout(() => {
      region.textContent = "";
      delete region.dataset.state;
    }, ONLINE_NOTICE_MS);
  });
  if (!navigator.onLine) show("offline", OFFLINE_TEXT);
  else document.documentElement.dataset.network = "online";
}
