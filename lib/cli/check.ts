/** `sesame check`: validate a config and summarise it, secrets left out. @module */
import { checkDescriptors, checkEphemeral, socketsNeeded } from "../daemon/preflight.ts";
import { askDaemon, controlPath } from "../daemon/control.ts";
import { loadPrivateConfig } from "./common.ts";
import type { Door } from "../config/types.ts";
import { formatDuration } from "../duration.ts";
import { type FlagSpec, parseFlags, stringFlag } from "./args.ts";
import type { Config } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { SocketListeners } from "../net/listeners.ts";
import { wantedEndpoints } from "../daemon/binding.ts";
import { gatewayWarnings } from "../daemon/preflight.ts";
import { doorWeakness, weaknessWarning } from "../weakness.ts";
import { checkConnection } from "../cluster/check_connection.ts";
import { readTls } from "../cluster/fleet.ts";

/** The flags of `sesame check`, as its --help lists them (tests/help_test.ts checks). */
export const FLAGS = {
  config: { type: "string", short: "c" },
  json: { type: "boolean" },
  "insecure-permissions": { type: "boolean" },
  connect: { type: "boolean" },
} satisfies FlagSpec;

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
    ...(door.fleet ? { share: door.share ?? null, fleet: door.fleet } : {}),
  };
  if (door.kind === "static") {
    return { ...common, sequence: door.sequence.map((k) => `${k.port}/${k.protocol}`) };
  }
  if (door.kind === "spa") {
    return {
      ...common,
      spa: {
        port: door.spa.port,
        hmac_digest: door.spa.keys.hmacDigest,
        max_age: formatDuration(door.spa.maxAgeMs),
        allow_other_address: door.spa.allowOtherAddress,
        access: door.spa.access.map((a) => `${a.protocol}/${a.port}`),
      },
    };
  }
  return {
    ...common,
    length: door.length,
    protocol: door.protocol,
    period: formatDuration(door.periodMs),
    skew: door.skew,
    bind_source: door.bindSource,
    users: door.users?.map((u) => u.name) ?? null,
  };
}

/** Runs `sesame check`; returns the exit code (a ConfigError is reported by the caller, exit 1). */
export async function check(args: string[]): Promise<number> {
  const parsed = parseFlags("check", args, FLAGS);
  const file = stringFlag(parsed, "config", "check", true);
  // What listen would refuse from the config alone, check refuses too (exit 1).
  const config = await loadPrivateConfig(
    file,
    "refuse",
    parsed.values["insecure-permissions"] === true,
  );
  await checkStatePath(config.stateFile);
  await checkLogPath(config);
  await checkEphemeral(config.doors); // refused as listen refuses it (a ConfigError: exit 1)
  // The open-file limit listen checks at start, from this process's limit (the unit's
  // LimitNOFILE applies to ExecStartPre too): a ConfigError, exit 1.
  await checkDescriptors(socketsNeeded(config));
  // The cluster's files are read as listen reads them (a ConfigError names the key).
  const fleet = config.cluster
    ? parsed.values.connect
      ? await checkConnection(config.cluster, file)
      : (await readTls(config.cluster, file), undefined)
    : undefined;
  const host = await hostWarnings(config);
  const weakness = config.doors.map((d) => doorWeakness(d, config.reorderWindowMs));
  const doors: Record<string, unknown>[] = config.doors.map((d, i) => ({
    ...summary(d),
    weakness: { chance: weakness[i].chance, weak: weakness[i].weak },
  }));
  if (parsed.values.json) {
    console.log(JSON.stringify({
      valid: true,
      file,
      doors,
      warnings: [...config.warnings ?? [], ...host],
      ...(fleet ? { fleet } : {}),
    }));
    return fleet && !fleet.ok ? 1 : 0;
  }
  console.log(`${file}: valid, ${doors.length} door${doors.length === 1 ? "" : "s"}`);
  for (const d of doors) {
    const spa = d.spa as { port: number; hmac_digest: string } | undefined;
    const detail = d.kind === "spa"
      ? `single packet (fwknop SPA) on ${spa!.port}/udp, HMAC-${spa!.hmac_digest.toUpperCase()}`
      : d.kind === "static"
      ? `static sequence ${(d.sequence as string[]).join(" ")}`
      : `rotating, ${d.length} ${d.protocol} knocks from ${
        Number(d.tcp_ports) || Number(d.udp_ports)
      } ports, every ${d.period}${d.bind_source ? ", bound to the source address" : ""}${
        Array.isArray(d.users) ? `, users ${d.users.join(", ")}` : ""
      }`;
    const open = d.open
      ? `opens for ${(d.open as { for: string }).for}`
      : "client side only (no open)";
    const fleetNote = d.fleet === undefined
      ? ""
      : `; ${d.share ? `shared with group ${d.share}, ` : ""}fleet: ${d.fleet}${
        d.fleet === "local" ? " (break-glass: its own store when etcd is unreachable)" : ""
      }`;
    console.log(`  ${d.name}: ${detail}; ${open}${fleetNote}`);
  }
  for (const w of weakness) {
    const warning = weaknessWarning(w);
    if (warning) console.log(`warning: ${warning}`);
  }
  for (const warning of [...config.warnings ?? [], ...host]) console.log(`warning: ${warning}`);
  if (config.cluster) {
    const c = config.cluster;
    for (const d of config.doors) {
      if (d.share && !c.groups.includes(d.share)) {
        console.log(
          `warning: door ${d.name} is shared with group ${d.share}, which cluster.groups does not hold: this gateway shares its own opens but does not open the door for other gateways' knocks`,
        );
      }
    }
    console.log(
      `cluster: node ${c.node}, groups ${c.groups.join(", ") || "none"}, etcd ${
        c.etcd.endpoints.join(", ")
      } under ${c.etcd.prefix}${fleet ? "" : " (not contacted: add --connect)"}`,
    );
    for (const line of fleet?.lines ?? []) console.log(`  ${line}`);
  }
  return fleet && !fleet.ok ? 1 : 0;
}

/** A log file's directory must exist: listen refuses to start without it. */
async function checkLogPath(config: Config): Promise<void> {
  const to = config.log.to;
  if (to.target !== "file") return;
  const dir = to.path.slice(0, to.path.lastIndexOf("/")) || "/";
  const info = await Deno.stat(dir).catch(() => undefined);
  if (!info?.isDirectory) {
    throw new ConfigError([{
      path: "listen.log.path",
      message: `${dir} is not a directory: listen could not open ${to.path}`,
    }]);
  }
}

/**
 * The state path as listen will open it: a path under a regular file, or a directory in
 * its place, is refused here as listen would refuse it at start.
 * @throws {ConfigError} naming the part of the path in the way.
 */
async function checkStatePath(path: string | undefined): Promise<void> {
  if (!path) return;
  const kind = async (p: string) => {
    try {
      const info = await Deno.stat(p);
      return info.isDirectory ? "directory" : "other";
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return "missing";
      if (e instanceof Deno.errors.NotADirectory) return "blocked";
      throw e;
    }
  };
  const fail = (message: string) => {
    throw new ConfigError([{ path: "state_file", message }]);
  };
  if ((await kind(path)) === "directory") fail(`${path} is a directory: name a file in it`);
  let dir = path.slice(0, path.lastIndexOf("/")) || "/";
  while (dir !== "/" && dir !== "") {
    const k = await kind(dir);
    if (k === "directory") return;
    if (k === "other") fail(`${dir} is not a directory: listen could not create ${path}`);
    dir = dir.slice(0, dir.lastIndexOf("/")) || "/";
  }
}

/** The daemon answering on this namespace's control socket, if one does and we may ask. */
async function runningDaemon(): Promise<{ pid: number; config: string } | undefined> {
  try {
    const status = await askDaemon(await controlPath(), { op: "status" }, 2000);
    if (status?.ok && typeof status.pid === "number") {
      return { pid: status.pid, config: String(status.config ?? "its config") };
    }
  } catch { /* not ours to ask (not root), or not answering: probe the ports */ }
  return undefined;
}

/**
 * What the host says about this config, as warnings: knock ports a local program already
 * uses (listen would lose them), unless a sesame holds them, and gateway doors' gaps.
 */
async function hostWarnings(config: Config): Promise<string[]> {
  const warnings: string[] = [];
  // A running sesame holds its own knock ports: probing them would only find it.
  const running = await runningDaemon();
  if (running) {
    warnings.push(
      `sesame listen (pid ${running.pid}) runs in this network namespace with ${running.config}: knock ports not probed; "sesame reload -c ${running.config}" applies this file and reports ports it cannot bind`,
    );
    warnings.push(...await gatewayWarnings(config.doors));
    return warnings;
  }
  // Probe the knock ports the way listen binds them, and let go at once.
  const probe = new SocketListeners({ knock() {}, packet() {} });
  const failures = probe.update(wantedEndpoints(config.doors, config.addresses));
  probe.closeAll();
  const inUse = failures.filter((f) => f.reason === "AddrInUse");
  if (inUse.length > 0) {
    warnings.push(
      `${inUse.length} knock ports are in use here (${
        inUse.slice(0, 8).map((f) => `${f.endpoint.port}/${f.endpoint.protocol}`).join(" ")
      }): ${
        config.capture.kind === "nflog"
          ? "the capture intake still hears knocks there, but the program answers them (a scan sees those pool ports open), or with closed_reply drop is cut off: move the program or the pool"
          : "listen could not hear knocks there (is sesame already running?)"
      }`,
    );
  }
  warnings.push(...await gatewayWarnings(config.doors));
  return warnings;
}
