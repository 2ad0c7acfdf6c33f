/** Parsing `--at`: unix seconds or ISO-8601. @module */
import { UsageError } from "../errors.ts";

/**
 * Parses a time given as unix seconds (`1700000000`, `1700000000.5`) or ISO-8601
 * (`2030-01-01T12:00:00Z`, `+012345-01-01T00:00:00Z`) into ms since the epoch.
 *
 * @example
 * ```ts
 * import { parseTime } from "./time.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(parseTime("1700000000"), 1700000000000);
 * ```
 */
export function parseTime(text: string): number {
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(text)) ms = Number(text) * 1000;
  else if (/^[+-]?\d{4,6}-\d\d/.test(text)) ms = Date.parse(text);
  else ms = NaN;
  if (!Number.isFinite(ms) || Number.isNaN(new Date(ms).getTime())) {
    throw new UsageError(
      `--at: ${
        JSON.stringify(text)
      } is not a time: give unix seconds or ISO-8601 (2030-01-01T12:00:00Z), up to year 275760`,
    );
  }
  return Math.floor(ms);
}
