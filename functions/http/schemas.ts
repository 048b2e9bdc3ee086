import { z } from 'zod';
import { MAX_EGRESS_HOSTS, isEgressHost } from '../../domain/egress';
import { MAX_SECRET_BYTES, SECRET_NAME_PATTERN } from '../../domain/secret';
import { SECRET_USE_KINDS, type SecretUses } from '../../domain/secretPolicy';
import { IDENTITY_AUDIENCE_PATTERN, IDENTITY_NAME_PATTERN, IDENTITY_SUBJECT_PATTERN } from '../../domain/workloadIdentity';

/** Ids we mint are UUIDs; user ids come from tokens (Entra `oid` is a UUID; dev tokens use simple names). */
export const workspaceIdSchema = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a workspace id');
export const userIdSchema = z.string().min(1).max(128).regex(/^[A-Za-z0-9._@-]+$/, 'must be a user id');
export const secretNameSchema = z.string().regex(SECRET_NAME_PATTERN, 'must match ^[A-Z_][A-Z0-9_]{0,126}$');

/** A host a secret may be sent to: a DNS name or IP literal, optional port; no scheme, path or wildcard. */
export const hostSchema = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)(:\d{1,5})?$/, 'must be a host name, optionally with :port');

export const createWorkspaceBody = z.strictObject({ name: z.string().trim().min(1).max(100) });
export const setMemberBody = z.strictObject({ role: z.enum(['owner', 'member']) });
const useKind = z.enum(SECRET_USE_KINDS);
const useAudience = z.union([z.enum(['members', 'owners']), z.array(userIdSchema).min(1).max(100)]);
/** `{ "model": "owners", "git": "members", "command": ["alice"] }`, or `["git", "http"]` for every member. */
export const secretUsesSchema = z.union([
  z.array(useKind).max(SECRET_USE_KINDS.length).transform((uses): SecretUses => Object.fromEntries(uses.map((u) => [u, 'members' as const]))),
  z.partialRecord(useKind, useAudience).transform((uses): SecretUses => uses as SecretUses),
]);

/** The value's size (8 bytes to 24 KiB) is checked by the domain, which answers 400 or 413 by name. */
export const setSecretBody = z.strictObject({
  value: z.string(),
  allowedHosts: z.array(hostSchema).max(32).optional(),
  uses: secretUsesSchema.optional(),
  /** The value being replaced is compromised: revoke every earlier version and end its live leases now. */
  revoke: z.boolean().optional(),
});

/** An egress allow-list entry: a host name, optionally `*.` before it and `:port` after it (domain/egress.ts). */
export const egressHostSchema = z.string().min(1).max(260).refine(isEgressHost, 'must be a host name, optionally *.name, optionally :port');
export const egressHostsSchema = z.array(egressHostSchema).max(MAX_EGRESS_HOSTS);
export const setEgressBody = z.strictObject({ allowedHosts: egressHostsSchema });
export const identityNameSchema = z.string().regex(IDENTITY_NAME_PATTERN, 'must match ^[a-z0-9][a-z0-9-]{0,62}$');
/** `{subject, audience, uses: {identity: "members" | "owners" | [userIds]}}`: who may use it is always said. */
export const defineIdentityBody = z.strictObject({
  subject: z.string().regex(IDENTITY_SUBJECT_PATTERN, 'must be 1-200 visible ASCII characters without spaces'),
  audience: z.string().regex(IDENTITY_AUDIENCE_PATTERN, 'must be 1-255 visible ASCII characters without spaces'),
  uses: z.strictObject({ identity: useAudience }),
});

export const auditQuery = z.strictObject({
  after: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
});

/** Bodies bigger than these are refused with 413 before parsing. */
export const BODY_LIMITS = { small: 4 * 1024, egress: 32 * 1024, secret: MAX_SECRET_BYTES * 6 + 4 * 1024 } as const;
