/**
 * The SPA codec against the real fwknop: packets made by fwknop 2.6.10's client
 * (tests/spa/fwknop_vectors.json, with their keys) decode to the right fields, and
 * packets made by sesame decode with an independent implementation (python3's hashlib
 * and hmac for the key derivation and HMAC, the openssl command for AES).
 */
import { assert, assertEquals } from "./_assert.ts";
import { decodeSpa, encodeSpa, type HmacDigest, type SpaKeys } from "../lib/spa/fko.ts";

interface Vector {
  hmac_digest: HmacDigest;
  key_base64: string;
  hmac_key_base64: string;
  wire: string;
  random: string;
  user: string;
  timestamp: number;
  type: number;
  message: string;
  client_timeout: number;
}

const vectors: Vector[] = JSON.parse(
  await Deno.readTextFile(new URL("./spa/fwknop_vectors.json", import.meta.url)),
);
const bytes = (b: string) => Uint8Array.from(atob(b), (c) => c.charCodeAt(0));
const keysOf = (v: Vector): SpaKeys => ({
  encryption: bytes(v.key_base64),
  hmac: bytes(v.hmac_key_base64),
  hmacDigest: v.hmac_digest,
});

Deno.test("SPA codec: packets made by the real fwknop client decode to their fields (HMAC-SHA256 and SHA-512, access and client timeout)", () => {
  assertEquals(vectors.map((v) => `${v.hmac_digest}/${v.type}`), [
    "sha256/1",
    "sha256/3",
    "sha512/1",
    "sha512/3",
  ]);
  for (const v of vectors) {
    const decoded = decodeSpa(v.wire, keysOf(v));
    assert(decoded.ok, `${v.hmac_digest}/${v.type}: ${JSON.stringify(decoded)}`);
    assertEquals(decoded.packet, {
      random: v.random,
      user: v.user,
      timestamp: v.timestamp,
      version: "3.0.0",
      type: v.type,
      message: v.message,
      ...(v.type === 3 ? { clientTimeout: v.client_timeout } : {}),
    });
  }
});

Deno.test("SPA codec: a flipped bit, another door's HMAC key, a truncated or oversized packet are refused before decryption", () => {
  const v = vectors[0];
  const keys = keysOf(v);
  const flipped = v.wire.slice(0, 50) + (v.wire[50] === "A" ? "B" : "A") + v.wire.slice(51);
  assertEquals(decodeSpa(flipped, keys), { ok: false, error: "hmac" });
  assertEquals(decodeSpa(v.wire, { ...keys, hmac: new Uint8Array(64) }), {
    ok: false,
    error: "hmac",
  });
  assertEquals(decodeSpa(v.wire.slice(0, 120), keys), { ok: false, error: "size" });
  assertEquals(decodeSpa(v.wire + "A".repeat(400), keys), { ok: false, error: "size" });
  // The right HMAC key with the wrong AES key: authentic, yet it does not decrypt.
  const wrongAes = decodeSpa(v.wire, { ...keys, encryption: new Uint8Array(32) });
  assertEquals(wrongAes.ok, false);
});

async function run(argv: string[], input?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: input ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input) {
    const w = child.stdin.getWriter();
    await w.write(input);
    await w.close();
  }
  const out = await child.output();
  assert(out.success, `${argv[0]}: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

Deno.test("SPA codec: sesame's packets decode with an independent implementation (python3 + openssl)", async () => {
  for (const digest of ["sha256", "sha512"] as const) {
    const keys: SpaKeys = {
      encryption: crypto.getRandomValues(new Uint8Array(32)),
      hmac: crypto.getRandomValues(new Uint8Array(64)),
      hmacDigest: digest,
    };
    const wire = encodeSpa(
      {
        user: "alice",
        timestamp: 1_800_000_000,
        type: 3,
        message: "0.0.0.0,tcp/22",
        clientTimeout: 60,
      },
      keys,
    );
    const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    // Python: check the HMAC, derive key and IV (EVP_BytesToKey, MD5), print them and the ciphertext.
    const script = `
import base64, hashlib, hmac, sys
wire, enc, mac, dig = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), sys.argv[4]
n = {"sha256": 43, "sha512": 86}[dig]
data, tag = "U2FsdGVkX1" + wire[:-n], wire[-n:]
want = base64.b64encode(hmac.new(mac, data.encode(), dig).digest()).decode().rstrip("=")
assert hmac.compare_digest(want, tag), "hmac"
raw = base64.b64decode(data + "=" * (-len(data) % 4))
assert raw[:8] == b"Salted__"
salt, d, out = raw[8:16], b"", b""
while len(out) < 48:
    d = hashlib.md5(d + enc + salt).digest(); out += d
print(out[:32].hex(), out[32:48].hex(), raw[16:].hex())
`;
    const [key, iv, ct] = new TextDecoder().decode(
      await run([
        "/usr/bin/python3",
        "-c",
        script,
        wire,
        hex(keys.encryption),
        hex(keys.hmac),
        digest,
      ]),
    ).trim().split(" ");
    const plain = new TextDecoder().decode(
      await run(
        ["openssl", "enc", "-d", "-aes-256-cbc", "-K", key, "-iv", iv, "-nosalt"],
        Uint8Array.from(ct.match(/../g)!, (h) => parseInt(h, 16)),
      ),
    );
    const fields = plain.split(":");
    assertEquals(fields.length, 8, plain);
    assertEquals(atob(fields[1]), "alice");
    assertEquals(fields.slice(2, 5), ["1800000000", "3.0.0", "3"]);
    assertEquals(atob(fields[5] + "=".repeat((4 - fields[5].length % 4) % 4)), "0.0.0.0,tcp/22");
    assertEquals(fields[6], "60");
  }
});
