// Leaflet maps for reports: a draggable pin on the form, a fixed one on the report page.
import { map as leafletMap, marker as leafletMarker, tileLayer } from "../vendor/leaflet/leaflet-src.esm.js";

const ATTRIBUTION = "&copy; OpenStreetMap contributors";

/** Show a map in `element` centred on [lat, lng] with a pin; `onMove(lat, lng)` when the pin moves. */
export function pinMap(element, { lat, lng, tileUrl, draggable = false, onMove = null, zoom = 17 }) {
  const map = leafletMap(element, { scrollWheelZoom: false, tap: true }).setView([lat, lng], zoom);
  if (tileUrl) tileLayer(tileUrl, { maxZoom: 19, attribution: ATTRIBUTION }).addTo(map);
  const pin = leafletMarker([lat, lng], { draggable, keyboard: draggable, title: "Where it happened" }).addTo(map);
  if (draggable && onMove) {
    const moved = (latlng) => {
      pin.setLatLng(latlng);
      onMove(latlng.lat, latlng.lng);
    };
    pin.on("dragend", () => moved(pin.getLatLng()));
    map.on("click", (event) => moved(event.latlng));
  }
  return { map, pin };
}
