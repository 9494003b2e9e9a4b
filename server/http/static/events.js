// Server-sent events read with fetch(), so the API key goes in the Authorization header
// (EventSource cannot send one). Reconnects with a back-off; the caller is told each time
// the stream (re)starts, so it can drop state that a new snapshot replaces.

function parseEvents(buffer, onEvent) {
  let start = 0;
  let end;
  while ((end = buffer.indexOf("\n\n", start)) >= 0) {
    const block = buffer.slice(start, end);
    start = end + 2;
    const fields = {};
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      fields[name] = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    }
    if ("data" in fields) onEvent(fields.event || "message", JSON.parse(fields.data), fields.id || "");
  }
  return buffer.slice(start);
}

export function openStream(path, { key, onEvent, onOpen, onProblem }) {
  const controller = new AbortController();
  let delay = 500;
  async function run() {
    while (!controller.signal.aborted) {
      try {
        const headers = key() ? { Authorization: `Bearer ${key()}` } : {};
        const response = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          onProblem(response.status, body.error ? body.error.message : response.statusText);
          if (response.status === 401 || response.status === 403) return; // a new key restarts it
        } else {
          delay = 500;
          onOpen();
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer = parseEvents(buffer + value, onEvent);
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        onProblem(0, String(error));
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 8000);
    }
  }
  run();
  return () => controller.abort();
}
