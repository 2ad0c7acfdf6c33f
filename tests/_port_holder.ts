/** Holds TCP listeners on the given ports (another program using them); prints "ready". */
const listeners = Deno.args.map((port) => Deno.listen({ hostname: "::", port: Number(port) }));
console.log("ready");
// Until killed: an accept keeps the process alive (a bare pending promise would not).
await Promise.all(listeners.map((l) => l.accept().catch(() => {})));
