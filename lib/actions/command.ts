/**
 * Substituting `{ip}` and `{door}` into an action's argv. Each argument is substituted
 * on its own and the result is never handed to a shell, so no value can become syntax.
 * @module
 */
import { parseAddress } from "../address.ts";
import { DOOR_NAME } from "../config/schema.ts";

/**
 * Returns `argv` with `{ip}` and `{door}` replaced; refuses values that are not a
 * canonical address and a valid door name (defence in depth: both come from sesame).
 *
 * @example
 * ```ts
 * import { substitute } from "./command.ts";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const argv = substitute(["/usr/sbin/allow", "--ip={ip}", "{door}"], { source: "192.0.2.7", door: "ssh" });
 * assertEquals(argv, ["/usr/sbin/allow", "--ip=192.0.2.7", "ssh"]);
 * ```
 */
export function substitute(
  argv: readonly string[],
  values: { source: string; door: string },
): string[] {
  const address = parseAddress(values.source);
  if (!address || address.text !== values.source) {
    throw new TypeError(
      `refusing to substitute a non-canonical address: ${JSON.stringify(values.source)}`,
    );
  }
  if (!DOOR_NAME.test(values.door)) {
    throw new TypeError(`refusing to substitute a bad door name: ${JSON.stringify(values.door)}`);
  }
  return argv.map((arg) => arg.replaceAll("{ip}", values.source).replaceAll("{door}", values.door));
}
