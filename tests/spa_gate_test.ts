/**
 * The SPA gate's checks, with a fake clock: stricter than fwknopd's defaults (docs/SPA.md).
 */
import { assertEquals } from "./_assert.ts";
import { encodeSpa } from "../lib/spa/fko.ts";
import { SpaGate } from "../lib/spa/gate.ts";
import { validateConfig } from "../lib/config/validate.ts";
import type { SpaDoor } from "../lib/config/types.ts";

const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(7)));
const HMAC = btoa(String.fromCharCode(...new Uint8Array(64).fill(9)));
const T = 1_800_000_000_000;

function doors(extra: Record<string, unknown> = {}) {
  return validateConfig({
    doors: {
      ssh: {
        spa: { port: 62201, key_base64: KEY, hmac_key_base64: HMAC, access: ["tcp/22"], ...extra },
        open: { for: "60s", nft: { ports: [22, 2222] } },
      },
      other: {
        spa: {
          port: 62201,
          key_base64: btoa(String.fromCharCode(...new Uint8Array(32).fill(1))),
          hmac_key_base64: btoa(String.fromCharCode(...new Uint8Array(64).fill(2))),
        },
        open: { for: "60s", nft: { port: 443 } },
      },
    },
  }).doors as SpaDoor[];
}

const packet = (d: SpaDoor, message: string, at = T, type: 1 | 3 = 1, clientTimeout?: number) =>
  encodeSpa({ user: "u", timestamp: at / 1000, type, message, clientTimeout }, d.spa.keys);

const brief = (d: ReturnType<SpaGate["handle"]>) =>
  d.kind === "open" ? `open ${d.door} ${d.target} ${d.forMs}` : `${d.reason} ${d.door ?? "-"}`;

Deno.test("SPA gate: the HMAC tells which door's keys made a packet; it opens for its source, once", () => {
  const [ssh, other] = doors();
  const gate = new SpaGate([ssh, other]);
  const p = packet(other, "0.0.0.0,tcp/443");
  assertEquals(brief(gate.handle("192.0.2.7", 62201, p, T)), "open other 192.0.2.7 60000");
  assertEquals(brief(gate.handle("192.0.2.8", 62201, p, T + 1000)), "replay other");
  assertEquals(
    brief(gate.handle("2001:db8::7", 62201, packet(ssh, "0.0.0.0,tcp/22"), T)),
    "open ssh 2001:db8::7 60000",
  );
  assertEquals(
    brief(gate.handle("192.0.2.9", 62201, packet(ssh, "192.0.2.9,tcp/22,tcp/2222"), T)),
    "open ssh 192.0.2.9 60000",
  );
});

Deno.test("SPA gate: another address, ports outside the door, command and NAT messages are refused (and used up)", () => {
  const [ssh] = doors();
  const gate = new SpaGate([ssh]);
  const elsewhere = packet(ssh, "198.51.100.1,tcp/22");
  assertEquals(brief(gate.handle("192.0.2.7", 62201, elsewhere, T)), "denied ssh");
  assertEquals(brief(gate.handle("192.0.2.7", 62201, elsewhere, T)), "replay ssh");
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,tcp/22,tcp/23"), T)),
    "denied ssh",
  );
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,udp/22"), T)),
    "denied ssh",
  );
  // A command message (type 0) and a NAT access (type 2): not taken.
  for (const type of [0, 2]) {
    const other = encodeSpa(
      { user: "u", timestamp: T / 1000, type: type as 1, message: "0.0.0.0,tcp/22" },
      ssh.spa.keys,
    );
    assertEquals(brief(gate.handle("192.0.2.8", 62201, other, T)), "denied ssh");
  }
  const allow = new SpaGate(doors({ allow_other_address: true }).slice(0, 1));
  assertEquals(
    brief(allow.handle("192.0.2.7", 62201, elsewhere, T)),
    "open ssh 198.51.100.1 60000",
  );
});

Deno.test("SPA gate: the client timeout is honoured up to the door's for", () => {
  const [ssh] = doors();
  const gate = new SpaGate([ssh]);
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,tcp/22", T, 3, 20), T)),
    "open ssh 192.0.2.7 20000",
  );
  assertEquals(
    brief(gate.handle("192.0.2.8", 62201, packet(ssh, "0.0.0.0,tcp/22", T, 3, 600), T)),
    "open ssh 192.0.2.8 60000",
  );
});

Deno.test("SPA gate: timestamps beyond max_age are refused; a clock stepped forward then back revives no packet", () => {
  const [ssh] = doors({ max_age: "120s" });
  const gate = new SpaGate([ssh]);
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,tcp/22", T - 200_000), T)),
    "skew ssh",
  );
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,tcp/22", T + 200_000), T)),
    "skew ssh",
  );
  const p = packet(ssh, "0.0.0.0,tcp/22", T);
  assertEquals(brief(gate.handle("192.0.2.7", 62201, p, T)), "open ssh 192.0.2.7 60000");
  // The clock jumps two hours ahead: the digests of packets that old are forgotten...
  gate.handle("192.0.2.50", 62201, "x".repeat(200), T + 7_200_000);
  assertEquals(gate.prune() > 0, true);
  // ...and stepped back, the old packet still opens nothing: older than the highest time seen.
  assertEquals(brief(gate.handle("192.0.2.7", 62201, p, T + 10_000)), "skew ssh");
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,tcp/22", T + 10_000), T + 10_000)),
    "skew ssh",
  );
});

Deno.test("SPA gate: garbage is refused before any HMAC; a source's own allowance counts only its authentic packets", () => {
  const [ssh, other] = doors();
  const gate = new SpaGate([ssh, other]);
  assertEquals(brief(gate.handle("192.0.2.7", 62201, "A".repeat(10), T)), "wrong -");
  const real = (at: number) => packet(ssh, "0.0.0.0,tcp/22", at);
  // Authentic packets beyond 5 a second from one source: dropped undecrypted.
  const burst = Array.from({ length: 7 }, (_, i) => real(T + 5000 + i));
  const outcomes = burst.map((p) => brief(gate.handle("192.0.2.66", 62201, p, T + 5000)));
  assertEquals(outcomes.filter((o) => o.startsWith("open")).length, 5);
  assertEquals(outcomes.filter((o) => o === "limited ssh").length, 2);
  assertEquals(
    brief(gate.handle("192.0.2.66", 62201, real(T + 6100), T + 6100)).split(" ")[0],
    "open",
  );
});

/** A packet of a real one's length and alphabet whose HMAC is wrong: what a forger can send. */
function forged(real: string, i: number): string {
  const chars = [...real];
  const at = 20 + (i % 50);
  chars[at] = chars[at] === "A" ? "B" : "A";
  return chars.join("");
}

Deno.test("SPA gate: forged packets at 10 a second from a victim's address do not stop the victim's packets", () => {
  const [ssh] = doors();
  const gate = new SpaGate([ssh]);
  let opened = 0;
  for (let s = 0; s < 15; s++) {
    const at = T + s * 1000;
    const mine = packet(ssh, "0.0.0.0,tcp/22", at);
    for (let i = 0; i < 10; i++) gate.handle("192.0.2.7", 62201, forged(mine, i), at + i);
    if (gate.handle("192.0.2.7", 62201, mine, at + 500).kind === "open") opened++;
  }
  assertEquals(opened, 15);
});

Deno.test("SPA gate: 10 doors on one port keep every legitimate packet under 5 000 forged packets a second; past the budget, floods are dropped unverified", () => {
  const many = Array.from({ length: 10 }, (_, i) => ({
    [`d${i}`]: {
      spa: {
        port: 62201,
        key_base64: btoa(String.fromCharCode(...new Uint8Array(32).fill(i + 1))),
        hmac_key_base64: btoa(String.fromCharCode(...new Uint8Array(64).fill(i + 20))),
      },
      open: { for: "60s", nft: { port: 22 } },
    },
  }));
  const ten = validateConfig({ doors: Object.assign({}, ...many) }).doors as SpaDoor[];
  const gate = new SpaGate(ten);
  let opened = 0;
  for (let s = 0; s < 15; s++) {
    const at = T + s * 1000;
    const mine = packet(ten[9], "0.0.0.0,tcp/22", at); // the last door: tried after 9 others
    for (let i = 0; i < 5000; i++) {
      gate.handle(`10.${s}.${i >> 8}.${i & 255}`, 62201, forged(mine, i), at + i / 10);
    }
    if (gate.handle("192.0.2.7", 62201, mine, at + 600).kind === "open") opened++;
  }
  assertEquals(opened, 15, "a packet counts once against the budget, not once per door");
  // 20 001 in one second: the last is dropped unverified.
  const at = T + 100_000;
  const mine = packet(ten[0], "0.0.0.0,tcp/22", at);
  for (let i = 0; i < 20_000; i++) {
    gate.handle(`10.99.${i >> 8}.${i & 255}`, 62201, forged(mine, i), at);
  }
  const over = gate.handle("192.0.2.8", 62201, mine, at);
  assertEquals([over.kind, over.kind === "refused" && over.limit], ["refused", "budget"]);
});

Deno.test("SPA gate: after a lost state, packets made before the start are refused", () => {
  const [ssh] = doors();
  const gate = new SpaGate([ssh], [], T, T);
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,tcp/22", T - 5000), T)),
    "replay ssh",
  );
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,tcp/22", T + 1000), T + 1000)),
    "open ssh 192.0.2.7 60000",
  );
});

Deno.test("SPA gate: allow and deny lists apply, globally and per door; require_source_address refuses 0.0.0.0; no special address is opened for", () => {
  const { parseCidr } = {
    parseCidr: (t: string) =>
      validateConfig({ allow: [t], doors: { x: { sequence: [1] } } }).allow[0],
  };
  const [ssh] = doors();
  const denied = new SpaGate([ssh], [], 0, 0, { deny: [parseCidr("192.0.2.0/24")] });
  assertEquals(
    brief(denied.handle("192.0.2.7", 62201, packet(ssh, "0.0.0.0,tcp/22"), T)),
    "denied -",
  );
  const perDoor = doors({}).map((d) => ({ ...d, allow: [parseCidr("198.51.100.0/24")] }));
  const gate = new SpaGate(perDoor as SpaDoor[]);
  assertEquals(
    brief(gate.handle("192.0.2.7", 62201, packet(perDoor[0] as SpaDoor, "0.0.0.0,tcp/22"), T)),
    "denied ssh",
  );
  const strict = new SpaGate(
    doors({ require_source_address: true, allow_other_address: true }).slice(0, 1),
  );
  const [s] = doors({ require_source_address: true });
  assertEquals(
    brief(strict.handle("192.0.2.7", 62201, packet(s, "0.0.0.0,tcp/22"), T)),
    "denied ssh",
  );
  assertEquals(
    brief(strict.handle("192.0.2.7", 62201, packet(s, "192.0.2.7,tcp/22"), T)),
    "open ssh 192.0.2.7 60000",
  );
  for (const target of ["127.0.0.1", "224.0.0.1", "fe80::1"]) {
    assertEquals(
      brief(strict.handle("192.0.2.8", 62201, packet(s, `${target},tcp/22`), T + 1)),
      "denied ssh",
      target,
    );
  }
});

Deno.test("SPA gate: a reload hands on the highest time seen, so a clock stepped back revives no packet", () => {
  const [ssh] = doors();
  const first = new SpaGate([ssh]);
  const p = packet(ssh, "0.0.0.0,tcp/22", T);
  assertEquals(brief(first.handle("192.0.2.7", 62201, p, T)), "open ssh 192.0.2.7 60000");
  first.handle("192.0.2.50", 62201, "x".repeat(200), T + 7_200_000);
  first.prune();
  // The reload's gate, at a clock stepped back, with what the old one knew.
  const second = new SpaGate([ssh], first.usedDigests(), Math.max(first.maxTime, T + 10_000));
  assertEquals(brief(second.handle("192.0.2.8", 62201, p, T + 10_000)), "skew ssh");
});

Deno.test("SPA gate: a captured packet resent 50 times 'from' a victim's address spends none of the victim's allowance", () => {
  const [ssh] = doors();
  const gate = new SpaGate([ssh]);
  const captured = packet(ssh, "0.0.0.0,tcp/22", T);
  assertEquals(brief(gate.handle("192.0.2.99", 62201, captured, T)), "open ssh 192.0.2.99 60000");
  let opened = 0;
  for (let s = 1; s <= 5; s++) {
    const at = T + s * 1000;
    for (let i = 0; i < 50; i++) {
      assertEquals(brief(gate.handle("192.0.2.50", 62201, captured, at + i)), "replay ssh");
    }
    if (
      gate.handle("192.0.2.50", 62201, packet(ssh, "0.0.0.0,tcp/22", at), at + 100).kind === "open"
    ) {
      opened++;
    }
  }
  assertEquals(opened, 5);
});
