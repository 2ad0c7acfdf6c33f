/**
 * `sesame status`: which doors are open for whom, until when and through what, and the
 * used codes, read from the state store. Works while the daemon runs (a consistent
 * snapshot, read-only) and while it does not.
 * @module
 */
import { ConfigError } from "../errors.ts";
import { readStore } from "../store/sqlite.ts";
import { parseFlags, stringFlag } from "./args.ts";
import { loadPrivateConfig } from "./common.ts";

/** Runs `sesame status`; returns the exit code. */
export async function status(args: string[]): Promise<number> {
  const parsed = parseFlags("status", args, {
    config: { type: "string", short: "c" },
    json: { type: "boolean" },
    "insecure-permissions": { type: "boolean" },
  });
  const file = stringFlag(parsed, "config", "status", true);
  const config = await loadPrivateConfig(
    file,
    "refuse",
    parsed.values["insecure-permissions"] === true,
  );
  if (!config.stateFile) {
    throw new ConfigError([{
      path: "state_file",
      message: "status reads the state store: this config has no state_file",
    }]);
  }
  const state = readStore(config.stateFile);
  const now = Date.now();
  const doors = config.doors.map((door) => ({
    door: door.name,
    open: state.open.filter((r) => r.door === door.name && r.until > now - 60_000).map((r) => ({
      source: r.source,
      until: new Date(r.until).toISOString(),
      closes_in_s: Math.max(0, Math.round((r.until - now) / 1000)),
      firewall: r.firewall
        ? { kind: r.firewall.kind, ports: r.firewall.ports, protocol: r.firewall.protocol }
        : null,
      close_command: r.close,
    })),
    used: state.used.filter((c) => c.door === door.name).map((c) => ({
      counter: c.counter,
      prefix: c.prefix ?? null,
      current_secret: door.kind === "rotating" && c.secret === door.fingerprint,
    })),
  }));
  if (parsed.values.json) {
    console.log(JSON.stringify({ state_file: config.stateFile, doors }));
    return 0;
  }
  for (const d of doors) {
    console.log(`door ${d.door}: ${d.open.length} open`);
    for (const o of d.open) {
      const how = o.firewall
        ? `${o.firewall.kind} ${o.firewall.ports.join(",")}/${o.firewall.protocol}`
        : "command";
      console.log(`  ${o.source}  until ${o.until} (${o.closes_in_s} s)  ${how}`);
    }
  }
  return 0;
}
