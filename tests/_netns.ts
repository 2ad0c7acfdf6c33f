/**
 * A small lab of network namespaces for firewall tests: a server, a knocker and a
 * bystander, joined to the server by veth pairs, each with IPv4 and IPv6. Addresses are
 * the benchmarking range 198.18.0.0/15 and the documentation prefix 2001:db8::/32, and
 * exist only inside these namespaces: nothing leaves the machine. Removed on dispose,
 * with every process started in it.
 */
import { DENO_RUN, freshClientState, ROOT } from "./_cli.ts";

export type Host = "server" | "knocker" | "bystander" | "inside";

export const ADDR = {
  server: {
    toKnocker: "198.18.1.1",
    toBystander: "198.18.2.1",
    v6ToKnocker: "2001:db8:1::1",
    v6ToBystander: "2001:db8:2::1",
  },
  knocker: { v4: "198.18.1.2", v6: "2001:db8:1::2" },
  bystander: { v4: "198.18.2.2", v6: "2001:db8:2::2" },
  /** With `inside: true`: the server is a router, and this host is behind it. */
  inside: { v4: "198.18.3.2", v6: "2001:db8:3::2", router: "198.18.3.1", router6: "2001:db8:3::1" },
} as const;

async function sh(argv: string[], allowFail = false): Promise<Deno.CommandOutput> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success && !allowFail) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return out;
}

export class Lab implements AsyncDisposable {
  readonly ns: Record<Host, string>;
  readonly #children: { child: Deno.ChildProcess; stdin: boolean }[] = [];

  private constructor(prefix: string, inside: boolean) {
    this.ns = {
      server: `${prefix}-s`,
      knocker: `${prefix}-k`,
      bystander: `${prefix}-b`,
      ...(inside ? { inside: `${prefix}-i` } : {}),
    } as Record<Host, string>;
  }

  /**
   * A server, a knocker and a bystander; with `inside`, the server is also a router
   * (forwarding on) with a host behind it, which the two outside hosts reach through it.
   */
  static async create(options: { inside?: boolean } = {}): Promise<Lab> {
    const lab = new Lab(`sesame-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`, !!options.inside);
    const { server: s, knocker: k, bystander: b } = lab.ns;
    try {
      for (const ns of [s, k, b]) {
        await sh(["ip", "netns", "add", ns]);
        await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
      }
      await sh([
        "ip",
        "link",
        "add",
        "sk",
        "netns",
        s,
        "type",
        "veth",
        "peer",
        "name",
        "ks",
        "netns",
        k,
      ]);
      await sh([
        "ip",
        "link",
        "add",
        "sb",
        "netns",
        s,
        "type",
        "veth",
        "peer",
        "name",
        "bs",
        "netns",
        b,
      ]);
      const addr = async (ns: string, dev: string, v4: string, v6: string) => {
        await sh(["ip", "-n", ns, "addr", "add", `${v4}/24`, "dev", dev]);
        await sh(["ip", "-n", ns, "addr", "add", `${v6}/64`, "dev", dev, "nodad"]);
        await sh(["ip", "-n", ns, "link", "set", dev, "up"]);
      };
      await addr(s, "sk", ADDR.server.toKnocker, ADDR.server.v6ToKnocker);
      await addr(s, "sb", ADDR.server.toBystander, ADDR.server.v6ToBystander);
      await addr(k, "ks", ADDR.knocker.v4, ADDR.knocker.v6);
      await addr(b, "bs", ADDR.bystander.v4, ADDR.bystander.v6);
      if (options.inside) await lab.#addInside();
    } catch (e) {
      await lab[Symbol.asyncDispose]();
      throw e;
    }
    return lab;
  }

  /** The host behind the router: its link, addresses, routes, and forwarding on the router. */
  async #addInside(): Promise<void> {
    const { server: s, knocker: k, bystander: b, inside: i } = this.ns;
    await sh(["ip", "netns", "add", i]);
    await sh(["ip", "-n", i, "link", "set", "lo", "up"]);
    // No duplicate address detection on the new link (its link-local address would be
    // tentative for a second, and IPv6 would not pass meanwhile).
    for (const ns of [s, i]) {
      await sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
    }
    await sh([
      "ip",
      "link",
      "add",
      "si",
      "netns",
      s,
      "type",
      "veth",
      "peer",
      "name",
      "is",
      "netns",
      i,
    ]);
    for (
      const [ns, dev, v4, v6] of [
        [s, "si", ADDR.inside.router, ADDR.inside.router6],
        [i, "is", ADDR.inside.v4, ADDR.inside.v6],
      ]
    ) {
      await sh(["ip", "-n", ns, "addr", "add", `${v4}/24`, "dev", dev]);
      await sh(["ip", "-n", ns, "addr", "add", `${v6}/64`, "dev", dev, "nodad"]);
      await sh(["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    await sh(["ip", "netns", "exec", s, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await sh(["ip", "netns", "exec", s, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    await sh(["ip", "-n", i, "route", "add", "default", "via", ADDR.inside.router]);
    await sh(["ip", "-n", i, "-6", "route", "add", "default", "via", ADDR.inside.router6]);
    for (
      const [ns, via, via6] of [
        [k, ADDR.server.toKnocker, ADDR.server.v6ToKnocker],
        [b, ADDR.server.toBystander, ADDR.server.v6ToBystander],
      ]
    ) {
      await sh(["ip", "-n", ns, "route", "add", "198.18.3.0/24", "via", via]);
      await sh(["ip", "-n", ns, "-6", "route", "add", "2001:db8:3::/64", "via", via6]);
    }
  }

  /** Runs a command inside a namespace and waits for it. */
  exec(host: Host, argv: string[]): Promise<Deno.CommandOutput> {
    return sh(["ip", "netns", "exec", this.ns[host], ...argv], true);
  }

  /** Starts a long-running command inside a namespace; killed on dispose. */
  spawn(host: Host, argv: string[], stdin: "piped" | "null" = "null"): Deno.ChildProcess {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.ns[host], ...argv],
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#children.push({ child, stdin: stdin === "piped" });
    return child;
  }

  /** `deno run` of one of the project's files, with the project's permission set. */
  deno(file: string, ...args: string[]): string[] {
    return denoArgs(file, ...args);
  }

  /**
   * `sesame listen -c FILE` in the server namespace, once it says it listens; its whole log
   * is kept in `log.text`.
   */
  async listen(file: string): Promise<{ child: Deno.ChildProcess; log: { text: string } }> {
    const child = this.spawn("server", this.deno("cli.ts", "listen", "-c", file));
    const log = { text: "" };
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        log.text += chunk;
      }
    })().catch(() => {});
    const deadline = Date.now() + 15_000;
    while (!log.text.includes("listening on")) {
      if (Date.now() > deadline) throw new Error(`sesame listen did not start:\n${log.text}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { child, log };
  }

  /** True when a TCP connection from `host` to `address`:`port` is accepted within 1 s. */
  async canConnect(host: Host, address: string, port: number): Promise<boolean> {
    const out = await this.exec(host, [
      "timeout",
      "1",
      "bash",
      "-c",
      `exec 3<>/dev/tcp/${address}/${port}`,
    ]);
    return out.success;
  }

  /** Runs `nft` in the server namespace and returns stdout. */
  async nft(...args: string[]): Promise<string> {
    const out = await this.exec("server", ["nft", ...args]);
    return new TextDecoder().decode(out.stdout);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const { child, stdin } of this.#children) {
      if (stdin) await child.stdin.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      await Promise.all([
        child.stdout.cancel().catch(() => {}),
        child.stderr.cancel().catch(() => {}),
      ]);
    }
    for (const ns of Object.values(this.ns)) {
      // Processes the children left behind in the namespace (a killed daemon's reader).
      const pids = new TextDecoder().decode((await sh(["ip", "netns", "pids", ns], true)).stdout);
      for (const pid of pids.split("\n").filter(Boolean)) await sh(["kill", "-9", pid], true);
      await sh(["ip", "netns", "delete", ns], true);
    }
  }
}

/** `deno run` of one of the project's files with the project's permissions, as argv. */
export function denoArgs(file: string, ...args: string[]): string[] {
  return [
    "/usr/bin/env",
    `XDG_STATE_HOME=${freshClientState()}`,
    Deno.execPath(),
    ...DENO_RUN,
    `${ROOT}${file}`,
    ...args,
  ];
}

/** Reads a child's stdout line by line. */
export function lines(child: Deno.ChildProcess): { next(ms?: number): Promise<string> } {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    async next(ms = 5000) {
      const deadline = Date.now() + ms;
      while (!buffer.includes("\n")) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error("no line in time");
        let timer: ReturnType<typeof setTimeout> | undefined;
        const chunk = await Promise.race([
          reader.read(),
          new Promise<{ done: true; value: undefined }>((r) =>
            timer = setTimeout(() => r({ done: true, value: undefined }), left)
          ),
        ]);
        clearTimeout(timer);
        if (chunk.done) {
          if (Date.now() >= deadline) throw new Error("no line in time");
          throw new Error("stream ended");
        }
        buffer += chunk.value;
      }
      const at = buffer.indexOf("\n");
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      return line;
    },
  };
}

/** Whether namespace tests can run here: root with ip and nft. In CI they must run. */
export async function canRunLab(tool = "/usr/sbin/nft"): Promise<boolean> {
  if (Deno.uid() !== 0) return false;
  try {
    await Deno.stat(tool);
    await Deno.stat("/usr/sbin/ip").catch(() => Deno.stat("/usr/bin/ip"));
    return true;
  } catch {
    return false;
  }
}
