// The page's configuration (rendered by Django with json_script) and URL helpers.

/** The configuration object of the page. */
export function readConfig() {
  const node = document.getElementById("chat-config");
  return JSON.parse(node.textContent);
}

/** A URL template from the config with its "{id}" filled in. */
export function fillUrl(template, id) {
  return template.replace("{id}", encodeURIComponent(String(id)));
}

/** The ws:// or wss:// URL of a same-origin path. */
export function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}
