/**
 * Golden outputs: what sesame writes for the kernel (the nft table, the iptables chain) and
 * for people and programs (log lines with their properties, daemon events). Status,
 * metrics and log filters depend on these names: a change here is a change of interface.
 * `UPDATE_GOLDEN=1 deno task test tests/golden_test.ts` rewrites the files after a deliberate change.
 */
import { assertEquals } from "./_assert.ts";
import { nftRuleset } from "../lib/actions/nft_rules.ts";
import { iptablesScript } from "../lib/actions/iptables.ts";
import { rawScript } from "../lib/actions/iptables_raw.ts";
import { validateConfig } from "../lib/config/validate.ts";
import { logLine } from "../lib/daemon/report.ts";
import type { DaemonEvent } from "../lib/daemon/daemon.ts";
import type { OpenRecord } from "../lib/store/store.ts";

const GOLDEN = new URL("./golden/", import.meta.url);

async function golden(name: string, actual: string): Promise<void> {
  const file = new URL(name, GOLDEN);
  if (Deno.env.get("UPDATE_GOLDEN") === "1") await Deno.writeTextFile(file, actual);
  assertEquals(actual, await Deno.readTextFile(file), `${name} differs from its golden copy`);
}

const config = validateConfig({
  doors: {
    ssh: {
      secret: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
      ports: "20000-20099",
      period: "30s",
      skew: 1,
      open: { nft: { port: 22 } },
    },
    "web-admin": {
      sequence: [7000, 8000],
      open: { iptables: { ports: "443,8443", protocol: "tcp" } },
    },
    vpn: { sequence: [7100], open: { nft: { port: 1194, protocol: "udp" } } },
  },
});

const RECORDS: OpenRecord[] = [
  {
    door: "ssh",
    source: "192.0.2.7",
    until: 31_000,
    close: null,
    firewall: { kind: "nft", ports: [22], protocol: "tcp" },
  },
  {
    door: "ssh",
    source: "2001:db8::7",
    until: 61_000,
    close: null,
    firewall: { kind: "nft", ports: [22], protocol: "tcp" },
  },
  {
    door: "web-admin",
    source: "192.0.2.8",
    until: 1_700_000_100_000,
    close: null,
    firewall: { kind: "iptables", ports: [443, 8443], protocol: "tcp" },
  },
  {
    door: "web-admin",
    source: "2001:db8::8",
    until: 1_700_000_100_000,
    close: null,
    firewall: { kind: "iptables", ports: [443, 8443], protocol: "tcp" },
  },
];

Deno.test("golden: the nft table, with open doors put back", async () => {
  await golden("nft_ruleset.nft", nftRuleset(config.doors, RECORDS, 1000));
});

Deno.test("golden: the iptables chains, IPv4 and IPv6, and the raw chains that untrack knocks", async () => {
  const now = 1_700_000_000_000;
  await golden("iptables_v4.rules", iptablesScript("v4", config.doors, RECORDS, now));
  await golden("iptables_v6.rules", iptablesScript("v6", config.doors, RECORDS, now));
  await golden("iptables_raw.rules", rawScript(config.doors));
});

Deno.test("golden: every event's log line, level and properties", async () => {
  const events: DaemonEvent[] = [
    { kind: "opened", door: "ssh", source: "192.0.2.7", until: 1_700_000_030_000 },
    { kind: "extended", door: "ssh", source: "192.0.2.7", until: 1_700_000_060_000 },
    { kind: "closed", door: "ssh", source: "192.0.2.7", until: 1_700_000_060_000 },
    { kind: "open-failed", door: "ssh", source: "192.0.2.7", until: 0, error: "exit code 1" },
    { kind: "close-failed", door: "ssh", source: "2001:db8::7", until: 0, error: "exit code 1" },
    { kind: "commit-failed", refused: ["ssh 192.0.2.7", "vpn 2001:db8::7"], error: "disk full" },
    {
      kind: "scan",
      source: "192.0.2.66",
      reason: "decoy",
      evidence: "tcp",
      until: 1_700_000_060_000,
    },
    {
      kind: "scan",
      source: "192.0.2.67",
      reason: "ports",
      evidence: "udp",
      until: 1_700_000_060_000,
    },
    {
      kind: "replay",
      door: "ssh",
      source: "198.51.100.9",
      counter: 56_666_666,
      evidence: "tcp",
    },
    {
      kind: "skew",
      door: "ssh",
      source: "198.51.100.9",
      counter: 56_666_668,
      periods: 2,
      evidence: "udp",
    },
    {
      kind: "replay",
      door: "team",
      source: "198.51.100.10",
      user: "alice",
      counter: 56_666_666,
      evidence: "tcp",
    },
    { kind: "refused", door: "ssh", source: "192.0.2.9", reason: "wrong", evidence: "tcp" },
    { kind: "refused", door: "ssh", source: "2001:db8::9", reason: "timeout", evidence: "udp" },
    { kind: "refused", door: "ssh", source: "192.0.2.66", reason: "banned", evidence: "tcp" },
    { kind: "refused", door: "ssh", source: "192.0.2.67", reason: "denied", evidence: "udp" },
    {
      kind: "opened",
      door: "team",
      source: "192.0.2.8",
      user: "bob",
      until: 1_700_000_030_000,
    },
    {
      kind: "closed",
      door: "team",
      source: "192.0.2.8",
      user: "bob",
      until: 1_700_000_030_000,
      revoked: true,
    },
    { kind: "link-local", source: "fe80::1" },
    { kind: "reload-failed", error: "sesame.yaml:3:5: doors.ssh.length: must be 1–16" },
    { kind: "reloaded" },
    { kind: "ready", endpoints: 100, failures: [] },
  ];
  const doors = new Map(config.doors.map((d) => [d.name, d]));
  const lines = events.map((event) => ({
    event,
    line: logLine(event, (n) => doors.get(n)) ?? null,
  }));
  await golden("events.json", JSON.stringify(lines, null, 2) + "\n");
});

Deno.test("golden: the nft table of a router, with forward and dnat doors (IPv4 and IPv6)", async () => {
  const router = validateConfig({
    doors: {
      ssh: { sequence: [7000, 7001, 7002], open: { nft: { port: 22 } } },
      nas: {
        sequence: [7100, 7101, 7102],
        open: { nft: { forward: { to: { host: "192.168.1.10", ports: [22, 445] } } } },
      },
      cam: {
        sequence: [7200, 7201, 7202],
        open: {
          nft: {
            dnat: { port: 8443, to: { host: "fd00::20", port: 443 }, masquerade: true },
          },
        },
      },
    },
  });
  const records = [{
    door: "nas",
    source: "198.51.100.7",
    until: 1_700_000_030_000,
    close: null,
    firewall: { kind: "nft" as const, ports: [22, 445], protocol: "tcp" as const },
  }];
  await golden("nft_gateway.nft", nftRuleset(router.doors, records, 1_700_000_000_000));
});
