/**
 * Used codes, as high-water marks. A code is a counter under an owner: the door, the
 * secret that made it (by fingerprint), and for a `bind_source` door the source prefix.
 * Per owner only the highest counter ever used is kept, and every counter at or below it
 * is refused: a code opens once, and an older one never opens after a newer one did.
 * A door-wide floor refuses every owner's codes up to a counter (fail closed after a
 * corrupt or lost state). Marks are never pruned by time, so no clock step revives one.
 * @module
 */
import { addressText, maskBytes, parseAddress } from "../address.ts";
import type { RotatingDoor } from "../config/types.ts";

/** Whose code a counter is: the key a used code is kept under. */
export interface CodeOwner {
  /** The door's name. */
  readonly door: string;
  /** On a door with `users`: the user whose secret made the code. */
  readonly user?: string;
  /** The fingerprint of the door's secret (a code belongs to the secret that made it). */
  readonly secret: string;
  /** A `bind_source` door's source prefix, e.g. `192.0.2.0/24`; absent otherwise. */
  readonly prefix?: string;
}

/** A used code: a counter under its owner. */
export interface UsedCode extends CodeOwner {
  /** The highest counter used. */
  readonly counter: number;
}

/**
 * The key of an owner: `door`, secret fingerprint and prefix, NUL-separated. Not the user:
 * a user is a name for a secret, and a secret moved under `users:` or a user renamed keeps
 * its used codes (the fingerprint already tells users apart).
 */
function keyOf(owner: CodeOwner): string {
  return `${owner.door}\0${owner.secret}\0${owner.prefix ?? ""}`;
}

/**
 * The used codes the engine refuses.
 *
 * @example A code opens once, and older codes of its owner never open after it
 * ```ts
 * import { UsedCodes } from "./used_codes.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const used = new UsedCodes();
 * const owner = { door: "ssh", secret: "f1" };
 * used.use({ ...owner, counter: 1000 });
 * assertEquals(used.isUsed(owner, 1000), true);
 * assertEquals(used.isUsed(owner, 999), true);
 * assertEquals(used.isUsed(owner, 1001), false);
 * assertEquals(used.isUsed({ door: "ssh", secret: "f2" }, 1000), false); // a new secret
 * ```
 */
export class UsedCodes {
  readonly #marks = new Map<string, UsedCode>();

  /** Starts from the marks a store kept. */
  constructor(marks: Iterable<UsedCode> = []) {
    for (const mark of marks) this.use(mark);
  }

  /** True when `counter` is at or below the owner's mark or its door's floor. */
  isUsed(owner: CodeOwner, counter: number): boolean {
    const own = this.#marks.get(keyOf(owner));
    if (own && counter <= own.counter) return true;
    if (owner.prefix === undefined) return false;
    const floor = this.#marks.get(keyOf({ door: owner.door, secret: owner.secret }));
    return floor !== undefined && counter <= floor.counter;
  }

  /** Marks a code used (raising its owner's mark; never lowering it). */
  use(code: UsedCode): void {
    const key = keyOf(code);
    const old = this.#marks.get(key);
    if (!old || old.counter < code.counter) {
      this.#marks.set(key, {
        door: code.door,
        ...(code.user === undefined ? {} : { user: code.user }),
        secret: code.secret,
        ...(code.prefix === undefined ? {} : { prefix: code.prefix }),
        counter: code.counter,
      });
    }
  }

  /**
   * Refuses every code of a door and secret up to `counter`, whatever its source prefix:
   * after a corrupt or lost state the codes used are unknown, so the window counts as used.
   */
  floor(door: string, secret: string, counter: number, user?: string): UsedCode {
    const code = { door, ...(user === undefined ? {} : { user }), secret, counter };
    this.use(code);
    return this.#marks.get(keyOf(code))!;
  }

  /** Every mark: what the store keeps. */
  marks(): UsedCode[] {
    return [...this.#marks.values()];
  }

  /** Marks held. */
  get size(): number {
    return this.#marks.size;
  }
}

/**
 * Whose code a completed sequence was: the door and its secret, plus the source prefix
 * for a `bind_source` door (each prefix has its own codes).
 *
 * @example
 * ```ts
 * import { codeOwner } from "./used_codes.ts";
 * import { validateConfig } from "../config/validate.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
 * const { doors } = validateConfig({
 *   doors: { near: { secret, ports: "20000-20099", bind_source: true, source_prefix: { ipv4: 24 } } },
 * });
 * assertEquals(codeOwner(doors[0] as never, "192.0.2.7").prefix, "192.0.2.0/24");
 * ```
 */
export function codeOwner(door: RotatingDoor, source: string): CodeOwner {
  const owner = door.user === undefined
    ? { door: door.name, secret: door.fingerprint }
    : { door: door.name, user: door.user, secret: door.fingerprint };
  if (!door.bindSource) return owner;
  const address = parseAddress(source);
  if (!address) return { ...owner, prefix: source };
  const bits = address.family === 4 ? door.sourcePrefix.ipv4 : door.sourcePrefix.ipv6;
  return { ...owner, prefix: `${addressText(maskBytes(address.bytes, bits))}/${bits}` };
}
