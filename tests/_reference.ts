/**
 * An independent implementation of sequence v1, written from the spec text alone and
 * sharing no code with lib/: synchronous node:crypto HMAC, BigInt arithmetic, no
 * WebCrypto. Tests compare the two on random inputs.
 */
import { createHmac } from "node:crypto";
import { Buffer } from "node:buffer";

export interface RefInput {
  secret: Uint8Array;
  door: string;
  counter: bigint;
  candidates: number[]; // already sorted, de-duplicated
  length: number;
  mode: "tcp" | "udp" | "mixed";
  source?: { family: 4 | 6; bytes: number[]; prefix: number };
}

export function referenceSequence(input: RefInput): string[] {
  const parts: Buffer[] = [
    Buffer.from("sesame/v1", "utf8"),
    Buffer.from([0]),
    Buffer.from(input.door, "utf8"),
    Buffer.from([0]),
  ];
  const t = Buffer.alloc(8);
  t.writeBigUInt64BE(input.counter);
  parts.push(t);
  if (input.source) {
    const { family, bytes, prefix } = input.source;
    const masked = bytes.map((b, i) => {
      const keep = Math.max(0, Math.min(8, prefix - 8 * i));
      return b & ((0xff00 >> keep) & 0xff);
    });
    parts.push(Buffer.from([family === 4 ? 4 : 6, prefix, ...masked]));
  }
  const head = Buffer.concat(parts);
  const words: number[] = [];
  let block = 0;
  const nextWord = () => {
    if (words.length === 0) {
      const i = Buffer.alloc(4);
      i.writeUInt32BE(block++);
      const mac = createHmac("sha256", input.secret).update(Buffer.concat([head, i])).digest();
      for (let j = 0; j < 32; j += 4) words.push(mac.readUInt32BE(j));
    }
    return words.shift()!;
  };
  const n = BigInt(input.candidates.length);
  const limit = (1n << 32n) - ((1n << 32n) % n);
  const out: string[] = [];
  const used: number[] = [];
  while (out.length < input.length) {
    const w = BigInt(nextWord());
    if (w >= limit) continue;
    const port = input.candidates[Number(w % n)];
    if (used.includes(port)) continue;
    used.push(port);
    let proto: string = input.mode;
    if (input.mode === "mixed") proto = nextWord() % 2 === 1 ? "udp" : "tcp";
    out.push(`${port}/${proto}`);
  }
  return out;
}
