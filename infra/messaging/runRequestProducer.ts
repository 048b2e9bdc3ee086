import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { QueueClient } from '@azure/storage-queue';
import { type JSONWebKeySet, type JWK } from 'jose';
import { z } from 'zod';
import { loadOrCreateLocalEd25519Key } from '../identity/devIssuer';
import { findProjectRoot } from '../system/projectRoot';
import { type ProducerKey, signRunRequest } from './runRequestToken';

/**
 * The local run-request producer: an Ed25519 key under `.azurite/run-producer/` (0600), made on first use,
 * which a development host trusts beside the producers named in `RUN_PRODUCER_KEYS`. A production host trusts
 * only `RUN_PRODUCER_KEYS`. `npm run enqueue-run` signs and sends with it.
 */
export function localRunProducerKeyDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return path.resolve(env.RUN_PRODUCER_KEY_DIR ?? path.join(findProjectRoot(), '.azurite', 'run-producer'));
}

export async function loadLocalRunProducer(keyDir: string = localRunProducerKeyDir()): Promise<{ producer: ProducerKey; publicJwk: JWK }> {
  const key = await loadOrCreateLocalEd25519Key(keyDir);
  return { producer: { privateKey: key.privateKey, kid: key.kid }, publicJwk: key.publicJwk };
}

const producerJwk = z.looseObject({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string().regex(/^[A-Za-z0-9_-]{43}$/), kid: z.string().min(1).max(200) });
/** `RUN_PRODUCER_KEYS`: a JWKS of the producers' public Ed25519 keys, each with a `kid`. */
export const producerKeysSchema = z.object({ keys: z.array(producerJwk).min(1).max(50) });

/**
 * The producers this host trusts: `RUN_PRODUCER_KEYS` (validated at start), plus, outside production, the local
 * producer's key. Public keys only, built field by field so nothing else in the setting reaches jose.
 */
export async function trustedRunProducers(options: { configured?: string; production: boolean; localKeyDir?: string }): Promise<JSONWebKeySet> {
  const keys: JWK[] = [];
  if (options.configured)
    for (const k of producerKeysSchema.parse(JSON.parse(options.configured)).keys) keys.push({ kty: 'OKP', crv: 'Ed25519', x: k.x, kid: k.kid, alg: 'EdDSA', use: 'sig' });
  if (!options.production) keys.push((await loadLocalRunProducer(options.localKeyDir)).publicJwk);
  return { keys };
}

/** The message body a producer sends: the envelope, the spec and the producer's token over both. */
export async function signedRunRequestBody(
  producer: ProducerKey,
  request: { workspaceId: string; requestedBy: string; spec: unknown; requestId?: string; ttlSeconds?: number; now?: Date },
): Promise<{ workspaceId: string; requestedBy: string; requestId: string; spec: unknown; token: string }> {
  const requestId = request.requestId ?? randomUUID();
  const token = await signRunRequest(producer, { ...request, requestId });
  return { workspaceId: request.workspaceId, requestedBy: request.requestedBy, requestId, spec: request.spec, token };
}

/** Sends a body to the `runs` storage queue the way the host reads it (base64 of the JSON). */
export async function enqueueRunRequest(queue: QueueClient, body: unknown): Promise<void> {
  await queue.createIfNotExists();
  await queue.sendMessage(Buffer.from(JSON.stringify(body), 'utf8').toString('base64'));
}
