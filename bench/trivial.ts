/**
 * The ceiling: a trivial listener on the sequence's ports that records, per source, the
 * time its last knock arrived in order. Prints "ready", then on stdin EOF one JSON map
 * { source: ms } of completed sequences.
 */
// One or more sequences; each source knocks one of them.
const sequences: [number, "tcp" | "udp"][][] = JSON.parse(Deno.args[0]);
const progress = new Map<string, number>();
const complete: Record<string, number> = {};
const nowMs = () => performance.timeOrigin + performance.now();
function knock(source: string, i: number, length: number) {
  const at = progress.get(source) ?? 0;
  if (at !== i) {
    progress.delete(source);
    return;
  }
  if (i === length - 1) {
    complete[source] = nowMs();
    progress.delete(source);
  } else progress.set(source, i + 1);
}
const closers: (() => void)[] = [];
for (const ports of sequences) {
  for (const [i, [port, protocol]] of ports.entries()) {
    if (protocol === "tcp") {
      const l = Deno.listen({ hostname: "127.0.0.1", port });
      closers.push(() => l.close());
      (async () => {
        for (;;) {
          try {
            const c = await l.accept();
            const src = c.remoteAddr.hostname;
            c.close();
            knock(src, i, ports.length);
          } catch {
            return;
          }
        }
      })();
    } else {
      const u = Deno.listenDatagram({ hostname: "127.0.0.1", port, transport: "udp" });
      closers.push(() => u.close());
      (async () => {
        const buf = new Uint8Array(64);
        for (;;) {
          try {
            const [, a] = await u.receive(buf);
            knock((a as Deno.NetAddr).hostname, i, ports.length);
          } catch {
            return;
          }
        }
      })();
    }
  }
}
console.log("ready");
for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
closers.forEach((c) => c());
console.log(JSON.stringify(complete));
