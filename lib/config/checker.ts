/**
 * The located-error helpers of config validation: each checks one value at a key path,
 * records an issue (with its file position, through `locate`) when it is wrong, and
 * returns a usable fallback so validation goes on and reports every issue at once.
 * @module
 */
import { type Cidr, ipv4Compatible, parseCidr } from "../address.ts";
import { parseDuration } from "../duration.ts";
import { type ConfigIssue, formatIssue, type SourcePosition } from "../errors.ts";
import { describe } from "../ports.ts";

/** A key path into the document, e.g. `["doors", "ssh", "length"]`. */
export type KeyPath = readonly (string | number)[];

/** Options for {@link Checker}. */
export interface CheckerOptions {
  /** Finds a path's position in the source; `atKey` asks for the key rather than the value. */
  readonly locate?: (path: KeyPath, atKey: boolean) => SourcePosition | undefined;
  /** Reads a `secret_file`; returns its text or throws an Error whose message says why not. */
  readonly readSecretFile?: (path: string) => string;
}

/**
 * Collects the issues of one document.
 *
 * @example
 * ```ts
 * import { Checker } from "./checker.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * const c = new Checker();
 * assertEquals(c.int(20, ["doors", "ssh", "length"], 4, 1, 16), 4); // the fallback
 * assertEquals(c.issues[0].message, "must be 1–16, received 20");
 * ```
 */
export class Checker {
  /** Every issue found so far. */
  readonly issues: ConfigIssue[] = [];
  /** What stands but deserves a word, each with its position: `file:line:col: path: text`. */
  readonly warnings: string[] = [];
  /** The options this checker was made with. */
  readonly options: CheckerOptions;

  /** Creates a checker. @param options how to locate paths and read secret files. */
  constructor(options: CheckerOptions = {}) {
    this.options = options;
  }

  /** Records an issue at `path`; returns `undefined` so callers can `return c.fail(...)`. */
  /** Records a warning at `path` (the config stands; `check` and `listen` say it). */
  warn(path: KeyPath, message: string): void {
    this.warnings.push(formatIssue({
      path: path.map((k) => escapeControl(String(k))).join("."),
      message,
      position: this.options.locate?.(path, false),
    }));
  }

  fail(path: KeyPath, message: string, atKey = false): undefined {
    this.issues.push({
      path: path.map((k) => escapeControl(String(k))).join("."),
      message,
      position: this.options.locate?.(path, atKey),
    });
    return undefined;
  }

  /** A mapping with only known keys; `undefined` (after an issue) otherwise. */
  map(
    value: unknown,
    path: KeyPath,
    known: readonly string[],
  ): Record<string, unknown> | undefined {
    if (!isMapping(value)) return this.fail(path, `must be a mapping, received ${describe(value)}`);
    const record = value;
    for (const key of Object.keys(record)) {
      if (!known.includes(key)) {
        const hint = nearest(key, known);
        this.fail(
          [...path, key],
          `unknown key${hint ? `; did you mean "${hint}"?` : `; known keys: ${known.join(", ")}`}`,
          true,
        );
      }
    }
    return record;
  }

  /** A whole number in min…max, or `fallback` when absent. */
  int(value: unknown, path: KeyPath, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value)) {
      return this.fail(path, `must be a whole number, received ${describe(value)}`) ?? fallback;
    }
    if (value < min || value > max) {
      return this.fail(path, `must be ${min}–${max}, received ${value}`) ?? fallback;
    }
    return value;
  }

  /** A duration in ms within minMs…maxMs, or `fallback` when absent. */
  duration(value: unknown, path: KeyPath, fallback: number, minMs: number, maxMs: number): number {
    if (value === undefined) return fallback;
    const ms = parseDuration(value);
    if (ms === undefined) {
      return this.fail(
        path,
        `must be a duration such as "500ms", "30s" or "5m", received ${describe(value)}`,
      ) ??
        fallback;
    }
    if (ms < minMs || ms > maxMs) {
      return this.fail(path, `must be between ${minMs} ms and ${maxMs} ms, received ${ms} ms`) ??
        fallback;
    }
    return ms;
  }

  /** One of `choices`, or `fallback` when absent. */
  oneOf<T extends string>(
    value: unknown,
    path: KeyPath,
    fallback: T,
    choices: readonly T[],
  ): T {
    if (value === undefined) return fallback;
    if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
      return this.fail(path, `must be ${choices.join(", ")}, received ${describe(value)}`) ??
        fallback;
    }
    return value as T;
  }

  /** true or false, or `fallback` when absent. */
  bool(value: unknown, path: KeyPath, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") {
      return this.fail(path, `must be true or false, received ${describe(value)}`) ?? fallback;
    }
    return value;
  }

  /** A list of addresses or CIDRs; empty when absent. */
  cidrs(value: unknown, path: KeyPath): Cidr[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      return this.fail(path, `must be a list of addresses or CIDRs, received ${describe(value)}`) ??
        [];
    }
    const out: Cidr[] = [];
    value.forEach((item, i) => {
      const text = typeof item === "string" ? item.trim() : undefined;
      const cidr = text === undefined ? undefined : parseCidr(text) ?? this.#compatible(text, [
        ...path,
        i,
      ]);
      if (cidr) out.push(cidr);
      else {
        this.fail(
          [...path, i],
          `must be an address or CIDR such as 192.0.2.0/24 or 2001:db8::/32, received ${
            describe(item)
          }`,
        );
      }
    });
    return out;
  }

  /**
   * `::1.2.3.4` (IPv4-compatible), which sesame refuses elsewhere, in an allow or deny list:
   * read as sesame 0.2.0 read it, the IPv4 address (a deny list must not silently stop
   * denying after an upgrade, nor a refused config lock the admin out), and warned about.
   */
  #compatible(text: string, path: KeyPath): Cidr | undefined {
    const slash = text.indexOf("/");
    const v4 = ipv4Compatible(slash < 0 ? text : text.slice(0, slash));
    const bits = slash < 0 ? undefined : text.slice(slash + 1);
    const cidr = v4 ? parseCidr(`::ffff:${v4}${bits === undefined ? "" : `/${bits}`}`) : undefined;
    if (!cidr) return undefined;
    const plain = `${v4}${bits === undefined ? "" : `/${cidr.prefix}`}`;
    this.warn(
      path,
      `${text} is read as the IPv4 ${
        bits === undefined ? "address" : "prefix"
      } ${plain}, as sesame 0.2.0 read it; write ${plain} or ::ffff:${v4}${
        bits === undefined ? "" : `/${bits}`
      } (this form is refused everywhere else)`,
    );
    return cidr;
  }

  /** An argv list whose first item is an absolute path; `undefined` when absent. */
  argv(value: unknown, path: KeyPath): string[] | undefined {
    if (value === undefined) return undefined;
    if (
      !Array.isArray(value) || value.length === 0 ||
      !value.every((v) => typeof v === "string" && v !== "")
    ) {
      return this.fail(
        path,
        `must be a non-empty list of strings (argv, run without a shell), received ${
          describe(value)
        }`,
      );
    }
    if (!(value[0] as string).startsWith("/")) {
      return this.fail(
        [...path, 0],
        `must be an absolute path (no PATH lookup for a security tool), received ${
          describe(value[0])
        }`,
      );
    }
    return value as string[];
  }
}

/**
 * A key as it may be printed: control characters (a newline in a YAML key) become `\xNN`,
 * so one issue stays one line in errors and logs.
 *
 * @example
 * ```ts
 * import { escapeControl } from "./checker.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(escapeControl("sta\nte"), "sta\\x0ate");
 * ```
 */
export function escapeControl(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** True for a YAML mapping (a plain object). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The known key closest to a misspelt one (edit distance ≤ 2), for "did you mean". */
function nearest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
