// The report page: a map with the report's pin (read-only).
import { pinMap } from "./report-map.js";

const element = document.getElementById("report-map");
if (element) {
  pinMap(element, {
    lat: Number(element.dataset.lat),
    lng: Number(element.dataset.lng),
    tileUrl: element.dataset.tileUrl,
  });
}
