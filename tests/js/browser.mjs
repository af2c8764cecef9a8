// Drives the machine's Chromium (headless, via playwright-core; no browser is downloaded)
// for tests/js/test_js_clients.py. Every request to a host other than loopback is aborted
// and reported, so nothing can load from the internet unnoticed.
//
//   node browser.mjs clients <page url> <apollo|urql> <config json>   → prints the result JSON
//   node browser.mjs graphiql <graphiql url> <config json>            → prints what it saw
import { chromium } from "playwright-core";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
const [mode, url, ...rest] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const blocked = [];
const consoleLines = [];
try {
  let result;
  if (mode === "clients") {
    const [client, config] = rest;
    const page = await newPage();
    await page.goto(url);
    result = await page.evaluate(
      ({ client, config }) => window.chatrClients[client](config),
      { client, config: JSON.parse(config) }
    );
  } else if (mode === "graphiql") {
    result = await graphiql(url, JSON.parse(rest[0]));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  console.log(JSON.stringify({ result, blocked, console: consoleLines }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error && error.stack || error), blocked, console: consoleLines }));
  process.exitCode = 1;
} finally {
  await browser.close();
}

// A page in a fresh context (its own localStorage) whose non-loopback requests are blocked.
async function newPage(init) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.route("**/*", (route) => {
    const target = new URL(route.request().url());
    if (target.protocol === "data:" || LOOPBACK.has(target.hostname)) return route.continue();
    blocked.push(target.href);
    return route.abort();
  });
  if (init) await context.addInitScript(init.script, init.arg);
  const page = await context.newPage();
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
  return page;
}

async function graphiql(url, config) {
  // GraphiQL keeps its editors in localStorage: seed the query and the Headers tab.
  const headers = JSON.stringify({ Authorization: `Bearer ${config.token}` });
  let page;
  async function open(query) {
    page = await newPage({ script:
      ({ query, headers }) => {
        localStorage.setItem("graphiql:query", query);
        localStorage.setItem("graphiql:headers", headers);
        localStorage.setItem("graphiql:tabState", "");
      },
      arg: { query, headers },
    });
    await page.goto(url);
    await page.waitForSelector(".graphiql-execute-button", { timeout: 60000 });
  }
  const resultText = () => page.locator(".result-window").innerText();

  await open(config.query);
  await page.click(".graphiql-execute-button");
  await page.waitForFunction(
    (expected) => document.querySelector(".result-window")?.innerText.includes(expected),
    config.expectQuery,
    { timeout: 60000 }
  );
  const queryResult = await resultText();

  await page.context().close();
  await open(config.subscription);
  await page.click(".graphiql-execute-button");
  // The subscription goes live a moment after the click, and how long that takes depends on
  // the machine's load: send the message again (a new clientMessageId each time) until it
  // shows in the result pane.
  const shown = () =>
    page
      .waitForFunction(
        (expected) => document.querySelector(".result-window")?.innerText.includes(expected),
        config.expectSubscription,
        { timeout: 5000 }
      )
      .then(() => true, () => false);
  let arrived = false;
  for (let attempt = 0; attempt < 12 && !arrived; attempt++) {
    const send = structuredClone(config.send);
    send.variables.input.clientMessageId += `-${attempt}`;
    const sent = await fetch(config.httpUrl, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${config.token}` },
      body: JSON.stringify(send),
    });
    if (!sent.ok) throw new Error(`send failed: ${sent.status} ${await sent.text()}`);
    arrived = await shown();
  }
  if (!arrived) throw new Error("the subscription result never showed the message");
  const subscriptionResult = await resultText();
  await page.screenshot({ path: config.screenshot });
  return { queryResult, subscriptionResult };
}
