/**
 * One etcd member on 127.0.0.1 for tests of the fleet's parts (Debian's etcd-server), its
 * data on tmpfs; killed and removed on dispose.
 */
export interface LocalEtcd extends AsyncDisposable {
  /** Its client URL. */
  readonly url: string;
  /** Its ports. */
  readonly ports: { readonly client: number; readonly peer: number };
  /** Kills it and starts it again on the same data and ports (every auth token is gone). */
  restart(): Promise<void>;
}

/** Whether etcd is installed (in CI it must be: .ci/run installs it). */
export const HAVE_ETCD = await Deno.stat("/usr/bin/etcd").then(() => true, () => false);

/**
 * Starts a member on free loopback ports (or on `ports`, e.g. a fresh etcd where another
 * one ran: a restore), with etcd's `args` added; resolves once it answers.
 */
export async function startEtcd(
  ports?: { client: number; peer: number },
  args: readonly string[] = [],
): Promise<LocalEtcd> {
  const data = await tmpfsDir("sesame-test-etcd-");
  const free = () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    return port;
  };
  const client = ports?.client ?? free(), peer = ports?.peer ?? free();
  const spawn = () =>
    new Deno.Command("etcd", {
      args: [
        "--name=t",
        `--data-dir=${data}`,
        `--listen-client-urls=http://127.0.0.1:${client}`,
        `--advertise-client-urls=http://127.0.0.1:${client}`,
        `--listen-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-cluster=t=http://127.0.0.1:${peer}`,
        "--log-level=error",
        ...args,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
  let child = spawn();
  const url = `http://127.0.0.1:${client}`;
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
  };
  const dispose = async () => {
    await kill();
    await removeTmpfsDir(data);
  };
  // Up once it answers (with auth on, a read without a user is refused with 400: up too).
  const answering = async () => {
    for (let i = 0;; i++) {
      const ok = await fetch(`${url}/v3/kv/range`, { method: "POST", body: '{"key":"AA=="}' })
        .then(async (r) => (await r.text(), r.ok || r.status === 400), () => false);
      if (ok) return;
      if (i > 150) {
        await dispose();
        throw new Error("etcd did not start");
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await answering();
  const restart = async () => {
    await kill();
    child = spawn();
    await answering();
  };
  return { url, ports: { client, peer }, restart, [Symbol.asyncDispose]: dispose };
}

/**
 * A directory on tmpfs (/dev/shm) for etcd's data, made and removed through `mktemp` and
 * `rm`: Deno asks for all access under /dev, the tests run with the project's permissions.
 */
export async function tmpfsDir(prefix: string): Promise<string> {
  const out = await new Deno.Command("mktemp", {
    args: ["-d", "-p", "/dev/shm", `${prefix}XXXXXX`],
  })
    .output();
  if (!out.success) throw new Error(`mktemp: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).trim();
}

/** Removes a directory {@link tmpfsDir} made. */
export async function removeTmpfsDir(dir: string): Promise<void> {
  if (dir.startsWith("/dev/shm/")) await new Deno.Command("rm", { args: ["-rf", dir] }).output();
}
