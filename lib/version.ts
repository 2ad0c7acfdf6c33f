/**
 * sesame's version, read from deno.json (its one home): the package's version is the
 * program's.
 * @module
 */
import meta from "../deno.json" with { type: "json" };

/**
 * The program's version, printed by `sesame --version`.
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * import { match as assertMatch } from "node:assert/strict";
 * assertMatch(VERSION, /^\d+\.\d+\.\d+/);
 * ```
 */
export const VERSION: string = meta.version;
