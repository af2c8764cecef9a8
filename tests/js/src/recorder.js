// A fetch that records what each client sent (method, whether the body was a batch, whether
// it carried a persisted-query hash without its document) and then calls the browser's own
// fetch, so CORS is enforced by the browser as for any page.
export function recordingFetch(log) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url, window.location.href);
    const method = (init.method || "GET").toUpperCase();
    let body = null;
    if (typeof init.body === "string") body = JSON.parse(init.body);
    const extensions = body && !Array.isArray(body) ? body.extensions : url.searchParams.get("extensions");
    const query = body && !Array.isArray(body) ? body.query : url.searchParams.get("query");
    const response = await window.fetch(input, init);
    log.push({
      method,
      batch: Array.isArray(body) ? body.length : 0,
      hashOnly: Boolean(extensions) && String(JSON.stringify(extensions)).includes("sha256Hash") && !query,
      status: response.status,
      contentType: response.headers.get("content-type"),
    });
    return response;
  };
}

// sha256 hex of a string, for the persisted-query links (Web Crypto: 127.0.0.1 is a secure
// context).
export async function sha256(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// Resolves with the first value `subscribe` hands to `next` that `accept` takes, or rejects
// after `ms`.
export function firstMatching(start, accept, ms = 60000) {
  return new Promise((resolve, reject) => {
    let stop = () => {};
    const timer = setTimeout(() => {
      stop();
      reject(new Error("no matching subscription event in time"));
    }, ms);
    stop = start((value) => {
      if (accept(value)) {
        clearTimeout(timer);
        setTimeout(() => stop(), 0);
        resolve(value);
      }
    }, (error) => {
      clearTimeout(timer);
      reject(error instanceof Error ? error : new Error(JSON.stringify(error)));
    });
  });
}

// Sends (`send(attempt)`, a mutation) until `event` (the subscription's awaited value)
// arrives: a subscription goes live a moment after it is started, and how long that takes
// depends on the machine's load. Resolves with the last mutation's result and the event.
export async function sendUntilDelivered(event, send, attempts = 10) {
  let settled = false;
  event.then(
    () => (settled = true),
    () => (settled = true)
  );
  let mutation;
  for (let attempt = 0; attempt < attempts && !settled; attempt++) {
    mutation = await send(attempt);
    await Promise.race([event.catch(() => {}), new Promise((resolve) => setTimeout(resolve, 3000))]);
  }
  return { mutation, received: await event };
}
