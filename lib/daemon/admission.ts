/**
 * The fleet's word on a batch of open requests, before the opener's store sees it: each
 * request's code (or SPA packet, or shared grant) is claimed in etcd; those refused are
 * reported and go no further; those of shared doors carry the grant's `until`.
 * @module
 */
import type { OpenerOptions, OpenRequest } from "./open_request.ts";

/** The requests the fleet lets open; the others are reported and dropped. */
export async function admitted(
  batch: readonly OpenRequest[],
  fleet: NonNullable<OpenerOptions["fleet"]>,
  report: OpenerOptions["report"],
): Promise<OpenRequest[]> {
  const verdicts = await Promise.all(batch.map((r) => fleet.claim(r)));
  return batch.flatMap((request, i) => {
    const verdict = verdicts[i];
    if (verdict.ok) {
      return [verdict.until === undefined ? request : { ...request, until: verdict.until }];
    }
    report({
      kind: "fleet-refused",
      door: request.door.name,
      source: request.source,
      ...(request.user === undefined ? {} : { user: request.user }),
      reason: verdict.reason,
      detail: verdict.detail,
    });
    return [];
  });
}
