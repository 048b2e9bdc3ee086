import { describe, expect, it } from 'vitest';
import { containerUid, hostGid, hostUid, NOT_REMAPPED, parseIdMap, parseUsernsBase } from '../../../../infra/sandbox/docker/userNamespaceIds';

describe('container ids as host ids', () => {
  it('is the identity without remapping, so the normal path chowns to the same numbers', () => {
    for (const id of [0, 60000, 60001, 60002, 60100, 60999]) {
      expect(hostUid(NOT_REMAPPED, id)).toBe(id);
      expect(hostGid(NOT_REMAPPED, id)).toBe(id);
      expect(containerUid(NOT_REMAPPED, id)).toBe(id);
    }
  });

  it("follows the kernel's map, range by range, and refuses an id the map does not cover", () => {
    const ids = { uidRanges: parseIdMap('         0 2100000000      60000\n     60000  300000000       5536\n'), gidRanges: parseIdMap('0 2200000000 65536') };
    expect(hostUid(ids, 0)).toBe(2_100_000_000);
    expect(hostUid(ids, 59_999)).toBe(2_100_059_999);
    expect(hostUid(ids, 60_001)).toBe(300_000_001);
    expect(hostGid(ids, 60_000)).toBe(2_200_060_000);
    expect(() => hostUid(ids, 65_536)).toThrow(/container uid 65536 has no host uid/);
    expect(containerUid(ids, 300_000_100)).toBe(60_100);
    // A host uid outside the container's ranges is none of its uids (never mistaken for a credential uid).
    expect(containerUid(ids, 60_100)).toBeUndefined();
  });

  it('reads SANDBOX_USERNS_BASE as <uid> or <uid>:<gid>, and nothing else', () => {
    expect(parseUsernsBase(undefined)).toBeUndefined();
    expect(parseUsernsBase('100000')).toEqual({ uid: 100000, gid: 100000 });
    expect(parseUsernsBase('100000:200000')).toEqual({ uid: 100000, gid: 200000 });
    expect(() => parseUsernsBase('-1')).toThrow(/SANDBOX_USERNS_BASE/);
  });
});
