import type { CredentialRequest } from '../credentialDelivery';
import { ChannelRequestError } from './preparer';

/** Where a git or npm credential may be sent: one scheme and one host (with port). */
export interface CredentialHost {
  readonly protocol: 'https' | 'http';
  /** Host with port when one is given, as git reports it in the credential protocol and npm keys its config. */
  readonly host: string;
  /** `protocol://host`, without a trailing slash. */
  readonly origin: string;
}

const LOOPBACK = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/;

/**
 * Parses `request.host`: a bare host (`github.com`, `npm.example:4873`) means https; a full origin
 * (`http://127.0.0.1:4873`) may name http, but only for loopback, so a token never crosses a network in clear.
 */
export function credentialHostOf(request: CredentialRequest): CredentialHost {
  const raw = request.host;
  if (raw === undefined || raw === '') throw new ChannelRequestError(request.secretName, 'the request names no host');
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `https://${raw}`);
  } catch {
    throw new ChannelRequestError(request.secretName, `"${raw}" is not a host`);
  }
  const protocol = url.protocol === 'https:' ? 'https' : url.protocol === 'http:' ? 'http' : undefined;
  if (protocol === undefined) throw new ChannelRequestError(request.secretName, `scheme ${url.protocol} is not supported`);
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '')
    throw new ChannelRequestError(request.secretName, 'the host must be a bare host or origin, without user, path or query');
  if (protocol === 'http' && !LOOPBACK.test(url.host))
    throw new ChannelRequestError(request.secretName, 'plain http is allowed only for loopback hosts');
  return { protocol, host: url.host, origin: `${protocol}://${url.host}` };
}
