// The open conversation: sending, streaming over SSE or WebSocket, stop, retry, re-attach.
import { fillUrl, socketUrl } from "./config.js";
import { ApiError, api } from "./http.js";
import {
  Reply,
  codePointLength,
  createMessageElement,
  fillMessage,
  findMessageElement,
  showError,
  userText,
} from "./messages.js";
import { copyCode } from "./markdown.js";
import { ConversationSocket } from "./socket.js";
import { followStream } from "./sse.js";

const TRANSPORT_KEY = "chat.transport";
const LOST_RETRY_MS = 2000;
const MAX_LOST_RETRIES = 5;
const ECHO_TIMEOUT_MS = 20000;
const ANNOUNCE_MAX = 3000;

function storedTransport(fallback) {
  try {
    return window.localStorage.getItem(TRANSPORT_KEY) || fallback;
  } catch {
    return fallback;
  }
}

/** Controls the thread of the open conversation (or of the one the first message creates). */
export class ChatController {
  constructor(config, { composer, scroller, sidebar, status }) {
    this.config = config;
    this.urls = config.urls;
    this.conversationId = config.conversationId;
    this.composer = composer;
    this.scroller = scroller;
    this.sidebar = sidebar;
    this.status = status;
    this.messages = document.getElementById("messages");
    this.emptyState = document.getElementById("empty-state");
    this.toggle = document.getElementById("transport-toggle");
    this.replies = new Map();
    this.active = null;
    this.follow = null;
    this.socket = null;
    this.pendingUsers = [];
    this.transport = storedTransport(config.transport) === "websocket" ? "websocket" : "sse";
  }

  start() {
    this.toggle.checked = this.transport === "websocket";
    this.toggle.addEventListener("change", () =>
      this.setTransport(this.toggle.checked ? "websocket" : "sse"),
    );
    this.messages.addEventListener("click", (event) => this.onThreadClick(event));
    if (this.config.streaming) {
      this.reattach(this.config.streaming);
    }
    if (this.transport === "websocket" && this.conversationId) {
      this.openSocket();
    }
  }

  // -- sending --------------------------------------------------------------------

  async send(text) {
    const element = this.appendUser(text);
    this.scroller.toBottom();
    this.composer.setBusy(true);
    try {
      if (!this.conversationId) {
        await this.createConversation();
      }
      if (this.transport === "websocket") {
        await this.sendOverSocket(text, element);
      } else {
        await this.sendOverSse(text, element);
      }
      this.sidebar.touch(this.conversationId);
      this.refreshTitle();
    } catch (error) {
      this.failUser(element, error);
    } finally {
      this.composer.setBusy(false);
    }
  }

  async createConversation() {
    const conversation = await api(this.urls.conversations, { method: "POST", body: {} });
    this.conversationId = conversation.id;
    window.history.pushState({}, "", fillUrl(this.urls.page, conversation.id));
    this.sidebar.add(conversation);
    if (this.transport === "websocket") {
      this.openSocket();
    }
  }

  async sendOverSse(text, element) {
    const url = fillUrl(this.urls.messages, this.conversationId);
    const data = await api(url, { method: "POST", body: { content: text } });
    fillMessage(element, data.user_message);
    const reply = this.addReply(data.assistant_message);
    this.followSse(reply, data.stream_url);
  }

  /** Send over the socket; resolves when the server echoes the stored message back. */
  async sendOverSocket(text, element) {
    this.openSocket();
    if (!(await this.socket.ready())) {
      throw new ApiError("network_error", "Could not connect to the server. Try again.", 0);
    }
    await new Promise((resolve, reject) => {
      const pending = { element, resolve, reject };
      this.pendingUsers.push(pending);
      window.setTimeout(() => {
        const index = this.pendingUsers.indexOf(pending);
        if (index >= 0) {
          this.pendingUsers.splice(index, 1);
          reject(new ApiError("timeout", "The server did not answer. Try again.", 0));
        }
      }, ECHO_TIMEOUT_MS);
      this.socket.send({ type: "message", content: text });
    });
  }

  appendUser(text) {
    const element = createMessageElement("user");
    element.dataset.status = "pending";
    element.querySelector(".msg__body").textContent = text;
    this.append(element);
    return element;
  }

  append(element) {
    this.messages.append(element);
    this.emptyState.hidden = true;
  }

  failUser(element, error) {
    element.dataset.status = "failed";
    showError(element, { message: error.message || "The message could not be sent." });
    this.announce(`Your message was not sent: ${error.message}`);
    this.scroller.contentChanged();
  }

  async refreshTitle() {
    const id = this.conversationId;
    if (this.sidebar.titleOf(id)) {
      return;
    }
    try {
      const conversation = await api(fillUrl(this.urls.conversation, id));
      this.sidebar.setTitle(id, conversation.title);
      this.setHeading(conversation.title);
    } catch {
      // The title is cosmetic; the next page load shows it.
    }
  }

  setHeading(title) {
    document.getElementById("chat-title").textContent = title || "New chat";
    document.title = title ? `${title} · Chat` : "Chat";
  }

  // -- replies --------------------------------------------------------------------

  /** The Reply of an assistant message, creating its element if needed. */
  addReply(message) {
    const existing = this.replies.get(message.id);
    if (existing) {
      return existing;
    }
    let element = findMessageElement(message.id);
    if (!element) {
      element = createMessageElement("assistant");
      this.append(element);
    }
    const text = message.content || "";
    const reply = new Reply(element, {
      messageId: message.id,
      text,
      offset: codePointLength(text),
      onRender: () => this.scroller.contentChanged(),
    });
    this.replies.set(message.id, reply);
    if (message.status === "streaming") {
      this.setActive(reply);
      reply.render();
    } else if (message.status === "error" || message.status === "interrupted") {
      reply.fail(message.error || { message: "The reply failed." });
    } else {
      reply.finish(message.status);
    }
    return reply;
  }

  reattach(streaming) {
    const element = findMessageElement(streaming.messageId);
    if (!element) {
      return;
    }
    const reply = new Reply(element, {
      messageId: streaming.messageId,
      text: streaming.content,
      offset: streaming.offset,
      onRender: () => this.scroller.contentChanged(),
    });
    this.replies.set(reply.messageId, reply);
    this.setActive(reply);
    if (this.transport !== "websocket") {
      const url = fillUrl(this.urls.stream, reply.messageId);
      this.followSse(reply, `${url}?offset=${reply.offset}`);
    }
  }

  setActive(reply) {
    this.active = reply;
    this.composer.setStreaming(Boolean(reply));
    this.toggle.disabled = Boolean(reply);
    if (reply) {
      this.announce("Claude is typing…");
    }
  }

  onChunk(messageId, text, offset) {
    let reply = this.replies.get(messageId);
    if (!reply && this.transport === "websocket") {
      reply = this.addReply({ id: messageId, status: "streaming", content: "" });
    }
    if (!reply || reply.isFinal) {
      return;
    }
    if (reply.admit(text, offset) === "gap" && !reply.resyncing) {
      // A piece is missing (joined mid-reply): ask for everything from what we have.
      reply.resyncing = true;
      if (this.transport === "websocket") {
        this.socket?.send({ type: "resume", message_id: messageId, offset: reply.offset });
      } else {
        this.followSse(reply, `${fillUrl(this.urls.stream, messageId)}?offset=${reply.offset}`);
      }
    }
  }

  onDone(data) {
    const reply = this.replies.get(data.message_id) || this.active;
    if (!reply || reply.isFinal) {
      return;
    }
    reply.finish(data.status);
    this.ended(reply, data.status === "cancelled" ? "Reply stopped." : null);
  }

  onReplyError(data) {
    const reply = this.replies.get(data.message_id) || this.active;
    if (!reply || reply.isFinal) {
      return;
    }
    reply.fail(data.error);
    this.ended(reply, `The reply failed: ${data.error?.message || "unknown error"}`);
  }

  ended(reply, notice) {
    if (this.active === reply) {
      this.follow?.close();
      this.follow = null;
      this.setActive(null);
    }
    const text = reply.body.textContent.trim().slice(0, ANNOUNCE_MAX);
    this.announce(notice ? `${notice} ${text}` : `Claude replied: ${text}`);
  }

  followSse(reply, url) {
    this.follow?.close();
    let lost = 0;
    const open = (streamUrl) =>
      followStream(streamUrl, {
        start: () => {},
        chunk: (text, offset) => this.onChunk(reply.messageId, text, offset),
        done: (data) => this.onDone({ ...data, message_id: reply.messageId }),
        error: (data) => this.onReplyError({ ...data, message_id: reply.messageId }),
        lost: () => {
          lost += 1;
          if (reply.isFinal || this.active !== reply) {
            return;
          }
          if (lost > MAX_LOST_RETRIES) {
            this.onReplyError({
              message_id: reply.messageId,
              error: { message: "Lost the connection to the reply. Reload the page to see it." },
            });
            return;
          }
          window.setTimeout(() => {
            if (!reply.isFinal && this.active === reply) {
              const base = fillUrl(this.urls.stream, reply.messageId);
              this.follow = open(`${base}?offset=${reply.offset}`);
            }
          }, LOST_RETRY_MS);
        },
      });
    this.follow = open(url);
  }

  async stop() {
    const reply = this.active;
    if (!reply) {
      return;
    }
    this.composer.setStopping();
    if (this.transport === "websocket" && this.socket?.send({ type: "cancel" })) {
      return;
    }
    try {
      await api(fillUrl(this.urls.cancel, reply.messageId), { method: "POST" });
    } catch (error) {
      this.status.show(`Could not stop the reply: ${error.message}`);
      this.composer.setStreaming(true);
    }
  }

  // -- WebSocket ------------------------------------------------------------------

  setTransport(name) {
    this.transport = name;
    try {
      window.localStorage.setItem(TRANSPORT_KEY, name);
    } catch {
      // Private mode: the choice lasts for this page only.
    }
    if (name === "websocket") {
      if (this.conversationId) {
        this.openSocket();
      }
    } else {
      this.socket?.close();
      this.socket = null;
    }
  }

  openSocket() {
    if (this.socket) {
      return;
    }
    const url = socketUrl(fillUrl(this.urls.websocket, this.conversationId));
    this.socket = new ConversationSocket(url, {
      open: () => {
        this.status.hide();
        if (this.active && !this.active.isFinal) {
          this.socket.send({
            type: "resume",
            message_id: this.active.messageId,
            offset: this.active.offset,
          });
        }
      },
      frame: (frame) => this.onFrame(frame),
      down: () => this.status.show("Connection lost. Reconnecting…"),
      refused: (code) =>
        this.status.show(
          code === 4401
            ? "You're logged out. Reload the page to log in again."
            : "This conversation can't be opened. Reload the page.",
        ),
    });
    this.socket.open();
  }

  onFrame(frame) {
    if (frame.type === "message") {
      this.onMessageFrame(frame.message);
    } else if (frame.type === "start") {
      if (!frame.conversation_id || frame.conversation_id === this.conversationId) {
        this.addReply({ id: frame.message_id, status: "streaming", content: "" });
      }
    } else if (frame.type === "chunk") {
      this.onChunk(frame.message_id, frame.chunk, frame.offset);
    } else if (frame.type === "done") {
      this.onDone(frame);
    } else if (frame.type === "error") {
      if (frame.message_id != null) {
        this.onReplyError(frame);
      } else {
        this.onRequestError(frame.error || {});
      }
    }
  }

  onMessageFrame(message) {
    if (!message || findMessageElement(message.id)) {
      return;
    }
    if (message.role === "assistant") {
      this.addReply(message);
      return;
    }
    const pending = this.pendingUsers.shift();
    if (pending) {
      fillMessage(pending.element, message);
      pending.resolve();
    } else {
      this.append(fillMessage(createMessageElement("user"), message));
      this.scroller.contentChanged();
    }
    this.sidebar.touch(this.conversationId);
  }

  onRequestError(error) {
    const pending = this.pendingUsers.shift();
    const message = error.message || "The request was refused.";
    if (pending) {
      pending.reject(new ApiError(error.type || "invalid_request", message, 0));
    } else {
      this.status.show(message);
    }
  }

  // -- thread actions -------------------------------------------------------------

  onThreadClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) {
      return;
    }
    const element = button.closest(".msg");
    const action = button.dataset.action;
    if (action === "copy") {
      copyCode(button);
    } else if (action === "retry") {
      this.retry(element);
    } else if (action === "edit") {
      this.composer.restore(userText(element));
      element.remove();
    }
  }

  /** Send the failed message's text again (a failed send, or the prompt of a failed reply). */
  retry(element) {
    if (this.active || this.composer.busy) {
      this.status.show("Wait for the current reply to finish, or stop it first.");
      return;
    }
    let source = element;
    while (source && source.dataset.role !== "user") {
      source = source.previousElementSibling;
    }
    if (!source) {
      this.status.show("The message to retry is not loaded. Scroll up and try again.");
      return;
    }
    const text = userText(source);
    if (element.dataset.role === "user") {
      element.remove();
    } else {
      element.querySelector('[data-action="retry"]').hidden = true;
    }
    this.status.hide();
    this.send(text);
  }

  announce(text) {
    const region = document.getElementById("announcer");
    region.textContent = "";
    window.setTimeout(() => {
      region.textContent = text;
    }, 50);
  }
}
