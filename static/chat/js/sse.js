// Following a reply over Server-Sent Events (GET <stream_url>, resumable by offset).

/**
 * Follow a reply's event stream; `handlers` get start(data), chunk(text, offset),
 * done(data), error(data) and lost() (the stream closed before its end).
 * EventSource reconnects by itself after a network drop, sending Last-Event-ID.
 * Returns an object whose close() stops following.
 */
export function followStream(url, handlers) {
  const source = new EventSource(url);
  let ended = false;
  const end = () => {
    ended = true;
    source.close();
  };
  source.addEventListener("start", (event) => handlers.start(JSON.parse(event.data)));
  source.addEventListener("message", (event) => {
    if (event.data === "[DONE]") {
      end();
      return;
    }
    const data = JSON.parse(event.data);
    if (typeof data.chunk === "string") {
      handlers.chunk(data.chunk, Number(event.lastEventId));
    }
  });
  source.addEventListener("done", (event) => {
    end();
    handlers.done(JSON.parse(event.data));
  });
  source.addEventListener("error", (event) => {
    // The server's named "error" event carries data; the browser's own has none.
    if (event.data) {
      end();
      handlers.error(JSON.parse(event.data));
    } else if (source.readyState === EventSource.CLOSED && !ended) {
      ended = true;
      handlers.lost();
    }
  });
  return { close: end };
}
