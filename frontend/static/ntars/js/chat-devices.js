// Devices and safety numbers: this device's fingerprint, my devices (approve a pending one, remove one), and
// a safety number with every member of my groups, to compare in person. Key changes are flagged here too.
import { ApiError, el, pageConfig, renderKeyWarnings, say } from "./chat-common.js";
import { ChatKeys } from "./chat-keys.js";
import { ChatStore } from "./chat-store.js";
import { b64d, fingerprint } from "./e2ee.js";

const STATUS_TEXT = { approved: "Approved", pending: "Waiting for approval", revoked: "Removed" };
const dateFormat = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", year: "numeric" });

function digits(number) {
  return el("code", { class: "digits", text: number });
}

class DevicesPage {
  constructor(config) {
    this.config = config;
    this.status = document.getElementById("chat-status");
    this.thisDevice = document.getElementById("this-device");
    this.list = document.getElementById("my-devices");
    this.safety = document.getElementById("safety-numbers");
    this.warnings = document.getElementById("key-warnings");
  }

  async start() {
    this.store = await ChatStore.open(this.config.user.id);
    this.keys = await ChatKeys.open(this.config, this.store);
    try {
      this.device = await this.keys.ensureDevice();
    } catch (error) {
      this.thisDevice.textContent = error instanceof ApiError && error.status === 0
        ? "No signal: this page needs the server to show your devices."
        : "This device’s keys could not be set up. Reload the page to try again.";
      return;
    }
    await this.renderAll();
    if (this.device.status === "pending") {
      this.keys.watchApproval(() => {
        say(this.status, "One of your devices approved this one: it can read new messages now.", "success");
        this.renderAll();
      });
    }
  }

  async renderAll() {
    await this.renderThisDevice();
    await this.renderDevices();
    await this.renderSafetyNumbers();
    await renderKeyWarnings(this.warnings, this.store, this.config.devices_url);
  }

  async renderThisDevice() {
    const print = await this.keys.fingerprintOfThisDevice();
    const pending = this.device.status === "pending";
    this.thisDevice.replaceChildren(
      el("p", {}, "Status: ", el("strong", { class: "device-status", text: STATUS_TEXT[this.device.status] || this.device.status })),
      ...(pending ? [el("p", { class: "notice warning", text: "Open this page on one of your other devices and approve this one. Check that the number below matches the one shown there. No other device left? Ask the BID office to re-enrol you." })] : []),
      el("p", { class: "help", text: "This device’s fingerprint:" }),
      digits(print),
    );
  }

  async renderDevices() {
    const devices = await this.keys.myDevices();
    const approved = this.device.status === "approved";
    this.list.replaceChildren(
      ...devices.map((device) => {
        const mine = device.device_id === this.device.deviceId;
        const label = `${device.label || "Unnamed device"}${mine ? " (this device)" : ""}`;
        const item = el(
          "li",
          { class: `card device device-${device.status}`, "data-device": device.device_id },
          el("h3", { class: "device-label", text: label }),
          el("p", {}, `${STATUS_TEXT[device.status] || device.status}`,
            device.created_at ? ` · added ${dateFormat.format(new Date(device.created_at))}` : ""),
          device.fingerprint ? el("p", { class: "help", text: "Fingerprint:" }) : null,
          device.fingerprint ? digits(device.fingerprint) : null,
        );
        const actions = el("div", { class: "actions" });
        if (device.status === "pending" && approved && !mine) actions.append(this.#approveButton(device, label));
        if (device.status !== "revoked") actions.append(this.#revokeButton(device, label, mine));
        item.append(actions);
        return item;
      }),
    );
  }

  #approveButton(device, label) {
    const button = el("button", { type: "button", class: "primary" }, "Approve", el("span", { class: "visually-hidden", text: ` ${label}` }));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        if (!device.sign_pub || !device.dh_pub) throw new ApiError(500, "missing_keys", "the server did not send the device's keys");
        // Show the number worked out here from the keys being approved, not the server's copy of it.
        const local = await fingerprint(b64d(device.sign_pub, 32), b64d(device.dh_pub, 32));
        if (device.fingerprint && local !== device.fingerprint) {
          throw new ApiError(409, "fingerprint_mismatch", "the keys do not match the fingerprint");
        }
        if (!window.confirm(`Approve ${label}? Its fingerprint should read:\n${local}`)) {
          button.disabled = false;
          return;
        }
        await this.keys.approve(device);
        say(this.status, `${label} is approved. It can read new messages from now on.`, "success");
        await this.renderDevices();
      } catch (error) {
        button.disabled = false;
        say(this.status, `${label} could not be approved (${error.code || "error"}).`, "error");
      }
    });
    return button;
  }

  #revokeButton(device, label, mine) {
    const button = el("button", { type: "button", class: "danger" }, "Remove", el("span", { class: "visually-hidden", text: ` ${label}` }));
    button.addEventListener("click", async () => {
      const warning = mine
        ? "Remove this device? It will stop receiving messages, and will need approving again."
        : `Remove ${label}? It will not be able to read new messages.`;
      if (!window.confirm(warning)) return;
      button.disabled = true;
      try {
        await this.keys.revoke(device.device_id);
        say(this.status, `${label} was removed. Your groups get a new key before anyone writes again.`, "success");
        if (mine) {
          this.device = await this.keys.ensureDevice();
          await this.renderThisDevice();
        }
        await this.renderDevices();
      } catch (error) {
        button.disabled = false;
        say(this.status, `${label} could not be removed (${error.code || "error"}).`, "error");
      }
    });
    return button;
  }

  async renderSafetyNumbers() {
    if (this.device.status !== "approved" || !this.config.groups.length) {
      this.safety.replaceChildren(el("li", { text: this.config.groups.length ? "Safety numbers show once this device is approved." : "You are not in any street group yet." }));
      return;
    }
    const people = new Map();
    for (const group of this.config.groups) {
      try {
        for (const row of await this.keys.safetyNumbers(group.id)) {
          const known = people.get(row.user) || { ...row, groups: [] };
          known.groups.push(group.name);
          people.set(row.user, known);
        }
      } catch (error) {
        console.warn("NTARS chat: directory of group", group.id, "not loaded:", error?.code);
      }
    }
    const changed = new Set((await this.store.warnings()).map((w) => w.user));
    const rows = [...people.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (!rows.length) {
      this.safety.replaceChildren(el("li", { text: "No other member has set up chat yet." }));
      return;
    }
    this.safety.replaceChildren(
      ...rows.map((row) => el(
        "li",
        { class: `card safety${changed.has(row.user) ? " changed" : ""}`, id: `user-${row.user}` },
        el("h3", { text: row.name }),
        el("p", { class: "help", text: [row.business, row.groups.join(", ")].filter(Boolean).join(" · ") }),
        changed.has(row.user) ? el("p", { class: "notice warning", text: "Their keys changed recently: compare this number with them." }) : null,
        digits(row.number),
      )),
    );
  }
}

const config = pageConfig();
if (config) {
  new DevicesPage(config).start().catch((error) => console.error("NTARS chat:", error?.name, error?.code ?? ""));
}
