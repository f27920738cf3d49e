// NTARS shell entry point. Progressive enhancement only: every page works without JavaScript, and each
// feature below checks for what it needs before touching the page.
import { listenForAlerts } from "./alerts-banner.js";
import { enhanceMenu } from "./menu.js";
import { watchConnection } from "./network.js";
import { registerServiceWorker } from "./pwa.js";
import { enhanceTables } from "./tables.js";

document.documentElement.classList.add("js");

enhanceMenu(document);
enhanceTables(document);
watchConnection(document.getElementById("net-status"));
listenForAlerts(document);
registerServiceWorker().catch((error) => {
  // The site works without a service worker (no offline page): say why in the console only.
  console.warn("NTARS: service worker not registered:", error.name);
});
