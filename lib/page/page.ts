/**
 * `sesame page`: one self-contained HTML file that knocks a door from any browser. No
 * network resource and no framework; a strict Content-Security-Policy that lets its own
 * inline script and style run (by hash) and lets it connect to the knocked host only (and
 * the `--wait-open` URL's origin). Pure: the door and options in, the HTML out.
 * @module
 */
import type { Door } from "../config/types.ts";
import { encodeSecret } from "../secret.ts";
import { parseAddress } from "../address.ts";
import { BAD_PORTS, BAD_PORTS_DATE, BAD_PORTS_MAX } from "./bad_ports.ts";
import { BROWSER_SCRIPT } from "./browser_script.ts";

/** Why a door cannot be knocked from a browser, or what to watch for when it can. */
export interface BrowserFit {
  /** The reason it cannot, when it cannot. */
  readonly refusal?: string;
  /** What may stop it later. */
  readonly warnings: readonly string[];
}

/**
 * Whether a browser can knock `door`: TCP only (a browser sends no UDP), and no port a
 * browser refuses (the Fetch standard's bad ports).
 *
 * @example
 * ```ts
 * import { browserFit } from "./page.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { match as assertMatch } from "node:assert/strict";
 * const { doors } = validateConfig({ doors: { x: { sequence: [7000, "8000/udp"] } } });
 * assertMatch(browserFit(doors[0]).refusal!, /UDP/);
 * ```
 */
export function browserFit(door: Door): BrowserFit {
  if (door.kind === "spa") {
    return {
      refusal: `door ${door.name} is a single-packet (SPA) door: a browser sends no UDP`,
      warnings: [],
    };
  }
  const ports = door.kind === "static"
    ? door.sequence
    : door.candidates.map((port) => ({ port, protocol: door.protocol }));
  if (ports.some((k) => k.protocol !== "tcp")) {
    return {
      refusal: `door ${door.name} takes UDP knocks (protocol ${
        door.kind === "static" ? "udp in its sequence" : door.protocol
      }): a browser sends no UDP; knock it with sesame knock`,
      warnings: [],
    };
  }
  const bad = ports.map((k) => k.port).filter((p) => BAD_PORTS.has(p));
  if (bad.length > 0) {
    return {
      refusal: `door ${door.name}'s ports include ${bad.slice(0, 8).join(", ")}${
        bad.length > 8 ? " …" : ""
      }, which browsers refuse to connect to (the Fetch standard's bad ports, list of ${BAD_PORTS_DATE}): exclude them from the pool`,
      warnings: [],
    };
  }
  const low = ports.some((k) => k.port <= BAD_PORTS_MAX);
  return {
    warnings: low
      ? [
        `door ${door.name} has ports at or below ${BAD_PORTS_MAX}, where browsers add bad ports now and then: a browser update may refuse one (pools above ${BAD_PORTS_MAX} are safe)`,
      ]
      : [],
  };
}

/** Options for {@link knockPage}. */
export interface PageOptions {
  /** The host to knock: a name or an address, as for `sesame knock`. */
  readonly host: string;
  /** The door (a user's door for a door with users). */
  readonly door: Door;
  /** Embed the secret (the file is then a credential). */
  readonly embedSecret?: boolean;
  /** An http(s) URL to wait for after the knock. */
  readonly waitOpen?: string;
  /** The knocker's address as the server sees it (bind_source doors), prefilled. */
  readonly from?: string;
}

const STYLE = `
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
main { max-width: 34rem; margin: 2rem auto; padding: 1.5rem 2rem; background: #fff; border-radius: 10px; box-shadow: 0 1px 4px #0002; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
label { display: block; margin: 1rem 0 .25rem; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; border: 1px solid #b8bfcc; border-radius: 6px; }
button { margin-top: 1rem; padding: .6rem 1.6rem; font: inherit; font-weight: 600; color: #fff; background: #2356c7; border: 0; border-radius: 6px; cursor: pointer; }
button:disabled { background: #8a9bc2; }
.hint { color: #5b6473; font-size: .9rem; margin: .25rem 0; }
.warn { background: #fff4d6; border-left: 4px solid #d99a00; padding: .5rem .75rem; }
#status { min-height: 1.5rem; margin-top: 1rem; font-weight: 600; }
#status.ok { color: #137333; } #status.bad { color: #b3261e; }
#log { color: #5b6473; font: 14px/1.4 ui-monospace, monospace; }
`;

/** Ascending ports as runs `[first, last]` (the page expands them). */
function ranges(ports: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const p of [...ports].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && p === last[1] + 1) last[1] = p;
    else if (!last || p > last[1]) out.push([p, p]);
  }
  return out;
}

/** HTML text, escaped. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function sha256Base64(text: string): Promise<string> {
  const hash = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  return btoa(String.fromCharCode(...hash));
}

/**
 * The page. Throws a TypeError for a door {@link browserFit} refuses.
 *
 * @example
 * ```ts
 * import { knockPage } from "./page.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { match as assertMatch } from "node:assert/strict";
 * const { doors } = validateConfig({
 *   doors: { ssh: { secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", ports: "20000-20999" } },
 * });
 * const html = await knockPage({ host: "192.0.2.10", door: doors[0] });
 * assertMatch(html, /connect-src https:\/\/192\.0\.2\.10:\*;/);
 * assertMatch(html, /id="secret" type="password"/); // typed in, never stored
 * ```
 */
export async function knockPage(options: PageOptions): Promise<string> {
  const { door, host } = options;
  // The host goes into the CSP and the page: a host name or an IPv4 address, nothing else.
  if (parseAddress(host.replace(/^\[(.*)\]$/, "$1"))?.family === 6) {
    throw new TypeError(
      `${host}: browsers' Content-Security-Policy cannot name an IPv6 address, so the page could not connect to it; give a host name (one with only an AAAA record knocks over IPv6)`,
    );
  }
  if (
    !/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/
      .test(host)
  ) {
    throw new TypeError(`${JSON.stringify(host)} is not a host name or an IPv4 address`);
  }
  const fit = browserFit(door);
  if (fit.refusal) throw new TypeError(fit.refusal);
  if (door.kind === "spa") throw new TypeError("unreachable");
  const inUrl = host.includes(":") ? `[${host}]` : host;
  let waitOrigin = "";
  if (options.waitOpen) {
    const url = new URL(options.waitOpen);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`--wait-open must be an http(s) URL, received ${options.waitOpen}`);
    }
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    if (BAD_PORTS.has(port)) {
      throw new TypeError(
        `--wait-open: browsers refuse port ${port} (a bad port; SSH's 22 is one): give a URL of a service on a port they allow`,
      );
    }
    if (url.hostname.includes(":") || url.hostname.includes("[")) {
      throw new TypeError(
        `--wait-open: browsers' Content-Security-Policy cannot name an IPv6 address: use a host name`,
      );
    }
    waitOrigin = ` ${url.origin}`;
  }
  const config = {
    host,
    knockTimeoutMs: 200,
    gapMs: 50,
    waitOpen: options.waitOpen ?? null,
    secret: options.embedSecret && door.kind === "rotating" ? encodeSecret(door.secret) : null,
    next: options.waitOpen
      ? "Connect now."
      : `Connect to ${host} now: the door is open for your address for a while.`,
    door: door.kind === "static"
      ? { kind: "static", name: door.name, sequence: door.sequence.map((k) => ({ port: k.port })) }
      : {
        kind: "rotating",
        name: door.name,
        pool: ranges(door.candidates),
        length: door.length,
        periodMs: door.periodMs,
        skew: door.skew,
        bindSource: door.bindSource,
        sourcePrefix: door.sourcePrefix,
      },
  };
  const json = JSON.stringify(config).replace(/</g, "\\u003c");
  const csp = [
    "default-src 'none'",
    `script-src 'sha256-${await sha256Base64(BROWSER_SCRIPT)}'`,
    `style-src 'sha256-${await sha256Base64(STYLE)}'`,
    `connect-src https://${inUrl}:*${waitOrigin}`,
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
  const embedded = config.secret !== null;
  const secretField = door.kind === "static"
    ? `<p class="hint">A static (knockd-style) door: no secret, the same knocks every time.</p>`
    : embedded
    ? `<p class="warn">This page holds the door's secret: anyone who has this file can knock. Keep it as you keep a key. Open it with <code>#knock</code> at the end of its address to knock at once.</p>`
    : `<label for="secret">The door's secret</label>
<input id="secret" type="password" autocomplete="off" spellcheck="false">
<p class="hint">Typed here, used in this page only: never stored, never sent.</p>`;
  const fromField = door.kind === "rotating" && door.bindSource
    ? `<label for="from">Your address, as ${escapeHtml(host)} sees it</label>
<input id="from" value="${escapeHtml(options.from ?? "")}" autocomplete="off" spellcheck="false">
<p class="hint">This door's code depends on the knocking address. Behind NAT it is your public address, not your computer's.</p>`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Knock on ${escapeHtml(host)}: ${escapeHtml(door.name)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>Knock on ${escapeHtml(host)}</h1>
<p>Door <b>${escapeHtml(door.name)}</b>: ${
    door.kind === "static"
      ? `${door.sequence.length} knocks`
      : `${door.length} knocks, a new code every ${door.periodMs / 1000} s`
  }. The page connects to each knock port of ${
    escapeHtml(host)
  } in turn; the connections fail, and that is expected.</p>
${secretField}
${fromField}
<button id="knock" type="button">Knock</button>
<p id="status" role="status"></p>
<ol id="log"></ol>
</main>
<script type="application/json" id="sesame-config">${json}</script>
<script>${BROWSER_SCRIPT}</script>
</body>
</html>
`;
}
