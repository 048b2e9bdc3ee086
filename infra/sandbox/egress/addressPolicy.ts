import { isIP } from 'node:net';

/**
 * Which destination addresses the egress proxy refuses, whatever name led to them: everything that is not
 * a public unicast address. The proxy resolves a name itself, refuses it if ANY answer is refused (so a
 * name cannot mix a public and a private answer and win a race), and connects to the address it checked.
 */

/** Azure's platform addresses: instance metadata (also link-local) and the wire server (a public range). */
export const METADATA_ADDRESSES = ['169.254.169.254', '168.63.129.16'] as const;

const IPV4_REFUSED: ReadonlyArray<readonly [string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'private'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'],
  ['198.51.100.0', 24, 'reserved'],
  ['203.0.113.0', 24, 'reserved'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function inRange(address: string, base: string, bits: number): boolean {
  const size = 2 ** (32 - bits);
  return Math.floor(ipv4ToInt(address) / size) === Math.floor(ipv4ToInt(base) / size);
}

/** The 8 groups of an IPv6 address as numbers (an embedded dotted quad becomes two groups). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase().split('%')[0] ?? '';
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad?.[1]) {
    const n = ipv4ToInt(quad[1]);
    text = text.slice(0, -quad[1].length) + `${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16));
}

/** Why an address is refused, or undefined for a public unicast address. */
export function refusedAddressClass(address: string): string | undefined {
  const family = isIP(address);
  if (family === 4) {
    if ((METADATA_ADDRESSES as readonly string[]).includes(address)) return 'metadata';
    if (address === '255.255.255.255') return 'broadcast';
    return IPV4_REFUSED.find(([base, bits]) => inRange(address, base, bits))?.[2];
  }
  if (family !== 6) return 'not an address';
  const g = ipv6Groups(address);
  const [a = 0, b = 0] = g;
  if (g.every((x) => x === 0)) return 'unspecified';
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return 'loopback';
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return 'ipv4-mapped';
  if (g.slice(0, 6).every((x) => x === 0)) return 'ipv4-compatible';
  if (a === 0x64 && b === 0xff9b) return 'nat64';
  if (a === 0x2002) return '6to4';
  if (a === 0x2001 && b === 0) return 'teredo';
  if (a === 0x2001 && b === 0xdb8) return 'reserved';
  if (a === 0x100 && g.slice(1, 4).every((x) => x === 0)) return 'reserved';
  if ((a & 0xffc0) === 0xfe80) return 'link-local';
  if ((a & 0xfe00) === 0xfc00) return 'private';
  if ((a & 0xff00) === 0xff00) return 'multicast';
  return undefined;
}

/**
 * A host written as a number in a form other than the canonical one (`2130706433`, `0x7f.1`, `0177.0.0.1`,
 * `127.1`): resolvers accept these, so they are refused outright rather than interpreted.
 */
export function isNumericTrick(host: string): boolean {
  if (isIP(host) === 4) return !host.split('.').every((part) => part === String(Number(part)));
  if (isIP(host) === 6) return false;
  return /^[0-9a-fx.]+$/i.test(host) && /^(0x[0-9a-f]*|\d+)(\.(0x[0-9a-f]*|\d+))*\.?$/i.test(host);
}
