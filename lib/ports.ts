/**
 * Port lists as written in configs: `"20000-20999"`, `"7000, 7005-7010"`, `[7000, "7100-7199"]`.
 * @module
 */

/** The outcome of parsing a port list: the ports, or why not. */
export type PortListResult = { ok: true; ports: number[] } | { ok: false; error: string };

const RANGE = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/;

/**
 * Parses a port list into de-duplicated, ascending ports.
 *
 * @example
 * ```ts
 * import { parsePortList } from "./ports.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(parsePortList("7002, 7000-7001"), { ok: true, ports: [7000, 7001, 7002] });
 * ```
 */
export function parsePortList(value: unknown): PortListResult {
  const items: unknown[] = typeof value === "string"
    ? value.split(",")
    : Array.isArray(value)
    ? value
    : typeof value === "number"
    ? [value]
    : [];
  if (items.length === 0) {
    return {
      ok: false,
      error: `must be a port list such as "20000-20999", received ${describe(value)}`,
    };
  }
  const set = new Set<number>();
  for (const item of items) {
    const text = typeof item === "number"
      ? String(item)
      : typeof item === "string"
      ? item.trim()
      : "";
    const m = RANGE.exec(text);
    if (!m) {
      return {
        ok: false,
        error: `${
          describe(String(item).trim())
        } is not a port or range (such as 7000 or 7000-7099)`,
      };
    }
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (const p of [from, to]) {
      if (p < 1 || p > 65535) return { ok: false, error: `port must be 1–65535, received ${p}` };
    }
    if (to < from) return { ok: false, error: `range "${text}" runs backwards` };
    for (let p = from; p <= to; p++) set.add(p);
  }
  return { ok: true, ports: [...set].sort((a, b) => a - b) };
}

/** A short, safe description of a value for error messages; never echoes what may be a secret. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  // A long token of base64 characters may be a secret typed at the wrong key: never echo it.
  if (typeof value === "string" && value.length >= 16 && /^[A-Za-z0-9_+/=-]+$/.test(value)) {
    return `a string of ${value.length} characters (not shown: it may be a secret)`;
  }
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value);
  }
  if (typeof value === "object") return Array.isArray(value) ? "a list" : "a mapping";
  return String(value);
}
