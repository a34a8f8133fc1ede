// The conversation list: New chat, rename, delete, and the drawer on narrow screens.
import { fillUrl } from "./config.js";
import { api } from "./http.js";

const UNTITLED = "New chat";

/** The sidebar of the user's conversations. */
export class Sidebar {
  constructor({ urls, currentId, onRenamed, onError }) {
    this.urls = urls;
    this.currentId = currentId;
    this.onRenamed = onRenamed;
    this.onError = onError;
    this.app = document.getElementById("app");
    this.list = document.getElementById("conv-list");
    this.empty = document.getElementById("conv-empty");
    this.toggle = document.getElementById("sidebar-toggle");
    this.dialog = document.getElementById("delete-dialog");
    this.list.addEventListener("click", (event) => this.onClick(event));
    this.toggle.addEventListener("click", () => this.setOpen(!this.isOpen));
    document.getElementById("sidebar-backdrop").addEventListener("click", () => this.setOpen(false));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen) {
        this.setOpen(false);
        this.toggle.focus();
      }
    });
  }

  get isOpen() {
    return this.app.classList.contains("sidebar-open");
  }

  setOpen(open) {
    this.app.classList.toggle("sidebar-open", open);
    this.toggle.setAttribute("aria-expanded", String(open));
    this.toggle.setAttribute("aria-label", open ? "Hide conversations" : "Show conversations");
    if (open) {
      this.list.querySelector("a")?.focus();
    }
  }

  item(id) {
    return this.list.querySelector(`[data-conversation-id="${CSS.escape(String(id))}"]`);
  }

  onClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) {
      return;
    }
    const item = button.closest(".conv");
    if (button.dataset.action === "rename") {
      this.startRename(item);
    } else if (button.dataset.action === "delete") {
      this.confirmDelete(item);
    }
  }

  /** Add a conversation at the top of the list (marked current). */
  add(conversation) {
    const template = document.getElementById("tpl-conversation");
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.conversationId = conversation.id;
    const link = item.querySelector(".conv__link");
    link.href = fillUrl(this.urls.page, conversation.id);
    for (const current of this.list.querySelectorAll("[aria-current]")) {
      current.removeAttribute("aria-current");
    }
    link.setAttribute("aria-current", "page");
    this.list.prepend(item);
    this.setTitle(conversation.id, conversation.title);
    this.empty.hidden = true;
    this.currentId = conversation.id;
  }

  /** Move a conversation to the top (it just got a message). */
  touch(id) {
    const item = this.item(id);
    if (item && item !== this.list.firstElementChild) {
      this.list.prepend(item);
    }
  }

  titleOf(id) {
    return this.item(id)?.dataset.title ?? "";
  }

  setTitle(id, title) {
    const item = this.item(id);
    if (!item) {
      return;
    }
    const shown = title || UNTITLED;
    item.dataset.title = title;
    item.querySelector(".conv__link").textContent = shown;
    item.querySelector('[data-action="rename"]').setAttribute(
      "aria-label",
      `Rename conversation: ${shown}`,
    );
    item.querySelector('[data-action="delete"]').setAttribute(
      "aria-label",
      `Delete conversation: ${shown}`,
    );
  }

  startRename(item) {
    const link = item.querySelector(".conv__link");
    const id = item.dataset.conversationId;
    const before = link.textContent;
    const input = document.createElement("input");
    input.className = "conv__rename";
    input.value = before === UNTITLED ? "" : before;
    input.maxLength = 200;
    input.setAttribute("aria-label", "Conversation title");
    link.hidden = true;
    item.insertBefore(input, link);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) {
        return;
      }
      done = true;
      const title = input.value.trim();
      input.remove();
      link.hidden = false;
      link.focus();
      if (!save || title === before || !title) {
        return;
      }
      try {
        const updated = await api(fillUrl(this.urls.conversation, id), {
          method: "PATCH",
          body: { title },
        });
        this.setTitle(id, updated?.title ?? title);
        this.onRenamed(id, updated?.title ?? title);
      } catch (error) {
        this.onError(`Could not rename the conversation: ${error.message}`);
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  confirmDelete(item) {
    const id = item.dataset.conversationId;
    this.dialog.querySelector("#delete-name").textContent =
      item.querySelector(".conv__link").textContent;
    this.dialog.returnValue = "";
    this.dialog.addEventListener(
      "close",
      () => {
        if (this.dialog.returnValue === "delete") {
          this.delete(id, item);
        }
      },
      { once: true },
    );
    this.dialog.showModal();
  }

  async delete(id, item) {
    try {
      await api(fillUrl(this.urls.conversation, id), { method: "DELETE" });
    } catch (error) {
      if (error.status !== 404) {
        this.onError(`Could not delete the conversation: ${error.message}`);
        return;
      }
    }
    if (id === this.currentId) {
      window.location.assign(this.urls.home);
      return;
    }
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    this.empty.hidden = this.list.children.length > 0;
    (next?.querySelector("a") || document.getElementById("new-chat")).focus();
  }
}
