// The phone report form: kind tiles, map pin, similar reports nearby, and the offline outbox.
// Without JavaScript the form still posts to the page itself; with it, reports go through the API and wait
// in IndexedDB when there is no signal.
import { chatPhotosOf, chatProofOf, chatReportForget, chatReportRequested } from "./report-from-chat.js";
import { pinMap } from "./report-map.js";
import { outboxDelete, outboxPut, outboxSend, outboxWatch } from "./report-outbox.js";

const STREET_MATCH_M = 250;

const form = document.getElementById("report-form");
const result = document.getElementById("report-result");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function distanceM(lat1, lng1, lat2, lng2) {
  const rad = Math.PI / 180;
  const dp = (lat2 - lat1) * rad;
  const dl = (lng2 - lng1) * rad;
  const a = Math.sin(dp / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dl / 2) ** 2;
  return 2 * 6371000 * Math.asin(Math.sqrt(a));
}

function say(kind, ...parts) {
  result.replaceChildren(el("div", { class: `notice ${kind}` }, ...parts));
  result.scrollIntoView({ block: "nearest" });
}

function errorsFrom(body) {
  const detail = body && body.detail;
  if (!detail) return ["The report could not be sent."];
  if (typeof detail === "string") return [detail];
  if (Array.isArray(detail)) return detail.map(String);
  return Object.values(detail).flat().map(String);
}

function setup() {
  const kindInputs = [...form.querySelectorAll("input[name=kind]")];
  const welfare = new Set((form.dataset.welfare || "").split(" ").filter(Boolean));
  const outreach = document.getElementById("outreach-note");
  const description = form.querySelector("[name=description]");
  const lat = form.querySelector("[name=latitude]");
  const lng = form.querySelector("[name=longitude]");
  const streetSelect = form.querySelector("[name=street]");
  const streetName = document.getElementById("street-name");
  const photos = form.querySelector("[name=photos]");
  const photoList = document.getElementById("photo-list");
  const addendum = form.querySelector("[name=addendum_to]");
  const duplicates = document.getElementById("duplicates");
  const points = JSON.parse(document.getElementById("street-points").textContent || "[]");
  const streetNames = new Map([...streetSelect.options].filter((o) => o.value).map((o) => [Number(o.value), o.text]));
  const homeStreetText = streetName.textContent;

  const selectedKind = () => (kindInputs.find((input) => input.checked) || {}).value || "";

  // Welfare first: the outreach note shows only for rough sleeping and encampments.
  const showOutreach = () => { outreach.hidden = !welfare.has(selectedKind()); };
  showOutreach();

  // The map: the pin starts at the reporter's business (or the town centre). Coordinates are sent only when
  // they mean something: the business's own location, or a pin the reporter moved.
  const start = { lat: Number(form.dataset.lat), lng: Number(form.dataset.lng) };
  if (form.dataset.hasHome === "true") {
    lat.value = start.lat.toFixed(6);
    lng.value = start.lng.toFixed(6);
  }
  const pinMoved = (newLat, newLng) => {
    lat.value = newLat.toFixed(6);
    lng.value = newLng.toFixed(6);
    let best = null;
    for (const point of points) {
      const d = distanceM(newLat, newLng, point.lat, point.lng);
      if (d <= STREET_MATCH_M && (!best || d < best.d)) best = { d, street: point.street };
    }
    if (best && !streetSelect.value) streetName.textContent = streetNames.get(best.street) || homeStreetText;
    else if (!streetSelect.value) streetName.textContent = "not known (choose below)";
    checkDuplicates();
  };
  const mapElement = document.getElementById("report-map");
  if (mapElement) {
    try {
      pinMap(mapElement, { ...start, tileUrl: form.dataset.tileUrl, draggable: true, onMove: pinMoved });
    } catch (error) {
      mapElement.hidden = true; // the street list still works
    }
  }
  streetSelect.addEventListener("change", () => {
    streetName.textContent = streetSelect.value ? streetSelect.selectedOptions[0].text : homeStreetText;
    checkDuplicates();
  });

  // Promoted from a chat message: its text, photos, sender, group and time, and the proof sent with it.
  let chat = null;
  let chatFiles = [];
  const chatPhotoItems = [];
  const showPhotos = () => {
    photoList.replaceChildren(...chatPhotoItems, ...[...photos.files].map((file) => el("li", {}, file.name)));
  };
  photos.addEventListener("change", showPhotos);

  function localInputValue(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function startFromChat(requested) {
    const panel = el("section", { class: "from-chat", id: "from-chat", "aria-labelledby": "from-chat-heading" });
    form.prepend(panel);
    if (!requested.data) {
      panel.append(el("p", { class: "notice warning" },
        "The chat message is no longer open in this tab: go back to the chat and tap “Report this” again, or describe it here."));
      return;
    }
    chat = requested;
    const data = requested.data;
    const when = new Date(data.server_time);
    const sender = `${data.sender.name}${data.sender.business ? ` (${data.sender.business})` : ""}`;
    panel.append(
      el("h2", { id: "from-chat-heading" }, "Reporting a chat message"),
      el("p", { class: "chat-origin" }, "Sent by ", el("strong", { class: "chat-sender" }, sender), " in ",
        el("strong", { class: "chat-group" }, data.group_name || "the group"), " at ",
        el("time", { datetime: when.toISOString() }, when.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }))),
      data.text ? el("blockquote", { class: "chat-text" }, data.text) : "",
      el("p", { class: "help" }, "The server checks that this message really was sent like this (its franking proof) and the case officers see the result."),
    );
    if (!description.value.trim()) description.value = data.text || "";
    const started = form.querySelector("[name=occurred_at]");
    if (started && !started.value && !Number.isNaN(when.getTime())) started.value = localInputValue(when);
    if (data.attachments) {
      const waiting = el("li", { class: "help" }, "Decrypting the message’s photos…");
      chatPhotoItems.push(waiting);
      showPhotos();
      chatPhotosOf(data).then((results) => {
        chatPhotoItems.length = 0;
        chatFiles = results.filter((r) => r.file).map((r) => r.file);
        for (const [index, r] of results.entries()) {
          if (r.file) {
            const url = URL.createObjectURL(r.file);
            chatPhotoItems.push(el("li", { class: "chat-photo" },
              el("img", { src: url, alt: `Photo ${index + 1} from the chat message` }), ` ${r.file.name}`));
          } else {
            chatPhotoItems.push(el("li", { class: "errorlist" }, `Photo ${index + 1} from the chat message was not added: ${r.error}.`));
          }
        }
        showPhotos();
      });
    }
  }

  function endFromChat() {
    if (chat) chatReportForget(chat.key);
    chat = null;
    chatFiles = [];
    chatPhotoItems.length = 0;
    document.getElementById("from-chat")?.remove();
  }

  const requested = chatReportRequested();
  if (requested) startFromChat(requested);

  // Similar reports nearby: offer to add to one instead of filing a duplicate.
  let duplicateRequest = 0;
  async function checkDuplicates() {
    const kind = selectedKind();
    if (!kind || !navigator.onLine) return;
    const ticket = ++duplicateRequest;
    const params = new URLSearchParams({ kind });
    if (lat.value && lng.value) {
      params.set("latitude", lat.value);
      params.set("longitude", lng.value);
    }
    if (streetSelect.value) params.set("street", streetSelect.value);
    let found = [];
    try {
      const response = await fetch(`${form.dataset.apiDuplicates}?${params}`, { credentials: "same-origin" });
      if (response.ok) found = await response.json();
    } catch (error) {
      return;
    }
    if (ticket !== duplicateRequest) return;
    showDuplicates(found);
  }

  function showDuplicates(found) {
    if (!found.length) {
      duplicates.hidden = true;
      duplicates.replaceChildren();
      addendum.value = "";
      return;
    }
    const items = found.map((item) => {
      const when = new Date(item.occurred_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      const where = [item.street, item.distance_m !== null ? `${item.distance_m} m away` : null].filter(Boolean).join(", ");
      const text = `${item.kind_label} at ${when}${where ? `, ${where}` : ""}${item.mine ? " (yours)" : ""}`;
      const button = el("button", { type: "button", class: "secondary", "data-report": String(item.id) },
        addendum.value === String(item.id) ? "Adding to this one" : "Add mine to this one");
      button.addEventListener("click", () => {
        addendum.value = addendum.value === String(item.id) ? "" : String(item.id);
        showDuplicates(found);
      });
      return el("li", {}, el("span", {}, text), " ", button);
    });
    const heading = el("h2", {}, "Already reported nearby in the last 2 hours?");
    const help = el("p", { class: "help" }, addendum.value
      ? "Your report will be added to the one you chose. Tap it again to send yours as a new report."
      : "If it is the same incident, add yours to it instead of sending a new report.");
    duplicates.replaceChildren(heading, help, el("ul", {}, ...items));
    duplicates.hidden = false;
  }

  for (const input of kindInputs) {
    input.addEventListener("change", () => {
      showOutreach();
      addendum.value = "";
      checkDuplicates();
    });
  }

  function validate() {
    const problems = [];
    if (!selectedKind()) problems.push(["Choose what kind of incident this is.", kindInputs[0]]);
    if (!description.value.trim()) problems.push(["Say in a sentence what happened.", description]);
    if (problems.length) {
      say("error", el("ul", { class: "errorlist" }, ...problems.map(([text]) => el("li", {}, text))));
      problems[0][1].focus();
    }
    return !problems.length;
  }

  function isoOrEmpty(value) {
    if (!value) return "";
    const date = new Date(value); // a datetime-local value is the phone's local time
    return Number.isNaN(date.getTime()) ? value : date.toISOString();
  }

  function entryFromForm() {
    const data = new FormData(form);
    const fields = {};
    for (const [name, value] of data.entries()) {
      if (name === "photos" || name === "csrfmiddlewaretoken" || typeof value !== "string") continue;
      fields[name] = value;
    }
    // "Now" means when the reporter pressed send, not when a signal finally came back.
    fields.occurred_at = isoOrEmpty(fields.occurred_at) || new Date().toISOString();
    fields.occurred_until = isoOrEmpty(fields.occurred_until);
    if (chat) fields.chat_proof = JSON.stringify(chatProofOf(chat.data));
    return {
      client_id: crypto.randomUUID(),
      url: form.dataset.apiCreate,
      fields,
      files: [...chatFiles, ...photos.files].map((file) => ({ name: file.name, type: file.type, blob: file })),
      queued_at: new Date().toISOString(),
      summary: `${(kindInputs.find((i) => i.checked) || {}).value || "report"}: ${description.value.slice(0, 60)}`,
    };
  }

  function resetForm() {
    form.reset();
    photoList.replaceChildren();
    addendum.value = "";
    duplicates.hidden = true;
    showOutreach();
    if (form.dataset.hasHome === "true") {
      lat.value = start.lat.toFixed(6);
      lng.value = start.lng.toFixed(6);
    }
  }

  const sending = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!validate()) return;
    const entry = entryFromForm();
    sending.disabled = true;
    try {
      await outboxPut(entry);
    } catch (error) {
      // No IndexedDB (private mode): send directly, and say so if that fails.
      entry.unsaved = true;
    }
    const outcome = navigator.onLine ? await outboxSend(entry) : { state: "waiting", status: 0 };
    sending.disabled = false;
    if (outcome.state !== "waiting" && !entry.unsaved) await outboxDelete(entry.client_id).catch(() => {});
    if (outcome.state === "sent") {
      endFromChat();
      resetForm();
      announceSent(outcome.body);
    } else if (outcome.state === "rejected") {
      say("error", el("ul", { class: "errorlist" }, ...errorsFrom(outcome.body).map((t) => el("li", {}, t))));
    } else if (entry.unsaved) {
      say("error", "No signal, and this browser cannot keep the report for later: try again when you are online.");
    } else {
      endFromChat();
      resetForm();
      say("warning", "No signal: your report is saved on this phone and will be sent when you are back online.");
    }
  });

  function announceSent(body, fromOutbox = false) {
    const parts = [fromOutbox ? "Your saved report has been sent." : "Report sent. Thank you."];
    const verification = body && body.report && body.report.verification;
    if (verification) {
      parts.push(" ", el("span", { class: `badge ${verification.verified ? "verified" : "unverified"}` },
        verification.verified ? `Verified: ${verification.label}` : `Unverified: ${verification.reason}`));
    }
    const refused = (body && body.refused) || [];
    if (refused.length) {
      parts.push(el("ul", { class: "errorlist" },
        ...refused.map((r) => el("li", {}, `${r.name || "A file"} was not added: ${r.reason}.`))));
    }
    parts.push(" ", el("a", { href: form.dataset.mineUrl }, "See My reports"));
    say("success", ...parts);
  }

  outboxWatch((entry, outcome) => {
    if (outcome.state === "sent") announceSent(outcome.body, true);
    else if (outcome.state === "rejected") {
      say("error", `A report saved on this phone (${entry.summary}) was refused: `, errorsFrom(outcome.body).join(" "));
    }
  });
}

if (form) setup();
