import { assertEquals } from "./_assert.ts";
import { UsedCodes } from "../lib/engine/used_codes.ts";
import { ScanDetector } from "../lib/engine/scan_detector.ts";
import { KnockEngine } from "../lib/engine/engine.ts";
import { Counters } from "../lib/counters.ts";
import { validateConfig } from "../lib/config/validate.ts";

const SECRET = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

Deno.test("UsedCodes: a mark refuses its counter and every older one of the same owner only", () => {
  const used = new UsedCodes();
  const alice = { door: "ssh", secret: "s1", prefix: "192.0.2.0/24" };
  used.use({ ...alice, counter: 10 });
  assertEquals([9, 10, 11].map((c) => used.isUsed(alice, c)), [true, true, false]);
  assertEquals(used.isUsed({ ...alice, prefix: "198.51.100.0/24" }, 10), false, "another prefix");
  assertEquals(used.isUsed({ ...alice, secret: "s2" }, 10), false, "another secret");
  used.use({ ...alice, counter: 5 }); // never lowers a mark
  assertEquals(used.isUsed(alice, 10), true);
  assertEquals(used.marks(), [{ ...alice, counter: 10 }]);
});

Deno.test("UsedCodes: a door-wide floor refuses every prefix's codes up to it (fail closed)", () => {
  const used = new UsedCodes();
  used.floor("near", "s1", 100);
  assertEquals(used.isUsed({ door: "near", secret: "s1", prefix: "192.0.2.7/32" }, 100), true);
  assertEquals(used.isUsed({ door: "near", secret: "s1", prefix: "192.0.2.7/32" }, 101), false);
  assertEquals(used.isUsed({ door: "near", secret: "s1" }, 99), true);
  assertEquals(used.isUsed({ door: "other", secret: "s1" }, 99), false);
});

Deno.test("ScanDetector: when the ban table is full the ban that ends soonest goes, and it is counted", () => {
  const counters = new Counters();
  const scan = new ScanDetector({ threshold: 6, windowMs: 2000, cooldownMs: 60_000 }, 2, counters);
  scan.ban("a", 0);
  scan.ban("b", 10);
  scan.ban("c", 20);
  assertEquals(["a", "b", "c"].map((s) => scan.isBanned(s, 30)), [false, true, true]);
  assertEquals([counters.scanners, counters.evictedBans], [3, 1]);
  scan.sweep(60_011);
  assertEquals(scan.size, 1);
});

Deno.test("KnockEngine: a scanner stays banned for its whole cool-down, even after going quiet", () => {
  const { doors, scan } = validateConfig({
    doors: {
      ssh: { secret: SECRET, ports: "20000-20099", sequence_timeout: "10s", open: { log: true } },
      legacy: { sequence: [7000, 7001, 7002], open: { log: true } },
    },
  });
  const engine = new KnockEngine(doors, { scan });
  assertEquals(engine.handle("192.0.2.66", "tcp", 6999, 0).map((d) => d.kind), ["scan"]); // a decoy
  // 12 s of silence: longer than every sequence timeout, so the source table forgets it.
  engine.sweep(12_000);
  assertEquals(engine.trackedSources, 0);
  const knocks = [7000, 7001, 7002].flatMap((p, i) =>
    engine.handle("192.0.2.66", "tcp", p, 12_000 + i * 50).map((d) => d.kind)
  );
  assertEquals(knocks, [], "still banned: the static door's sequence opens nothing");
  const after = [7000, 7001, 7002].flatMap((p, i) =>
    engine.handle("192.0.2.66", "tcp", p, 61_000 + i * 50).map((d) => d.kind)
  );
  assertEquals(after, ["open"], "the ban ends with its cool-down");
});
