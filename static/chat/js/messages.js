// Message elements (cloned from the page's <template>s) and the growing reply.
import { addCopyButtons, morphInto, renderMarkdown } from "./markdown.js";

const FINAL_STATUSES = new Set(["complete", "cancelled", "error", "interrupted"]);

/** The length of a string in code points (the unit of the server's offsets). */
export function codePointLength(text) {
  let length = 0;
  for (const _ of text) {
    length += 1;
  }
  return length;
}

// A last line holding only a block marker ("-", "1.", "#", "```", ">"...) would render as
// an empty bullet or heading for a moment: while streaming it waits for its text.
const BARE_MARKER = /(?:^|\n)[ \t]*(?:[-*+]|\d+[.)]|#{1,6}|`{1,3}|~{1,3}|>|\|)?[ \t]*$/;

/** The part of a growing reply worth rendering now (without a dangling block marker). */
export function stablePrefix(text) {
  const match = BARE_MARKER.exec(text);
  return match ? text.slice(0, match.index) : text;
}

function dropCodePoints(text, count) {
  return Array.from(text).slice(count).join("");
}

/** A new, empty message element of a role ("user" or "assistant"). */
export function createMessageElement(role) {
  const template = document.getElementById(`tpl-${role}-message`);
  return template.content.firstElementChild.cloneNode(true);
}

/** The element of a message id in the thread, if rendered. */
export function findMessageElement(id) {
  return document.querySelector(`.msg[data-message-id="${CSS.escape(String(id))}"]`);
}

/** The text of a user message element (exactly as typed). */
export function userText(element) {
  return element.querySelector(".msg__body").textContent;
}

/** Show (or hide, with null) an inline error with Retry on a message element. */
export function showError(element, error) {
  const box = element.querySelector(".msg__error");
  box.hidden = !error;
  if (error) {
    box.querySelector(".msg__error-text").textContent =
      error.message || "Something went wrong.";
  }
}

/** Fill a message element from the API's message shape. */
export function fillMessage(element, message) {
  element.dataset.messageId = String(message.id);
  element.dataset.status = message.status;
  const body = element.querySelector(".msg__body");
  if (message.role === "user") {
    body.textContent = message.content;
  } else {
    morphInto(body, renderMarkdown(message.content));
    addCopyButtons(body);
    element.querySelector(".msg__typing").hidden = !(
      message.status === "streaming" && !message.content
    );
  }
  element.querySelector(".msg__badge").hidden = message.status !== "cancelled";
  const failed = message.status === "error" || message.status === "interrupted";
  showError(element, failed ? message.error || { message: "The reply failed." } : null);
  return element;
}

/**
 * An assistant reply as it streams: accepts chunks by offset (each character once, in
 * order, whatever the transport replays), and re-renders its markdown at most once a frame.
 */
export class Reply {
  constructor(element, { messageId, text = "", offset = 0, onRender = () => {} }) {
    this.element = element;
    this.body = element.querySelector(".msg__body");
    this.messageId = messageId;
    this.text = text;
    this.offset = offset;
    this.status = "streaming";
    this.onRender = onRender;
    this.pending = 0;
    element.dataset.messageId = String(messageId);
    element.dataset.status = "streaming";
  }

  get isFinal() {
    return FINAL_STATUSES.has(this.status);
  }

  /** Apply a chunk ending at `offset`: "ok", "duplicate" (already had it) or "gap". */
  admit(chunk, offset) {
    const start = offset - codePointLength(chunk);
    if (offset <= this.offset) {
      return "duplicate";
    }
    if (start > this.offset) {
      return "gap";
    }
    this.text += start < this.offset ? dropCodePoints(chunk, this.offset - start) : chunk;
    this.offset = offset;
    this.scheduleRender();
    return "ok";
  }

  /** Re-render on the next frame (or soon, in a hidden tab where frames do not run). */
  scheduleRender() {
    if (this.pending) {
      return;
    }
    const run = () => {
      this.pending = 0;
      this.render();
    };
    this.pendingInFrame = !document.hidden;
    this.pending = this.pendingInFrame
      ? window.requestAnimationFrame(run)
      : window.setTimeout(run, 200);
  }

  cancelRender() {
    if (this.pending) {
      if (this.pendingInFrame) {
        window.cancelAnimationFrame(this.pending);
      } else {
        window.clearTimeout(this.pending);
      }
      this.pending = 0;
    }
  }

  render() {
    this.element.querySelector(".msg__typing").hidden = !(this.text === "" && !this.isFinal);
    morphInto(this.body, renderMarkdown(this.isFinal ? this.text : stablePrefix(this.text)));
    this.onRender(this);
  }

  /** The reply ended normally ("complete") or was stopped ("cancelled"). */
  finish(status) {
    this.cancelRender();
    this.status = status;
    this.element.dataset.status = status;
    this.element.querySelector(".msg__badge").hidden = status !== "cancelled";
    this.render();
    addCopyButtons(this.body);
  }

  /** The reply ended in an error: shown inline with Retry, the partial text kept. */
  fail(error) {
    this.cancelRender();
    this.status = "error";
    this.element.dataset.status = "error";
    showError(this.element, error);
    this.render();
    addCopyButtons(this.body);
  }
}
