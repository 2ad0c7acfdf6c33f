/**
 * The names a door takes in the firewall: nft sets and iptables comments. nft names take
 * no "-", so it becomes "_"; config validation refuses two doors whose names collide.
 * @module
 */

/**
 * The firewall name of a door.
 *
 * @example
 * ```ts
 * import { nftSetBase } from "./nft_names.ts";
 * import { strictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(nftSetBase("web-admin"), "door_web_admin");
 * ```
 */
export function nftSetBase(door: string): string {
  return `door_${door.replaceAll("-", "_")}`;
}
