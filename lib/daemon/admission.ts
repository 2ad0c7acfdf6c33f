/**
 * The fleet's word on a batch of open requests, before the opener's store sees it: each
 * request's code (or SPA packet, or shared grant) is claimed in etcd; those refused are
 * reported and go no further; those of shared doors carry the grant's `until`. Claims
 * start when a request is made, not when its batch's turn comes: while one batch commits
 * and acts, the next one's claims are already under way in etcd.
 * @module
 */
import type { Verdict } from "../cluster/claims.ts";
import type { OpenerOptions, OpenRequest } from "./open_request.ts";

/** Claims in the fleet started as requests arrive, awaited batch by batch. */
export class Admission {
  readonly #fleet: NonNullable<OpenerOptions["fleet"]>;
  readonly #report: OpenerOptions["report"];
  readonly #claims = new WeakMap<OpenRequest, Promise<Verdict>>();

  /** @param fleet claims in etcd. @param report where refusals are reported. */
  constructor(fleet: NonNullable<OpenerOptions["fleet"]>, report: OpenerOptions["report"]) {
    this.#fleet = fleet;
    this.#report = report;
  }

  /** Starts `request`'s claim now (a claim never rejects: it answers a verdict). */
  start(request: OpenRequest): void {
    this.#claims.set(request, this.#fleet.claim(request));
  }

  /** The requests of `batch` the fleet lets open (their claims started before, or now). */
  admit(batch: readonly OpenRequest[]): Promise<OpenRequest[]> {
    return admitted(batch, (r) => this.#claims.get(r) ?? this.#fleet.claim(r), this.#report);
  }
}

/** The requests the fleet lets open; the others are reported and dropped. */
export async function admitted(
  batch: readonly OpenRequest[],
  verdictOf: (request: OpenRequest) => Promise<Verdict>,
  report: OpenerOptions["report"],
): Promise<OpenRequest[]> {
  const verdicts = await Promise.all(batch.map(verdictOf));
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
