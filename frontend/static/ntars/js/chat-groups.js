// My groups, with unread counts kept live. The count is worked out on this phone (what the hub replays after
// the last message read here, minus my own and withdrawn ones): the server does not know what was read.
import { handleHubFrame } from "./alerts-banner.js";
import { ApiError, pageConfig, renderKeyWarnings, say } from "./chat-common.js";
import { ChatKeys } from "./chat-keys.js";
import { HubSocket, hubUrl } from "./chat-socket.js";
import { ChatStore } from "./chat-store.js";

async function start(config) {
  const status = document.getElementById("chat-status");
  const store = await ChatStore.open(config.user.id);
  const keys = await ChatKeys.open(config, store);
  await renderKeyWarnings(document.getElementById("key-warnings"), store, config.devices_url);
  if (!config.groups.length) return;

  let device;
  try {
    device = await keys.ensureDevice();
  } catch (error) {
    device = await keys.keyStore.getDevice();
    if (!(error instanceof ApiError && error.status === 0 && device?.registered)) {
      say(status, "Chat could not set up this device’s keys. Reload the page to try again.", "error");
      return;
    }
  }
  if (device.status === "pending") {
    say(status, "This device is waiting to be approved by one of your other devices.", "warning");
    keys.watchApproval(() => window.location.reload());
    return;
  }

  const names = new Map(config.groups.map((g) => [g.id, g.name]));
  const unread = new Map(config.groups.map((g) => [g.id, new Set()]));
  const resumeFrom = new Map();
  for (const group of config.groups) resumeFrom.set(group.id, await store.lastRead(group.id));

  const show = (group) => {
    const badge = document.querySelector(`[data-unread-for="${group}"]`);
    const count = unread.get(group)?.size ?? 0;
    if (!badge) return;
    badge.textContent = count ? `${count} unread` : "";
    badge.hidden = count === 0;
  };

  const socket = new HubSocket({
    url: hubUrl(config.ws),
    device: device.deviceId,
    resume: () => Object.fromEntries([...resumeFrom].map(([g, seq]) => [String(g), seq])),
  });
  socket.addEventListener("state", (event) => {
    const { state } = event.detail;
    if (state === "offline") say(status, "No signal: counts update when it returns.", "warning");
    else if (state === "revoked") say(status, "You have been signed out.", "error");
    else if (state === "ready") say(status, "", "info");
  });
  socket.addEventListener("frame", (event) => {
    const frame = event.detail;
    if (handleHubFrame(frame)) return; // a warden's broadcast: the in-app banner
    if (!unread.has(frame.group)) return;
    if (frame.type === "message" || frame.type === "retracted" || frame.type === "caught_up") {
      resumeFrom.set(frame.group, Math.max(resumeFrom.get(frame.group) ?? 0, frame.seq));
    }
    if (frame.type === "message" && !frame.retracted && frame.envelope && frame.sender?.id !== config.user.id) {
      unread.get(frame.group).add(frame.seq);
      show(frame.group);
      // Replayed messages arrive before `ready`; after it, each one is new: say so (the status is polite).
      if (socket.ready) say(status, `New message in ${names.get(frame.group)}.`, "info");
    } else if (frame.type === "retracted") {
      unread.get(frame.group).delete(frame.target_seq);
      show(frame.group);
    }
  });
  socket.start();
}

const config = pageConfig();
if (config) start(config).catch((error) => console.error("NTARS chat:", error?.name, error?.code ?? ""));
