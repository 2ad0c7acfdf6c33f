/** `sesame keygen`: a fresh secret, printed or written 0600. @module */
import { UsageError } from "../errors.ts";
import { generateSecret } from "../secret.ts";
import { parseFlags, stringFlag } from "./args.ts";

/** Runs `sesame keygen`; returns the exit code. */
export async function keygen(args: string[]): Promise<number> {
  const parsed = parseFlags("keygen", args, {
    out: { type: "string" },
    force: { type: "boolean" },
  });
  const secret = generateSecret();
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
    throw new UsageError(`keygen: cannot write ${out}: ${(e as Error).message}`);
  }
  console.error(`wrote a new secret to ${out} (mode 0600)`);
  return 0;
}
