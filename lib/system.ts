/**
 * Facts about the host the daemon reads at start: the file descriptor limit (Deno cannot
 * raise it) and the kernel's ephemeral port range (pool ports there collide with
 * outgoing connections). Deno lets a program read /proc only with --allow-all, so these
 * come from tiny child processes, which see the same limits and sysctls.
 * @module
 */

async function output(argv: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** Parses `ulimit -Sn; ulimit -Hn` output. */
export function parseLimits(text: string): { soft: number; hard: number } | undefined {
  const [soft, hard] = text.trim().split(/\s+/).map((v) =>
    v === "unlimited" ? Infinity : Number(v)
  );
  return Number.isFinite(soft) || soft === Infinity ? { soft, hard: hard ?? soft } : undefined;
}

/** The soft and hard RLIMIT_NOFILE of this process; undefined where they cannot be read. */
export async function openFileLimit(): Promise<{ soft: number; hard: number } | undefined> {
  const text = await output(["/bin/sh", "-c", "ulimit -Sn; ulimit -Hn"]);
  return text === undefined ? undefined : parseLimits(text);
}

/** Parses net.ipv4.ip_local_port_range ("32768\t60999"). */
export function parseRange(text: string): [number, number] | undefined {
  const [lo, hi] = text.trim().split(/\s+/).map(Number);
  return Number.isInteger(lo) && Number.isInteger(hi) ? [lo, hi] : undefined;
}

/** The kernel's ephemeral port range; undefined where it cannot be read. */
export async function ephemeralPortRange(): Promise<[number, number] | undefined> {
  const text = await output(["/bin/cat", "/proc/sys/net/ipv4/ip_local_port_range"]);
  return text === undefined ? undefined : parseRange(text);
}

/**
 * The inode of this process's network namespace (`/proc/self/ns/net`), which names it;
 * undefined where it cannot be read.
 */
export async function netNamespaceId(): Promise<string | undefined> {
  const text = await output(["/bin/readlink", "/proc/self/ns/net"]);
  return /net:\[(\d+)\]/.exec(text ?? "")?.[1];
}

/** Whether the kernel forwards packets of `family` (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`); undefined where it cannot be read. */
export async function forwarding(family: 4 | 6): Promise<boolean | undefined> {
  const text = await output([
    "/bin/cat",
    family === 4 ? "/proc/sys/net/ipv4/ip_forward" : "/proc/sys/net/ipv6/conf/all/forwarding",
  ]);
  return text === undefined ? undefined : text.trim() !== "0";
}
