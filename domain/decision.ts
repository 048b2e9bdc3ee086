/**
 * A policy decision: granted, with what was decided, or refused, with a stable code from the catalogue and a
 * reason naming what was refused (never a value). The lease decision (secretPolicy.ts) and the identity-token
 * decision (workloadIdentity.ts) are both one; `Refused` carries a decision's own extra fields.
 */
export type Decision<Granted extends object, Code extends string, Refused extends object = object> =
  | ({ readonly ok: true } & Granted)
  | ({ readonly ok: false; readonly code: Code; readonly reason: string } & Refused);

/** The codes a decision refuses with, as a table of the catalogue's: the union of its values. */
export type RefusalCode<Table extends Readonly<Record<string, string>>> = Table[keyof Table];

/** A decision's refusal, without its `ok`: what an error raised from it carries. */
export type RefusalOf<D extends Decision<object, string>> = Omit<Extract<D, { ok: false }>, 'ok'>;

/** A decision's grant. */
export type GrantOf<D extends Decision<object, string>> = Extract<D, { ok: true }>;
