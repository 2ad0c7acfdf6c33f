import { assertEquals, assertRejects } from "./_assert.ts";
import { deriveSequence, deriveSequenceSync, importSecret } from "../lib/sequence.ts";
import type { ProtocolMode } from "../lib/knock.ts";
import { referenceSequence } from "./_reference.ts";

const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i);
const POOL = Array.from({ length: 1000 }, (_, i) => 20000 + i);

/** Published in docs/SEQUENCE.md: other implementations check themselves against these. */
const VECTORS: {
  door: string;
  counter: bigint;
  candidates: number[];
  length: number;
  mode: ProtocolMode;
  source?: { family: 4 | 6; bytes: number[]; prefix: number };
  expect: string[];
}[] = [
  {
    door: "ssh",
    counter: 0n,
    candidates: POOL,
    length: 4,
    mode: "tcp",
    expect: ["20512/tcp", "20309/tcp", "20652/tcp", "20059/tcp"],
  },
  {
    door: "ssh",
    counter: 1n,
    candidates: [7000, 7001, 7002, 7003, 7004],
    length: 5,
    mode: "mixed",
    expect: ["7003/tcp", "7000/tcp", "7001/udp", "7004/tcp", "7002/tcp"],
  },
  {
    door: "vpn",
    counter: (1n << 64n) - 1n,
    candidates: [1, 2, 3],
    length: 2,
    mode: "udp",
    expect: ["3/udp", "1/udp"],
  },
  {
    door: "ssh",
    counter: 56666666n,
    candidates: POOL,
    length: 4,
    mode: "tcp",
    source: { family: 4, bytes: [192, 0, 2, 7], prefix: 24 },
    expect: ["20999/tcp", "20339/tcp", "20316/tcp", "20609/tcp"],
  },
  {
    door: "ssh",
    counter: 56666666n,
    candidates: POOL,
    length: 4,
    mode: "tcp",
    source: {
      family: 6,
      bytes: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
      prefix: 64,
    },
    expect: ["20438/tcp", "20904/tcp", "20661/tcp", "20953/tcp"],
  },
];

function asAddress(s: { family: 4 | 6; bytes: number[] }) {
  return { family: s.family, bytes: Uint8Array.from(s.bytes), text: "" };
}

Deno.test("deriveSequence() and deriveSequenceSync() match the published test vectors", async () => {
  const key = await importSecret(SECRET);
  for (const v of VECTORS) {
    const knocks = await deriveSequence(
      key,
      v.counter,
      { door: v.door, candidates: v.candidates, length: v.length, protocol: v.mode },
      v.source ? { address: asAddress(v.source), prefix: v.source.prefix } : undefined,
    );
    assertEquals(knocks.map((k) => `${k.port}/${k.protocol}`), v.expect);
    const sync = deriveSequenceSync(
      SECRET,
      v.counter,
      { door: v.door, candidates: v.candidates, length: v.length, protocol: v.mode },
      v.source ? { address: asAddress(v.source), prefix: v.source.prefix } : undefined,
    );
    assertEquals(sync.map((k) => `${k.port}/${k.protocol}`), v.expect, "deriveSequenceSync too");
    // The independent implementation agrees too, so the vectors are the spec's, not ours.
    assertEquals(referenceSequence({ secret: SECRET, ...v }), v.expect);
  }
});

function rand(n: number): number {
  return Math.floor(Math.random() * n);
}

Deno.test("deriveSequence() and deriveSequenceSync() agree with an independent implementation on 300 random inputs", async () => {
  for (let i = 0; i < 300; i++) {
    const secret = crypto.getRandomValues(new Uint8Array(16 + rand(48)));
    const n = 2 + rand(i % 3 === 0 ? 6 : 300);
    const start = 1 + rand(65535 - n);
    const candidates = Array.from({ length: n }, (_, j) => start + j);
    const length = 1 + rand(Math.min(16, n));
    const mode = (["tcp", "udp", "mixed"] as const)[i % 3];
    const counter = BigInt(rand(2 ** 31)) * BigInt(1 + rand(2 ** 20));
    const door = ["ssh", "vpn-1", "dör", "a"][rand(4)];
    const family = rand(2) === 0 ? 4 : 6;
    const source = i % 2 === 0 ? undefined : {
      family: family as 4 | 6,
      bytes: Array.from({ length: family === 4 ? 4 : 16 }, () => rand(256)),
      prefix: rand(family === 4 ? 33 : 129),
    };
    const knocks = await deriveSequence(
      await importSecret(secret),
      counter,
      { door, candidates, length, protocol: mode },
      source ? { address: asAddress(source), prefix: source.prefix } : undefined,
    );
    const expected = referenceSequence({ secret, door, counter, candidates, length, mode, source });
    assertEquals(knocks.map((k) => `${k.port}/${k.protocol}`), expected, `case ${i}`);
    const sync = deriveSequenceSync(
      secret,
      counter,
      { door, candidates, length, protocol: mode },
      source ? { address: asAddress(source), prefix: source.prefix } : undefined,
    );
    assertEquals(sync.map((k) => `${k.port}/${k.protocol}`), expected, `case ${i}, sync`);
  }
});

Deno.test("deriveSequence() never repeats a port and honours the mode", async () => {
  const key = await importSecret(SECRET);
  for (let c = 0; c < 50; c++) {
    const knocks = await deriveSequence(key, c, {
      door: "d",
      candidates: [10, 11, 12, 13],
      length: 4,
      protocol: "udp",
    });
    assertEquals(new Set(knocks.map((k) => k.port)).size, 4);
    assertEquals(knocks.every((k) => k.protocol === "udp"), true);
  }
});

Deno.test("deriveSequence() and importSecret() refuse impossible inputs", async () => {
  const key = await importSecret(SECRET);
  await assertRejects(
    () => deriveSequence(key, 0, { door: "d", candidates: [1], length: 1, protocol: "tcp" }),
    RangeError,
  );
  await assertRejects(
    () => deriveSequence(key, 0, { door: "d", candidates: [1, 2], length: 3, protocol: "tcp" }),
    RangeError,
  );
  await assertRejects(
    () => deriveSequence(key, -1, { door: "d", candidates: [1, 2], length: 1, protocol: "tcp" }),
    RangeError,
  );
  await assertRejects(async () => await importSecret(new Uint8Array(15)), RangeError);
});
