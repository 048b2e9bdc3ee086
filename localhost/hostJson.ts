import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { LocalHostConfigError } from './problems';
import { describeIssue } from './settings';

/** A .NET TimeSpan as host.json writes it: `[d.]hh:mm:ss[.fff]`. */
export function parseTimeSpan(value: string): number | undefined {
  const m = /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$/.exec(value.trim());
  if (!m) return undefined;
  const [, days, hours, minutes, seconds, fraction] = m;
  const ms = fraction ? Math.round(Number(`0.${fraction}`) * 1000) : 0;
  return ((Number(days ?? 0) * 24 + Number(hours)) * 60 + Number(minutes)) * 60_000 + Number(seconds) * 1000 + ms;
}

const timeSpan = z.string().refine((v) => parseTimeSpan(v) !== undefined, 'must be a TimeSpan like 00:00:30');

const hostJsonSchema = z.object({
  version: z.string().optional(),
  extensions: z.object({
    http: z.object({ routePrefix: z.string().optional() }).loose().optional(),
    queues: z.object({
      maxDequeueCount: z.number().int().min(1).optional(),
      visibilityTimeout: timeSpan.optional(),
      maxPollingInterval: timeSpan.optional(),
      batchSize: z.number().int().min(1).max(32).optional(),
      messageEncoding: z.enum(['base64', 'none']).optional(),
    }).loose().optional(),
  }).loose().optional(),
}).loose();

export interface QueueOptions {
  readonly maxDequeueCount: number;
  /** How long a failed message stays invisible before its next attempt. */
  readonly visibilityTimeoutMs: number;
  readonly maxPollingIntervalMs: number;
  readonly batchSize: number;
  readonly messageEncoding: 'base64' | 'none';
}

export interface HostJson {
  readonly routePrefix: string;
  readonly queues: QueueOptions;
}

export function readHostJson(appDir: string): HostJson {
  const file = path.join(appDir, 'host.json');
  let raw: unknown = {};
  if (existsSync(file)) {
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      throw new LocalHostConfigError(`host.json is not valid JSON.`);
    }
  }
  const parsed = hostJsonSchema.safeParse(raw);
  if (!parsed.success) throw new LocalHostConfigError(`host.json is malformed: ${describeIssue(parsed.error)}.`);
  const ext = parsed.data.extensions;
  const queues = ext?.queues;
  return {
    routePrefix: (ext?.http?.routePrefix ?? 'api').replace(/^\/+|\/+$/g, ''),
    queues: {
      maxDequeueCount: queues?.maxDequeueCount ?? 5,
      visibilityTimeoutMs: parseTimeSpan(queues?.visibilityTimeout ?? '00:00:00') ?? 0,
      // Azure's default is one minute; locally a developer waits for every idle poll, so it is shorter.
      maxPollingIntervalMs: parseTimeSpan(queues?.maxPollingInterval ?? '00:00:02') ?? 2000,
      batchSize: queues?.batchSize ?? 16,
      messageEncoding: queues?.messageEncoding ?? 'base64',
    },
  };
}
