/**
 * The script of the knock page, as the text the page carries inline (its CSP allows it by
 * hash). Plain browser JavaScript with no dependency: WebCrypto's HMAC-SHA256 derives the
 * code exactly as docs/SEQUENCE.md says (BigInt counters), the counter is chosen like the
 * CLI client's (the whole sequence inside the server's window; never one used before, as
 * remembered in localStorage), and each knock is one `fetch` to `https://HOST:PORT/`,
 * aborted after about 200 ms: the TCP connection is the knock, the failure is expected.
 * Tested in headless Chromium and Firefox (tests/page_browser_test.ts).
 * @module
 */

/** The script's text. `CONFIG` comes from the page's JSON block `#sesame-config`. */
export const BROWSER_SCRIPT = String.raw`"use strict";
(() => {
  const CONFIG = JSON.parse(document.getElementById("sesame-config").textContent);
  const enc = new TextEncoder();
  const $ = (id) => document.getElementById(id);

  function fromBase64url(text) {
    let s = text.trim().replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    const raw = atob(s);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /** docs/SEQUENCE.md, step for step. counter: BigInt; source: bytes (empty unless bind_source). */
  async function sequence(secret, door, counter, candidates, length, mode, source) {
    const key = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const t = new Uint8Array(8);
    new DataView(t.buffer).setBigUint64(0, BigInt.asUintN(64, counter));
    const prefix = concat(enc.encode("sesame/v1"), [0], enc.encode(door), [0], t, source);
    let words = [];
    let at = 0;
    let block = 0;
    const next = async () => {
      if (at >= words.length) {
        const i = new Uint8Array(4);
        new DataView(i.buffer).setUint32(0, block++);
        const mac = new DataView(await crypto.subtle.sign("HMAC", key, concat(prefix, i)));
        words = [];
        for (let k = 0; k < 8; k++) words.push(mac.getUint32(k * 4));
        at = 0;
      }
      return words[at++];
    };
    const n = candidates.length;
    const limit = 2 ** 32 - (2 ** 32 % n);
    const chosen = new Set();
    const out = [];
    while (out.length < length) {
      const w = await next();
      if (w >= limit) continue;
      const port = candidates[w % n];
      if (chosen.has(port)) continue;
      chosen.add(port);
      let protocol = mode;
      if (mode === "mixed") protocol = (await next()) % 2 === 1 ? "udp" : "tcp";
      out.push({ port, protocol });
    }
    return out;
  }

  /** An IPv4 or IPv6 address as its bytes (IPv4-mapped counts as IPv4), or null. */
  function parseAddress(text) {
    text = text.trim();
    const v4 = (s) => {
      // No leading zeros (octal to some readers): refused, as the server refuses them.
      const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(s);
      if (!m) return null;
      const b = m.slice(1).map(Number);
      return b.every((x) => x <= 255) ? b : null;
    };
    const four = v4(text);
    if (four) return { family: 4, bytes: four };
    if (!/^[0-9a-fA-F:.]+$/.test(text) || text.split("::").length > 2) return null;
    let body = text;
    const dotted = body.includes(".");
    if (dotted) {
      // An embedded IPv4 tail (::ffff:192.0.2.7) as its two hex groups.
      const cut = body.lastIndexOf(":");
      const b = v4(body.slice(cut + 1));
      if (!b) return null;
      body = body.slice(0, cut + 1) + ((b[0] << 8) | b[1]).toString(16) + ":" + ((b[2] << 8) | b[3]).toString(16);
    }
    const [head, rest] = body.includes("::") ? body.split("::") : [body, null];
    const parse = (s) => (s === "" ? [] : s.split(":").map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
    const h = parse(head);
    const r = rest === null ? [] : parse(rest);
    const total = h.length + r.length;
    if (h.some(isNaN) || r.some(isNaN) || (rest === null ? total !== 8 : total > 7)) return null;
    const groups = [...h, ...new Array(8 - total).fill(0), ...r];
    const bytes = groups.flatMap((g) => [g >> 8, g & 255]);
    // ::1.2.3.4 (IPv4-compatible, deprecated): refused, as the server refuses it.
    if (dotted && bytes.slice(0, 12).every((x) => x === 0)) return null;
    const mapped = bytes.slice(0, 10).every((x) => x === 0) && bytes[10] === 255 && bytes[11] === 255;
    return mapped ? { family: 4, bytes: bytes.slice(12) } : { family: 6, bytes };
  }

  /** S of docs/SEQUENCE.md: family, prefix, the masked address. */
  function sourceBytes(address, prefixes) {
    const prefix = address.family === 4 ? prefixes.ipv4 : prefixes.ipv6;
    const masked = address.bytes.map((b, i) => {
      const bits = Math.max(0, Math.min(8, prefix - i * 8));
      return b & ((0xff << (8 - bits)) & 0xff);
    });
    return Uint8Array.from([address.family === 4 ? 4 : 6, prefix, ...masked]);
  }

  function expand(ranges) {
    const out = [];
    for (const [a, b] of ranges) for (let p = a; p <= b; p++) out.push(p);
    return out;
  }

  /** The counter to knock with: the CLI's counterForKnock and nextCounter. */
  function chooseCounter(door, now, durationMs, lastUsed) {
    const current = Math.floor(now / door.periodMs);
    const end = Math.floor((now + durationMs) / door.periodMs);
    const planned = end > current && door.skew >= end - current ? end : current;
    const usable = lastUsed !== null && lastUsed + 1 <= current + door.skew + 1;
    const counter = usable ? Math.max(planned, lastUsed + 1) : planned;
    if (counter <= current + door.skew) return { counter, wait: 0 };
    return { counter, wait: (counter - door.skew) * door.periodMs - now };
  }

  async function fingerprint(secret) {
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", secret));
    return Array.from(hash.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const hostInUrl = CONFIG.host.includes(":") ? "[" + CONFIG.host + "]" : CONFIG.host;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /** One knock: a connection to the port; the fetch fails (no TLS there), and that is fine. */
  async function knockPort(port) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), CONFIG.knockTimeoutMs);
    try {
      await fetch("https://" + hostInUrl + ":" + port + "/", {
        mode: "no-cors",
        cache: "no-store",
        credentials: "omit",
        signal: controller.signal,
      });
    } catch (_) {
      // refused, reset, aborted: the connection attempt was the knock
    } finally {
      clearTimeout(timer);
    }
  }

  function line(text, kind) {
    const li = document.createElement("li");
    li.textContent = text;
    if (kind) li.className = kind;
    $("log").appendChild(li);
  }

  function say(text, kind) {
    $("status").textContent = text;
    $("status").className = kind || "";
  }

  async function waitOpen(url, seconds) {
    const until = Date.now() + seconds * 1000;
    while (Date.now() < until) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 1500);
      try {
        await fetch(url, { mode: "no-cors", cache: "no-store", credentials: "omit", signal: controller.signal });
        return true;
      } catch (_) {
        await sleep(500);
      } finally {
        clearTimeout(timer);
      }
    }
    return false;
  }

  let busy = false;
  async function knock() {
    if (busy) return;
    busy = true;
    $("knock").disabled = true;
    $("log").textContent = "";
    try {
      const door = CONFIG.door;
      let knocks;
      let counter = null;
      let memoryKey = null;
      if (door.kind === "static") {
        knocks = door.sequence;
      } else {
        const text = CONFIG.secret ?? $("secret").value;
        let secret;
        try {
          secret = fromBase64url(text);
        } catch (_) {
          secret = new Uint8Array(0);
        }
        if (secret.length < 16) throw new Error("the secret must be the door's base64url secret (16 bytes or more)");
        let source = new Uint8Array(0);
        let fromText = "";
        if (door.bindSource) {
          fromText = $("from").value.trim();
          const address = parseAddress(fromText);
          if (!address) throw new Error("give your address as the server sees it (IPv4 or IPv6)");
          source = sourceBytes(address, door.sourcePrefix);
        }
        memoryKey = "sesame:" + door.name + ":" + (await fingerprint(secret)) + (fromText ? ":" + fromText : "");
        const stored = localStorage.getItem(memoryKey);
        const lastUsed = stored === null ? null : Number(stored);
        const duration = door.length * (CONFIG.gapMs + CONFIG.knockTimeoutMs) + 500;
        const plan = chooseCounter(door, Date.now(), duration, Number.isFinite(lastUsed) ? lastUsed : null);
        if (plan.wait > 0) {
          say("This period's codes were used by earlier knocks: waiting " + Math.ceil(plan.wait / 1000) + " s for the next period…");
          await sleep(plan.wait + 50);
        }
        counter = plan.counter;
        knocks = await sequence(secret, door.name, BigInt(counter), expand(door.pool), door.length, "tcp", source);
      }
      say("Knocking " + CONFIG.host + "…");
      for (const [i, k] of knocks.entries()) {
        if (i > 0) await sleep(CONFIG.gapMs);
        await knockPort(k.port);
        line("knock " + (i + 1) + "/" + knocks.length + ": port " + k.port);
      }
      if (memoryKey !== null) localStorage.setItem(memoryKey, String(counter));
      document.body.dataset.knocked = String(counter ?? "static");
      if (CONFIG.waitOpen) {
        say("Knocked. Waiting for " + CONFIG.waitOpen + " to answer…");
        const open = await waitOpen(CONFIG.waitOpen, 20);
        say(open ? "Open: " + CONFIG.waitOpen + " answers. " + CONFIG.next : "Knocked, but " + CONFIG.waitOpen + " did not answer within 20 s.", open ? "ok" : "bad");
        document.body.dataset.open = String(open);
      } else {
        say("Knocked. " + CONFIG.next, "ok");
      }
    } catch (e) {
      say(String(e && e.message ? e.message : e), "bad");
      document.body.dataset.error = String(e && e.message ? e.message : e);
    } finally {
      busy = false;
      $("knock").disabled = false;
    }
  }

  // For tests and other tools: the derivation itself.
  window.sesameSequence = (secretBase64url, door, counter, candidates, length, mode, from, prefixes) => {
    const source = from ? sourceBytes(parseAddress(from), prefixes) : new Uint8Array(0);
    return sequence(fromBase64url(secretBase64url), door, BigInt(counter), candidates, length, mode, source);
  };
  $("knock").addEventListener("click", knock);
  // A page that needs nothing typed knocks at once when opened with #knock.
  if ((CONFIG.secret || CONFIG.door.kind === "static") && location.hash === "#knock") knock();
})();
`;
