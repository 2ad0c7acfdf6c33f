/**
 * Facts about the host the daemon reads at start: the file descriptor limit (Deno cannot
 * raise it) and the kernel's ephemeral port range (pool ports there collide with
 * outgoing connections).
 * @module
 */

/** The soft and hard RLIMIT_NOFILE, from /proc/self/limits; undefined where unreadable. */
export function openFileLimit(text?: string): { soft: number; hard: number } | undefined {
  try {
    const limits = text ?? Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
    if (!m) return undefined;
    const n = (v: string) => v === "unlimited" ? Infinity : Number(v);
    return { soft: n(m[1]), hard: n(m[2]) };
  } catch {
    return undefined;
  }
}

/** The kernel's ephemeral port range, from /proc; undefined where unreadable. */
export function ephemeralPortRange(text?: string): [number, number] | undefined {
  try {
    const raw = text ?? Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range");
    const [lo, hi] = raw.trim().split(/\s+/).map(Number);
    return Number.isInteger(lo) && Number.isInteger(hi) ? [lo, hi] : undefined;
  } catch {
    return undefined;
  }
}
