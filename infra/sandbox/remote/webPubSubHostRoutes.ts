import { z } from 'zod';
import { DomainError } from '../../../domain/errors';
import type { UpstreamAnswer, UpstreamRequest, WebPubSubHostAuthority, WebPubSubHostChannel } from './webPubSubHostChannel';

/** The agent-facing routes of the Functions app when the channel ends in Web PubSub (the local channel server serves the same paths). */
export const HOST_ROUTES = {
  enrol: '/api/hosts/enrol',
  rotate: '/api/hosts/rotate',
  negotiate: '/api/hosts/negotiate',
  /** A managed-pool machine's enrolment by its managed identity (bearer = its Entra ID token). */
  enrolManaged: '/api/hosts/enrol-managed',
  /** Web PubSub's upstream event handler URL. */
  events: '/api/hosts/events',
} as const;

const enrolBody = z.strictObject({ token: z.string().min(1).max(512) });

export interface HostRouteRequest extends UpstreamRequest {
  readonly path: string;
}

/**
 * Serves one agent-facing request: enrolment (one-time token → host credential), rotation and negotiation (host
 * credential as a bearer token), and Web PubSub's upstream events. Refusals are problem+json with a stable code;
 * no answer carries a credential except the one the caller is owed.
 */
export async function serveHostRoute(channel: WebPubSubHostChannel, authority: WebPubSubHostAuthority, request: HostRouteRequest): Promise<UpstreamAnswer> {
  const json = (status: number, body: unknown): UpstreamAnswer => ({
    status, headers: { 'content-type': status < 300 ? 'application/json' : 'application/problem+json' }, body: JSON.stringify(body),
  });
  const refused = (error: unknown, fallback: string, title: string): UpstreamAnswer => {
    const code = error instanceof DomainError ? error.code : fallback;
    return json(403, { status: 403, code, title });
  };
  const bearer = (): string => {
    const header = request.header('authorization') ?? '';
    if (!header.startsWith('Bearer ')) throw new DomainError('HOST.CREDENTIAL_INVALID', 'no host credential', 'forbidden');
    return header.slice('Bearer '.length);
  };
  if (request.path === HOST_ROUTES.events) return channel.handleUpstream(request);
  if (request.method !== 'POST') return json(405, { status: 405, code: 'HTTP.METHOD_NOT_ALLOWED', title: 'Method not allowed' });
  switch (request.path) {
    case HOST_ROUTES.negotiate:
      try {
        return json(200, await channel.negotiate(bearer()));
      } catch (error) {
        return refused(error, 'HOST.CREDENTIAL_INVALID', 'Negotiation refused');
      }
    case HOST_ROUTES.enrolManaged:
      try {
        const header = request.header('authorization') ?? '';
        if (!authority.enrolManaged || !header.startsWith('Bearer ')) throw new DomainError('HOST.IDENTITY_REFUSED', 'no managed-pool identity was proved', 'forbidden');
        return json(200, await authority.enrolManaged(header.slice('Bearer '.length)));
      } catch (error) {
        return refused(error, 'HOST.IDENTITY_REFUSED', 'Managed-pool enrolment refused');
      }
    case HOST_ROUTES.rotate:
      try {
        return json(200, { credential: await authority.rotate(bearer()) });
      } catch (error) {
        return refused(error, 'HOST.CREDENTIAL_INVALID', 'Rotation refused');
      }
    case HOST_ROUTES.enrol: {
      if (request.body.length > 4096) return json(413, { status: 413, code: 'HTTP.TOO_LARGE', title: 'Too large' });
      let parsed: z.infer<typeof enrolBody>;
      try {
        parsed = enrolBody.parse(JSON.parse(request.body));
      } catch {
        return json(400, { status: 400, code: 'HTTP.BAD_REQUEST', title: 'token required' });
      }
      try {
        return json(200, await authority.enrol(parsed.token));
      } catch (error) {
        return refused(error, 'HOST.ENROLMENT_INVALID', 'Enrolment refused');
      }
    }
    default:
      return json(404, { status: 404, code: 'HOST.NOT_FOUND', title: 'Not found' });
  }
}
