import type { HttpRequest } from '@azure/functions';
import type { z } from 'zod';
import { HttpProblem } from './problem';

/** Describes zod issues by path and kind, never by the offending value. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 10)
    .map((issue) => {
      const where = issue.path.length ? issue.path.map(String).join('.') : 'body';
      if (issue.code === 'unrecognized_keys') return `${where}: unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

/** Reads a JSON body: content type checked (415), size bounded (413), parsed (400), validated (400). */
export async function readJsonBody<T>(request: HttpRequest, schema: z.ZodType<T>, maxBytes: number): Promise<T> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/(.+\+)?json\s*(;|$)/i.test(type))
    throw new HttpProblem(415, 'REQUEST.UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json');
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > maxBytes) throw new HttpProblem(413, 'REQUEST.TOO_LARGE', `The body is limited to ${maxBytes} bytes`);
  const raw = Buffer.from(await request.arrayBuffer());
  if (raw.byteLength > maxBytes) throw new HttpProblem(413, 'REQUEST.TOO_LARGE', `The body is limited to ${maxBytes} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch {
    throw new HttpProblem(400, 'REQUEST.MALFORMED_JSON', 'The body is not valid UTF-8 JSON');
  }
  const result = schema.safeParse(parsed);
  if (!result.success) throw new HttpProblem(400, 'REQUEST.INVALID', describeIssues(result.error.issues));
  return result.data;
}

export function parseParams<T>(schema: z.ZodType<T>, params: unknown): T {
  const result = schema.safeParse(params);
  if (!result.success) throw new HttpProblem(400, 'REQUEST.INVALID_PATH', describeIssues(result.error.issues));
  return result.data;
}
