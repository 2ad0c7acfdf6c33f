/**
 * Drives a real headless browser for the page tests, run inside the test's network
 * namespace (only loopback there: the browser can reach nothing else): starts Chromium
 * (DevTools protocol) or Firefox ESR (WebDriver BiDi) on a debugging port of 127.0.0.1,
 * opens URL, evaluates EXPRESSION (awaiting a promise) every 200 ms until it gives a value
 * other than null/false or TIMEOUT_MS passes, prints that value as JSON, closes the
 * browser. Usage: _browser_driver.ts chromium|firefox URL EXPRESSION [TIMEOUT_MS] [PNG]
 * (PNG: a screenshot of the page, Chromium only).
 */
const [kind, url, expression, timeoutText = "15000", screenshot] = Deno.args;
const timeoutMs = Number(timeoutText);
const profile = await Deno.makeTempDir({ prefix: "sesame-browser-" });

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A JSON-RPC-ish WebSocket: send, and await the answer with the same id. */
function rpc(ws: WebSocket) {
  let id = 0;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (typeof m.id === "number") waiting.get(m.id)?.(m);
  };
  return (method: string, params: Record<string, unknown> = {}, session?: string) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const n = ++id;
      waiting.set(n, resolve);
      ws.send(
        JSON.stringify({ id: n, method, params, ...(session ? { sessionId: session } : {}) }),
      );
    });
}

async function open(address: string): Promise<WebSocket> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const ws = new WebSocket(address);
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      });
      return ws;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const port = freePort();
let child: Deno.ChildProcess;
let evaluate: () => Promise<unknown>;
let shoot: (() => Promise<string>) | undefined;
if (kind === "chromium") {
  child = new Deno.Command("chromium-headless-shell", {
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      `--remote-debugging-port=${port}`,
      `--user-data-dir=${profile}`,
      "--window-size=800,640",
      "about:blank",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  // The page target, through the HTTP endpoint.
  const deadline = Date.now() + 15_000;
  let target: { webSocketDebuggerUrl: string } | undefined;
  while (!target) {
    try {
      const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      target = list.find((t: { type: string }) => t.type === "page");
    } catch { /* not up yet */ }
    if (!target) {
      if (Date.now() > deadline) throw new Error("chromium did not start");
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const send = rpc(await open(target.webSocketDebuggerUrl));
  await send("Page.enable");
  await send("Page.navigate", { url });
  evaluate = async () => {
    const r = await send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }) as { result?: { result?: { value?: unknown }; exceptionDetails?: unknown } };
    return r.result?.exceptionDetails ? null : r.result?.result?.value ?? null;
  };
  shoot = async () => {
    const r = await send("Page.captureScreenshot", { format: "png" }) as {
      result: { data: string };
    };
    return r.result.data;
  };
} else {
  // Firefox: its own profile; no update, telemetry or other call home.
  await Deno.writeTextFile(
    `${profile}/user.js`,
    [
      `user_pref("app.update.enabled", false);`,
      `user_pref("datareporting.policy.dataSubmissionEnabled", false);`,
      `user_pref("toolkit.telemetry.enabled", false);`,
      `user_pref("browser.safebrowsing.malware.enabled", false);`,
      `user_pref("browser.safebrowsing.phishing.enabled", false);`,
      `user_pref("network.captive-portal-service.enabled", false);`,
      `user_pref("network.connectivity-service.enabled", false);`,
      `user_pref("extensions.update.enabled", false);`,
      `user_pref("browser.shell.checkDefaultBrowser", false);`,
    ].join("\n") + "\n",
  );
  child = new Deno.Command("firefox-esr", {
    args: ["--headless", "--no-remote", "--profile", profile, `--remote-debugging-port=${port}`],
    env: { HOME: profile, MOZ_CRASHREPORTER_DISABLE: "1" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const send = rpc(await open(`ws://127.0.0.1:${port}/session`));
  await send("session.new", { capabilities: {} });
  const tree = await send("browsingContext.getTree", {}) as {
    result: { contexts: { context: string }[] };
  };
  const context = tree.result.contexts[0].context;
  await send("browsingContext.navigate", { context, url, wait: "complete" });
  evaluate = async () => {
    const r = await send("script.evaluate", {
      expression,
      target: { context },
      awaitPromise: true,
      resultOwnership: "none",
      serializationOptions: { maxObjectDepth: 10 },
    }) as { result?: { type: string; result?: unknown } };
    if (r.result?.type !== "success") return null;
    return fromBidi(r.result.result);
  };
}

/** WebDriver BiDi's serialized values as plain JSON values. */
function fromBidi(v: unknown): unknown {
  const value = v as { type: string; value?: unknown };
  switch (value?.type) {
    case "string":
    case "number":
    case "boolean":
      return value.value;
    case "null":
    case "undefined":
      return null;
    case "array":
      return (value.value as unknown[]).map(fromBidi);
    case "object":
      return Object.fromEntries(
        (value.value as [string, unknown][]).map(([k, x]) => [k, fromBidi(x)]),
      );
    default:
      return null;
  }
}

let result: unknown = null;
const deadline = Date.now() + timeoutMs;
try {
  while (Date.now() < deadline) {
    result = await evaluate().catch(() => null);
    if (result !== null && result !== false) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (screenshot && shoot) {
    const png = Uint8Array.from(atob(await shoot()), (c) => c.charCodeAt(0));
    await Deno.writeFile(screenshot, png);
  }
} finally {
  try {
    child.kill("SIGKILL");
  } catch { /* gone */ }
  await child.status;
  await Deno.remove(profile, { recursive: true }).catch(() => {});
}
console.log(JSON.stringify(result));
Deno.exit(0);
