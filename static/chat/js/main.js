// Entry point of the chat page: reads the config and wires the parts together.
import { ChatController } from "./chat.js";
import { Composer } from "./composer.js";
import { readConfig } from "./config.js";
import { addCopyButtons } from "./markdown.js";
import { OlderMessages } from "./older.js";
import { Scroller } from "./scroll.js";
import { Sidebar } from "./sidebar.js";

/** A one-line notice above the composer (connection trouble, failed actions). */
function statusBanner() {
  const banner = document.getElementById("banner");
  return {
    show(text) {
      banner.textContent = text;
      banner.hidden = false;
    },
    hide() {
      banner.hidden = true;
      banner.textContent = "";
    },
  };
}

function main() {
  const config = readConfig();
  const status = statusBanner();
  const scroller = new Scroller(
    document.getElementById("thread"),
    document.getElementById("jump"),
  );
  const sidebar = new Sidebar({
    urls: config.urls,
    currentId: config.conversationId,
    onRenamed: (id, title) => {
      if (id === controller.conversationId) {
        controller.setHeading(title);
      }
    },
    onError: (text) => status.show(text),
  });
  const composer = new Composer({
    maxLength: config.maxLength,
    onSend: (text) => controller.send(text),
    onStop: () => controller.stop(),
  });
  const controller = new ChatController(config, { composer, scroller, sidebar, status });
  for (const body of document.querySelectorAll(".msg--assistant .msg__body")) {
    addCopyButtons(body);
  }
  scroller.toBottom();
  controller.start();
  new OlderMessages(config, { scroller, onError: (text) => status.show(text) });
  // Back/forward between "/" and a conversation created here: show that page for real.
  window.addEventListener("popstate", () => window.location.reload());
  composer.focus();
  // Lets tests (and styles) know the page is interactive.
  document.documentElement.dataset.ready = "true";
}

main();
