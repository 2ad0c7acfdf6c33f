/**
 * A bystander's probes for the repair tests: a TCP connect to ADDRESS:PORT every 10 ms,
 * each given 50 ms, for SECONDS (at most 120). Prints `{"probes": N, "through": M}`.
 * Only to an address inside the test's own namespaces (the caller runs it there).
 */
import net from "node:net";
const [address, port, secondsText] = Deno.args;
const end = Date.now() + Math.min(120, Number(secondsText)) * 1000;
let probes = 0, through = 0;
while (Date.now() < end) {
  probes++;
  through += await new Promise<number>((resolve) => {
    const s = net.connect({ host: address, port: Number(port) });
    const done = (ok: number) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(0), 50);
    s.once("connect", () => done(1));
    s.once("error", () => done(0));
  });
  await new Promise((r) => setTimeout(r, 10));
}
console.log(JSON.stringify({ probes, through }));
