// The message box: grows with its text, Enter sends, Shift+Enter is a newline, Esc stops;
// shows the character count as it nears the limit.
import { codePointLength } from "./messages.js";

const MAX_HEIGHT_RATIO = 0.4;
const SHOW_COUNT_FROM = 0.8;

/** The composer form, its Send/Stop buttons and counter. */
export class Composer {
  constructor({ maxLength, onSend, onStop }) {
    this.form = document.getElementById("composer");
    this.input = document.getElementById("composer-input");
    this.sendButton = document.getElementById("send-button");
    this.stopButton = document.getElementById("stop-button");
    this.counter = document.getElementById("composer-counter");
    this.maxLength = maxLength;
    this.onSend = onSend;
    this.onStop = onStop;
    this.streaming = false;
    this.busy = false;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => this.onKeydown(event));
    this.input.addEventListener("input", () => this.update());
    this.stopButton.addEventListener("click", () => this.onStop());
    this.update();
  }

  onKeydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "Escape" && this.streaming) {
      event.preventDefault();
      this.onStop();
    }
  }

  get length() {
    return codePointLength(this.input.value);
  }

  canSend() {
    const text = this.input.value;
    return !this.streaming && !this.busy && text.trim() !== "" && this.length <= this.maxLength;
  }

  submit() {
    if (!this.canSend()) {
      return;
    }
    const text = this.input.value;
    this.input.value = "";
    this.update();
    this.onSend(text);
  }

  /** Put text back (after a failure, or to edit a failed message). */
  restore(text) {
    this.input.value = text;
    this.update();
    this.input.focus();
  }

  /** While a request is in flight nothing more can be sent. */
  setBusy(busy) {
    this.busy = busy;
    this.form.setAttribute("aria-busy", String(busy));
    this.update();
  }

  /** Swap Send for Stop while a reply streams (keeping keyboard focus on the swapped button). */
  setStreaming(streaming) {
    if (this.streaming === streaming) {
      return;
    }
    this.streaming = streaming;
    const focused = document.activeElement;
    this.stopButton.hidden = !streaming;
    this.stopButton.disabled = false;
    this.sendButton.hidden = streaming;
    if (streaming && focused === this.sendButton) {
      this.stopButton.focus();
    } else if (!streaming && focused === this.stopButton) {
      this.input.focus();
    }
    this.update();
  }

  /** Stop was pressed: wait for the server to confirm. */
  setStopping() {
    this.stopButton.disabled = true;
  }

  update() {
    this.input.style.height = "auto";
    const max = window.innerHeight * MAX_HEIGHT_RATIO;
    this.input.style.height = `${Math.min(this.input.scrollHeight, max)}px`;
    const length = this.length;
    const near = length >= this.maxLength * SHOW_COUNT_FROM;
    this.counter.hidden = !near;
    this.counter.classList.toggle("is-over", length > this.maxLength);
    this.counter.textContent = near
      ? `${length.toLocaleString()} / ${this.maxLength.toLocaleString()}`
      : "";
    this.sendButton.disabled = !this.canSend();
  }

  focus() {
    this.input.focus();
  }
}
