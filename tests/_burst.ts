/**
 * A burst of knockers for the "knocks that arrive together" tests: every source of the
 * plan at once, each sending its knocks back to back (the next connect as soon as the
 * last one ended, no gap: what knockd's `knock` client does by default, -d 0). Loopback
 * only; bounded by the plan (at most 1 000 sources) and by 30 s. Prints
 * `{"sent": N, "failed": M}`.
 *
 * Usage: _burst.ts HOST PLAN.json   (PLAN: [{ "source": "127.1.0.1", "ports": [p1, p2, p3] }])
 */
import { knockPlan } from "./_tcp_knocks.ts";

const [host, planFile] = Deno.args;
if (!host.startsWith("127.")) throw new Error("loopback only");
const plan = JSON.parse(await Deno.readTextFile(planFile)) as { source: string; ports: number[] }[];
if (plan.length > 1000) throw new Error("at most 1 000 sources");
if (!plan.every((p) => p.source.startsWith("127."))) throw new Error("loopback sources only");
console.log(JSON.stringify(await knockPlan(plan.map((p) => ({ ...p, host })))));
