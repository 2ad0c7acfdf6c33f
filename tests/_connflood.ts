/**
 * A bounded TCP connection flood for hardening tests: `count` connections to `port`, up
 * to `parallel` at once, from loopback sources 127.S.x.y, each dropped with a reset
 * (like nmap -sT). Loopback only; ends by count and by time. Prints how many it made.
 */
import net from "node:net";
const [host, port, countText, parallelText, secondsText, subnet] = Deno.args;
if (!host.startsWith("127.")) throw new Error("loopback only");
const count = Math.min(Number(countText), 60_000);
const deadline = Date.now() + Number(secondsText) * 1000;
let made = 0, started = 0;
const one = (i: number) =>
  new Promise<void>((resolve) => {
    const s = net.connect({
      host,
      port: Number(port),
      localAddress: `127.${subnet}.${(i >> 8) & 255}.${i & 255}`,
    });
    const done = () => {
      clearTimeout(timer);
      s.resetAndDestroy?.() ?? s.destroy();
      resolve();
    };
    const timer = setTimeout(done, 1000);
    s.once("connect", () => {
      made++;
      done();
    });
    s.once("error", done);
  });
const workers = Array.from({ length: Number(parallelText) }, async () => {
  while (started < count && Date.now() < deadline) await one(started++);
});
await Promise.all(workers);
console.log(made);
