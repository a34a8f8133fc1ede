// The conversation's WebSocket: JSON frames both ways, reconnecting with backoff.

const REFUSED = new Set([4401, 4403, 4404]);
const MAX_BACKOFF_MS = 10000;

/**
 * A reconnecting WebSocket; `handlers` get open() on every (re)connection, frame(data),
 * down() when the connection drops (a reconnect follows) and refused(code).
 */
export class ConversationSocket {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.socket = null;
    this.attempts = 0;
    this.timer = 0;
    this.closed = false;
    this.waiters = [];
  }

  open() {
    this.closed = false;
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempts = 0;
      for (const resolve of this.waiters.splice(0)) {
        resolve(true);
      }
      this.handlers.open();
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handlers.frame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.closed) {
        return;
      }
      if (REFUSED.has(event.code)) {
        this.closed = true;
        this.handlers.refused(event.code);
        return;
      }
      this.handlers.down();
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts);
      this.attempts += 1;
      this.timer = window.setTimeout(() => this.open(), delay);
    });
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Resolves true once the socket is open, false after `timeoutMs`. */
  ready(timeoutMs = 5000) {
    if (this.isOpen) {
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      window.setTimeout(() => resolve(false), timeoutMs);
    });
  }

  /** Send a frame; false if the socket is not open. */
  send(frame) {
    if (!this.isOpen) {
      return false;
    }
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  close() {
    this.closed = true;
    window.clearTimeout(this.timer);
    if (this.socket) {
      this.socket.close(1000);
    }
    this.socket = null;
  }
}
