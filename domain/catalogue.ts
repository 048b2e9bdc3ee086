/**
 * The one catalogue of the domain's stable error codes (what clients and tests match on; the HTTP edge maps a
 * `DomainError`'s kind, never its code, to a status) and of constants more than one part shares.
 * test/architecture/errorCatalogue.test.ts keeps code literals out of every other domain file.
 */

export const WORKSPACE_ERROR = {
  ALREADY_EXISTS: 'WORKSPACE.ALREADY_EXISTS',
  DELETED: 'WORKSPACE.DELETED',
  LAST_OWNER: 'WORKSPACE.LAST_OWNER',
  NOT_DELETED: 'WORKSPACE.NOT_DELETED',
  NOT_DELETING: 'WORKSPACE.NOT_DELETING',
  NOT_FOUND: 'WORKSPACE.NOT_FOUND',
  OWNER_REQUIRED: 'WORKSPACE.OWNER_REQUIRED',
  RETENTION_ENDED: 'WORKSPACE.RETENTION_ENDED',
  RETENTION_OUT_OF_RANGE: 'WORKSPACE.RETENTION_OUT_OF_RANGE',
} as const;

export const MEMBER_ERROR = {
  NOT_FOUND: 'MEMBER.NOT_FOUND',
} as const;

export const SECRET_ERROR = {
  INVALID_NAME: 'SECRET.INVALID_NAME',
  INVALID_USES: 'SECRET.INVALID_USES',
  NOT_FOUND: 'SECRET.NOT_FOUND',
  USE_EXCLUDES_CALLER: 'SECRET.USE_EXCLUDES_CALLER',
  USE_NOT_ALLOWED: 'SECRET.USE_NOT_ALLOWED',
  VALUE_TOO_LARGE: 'SECRET.VALUE_TOO_LARGE',
  /** A resolved value whose version the secret's log revoked (a stale cache, an edited row): never handed out. */
  VERSION_REVOKED: 'SECRET.VERSION_REVOKED',
  /** The one code for a value below MIN_SECRET_BYTES, whoever refuses it (the vault, the redactor). */
  VALUE_TOO_SHORT: 'SECRET.VALUE_TOO_SHORT',
} as const;

export const VAULT_ERROR = {
  DELETED: 'VAULT.DELETED',
  /** A stored value failed its integrity check (tampered, or moved to another row, name, workspace or version). */
  INTEGRITY: 'VAULT.INTEGRITY',
  INVALID_RETENTION: 'VAULT.INVALID_RETENTION',
  INVALID_VERSION: 'VAULT.INVALID_VERSION',
  /** Every configured vaults resource group holds its limit of vaults: a new workspace vault has nowhere to go. */
  NO_CAPACITY: 'VAULT.NO_CAPACITY',
  /** Azure refused each fresh random vault name as taken (global names), the bounded number of times. */
  NAME_UNAVAILABLE: 'VAULT.NAME_UNAVAILABLE',
  NOT_DELETED: 'VAULT.NOT_DELETED',
  PURGE_PROTECTED: 'VAULT.PURGE_PROTECTED',
  RETENTION_ENDED: 'VAULT.RETENTION_ENDED',
  SECRET_NOT_FOUND: 'VAULT.SECRET_NOT_FOUND',
  /** A write carried a lower version than the one stored (an older write arriving late); it was not applied. */
  STALE_VERSION: 'VAULT.STALE_VERSION',
  UNAVAILABLE: 'VAULT.UNAVAILABLE',
} as const;

export const RUN_ERROR = {
  ALREADY_EXISTS: 'RUN.ALREADY_EXISTS',
  ALREADY_FINISHED: 'RUN.ALREADY_FINISHED',
  ALREADY_TORN_DOWN: 'RUN.ALREADY_TORN_DOWN',
  CANCELLED: 'RUN.CANCELLED',
  KEPT_WORKSPACE_UNSUPPORTED: 'RUN.KEPT_WORKSPACE_UNSUPPORTED',
  LAUNCH_REFUSED: 'RUN.LAUNCH_REFUSED',
  NOT_FOUND: 'RUN.NOT_FOUND',
  PHASE_IN_PROGRESS: 'RUN.PHASE_IN_PROGRESS',
  PHASE_NOT_RUNNING: 'RUN.PHASE_NOT_RUNNING',
  PHASE_OUT_OF_ORDER: 'RUN.PHASE_OUT_OF_ORDER',
  SECRET_NOT_FOUND: 'RUN.SECRET_NOT_FOUND',
  SPEC_TAMPERED: 'RUN.SPEC_TAMPERED',
  TEARDOWN_ONLY: 'RUN.TEARDOWN_ONLY',
  TEARDOWN_REQUIRED: 'RUN.TEARDOWN_REQUIRED',
} as const;

export const RUN_REQUEST_ERROR = {
  ID_REUSED: 'RUN_REQUEST.ID_REUSED',
  /** The request id was used already (a replayed message, a duplicate, a redelivery after the run started). */
  REPLAYED: 'RUN_REQUEST.REPLAYED',
} as const;

export const IDENTITY_ERROR = {
  BEYOND_DEADLINE: 'IDENTITY.BEYOND_DEADLINE',
  ISSUER_UNAVAILABLE: 'IDENTITY.ISSUER_UNAVAILABLE',
  NOT_FOUND: 'IDENTITY.NOT_FOUND',
  USE_EXCLUDES_CALLER: 'IDENTITY.USE_EXCLUDES_CALLER',
} as const;

export const LEASE_ERROR = {
  BEYOND_DEADLINE: 'LEASE.BEYOND_DEADLINE',
  HOLDER_NOT_ALLOWED: 'LEASE.HOLDER_NOT_ALLOWED',
  NO_CHANNEL: 'LEASE.NO_CHANNEL',
  REFUSED: 'LEASE.REFUSED',
  SECRET_NOT_FOUND: 'LEASE.SECRET_NOT_FOUND',
} as const;

export const GATEWAY_ERROR = {
  HOST_NOT_ALLOWED: 'GATEWAY.HOST_NOT_ALLOWED',
  INVALID_OPERATION: 'GATEWAY.INVALID_OPERATION',
  MISSING_BEARER: 'GATEWAY.MISSING_BEARER',
  OPERATION_FAILED: 'GATEWAY.OPERATION_FAILED',
  SANDBOX_GONE: 'GATEWAY.SANDBOX_GONE',
  /** The secret was revoked while the operation ran: it was stopped and its output withheld. */
  SECRET_REVOKED: 'GATEWAY.SECRET_REVOKED',
  SECRET_NOT_FOUND: 'GATEWAY.SECRET_NOT_FOUND',
} as const;

/** What every sandbox host raises for a sandbox that is torn down or unknown to it. */
export const SANDBOX_ERROR = {
  GONE: 'SANDBOX.GONE',
} as const;

export const EGRESS_ERROR = {
  INVALID_HOST: 'EGRESS.INVALID_HOST',
  NOT_IN_WORKSPACE_LIST: 'EGRESS.NOT_IN_WORKSPACE_LIST',
  TOO_MANY_HOSTS: 'EGRESS.TOO_MANY_HOSTS',
} as const;

export const SIGNING_ERROR = {
  KEYS_UNAVAILABLE: 'SIGNING.KEYS_UNAVAILABLE',
  TOKEN_INVALID: 'SIGNING.TOKEN_INVALID',
} as const;

export const REDACTION_ERROR = {
  INVALID_MIN_LENGTH: 'REDACTION.INVALID_MIN_LENGTH',
} as const;

export const STORE_ERROR = {
  CONCURRENCY_EXHAUSTED: 'STORE.CONCURRENCY_EXHAUSTED',
  TRANSACTION_TOO_LARGE: 'STORE.TRANSACTION_TOO_LARGE',
  VERSION_CONFLICT: 'STORE.VERSION_CONFLICT',
} as const;

export const INTERNAL_ERROR = {
  UNEXPECTED: 'INTERNAL.UNEXPECTED',
} as const;

/** Previous values stay masked this long after they were overwritten or deleted (DESIGN.md §1.6). */
export const ROTATION_WINDOW_MS = 24 * 60 * 60 * 1000;

/** How long a deleted workspace (and its vault) can be recovered before it is purged, in whole days. */
export const MIN_RETENTION_DAYS = 7;
export const MAX_RETENTION_DAYS = 90;
export const DEFAULT_RETENTION_DAYS = 90;

/** Sandbox hosts a workspace enrols (docs/sandbox-hosts.md): enrolment, credentials, revocation, placement. */
export const HOST_ERROR = {
  ALREADY_ENROLLED: 'HOST.ALREADY_ENROLLED',
  ENROLMENT_EXPIRED: 'HOST.ENROLMENT_EXPIRED',
  ENROLMENT_INVALID: 'HOST.ENROLMENT_INVALID',
  CREDENTIAL_INVALID: 'HOST.CREDENTIAL_INVALID',
  INVALID_NAME: 'HOST.INVALID_NAME',
  NOT_FOUND: 'HOST.NOT_FOUND',
  NOT_ENROLLED: 'HOST.NOT_ENROLLED',
  REVOKED: 'HOST.REVOKED',
  NONE_LIVE: 'HOST.NONE_LIVE',
  /** An agent already runs as many sandboxes as it was started to hold (`--max-sandboxes`); it made none. */
  AT_CAPACITY: 'HOST.AT_CAPACITY',
  /** Every live host of the run's pool answered `AT_CAPACITY`. */
  NO_CAPACITY: 'HOST.NO_CAPACITY',
  /** An agent's answer too large for the shared session to keep whole (docs/sandbox-hosts.md, "Several instances"). */
  FRAME_TOO_LARGE: 'HOST.FRAME_TOO_LARGE',
  /** The agent refused a frame naming a run it does not hold for that sandbox or process (recorded as HostMessageRefused). */
  FOREIGN_RUN: 'HOST.FOREIGN_RUN',
} as const;
/** How long an enrolment token may wait for its agent. */
export const HOST_ENROLMENT_MINUTES = 15;

/** IDE SSH into a live run's sandbox over its host's channel (docs/sandbox-hosts.md#ide-ssh-over-the-host-channel). */
export const SSH_ERROR = {
  /** The run has no sandbox now (not seeded yet, torn down, finished). */
  RUN_NOT_LIVE: 'SSH.RUN_NOT_LIVE',
  /** The run's sandbox is not on a host agent this platform instance holds a channel to. */
  NOT_REMOTE: 'SSH.NOT_REMOTE',
  TICKET_INVALID: 'SSH.TICKET_INVALID',
  TICKET_USED: 'SSH.TICKET_USED',
  TICKET_EXPIRED: 'SSH.TICKET_EXPIRED',
  /** Only the member who requested a run enters its sandbox: a session sees what the run's own commands see. */
  NOT_REQUESTER: 'SSH.NOT_REQUESTER',
} as const;
/** How long a ticket may wait for its proxy to open the session (it is spent when it does). */
export const SSH_TICKET_SECONDS = 60;
