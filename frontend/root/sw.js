// NTARS service worker: an installable, offline-capable shell.
//
// Data protection (phones are shared): this worker stores only the public shell (styles, scripts, icons,
// the manifest and the /offline/ page, fetched without cookies). It never stores a signed-in page, a form,
// an API or JSON response: navigations go to the network and fall back to /offline/; everything that is
// not a static file passes straight through.
//
// Updating: SHELL_VERSION names the cache. tests/frontend/test_pwa.py checks that it matches the precached
// files, so any change to them changes this file, which makes browsers install the new worker; it waits
// until the person presses "Update now" (pwa.js), then activates, deletes older caches and takes over.
//
// Later features add their handlers in the "Extension points" section at the end.

// Push notifications (issue 6). A static import: this is a module worker (see pwa.js); the browser fetches
// imported modules with the worker and re-checks them on update, so they need no PRECACHE entry.
import { openFromNotification, showPush } from "/static/ntars/js/alerts-sw.js";

const SHELL_VERSION = "17f340082071";
const CACHE_PREFIX = "ntars-shell-";
const SHELL_CACHE = `${CACHE_PREFIX}${SHELL_VERSION}`;
const OFFLINE_URL = "/offline/";
const STATIC_PREFIX = "/static/";

// Everything the offline page needs to render and run, plus the install metadata.
const PRECACHE = [
  "/static/ntars/css/app.css",
  "/static/ntars/js/alerts-banner.js",
  "/static/ntars/js/app.js",
  "/static/ntars/js/menu.js",
  "/static/ntars/js/network.js",
  "/static/ntars/js/pwa.js",
  "/static/ntars/js/tables.js",
  "/static/ntars/icons/favicon-32.png",
  "/static/ntars/icons/icon-192.png",
  "/static/ntars/icons/icon-512.png",
  "/static/ntars/icons/maskable-192.png",
  "/static/ntars/icons/maskable-512.png",
  "/static/ntars/icons/apple-touch-icon.png",
];
const PRECACHE_PAGES = ["/offline/", "/manifest.webmanifest"];  // includes OFFLINE_URL

// ---- Lifecycle ---------------------------------------------------------------------------------------

self.addEventListener("install", (event) => {
  event.waitUntil(precache());
});

self.addEventListener("activate", (event) => {
  event.waitUntil(activate());
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "SKIP_WAITING") self.skipWaiting();
});

async function precache() {
  const cache = await caches.open(SHELL_CACHE);
  // credentials "omit": the offline page is rendered for nobody in particular; "reload": skip the HTTP cache.
  const requests = [...PRECACHE, ...PRECACHE_PAGES].map(
    (url) => new Request(url, { credentials: "omit", cache: "reload" }),
  );
  await cache.addAll(requests);
}

async function activate() {
  for (const key of await caches.keys()) {
    if (key.startsWith(CACHE_PREFIX) && key !== SHELL_CACHE) await caches.delete(key);
  }
  if (self.registration.navigationPreload) await self.registration.navigationPreload.enable();
  // The first worker on a device controls the open page at once, so it works offline without a reload.
  await self.clients.claim();
}

// ---- Fetch ---------------------------------------------------------------------------------------------

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;

  if (request.mode === "navigate") {
    event.respondWith(navigate(event));
  } else if (url.pathname.startsWith(STATIC_PREFIX)) {
    event.respondWith(staleWhileRevalidate(event));
  }
  // Anything else (API, JSON, media behind access checks, sockets) is left to the network, uncached.
});

/** Pages: always from the network, never stored; the offline page when there is no network. */
async function navigate(event) {
  try {
    const preloaded = await event.preloadResponse;
    return preloaded || (await fetch(event.request));
  } catch {
    const cache = await caches.open(SHELL_CACHE);
    const offline = await cache.match(OFFLINE_URL);
    return offline || new Response("You are offline.", {
      status: 503,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }
}

/** Static files (public, the same for everyone): answer from the cache, refresh it in the background. */
async function staleWhileRevalidate(event) {
  const cache = await caches.open(SHELL_CACHE);
  const cached = await cache.match(event.request);
  const fromNetwork = fetch(event.request).then(async (response) => {
    if (response.ok && response.type === "basic") await cache.put(event.request, response.clone());
    return response;
  });
  if (cached) {
    event.waitUntil(fromNetwork.catch(() => undefined));
    return cached;
  }
  return fromNetwork;
}

// ---- Extension points --------------------------------------------------------------------------------
// Later issues add their handlers below, one block each, keeping the rules at the top of this file:
//   self.addEventListener("push", (event) => event.waitUntil(showPush(event)));        // alerts (issue 6)
//   self.addEventListener("notificationclick", (event) => event.waitUntil(openFrom(event)));
//   self.addEventListener("pushsubscriptionchange", ...);
// This file is registered as a module worker (pwa.js), so shared code can be imported at the top, e.g.
// `import { open } from "/static/ntars/js/e2ee.js";` (add anything it needs to PRECACHE for offline use).

// ---- Push notifications (alerts, issue 6; docs/alerts.md) -------------------------------------------------
// Nothing here touches a cache: payloads are shown and forgotten; a chat preview is decrypted in memory.
self.addEventListener("push", (event) => event.waitUntil(showPush(event)));
self.addEventListener("notificationclick", (event) => event.waitUntil(openFromNotification(event)));
