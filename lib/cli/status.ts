/**
 * `sesame status`: which doors are open for whom, until when and through what, the used
 * codes, and (from a running daemon, through its control socket) the banned scanners, its
 * PID and uptime. Without a daemon it reads the state store: a consistent read-only
 * snapshot. The `--json` form is stable: see the README and `sesame status --help`.
 * @module
 */
import type { Config } from "../config/types.ts";
import { askDaemon, controlPath } from "../daemon/control.ts";
import type { DaemonStatus } from "../daemon/daemon.ts";
import { formatDuration } from "../duration.ts";
import { ConfigError } from "../errors.ts";
import type { OpenRecord } from "../store/store.ts";
import { readStore, type StoreSnapshot } from "../store/sqlite.ts";
import { counterAt } from "../sequence.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";
import { loadPrivateConfig } from "./common.ts";
import { absolutePath, sameConfig } from "./daemon_client.ts";

/** The flags of `sesame status`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  json: { type: "boolean" },
  "insecure-permissions": { type: "boolean" },
} satisfies FlagSpec;

/**
 * The daemon serving this config in this network namespace, or `undefined`. A daemon that
 * runs with another config file is said so on stderr (its doors are not this config's).
 */
export async function liveDaemon(file: string): Promise<DaemonStatus | undefined> {
  const answer = await askDaemon(await controlPath(), { op: "status" });
  if (!answer?.ok) return undefined;
  const status = answer as unknown as DaemonStatus;
  if (status.config === null || await sameConfig(file, status.config)) return status;
  console.error(
    `sesame status: the daemon here (pid ${status.pid}) runs with ${status.config}, not ${
      absolutePath(file)
    }: showing the state file of ${file}; give ${status.config} to ask the daemon`,
  );
  return undefined;
}

/** Runs `sesame status`; returns the exit code. */
export async function status(args: string[]): Promise<number> {
  const parsed = parseFlags("status", args, FLAGS);
  const file = stringFlag(parsed, "config", "status", true);
  let config: Config;
  try {
    config = await loadPrivateConfig(
      file,
      "refuse",
      parsed.values["insecure-permissions"] === true,
    );
  } catch (e) {
    // A config edited into a broken one while the daemon runs on the last good one: the
    // daemon still says what is open.
    const daemon = e instanceof ConfigError ? await liveDaemon(file) : undefined;
    if (!daemon) throw e;
    console.error(
      `${
        (e as Error).message
      }\nsesame status: ${file} does not load (a reload would refuse it); showing what the running daemon says`,
    );
    const report = daemonOnlyReport(daemon, Date.now());
    if (parsed.values.json) console.log(JSON.stringify(report));
    else console.log(render(report));
    return 0;
  }
  const daemon = await liveDaemon(file);
  if (!daemon && !config.stateFile) {
    throw new ConfigError([{
      path: "state_file",
      message:
        "no sesame listen with this config answers here, and the config has no state_file to read instead",
    }]);
  }
  const store = config.stateFile && (!daemon || await exists(config.stateFile))
    ? readStore(config.stateFile)
    : undefined;
  const report = statusReport(config, daemon, store, Date.now());
  if (parsed.values.json) console.log(JSON.stringify(report));
  else console.log(render(report));
  return 0;
}

/** One open door, as `status --json` shows it. */
export interface StatusOpen {
  readonly source: string;
  readonly user: string | null;
  /** ISO 8601. */
  readonly until: string;
  readonly closes_in_s: number;
  /** What lets the source through: a firewall with its ports, or only a command. */
  readonly action: {
    readonly kind: "nft" | "iptables" | "command";
    readonly ports?: readonly number[];
    readonly protocol?: string;
    readonly sets?: { readonly v4?: string; readonly v6?: string };
  };
  readonly close_command: readonly string[] | null;
}

/** `sesame status --json`, version 1. */
export interface StatusReport {
  readonly version: 1;
  /** The running daemon, or `null` when none answers (then the rest is from the state file). */
  readonly daemon:
    | {
      pid: number;
      started_at: string;
      uptime_s: number;
      config: string | null;
      intake: DaemonStatus["intake"] | null;
    }
    | null;
  readonly state_file: string | null;
  readonly doors: readonly {
    readonly door: string;
    readonly users: readonly string[] | null;
    /** On a router: the inside host a forward or dnat door opens (and the dnat port). */
    readonly gateway: {
      readonly kind: "forward" | "dnat";
      readonly hosts: readonly string[];
      readonly ports: readonly number[];
      readonly protocol: string;
      readonly dnat_port: number | null;
    } | null;
    readonly open: readonly StatusOpen[];
    /** Used codes (the highest counter per user and prefix), and whether still in the window. */
    readonly used: readonly {
      user: string | null;
      prefix: string | null;
      counter: number;
      in_window: boolean;
      current_secret: boolean;
    }[];
  }[];
  /** Scanners banned now (from the daemon; `null` without one). */
  readonly bans: readonly { source: string; evidence: string; until: string }[] | null;
  /**
   * With `cluster`, from the daemon: this node, whether it watches etcd now, and the
   * fleet's shared doors (who decided each, who confirmed it); `null` otherwise.
   */
  readonly fleet?: {
    readonly node: string;
    readonly groups: readonly string[];
    readonly connected: boolean;
    readonly grants: readonly {
      group: string;
      door: string;
      source: string;
      user: string | null;
      until: string;
      decided_by: string;
      confirmed_by: readonly string[];
    }[];
  } | null;
}

/** Builds the report from what a daemon said and what the store holds. */
export function statusReport(
  config: Config,
  daemon: DaemonStatus | undefined,
  store: StoreSnapshot | undefined,
  now: number,
): StatusReport {
  const open: readonly OpenRecord[] = daemon?.open ?? store?.open ?? [];
  return {
    version: 1,
    daemon: daemon
      ? {
        pid: daemon.pid,
        started_at: daemon.started_at,
        uptime_s: daemon.uptime_s,
        config: daemon.config,
        intake: daemon.intake ?? null,
      }
      : null,
    state_file: config.stateFile ?? null,
    fleet: daemon?.fleet
      ? {
        node: daemon.fleet.node,
        groups: daemon.fleet.groups,
        connected: daemon.fleet.connected,
        grants: daemon.fleet.grants.map((g) => ({
          group: g.group,
          door: g.door,
          source: g.source,
          user: g.user ?? null,
          until: new Date(g.until).toISOString(),
          decided_by: g.node,
          confirmed_by: g.confirmed,
        })),
      }
      : null,
    doors: config.doors.map((door) => {
      const fingerprints = door.kind === "rotating"
        ? new Set(door.users?.map((u) => u.fingerprint) ?? [door.fingerprint])
        : new Set<string>();
      const current = door.kind === "rotating" ? counterAt(now, door.periodMs) : 0;
      const spec = door.open?.nft;
      const g = spec?.gateway;
      return {
        door: door.name,
        users: door.kind === "rotating" && door.users ? door.users.map((u) => u.name) : null,
        gateway: g && spec
          ? {
            kind: g.kind,
            hosts: g.hosts.map((h) => h.host),
            ports: g.toPorts,
            protocol: spec.protocol,
            dnat_port: g.kind === "dnat" ? spec.ports[0] : null,
          }
          : null,
        open: open.filter((r) => r.door === door.name).map((r): StatusOpen => ({
          source: r.source,
          user: r.user ?? null,
          until: new Date(r.until).toISOString(),
          closes_in_s: Math.max(0, Math.round((r.until - now) / 1000)),
          action: r.firewall
            ? {
              kind: r.firewall.kind,
              ports: r.firewall.ports,
              protocol: r.firewall.protocol,
              ...(r.firewall.sets ? { sets: r.firewall.sets } : {}),
            }
            : { kind: "command" },
          close_command: r.close,
        })),
        used: (store?.used ?? []).filter((c) => c.door === door.name).map((c) => ({
          user: c.user ?? null,
          prefix: c.prefix ?? null,
          counter: c.counter,
          in_window: door.kind === "rotating" && c.counter >= current - door.skew,
          current_secret: c.secret !== undefined && fingerprints.has(c.secret),
        })),
      };
    }),
    bans: daemon ? daemon.bans : null,
  };
}

/** The report from the daemon alone, when the config file does not load. */
function daemonOnlyReport(daemon: DaemonStatus, now: number): StatusReport {
  const names = [...new Set(daemon.open.map((r) => r.door))];
  return {
    ...statusReport(
      { doors: [], stateFile: undefined } as unknown as Config,
      daemon,
      undefined,
      now,
    ),
    doors: names.map((door) => ({
      door,
      users: null,
      gateway: null,
      open: statusReport(
        { doors: [{ name: door, kind: "static" }] } as unknown as Config,
        daemon,
        undefined,
        now,
      ).doors[0].open,
      used: [],
    })),
  };
}

/** The compact table an admin reads. */
function render(report: StatusReport): string {
  const lines: string[] = [];
  const d = report.daemon;
  lines.push(
    d
      ? `daemon: pid ${d.pid}, up ${formatDuration(d.uptime_s * 1000)}${
        d.config ? `, config ${d.config}` : ""
      }${
        d.intake?.kind === "nflog"
          ? `, knocks from NFLOG group ${d.intake.group} (${d.intake.captured} read of ${d.intake.logged} logged by the kernel, reader restarted ${d.intake.restarts} times)`
          : ""
      }`
      : `daemon: none with this config here (read from ${report.state_file})`,
  );
  const rows = [["DOOR", "SOURCE", "USER", "CLOSES IN", "UNTIL", "THROUGH"]];
  for (const door of report.doors) {
    const g = door.gateway;
    const leads = g
      ? `${g.dnat_port === null ? "forward" : "dnat"} ${inside(g, g.hosts[0])}${
        g.hosts.length > 1 ? ` (and ${g.hosts.slice(1).join(", ")})` : ""
      }`
      : "";
    if (door.open.length === 0) rows.push([door.door, "-", "", "", "", leads]);
    for (const o of door.open) {
      const a = o.action;
      rows.push([
        door.door,
        o.source,
        o.user ?? "",
        `${o.closes_in_s} s`,
        o.until,
        a.kind === "command"
          ? "command"
          : door.gateway
          ? `${a.kind} ${inside(door.gateway, o.source)}`
          : a.sets
          ? `${a.kind} sets`
          : `${a.kind} ${a.ports?.join(",")}/${a.protocol}`,
      ]);
    }
  }
  lines.push(...table(rows));
  const f = report.fleet;
  if (f) {
    lines.push(
      "",
      `fleet: node ${f.node}, groups ${f.groups.join(", ") || "none"}, etcd ${
        f.connected ? "watched" : "NOT reachable (shared doors are not mirrored here meanwhile)"
      }`,
    );
    if (f.grants.length > 0) {
      lines.push(...table([
        [
          f.connected ? "SHARED" : "SHARED (LAST KNOWN)",
          "GROUP",
          "SOURCE",
          "UNTIL",
          "DECIDED BY",
          "CONFIRMED BY",
        ],
        ...f.grants.map((g) => [
          g.door,
          g.group,
          g.source,
          g.until,
          g.decided_by,
          g.confirmed_by.join(",") || "-",
        ]),
      ]));
    }
  }
  if (report.bans && report.bans.length > 0) {
    lines.push(
      "",
      ...table([
        ["BANNED", "EVIDENCE", "UNTIL"],
        ...report.bans.map((b) => [b.source, b.evidence, b.until]),
      ]),
    );
  }
  return lines.join("\n");
}

/** Where a gateway door leads a source: `→ 192.168.1.10:22/tcp`, `2222 → [fd00::10]:22/tcp`. */
function inside(
  g: NonNullable<StatusReport["doors"][number]["gateway"]>,
  source: string,
): string {
  const v6 = source.includes(":");
  const host = g.hosts.find((h) => h.includes(":") === v6) ?? g.hosts[0];
  const to = `${host.includes(":") ? `[${host}]` : host}:${g.ports.join(",")}/${g.protocol}`;
  return g.dnat_port === null ? `→ ${to}` : `${g.dnat_port} → ${to}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd());
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
