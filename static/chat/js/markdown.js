// Markdown to sanitised HTML in the browser: marked parses, DOMPurify sanitises.
// Raw HTML in a reply is shown as text (as the server's markdown-it-py does), and links
// open in a new tab with rel="noopener noreferrer".
import { Marked } from "../../vendor/marked/marked.esm.js";
import DOMPurify from "../../vendor/dompurify/purify.es.mjs";

const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

const parser = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // Raw HTML is text, never markup.
    html(token) {
      return escapeHtml(token.text);
    },
    // No remote images: they would load third-party URLs chosen by the model.
    image(token) {
      return escapeHtml(token.text || "");
    },
  },
});

const PURIFY_CONFIG = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ],
  ALLOWED_ATTR: ["href", "title", "start"],
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/** Sanitised HTML for markdown text. */
export function renderMarkdown(text) {
  return DOMPurify.sanitize(parser.parse(text || ""), PURIFY_CONFIG);
}

/**
 * Put sanitised HTML into a container, replacing only the top-level blocks that changed,
 * so finished paragraphs of a growing reply are left alone (no flicker, selection kept).
 */
export function morphInto(container, html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  const next = Array.from(template.content.childNodes);
  const current = Array.from(container.childNodes);
  let same = 0;
  while (same < current.length && same < next.length && current[same].isEqualNode(next[same])) {
    same += 1;
  }
  for (const node of current.slice(same)) {
    node.remove();
  }
  container.append(...next.slice(same));
}

/** Give every code block in a container a "Copy" button (once). */
export function addCopyButtons(container) {
  for (const pre of container.querySelectorAll("pre")) {
    if (pre.querySelector(".copy-button")) {
      continue;
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-button";
    button.dataset.action = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    pre.prepend(button);
  }
}

/** Copy a code block's text to the clipboard; the button says whether it worked. */
export async function copyCode(button) {
  const code = button.closest("pre")?.querySelector("code");
  if (!code) {
    return;
  }
  let label = "Copied";
  try {
    await navigator.clipboard.writeText(code.textContent);
  } catch {
    label = "Copy failed";
  }
  button.textContent = label;
  window.setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
}
