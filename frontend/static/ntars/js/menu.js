// Phone navigation: a Menu button (aria-expanded) that shows and hides the site menu.
// Without JavaScript the button stays hidden and the menu is simply always open (see app.css).

/** Turn the server-rendered, always-open menu into a collapsible one. */
export function enhanceMenu(root) {
  const button = root.querySelector(".menu-button[aria-controls]");
  const menu = button ? root.getElementById(button.getAttribute("aria-controls")) : null;
  if (!button || !menu) return;

  const isOpen = () => button.getAttribute("aria-expanded") === "true";
  const setOpen = (open) => {
    button.setAttribute("aria-expanded", String(open));
    menu.dataset.collapsed = String(!open);
  };

  setOpen(false);
  button.hidden = false;
  button.addEventListener("click", () => setOpen(!isOpen()));
  root.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !isOpen()) return;
    if (menu.contains(event.target) || event.target === button) {
      setOpen(false);
      button.focus();
    }
  });
}
