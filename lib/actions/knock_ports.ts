/**
 * Every port a knock may arrive on (pools, decoys and SPA ports), by protocol: what the
 * firewall keeps out of conntrack and what the capture intake listens for.
 * @module
 */
import type { Door } from "../config/types.ts";

/** The knock ports of `doors`, sorted, each once. */
export function knockPorts(doors: readonly Door[]): { tcp: number[]; udp: number[] } {
  const tcp = new Set<number>(), udp = new Set<number>();
  for (const door of doors) {
    for (const p of door.pool.tcp) tcp.add(p);
    for (const p of door.pool.udp) udp.add(p);
    if (door.kind === "spa") udp.add(door.spa.port);
  }
  const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
  return { tcp: sorted(tcp), udp: sorted(udp) };
}

/** Consecutive ports as `[first, last]` ranges. */
export function portSpans(ports: readonly number[]): [number, number][] {
  const sorted = [...new Set(ports)].sort((a, b) => a - b);
  const spans: [number, number][] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    spans.push([sorted[i], sorted[j]]);
    i = j + 1;
  }
  return spans;
}
