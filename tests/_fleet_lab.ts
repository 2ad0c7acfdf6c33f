/**
 * A fleet in network namespaces this test creates: a three-member etcd (Debian's
 * etcd-server, TLS with client certificates, data on tmpfs, election timeouts raised for
 * two shared cores), two sesame gateways `a` and `b`, and a knocker with many addresses,
 * all on one bridge in a hub namespace. Addresses are in 198.19.0.0/16 (the benchmarking
 * range) and exist only inside these namespaces. Everything is removed on dispose.
 */
import { denoArgs } from "./_netns.ts";
import { removeTmpfsDir, tmpfsDir } from "./_etcd.ts";

/** The lab's addresses. */
export const FLEET = {
  a: "198.19.0.1",
  b: "198.19.0.2",
  members: ["198.19.0.11", "198.19.0.12", "198.19.0.13"],
  knocker: "198.19.0.100",
  bystander: "198.19.0.99",
  /** Extra knocker addresses: 198.19.1.1 … 198.19.1.N. */
  many: (i: number) => `198.19.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`,
} as const;

export type FleetHost = "hub" | "etcd" | "a" | "b" | "k";

async function sh(argv: string[], allowFail = false, stdin?: string): Promise<Deno.CommandOutput> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success && !allowFail) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return out;
}

/** A running process with its whole stderr kept. */
export interface Proc {
  readonly child: Deno.ChildProcess;
  readonly log: { text: string };
}

/** The lab. */
export class FleetLab implements AsyncDisposable {
  readonly ns: Record<FleetHost, string>;
  readonly dir: string;
  readonly #procs = new Set<Deno.ChildProcess>();
  readonly #members: (Proc | undefined)[] = [undefined, undefined, undefined];

  readonly #data: string;

  private constructor(prefix: string, dir: string, data: string) {
    this.#data = data;
    this.ns = {
      hub: `${prefix}-h`,
      etcd: `${prefix}-e`,
      a: `${prefix}-a`,
      b: `${prefix}-b`,
      k: `${prefix}-k`,
    };
    this.dir = dir;
  }

  /** The namespaces, the bridge, the certificates and `extra` knocker addresses. */
  static async create(extra = 0): Promise<FleetLab> {
    const dir = await Deno.makeTempDir({ prefix: "sesame-fleet-" });
    // etcd's data on tmpfs (its fsyncs would dominate on a shared disk); sesame's files
    // beside the test (Deno asks for all access under /dev).
    const data = await tmpfsDir("sesame-etcd-");
    const lab = new FleetLab(`sf-${Deno.pid}-${Math.floor(Math.random() * 1e5)}`, dir, data);
    try {
      await lab.#network(extra);
      await lab.#certificates();
    } catch (e) {
      await lab[Symbol.asyncDispose]();
      throw e;
    }
    return lab;
  }

  async #network(extra: number): Promise<void> {
    const { hub, etcd, a, b, k } = this.ns;
    for (const ns of Object.values(this.ns)) {
      await sh(["ip", "netns", "add", ns]);
      await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    await sh(["ip", "-n", hub, "link", "add", "br0", "type", "bridge"]);
    await sh(["ip", "-n", hub, "link", "set", "br0", "up"]);
    const hosts: [string, string, string[]][] = [
      [etcd, "ve", [...FLEET.members]],
      [a, "va", [FLEET.a]],
      [b, "vb", [FLEET.b]],
      [k, "vk", [FLEET.knocker, FLEET.bystander]],
    ];
    for (const [ns, port, addresses] of hosts) {
      await sh([
        "ip",
        "link",
        "add",
        port,
        "netns",
        hub,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns,
      ]);
      await sh(["ip", "-n", hub, "link", "set", port, "master", "br0", "up"]);
      for (const address of addresses) {
        await sh(["ip", "-n", ns, "addr", "add", `${address}/16`, "dev", "eth0"]);
      }
      await sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }
    if (extra > 0) {
      const batch = Array.from(
        { length: extra },
        (_, i) => `addr add ${FLEET.many(i)}/16 dev eth0`,
      );
      await sh(["ip", "-n", k, "-batch", "-"], false, batch.join("\n") + "\n");
    }
  }

  /** A CA, a server certificate for the members' addresses, and client certificates for a and b. */
  async #certificates(): Promise<void> {
    const d = this.dir;
    const ssl = (...args: string[]) => sh(["openssl", ...args]);
    await ssl(
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=sesame-test-ca",
      "-keyout",
      `${d}/ca.key`,
      "-out",
      `${d}/ca.pem`,
    );
    const leaf = async (name: string, ext: string) => {
      await ssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        // Gateways' certificates carry no common name: etcd's JSON gateway refuses one
        // with a CN once auth is on (the user comes from the password instead).
        name === "server" || name === "root" ? `/CN=${name}` : `/O=sesame/OU=gateway-${name}`,
        "-keyout",
        `${d}/${name}.key`,
        "-out",
        `${d}/${name}.csr`,
      );
      await Deno.writeTextFile(`${d}/${name}.ext`, ext);
      await ssl(
        "x509",
        "-req",
        "-in",
        `${d}/${name}.csr`,
        "-CA",
        `${d}/ca.pem`,
        "-CAkey",
        `${d}/ca.key`,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        `${d}/${name}.ext`,
        "-out",
        `${d}/${name}.pem`,
      );
      await Deno.chmod(`${d}/${name}.key`, 0o600);
    };
    await leaf(
      "server",
      `subjectAltName=${
        FLEET.members.map((m) => `IP:${m}`).join(",")
      }\nextendedKeyUsage=serverAuth,clientAuth\n`,
    );
    for (const node of ["a", "b", "root"]) await leaf(node, "extendedKeyUsage=clientAuth\n");
  }

  /** The members' client URLs. */
  get endpoints(): string[] {
    return FLEET.members.map((m) => `https://${m}:2379`);
  }

  /** Starts member `i` (0–2), or starts it again with its data. */
  startMember(i: number): Proc {
    const ip = FLEET.members[i];
    const cluster = FLEET.members.map((m, j) => `m${j}=http://${m}:2380`).join(",");
    const d = this.dir;
    const proc = this.spawn("etcd", [
      "etcd",
      "--name",
      `m${i}`,
      "--data-dir",
      `${d}/m${i}`,
      "--listen-client-urls",
      `https://${ip}:2379`,
      "--advertise-client-urls",
      `https://${ip}:2379`,
      "--listen-peer-urls",
      `http://${ip}:2380`,
      "--initial-advertise-peer-urls",
      `http://${ip}:2380`,
      "--initial-cluster",
      cluster,
      "--initial-cluster-state",
      "new",
      "--initial-cluster-token",
      this.ns.etcd,
      "--heartbeat-interval",
      "200",
      "--election-timeout",
      "2000",
      "--client-cert-auth",
      "--trusted-ca-file",
      `${d}/ca.pem`,
      "--cert-file",
      `${d}/server.pem`,
      "--key-file",
      `${d}/server.key`,
      "--log-level",
      "warn",
    ]);
    this.#members[i] = proc;
    return proc;
  }

  /** SIGKILLs member `i`. */
  async killMember(i: number): Promise<void> {
    const proc = this.#members[i];
    if (!proc) return;
    this.#members[i] = undefined;
    proc.child.kill("SIGKILL");
    await proc.child.status;
    this.#procs.delete(proc.child);
  }

  /**
   * The documented setup: a role that reaches only `/sesame/`, one user per gateway named
   * by its certificate's common name, and auth on (root acts through its own certificate).
   */
  async enableAuth(): Promise<void> {
    const steps = [
      ["role", "add", "sesame"],
      ["role", "grant-permission", "sesame", "--prefix=true", "readwrite", "/sesame/"],
      ["user", "add", "a", "--new-user-password", await this.#password("a")],
      ["user", "add", "b", "--new-user-password", await this.#password("b")],
      ["user", "grant-role", "a", "sesame"],
      ["user", "grant-role", "b", "sesame"],
      ["user", "add", "root", "--no-password"],
      ["user", "grant-role", "root", "root"],
      ["auth", "enable"],
    ];
    for (const step of steps) {
      const out = await this.etcdctl("root", ...step);
      if (!out.success) {
        throw new Error(`etcdctl ${step.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
      }
    }
  }

  /** A fresh password for gateway `node`'s etcd user, in a 0600 file beside its config. */
  async #password(node: string): Promise<string> {
    const password = crypto.randomUUID();
    await Deno.writeTextFile(`${this.dir}/${node}.password`, password + "\n", { mode: 0o600 });
    return password;
  }

  /** Waits until the cluster answers a linearizable read through `etcdctl`. */
  async etcdReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const out = await this.etcdctl("root", "get", "--prefix", "/sesame/ready-probe");
      if (out.success) return;
      if (Date.now() > deadline) {
        throw new Error(`etcd not ready: ${new TextDecoder().decode(out.stderr)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Runs etcdctl (v3) against the cluster with `user`'s certificate (a, b or root); as a or
   * b, with that gateway's password too (etcdctl speaks gRPC, where the certificate alone
   * would do).
   */
  etcdctl(user: string, ...args: string[]): Promise<Deno.CommandOutput> {
    const d = this.dir;
    return this.exec("etcd", [
      "env",
      "ETCDCTL_API=3",
      "etcdctl",
      `--endpoints=${this.endpoints.join(",")}`,
      `--cacert=${d}/ca.pem`,
      `--cert=${d}/${user}.pem`,
      `--key=${d}/${user}.key`,
      "--command-timeout=3s",
      ...(user === "root"
        ? []
        : [`--user=${user}:${Deno.readTextFileSync(`${d}/${user}.password`).trim()}`]),
      ...args,
    ]);
  }

  /** A sesame node's config: its cluster section, then `doors`. */
  nodeConfig(node: "a" | "b", doors: string, extra = ""): string {
    const d = this.dir;
    return `listen: { addresses: ["${FLEET[node]}"], metrics: "127.0.0.1:9464" }
state_file: ${d}/${node}.db
cluster:
  node: ${node}
  groups: [web]
  etcd:
    endpoints: [${this.endpoints.join(", ")}]
    ca_file: ${d}/ca.pem
    cert_file: ${d}/${node}.pem
    key_file: ${d}/${node}.key
    user: ${node}
    password_file: ${d}/${node}.password
    timeout: 1s
${extra}doors:
${doors}`;
  }

  /** `sesame listen` on node `node` with `config`, once it listens. */
  async listen(node: "a" | "b", config: string): Promise<Proc> {
    const file = `${this.dir}/${node}.yaml`;
    await Deno.writeTextFile(file, config, { mode: 0o600 });
    const proc = this.spawn(node, denoArgs("cli.ts", "listen", "-c", file));
    const deadline = Date.now() + 20_000;
    while (!proc.log.text.includes("listening on")) {
      if (Date.now() > deadline) {
        throw new Error(`sesame listen on ${node} did not start:\n${proc.log.text}`);
      }
      const done = await Promise.race([proc.child.status, new Promise((r) => setTimeout(r, 50))]);
      if (done) throw new Error(`sesame listen on ${node} exited:\n${proc.log.text}`);
    }
    return proc;
  }

  /** Runs a command in a namespace. */
  exec(host: FleetHost, argv: string[]): Promise<Deno.CommandOutput> {
    return sh(["ip", "netns", "exec", this.ns[host], ...argv], true);
  }

  /** Starts a long-running command in a namespace, its stderr kept; killed on dispose. */
  spawn(host: FleetHost, argv: string[]): Proc {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.ns[host], ...argv],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#procs.add(child);
    const log = { text: "" };
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        log.text += chunk;
      }
    })().catch(() => {});
    child.stdout.cancel().catch(() => {});
    return { child, log };
  }

  /** The addresses in door `door`'s nft set on `node` now. */
  async opened(node: "a" | "b", door: string): Promise<string[]> {
    const out = await this.exec(node, [
      "nft",
      "-j",
      "list",
      "set",
      "inet",
      "sesame",
      `door_${door}_v4`,
    ]);
    if (!out.success) return [];
    const json = JSON.parse(new TextDecoder().decode(out.stdout));
    const set = json.nftables.find((e: { set?: unknown }) => e.set)?.set;
    return (set?.elem ?? []).map((e: { elem?: { val: string } } | string) =>
      typeof e === "string" ? e : e.elem?.val
    ).filter(Boolean).sort();
  }

  /**
   * Sends knocks from the knocker namespace: every entry at once, each entry's ports in
   * order (TCP connects from `source` to `host`). Bounded: at most 2 000 entries, 30 s.
   */
  async knock(plan: { source: string; host: string; ports: number[] }[]): Promise<void> {
    const file = `${this.dir}/plan-${crypto.randomUUID()}.json`;
    await Deno.writeTextFile(file, JSON.stringify(plan));
    const out = await this.exec("k", denoArgs("tests/_fleet_knock.ts", file));
    if (!out.success) throw new Error(`knock failed: ${new TextDecoder().decode(out.stderr)}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const child of this.#procs) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await child.stderr.cancel().catch(() => {});
    }
    for (const ns of Object.values(this.ns)) {
      const pids = new TextDecoder().decode((await sh(["ip", "netns", "pids", ns], true)).stdout);
      for (const pid of pids.split("\n").filter(Boolean)) await sh(["kill", "-9", pid], true);
      await sh(["ip", "netns", "delete", ns], true);
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    await removeTmpfsDir(this.#data);
  }
}

export { denoArgs };
