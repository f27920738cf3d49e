// Tables on phones. `table.stack` collapses to a card per row (app.css); here each cell gets the column
// name as data-label when the template left it out, and explicit roles keep the table semantics that
// `display: block` removes in some browsers. Other wide tables get a scrolling wrapper, never a scrolling page.

/** Enhance every table under `root`. */
export function enhanceTables(root) {
  for (const table of root.querySelectorAll("table.stack")) stack(table);
  for (const table of root.querySelectorAll("table:not(.stack)")) wrap(table);
}

function stack(table) {
  const headers = [];
  const headRow = table.tHead ? table.tHead.rows[0] : null;
  if (headRow) {
    for (const th of headRow.cells) {
      for (let i = 0; i < th.colSpan; i += 1) headers.push(th.textContent.trim());
    }
  }
  table.setAttribute("role", "table");
  for (const section of [table.tHead, ...table.tBodies, table.tFoot]) {
    if (section) section.setAttribute("role", "rowgroup");
  }
  for (const row of table.rows) {
    row.setAttribute("role", "row");
    let column = 0;
    for (const cell of row.cells) {
      if (cell.tagName === "TH") {
        cell.setAttribute("role", row.parentElement === table.tHead ? "columnheader" : "rowheader");
      } else {
        cell.setAttribute("role", "cell");
        if (!cell.dataset.label && headers[column]) cell.dataset.label = headers[column];
      }
      column += cell.colSpan;
    }
  }
}

function wrap(table) {
  let wrapper = table.parentElement;
  if (!wrapper || !wrapper.classList.contains("table-wrap")) {
    wrapper = document.createElement("div");
    wrapper.className = "table-wrap";
    table.before(wrapper);
    wrapper.append(table);
  }
  // Keyboard users can only scroll a region they can focus: make it one when it actually overflows.
  if (wrapper.scrollWidth > wrapper.clientWidth && !wrapper.hasAttribute("tabindex")) {
    wrapper.setAttribute("role", "region");
    wrapper.setAttribute("tabindex", "0");
    const caption = table.caption ? table.caption.textContent.trim() : "";
    wrapper.setAttribute("aria-label", caption || "Table (scrolls sideways)");
  }
}
