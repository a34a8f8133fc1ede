// Paging older messages in when the reader scrolls to the top of the thread.
import { fillUrl } from "./config.js";
import { api } from "./http.js";
import { createMessageElement, fillMessage, findMessageElement } from "./messages.js";

/**
 * The messages of a `?before=` page (chronological) and whether older ones exist: the
 * API's keyset pages are {next, previous, results}, and a backwards page has a
 * `previous` link exactly when there is more before it.
 */
export function readPage(data) {
  return { items: data.results || [], more: Boolean(data.previous) };
}

/** Loads older messages above the thread (on scroll, or with the "Load older" button). */
export class OlderMessages {
  constructor(config, { scroller, onError }) {
    this.config = config;
    this.scroller = scroller;
    this.onError = onError;
    this.oldestId = config.oldestId;
    this.hasOlder = config.hasOlder;
    this.loading = false;
    this.box = document.getElementById("older");
    this.messages = document.getElementById("messages");
    document.getElementById("load-older").addEventListener("click", () => this.load());
    if (this.hasOlder && "IntersectionObserver" in window) {
      this.observer = new IntersectionObserver(
        (entries) => {
          if (entries.some((entry) => entry.isIntersecting)) {
            this.load();
          }
        },
        { root: document.getElementById("thread"), rootMargin: "300px 0px 0px 0px" },
      );
      this.observer.observe(this.box);
    }
  }

  async load() {
    if (this.loading || !this.hasOlder || !this.config.conversationId) {
      return;
    }
    this.loading = true;
    try {
      const base = fillUrl(this.config.urls.messages, this.config.conversationId);
      const query = `before=${encodeURIComponent(this.oldestId)}&limit=${this.config.pageSize}`;
      const { items, more } = readPage(await api(`${base}?${query}`));
      const fresh = items
        .filter((message) => !findMessageElement(message.id))
        .sort((a, b) => a.id - b.id);
      this.scroller.keepPosition(() => {
        const elements = fresh.map((m) => fillMessage(createMessageElement(m.role), m));
        this.messages.prepend(...elements);
      });
      if (fresh.length) {
        this.oldestId = fresh[0].id;
      }
      this.hasOlder = more && fresh.length > 0;
      this.box.hidden = !this.hasOlder;
      if (!this.hasOlder) {
        this.observer?.disconnect();
      }
    } catch (error) {
      this.onError(`Could not load older messages: ${error.message}`);
    } finally {
      this.loading = false;
    }
  }
}
