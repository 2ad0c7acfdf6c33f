/**
 * A door's close: the firewall lets the source go (or, before its time, revokes it), the
 * close command runs, and the record leaves the store. A close that fails is retried with
 * backoff (1 s, 2 s, 4 s … at most a minute apart) and its record stays.
 * @module
 */
import { openKey } from "../store/store.ts";
import type { Entry, OpenEntries } from "./open_entries.ts";
import { brief, describeFailure } from "./open_plan.ts";
import type { OpenerOptions } from "./open_request.ts";

const RETRY_MS = 1000, MAX_RETRY_MS = 60_000;

/** What a close works with: the opener's parts. */
export interface CloseContext {
  readonly options: OpenerOptions;
  readonly entries: OpenEntries;
  readonly now: () => number;
  /** Schedules `entry`'s next close (a retry) in `wait` ms. */
  readonly schedule: (entry: Entry, wait: number) => void;
}

/**
 * Runs `entry`'s close; resolves true when it closed (the opener keeps one at a time).
 * `retry`: a failure is tried again later.
 */
export async function closeDoor(
  ctx: CloseContext,
  entry: Entry,
  retry: boolean,
): Promise<boolean> {
  const { firewalls, runner, store, counters, report } = ctx.options;
  const { record, version } = entry;
  const key = openKey(record);
  const revoked = entry.revoked === true;
  let error: string | undefined;
  if (record.firewall) {
    const firewall = firewalls[record.firewall.kind];
    // At its time an nft element is already gone (the kernel's timeout): close() is a no-op
    // there; iptables deletes its rule. A revoke removes it now on every backend.
    await (revoked ? firewall.revoke(record) : firewall.close(record)).catch((e) =>
      error = (e as Error).message
    );
  }
  if (!error && record.close) {
    const result = await runner.run(record.close, {
      timeoutMs: entry.timeoutMs,
      essential: true,
    });
    if (result.code !== 0) error = describeFailure(result);
  }
  // Opened afresh meanwhile (its actions wait for this close): this grant is closed (or
  // said not to be), and the entry goes on with the new one.
  const reopened = ctx.entries.get(key) !== entry || entry.version !== version;
  if (error) {
    counters.closeFailures++;
    entry.failures++;
    report({
      kind: "close-failed",
      door: record.door,
      source: record.source,
      until: record.until,
      error,
    });
    if (retry && !reopened) {
      ctx.schedule(entry, Math.min(MAX_RETRY_MS, RETRY_MS * 2 ** (entry.failures - 1)));
    }
    return false; // the record stays in the store: the next start retries it
  }
  counters.closes++;
  counters.door(record.door).closes++;
  report({ ...brief(record), kind: "closed", ...(revoked ? { revoked: true as const } : {}) });
  if (reopened) return true;
  ctx.entries.drop(entry);
  // A close at its time may be lost with the machine (the next start closes it again);
  // a close before its time may not (the next start would put the door back).
  await store.commit({
    closed: [record],
    now: ctx.now(),
    sync: revoked ? "full" : "normal",
  }).catch(() => {
    // The door is closed; its record stays and the next start closes it again (harmless).
  });
  return true;
}

/**
 * Closes `entry`'s grant in its turn: after its open has ended, and after a close of an
 * older grant still running (a close of this grant is joined). Resolves true when this
 * grant was closed; `revoked`: before its time (retries revoke too).
 */
export async function closeInTurn(
  ctx: CloseContext,
  entry: Entry,
  retry = true,
  revoked = false,
): Promise<boolean> {
  ctx.entries.deadlines.cancel(entry);
  if (!ctx.entries.holds(entry)) return false; // closed already
  if (revoked) entry.revoked = true;
  const target = entry.version; // the grant this call closes
  for (;;) {
    // One close at a time. A close running for this grant is joined; one running for an
    // older grant (this one opened afresh meanwhile, and its time came) goes first.
    if (entry.closing) {
      const running = entry.closingVersion;
      const result = await entry.closing;
      if (running === target || !ctx.entries.holds(entry) || entry.version !== target) {
        return result;
      }
      continue;
    }
    // The grant's open ends first: a close that ran before it would leave the door open.
    const opening = entry.opened;
    if (opening === undefined) break;
    await opening;
    if (!ctx.entries.holds(entry) || entry.version !== target) return false;
    if (!entry.closing && entry.opened === opening) break;
  }
  const closing = closeDoor(ctx, entry, retry);
  entry.closing = closing;
  entry.closingVersion = target;
  try {
    return await closing;
  } finally {
    if (entry.closing === closing) entry.closing = entry.closingVersion = undefined;
  }
}
