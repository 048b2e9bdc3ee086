import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { RunSpec } from '../../domain/runSpec';
import type { RunRequestMessage } from '../../domain/services/runPorts';

/** "uuid-ish": a UUID, or any 8-128 character token a sender already uses as its idempotency key. */
const requestIdSchema = z.string().regex(/^[A-Za-z0-9._:-]{8,128}$/, 'must be 8-128 characters of letters, digits and . _ : -');
const userIdSchema = z.string().regex(/^[A-Za-z0-9._@:-]{1,256}$/, 'must be a user id (letters, digits and . _ @ : -)');

/**
 * The ONE payload schema of a queued run request, for the Service Bus and the storage-queue trigger alike.
 * The spec and workspace id parts are the HTTP route's own schemas, passed in (functions/ owns them), so a
 * queued spec is validated exactly like `POST .../runs`.
 */
export function runRequestMessageSchema(parts: { spec: z.ZodType<RunSpec>; workspaceId: z.ZodType<string> }) {
  return z.strictObject({ workspaceId: parts.workspaceId, requestedBy: userIdSchema, requestId: requestIdSchema, spec: parts.spec });
}

export type RunRequestSchema = z.ZodType<RunRequestMessage>;

/** What the triggers hand over: parsed JSON (storage queue, Service Bus JSON body), text, or bytes. */
export function messageText(raw: unknown): { text: string; json: unknown } | { text: string; error: string } {
  if (typeof raw === 'string') {
    try {
      return { text: raw, json: JSON.parse(raw) as unknown };
    } catch {
      return { text: raw, error: 'the message is not JSON' };
    }
  }
  if (raw instanceof Uint8Array) return messageText(Buffer.from(raw).toString('utf8'));
  if (raw === null || raw === undefined) return { text: '', error: 'the message is empty' };
  return { text: JSON.stringify(raw), json: raw };
}

/** Identifies a message in a poison entry without copying it (it may carry a value the guard would refuse). */
export function fingerprint(text: string): { bytes: number; sha256: string } {
  return { bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') };
}

/** Zod issues as path + message only: zod's messages name expectations, never the received input. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.slice(0, 20).map((issue) => `${issue.path.join('.') || '(message)'}: ${issue.message}`);
}
