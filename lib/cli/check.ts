/** `sesame check`: validate a config and summarise it, secrets left out. @module */
import { loadPrivateConfig } from "./common.ts";
import type { Door } from "../config/types.ts";
import { formatDuration } from "../duration.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { doorWeakness, weaknessWarning } from "../weakness.ts";

/** A door's summary: everything but its secret. */
function summary(door: Door): Record<string, unknown> {
  const action = door.open
    ? {
      for: formatDuration(door.open.forMs),
      command: door.open.command ?? null,
      close_command: door.open.closeCommand ?? null,
      log: door.open.log,
    }
    : null;
  const common = {
    name: door.name,
    kind: door.kind,
    sequence_timeout: formatDuration(door.sequenceTimeoutMs),
    tcp_ports: door.pool.tcp.length,
    udp_ports: door.pool.udp.length,
    open: action,
  };
  if (door.kind === "static") {
    return { ...common, sequence: door.sequence.map((k) => `${k.port}/${k.protocol}`) };
  }
  return {
    ...common,
    length: door.length,
    protocol: door.protocol,
    period: formatDuration(door.periodMs),
    skew: door.skew,
    bind_source: door.bindSource,
  };
}

/** Runs `sesame check`; returns the exit code (a ConfigError is reported by the caller, exit 1). */
export async function check(args: string[]): Promise<number> {
  const parsed = parseFlags("check", args, {
    config: { type: "string", short: "c" },
    json: { type: "boolean" },
  });
  const file = stringFlag(parsed, "config", "check", true);
  const config = await loadPrivateConfig(file, "warn", false);
  const weakness = config.doors.map((d) => doorWeakness(d, config.reorderWindowMs));
  const doors: Record<string, unknown>[] = config.doors.map((d, i) => ({
    ...summary(d),
    weakness: { chance: weakness[i].chance, weak: weakness[i].weak },
  }));
  if (parsed.values.json) {
    console.log(JSON.stringify({ valid: true, file, doors }));
    return 0;
  }
  console.log(`${file}: valid, ${doors.length} door${doors.length === 1 ? "" : "s"}`);
  for (const d of doors) {
    const detail = d.kind === "static"
      ? `static sequence ${(d.sequence as string[]).join(" ")}`
      : `rotating, ${d.length} ${d.protocol} knocks from ${
        Number(d.tcp_ports) || Number(d.udp_ports)
      } ports, every ${d.period}${d.bind_source ? ", bound to the source address" : ""}`;
    const open = d.open
      ? `opens for ${(d.open as { for: string }).for}`
      : "client side only (no open)";
    console.log(`  ${d.name}: ${detail}; ${open}`);
  }
  for (const w of weakness) {
    const warning = weaknessWarning(w);
    if (warning) console.log(`warning: ${warning}`);
  }
  return 0;
}
