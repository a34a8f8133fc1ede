// Smart scrolling: follow new content only while the reader is at the bottom; otherwise
// offer a "Jump to latest" button. Also keeps the view still when older messages load.

const NEAR_BOTTOM_PX = 48;
// A scroll within this long of the reader's wheel, touch or key counts as theirs.
const INTENT_MS = 1000;
const SCROLL_KEYS = new Set(["ArrowUp", "PageUp", "Home", "ArrowDown", "PageDown", "End", " "]);

/** Scroll behaviour of the thread. */
export class Scroller {
  constructor(thread, jumpButton) {
    this.thread = thread;
    this.jumpButton = jumpButton;
    this.stick = true;
    this.lastTop = thread.scrollTop;
    this.intentAt = 0;
    const intent = () => {
      this.intentAt = performance.now();
    };
    for (const type of ["wheel", "touchmove", "pointerdown"]) {
      thread.addEventListener(type, intent, { passive: true });
    }
    thread.addEventListener("keydown", (event) => SCROLL_KEYS.has(event.key) && intent());
    thread.addEventListener("scroll", () => this.onScroll(), { passive: true });
    jumpButton.addEventListener("click", () => {
      this.toBottom();
      document.getElementById("composer-input")?.focus();
    });
  }

  atBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.thread;
    return scrollHeight - scrollTop - clientHeight <= NEAR_BOTTOM_PX;
  }

  onScroll() {
    const top = this.thread.scrollTop;
    if (this.atBottom()) {
      this.stick = true;
      this.jumpButton.hidden = true;
    } else if (top < this.lastTop && performance.now() - this.intentAt < INTENT_MS) {
      // The reader scrolled up (layout changes that move the view do not count).
      this.stick = false;
      this.jumpButton.hidden = false;
    }
    this.lastTop = top;
  }

  /** Content grew: follow it if the reader is at the bottom, else offer the jump button. */
  contentChanged() {
    if (this.stick) {
      this.thread.scrollTop = this.thread.scrollHeight;
      this.lastTop = this.thread.scrollTop;
    } else {
      this.jumpButton.hidden = false;
    }
  }

  /** Go to the newest message and follow from there. */
  toBottom() {
    this.stick = true;
    this.jumpButton.hidden = true;
    this.thread.scrollTop = this.thread.scrollHeight;
    this.lastTop = this.thread.scrollTop;
  }

  /** Run `prepend()` (which adds content above) without moving what the reader sees. */
  keepPosition(prepend) {
    const fromBottom = this.thread.scrollHeight - this.thread.scrollTop;
    prepend();
    this.thread.scrollTop = this.thread.scrollHeight - fromBottom;
    this.lastTop = this.thread.scrollTop;
  }
}
