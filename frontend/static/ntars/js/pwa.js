// Service worker registration and the "new version" prompt.
//
// A new worker waits until the person chooses to update (a reload could lose what they are typing); the
// first worker on a device takes control at once (sw.js calls clients.claim()).

const SW_URL = "/sw.js";

/** Register /sw.js for the whole site and offer updates as they arrive. Resolves to the registration. */
export async function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return null;
  const registration = await register();

  let accepted = false;
  const offer = (worker) => {
    // No controller yet means this is the first install: nothing to update from.
    if (!navigator.serviceWorker.controller) return;
    showUpdateBanner(() => {
      accepted = true;
      worker.postMessage({ type: "SKIP_WAITING" });
    });
  };

  if (registration.waiting) offer(registration.waiting);
  registration.addEventListener("updatefound", () => {
    const worker = registration.installing;
    if (!worker) return;
    worker.addEventListener("statechange", () => {
      if (worker.state === "installed") offer(worker);
    });
  });
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (accepted) window.location.reload();
  });
  // Phones keep an installed app open for days: look for a new version whenever it comes back to the front.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") registration.update().catch(() => {});
  });
  return registration;
}

async function register() {
  // A module worker only: sw.js imports alerts-sw.js (push notifications), so it cannot run as a classic
  // script. Browsers without module service workers reject this; the site works on without a worker.
  return navigator.serviceWorker.register(SW_URL, { scope: "/", type: "module" });
}

function showUpdateBanner(onAccept) {
  if (document.getElementById("update-banner")) return;
  const banner = document.createElement("div");
  banner.id = "update-banner";
  banner.className = "update-banner";
  banner.setAttribute("role", "status");
  const text = document.createElement("p");
  text.textContent = "A new version of NTARS is ready.";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "primary";
  button.textContent = "Update now";
  button.addEventListener("click", () => {
    button.disabled = true;
    button.textContent = "Updating…";
    onAccept();
  });
  banner.append(text, button);
  const anchor = document.getElementById("net-status") || document.querySelector("main");
  anchor.before(banner);
}
