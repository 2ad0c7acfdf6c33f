/** `sesame keygen`: a fresh secret, printed or written 0600. @module */
import { UsageError } from "../errors.ts";
import { generateSecret } from "../secret.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";

/** The flags of `sesame keygen`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  out: { type: "string" },
  force: { type: "boolean" },
  spa: { type: "boolean" },
} satisfies FlagSpec;

/** A fresh pair of SPA keys as fwknop prints them: 32 bytes for AES, 64 for the HMAC, base64. */
export function spaKeys(): { key: string; hmac: string } {
  const b64 = (n: number) =>
    btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(n))));
  return { key: b64(32), hmac: b64(64) };
}

/** Fresh SPA keys as `KEY_BASE64: …` and `HMAC_KEY_BASE64: …` lines. */
function spaKeyText(): string {
  const { key, hmac } = spaKeys();
  return `KEY_BASE64: ${key}\nHMAC_KEY_BASE64: ${hmac}`;
}

/** Runs `sesame keygen`; returns the exit code. */
export async function keygen(args: string[]): Promise<number> {
  const parsed = parseFlags("keygen", args, FLAGS);
  // fwknop --key-gen's format: what fwknop's rc files and its phone app take, and what an SPA
  // door's key_file and hmac_key_file read (one file may be both).
  const secret = parsed.values.spa ? spaKeyText() : generateSecret();
  const out = stringFlag(parsed, "out", "keygen");
  if (!out) {
    console.log(secret);
    return 0;
  }
  try {
    await Deno.writeTextFile(out, secret + "\n", {
      mode: 0o600,
      createNew: parsed.values.force !== true,
    });
    await Deno.chmod(out, 0o600); // mode only applies on creation; --force may overwrite an older file
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(`keygen: ${out} exists; refusing to overwrite a secret (use --force)`);
    }
    throw new UsageError(`keygen: cannot write ${out}: ${(e as Error).message}`, { cause: e });
  }
  console.error(
    `wrote ${parsed.values.spa ? "new SPA keys" : "a new secret"} to ${out} (mode 0600)${
      parsed.values.force
        ? "; clients holding the old one (a client config written by init holds it inline) need the new one: their knocks now fail"
        : ""
    }`,
  );
  return 0;
}
