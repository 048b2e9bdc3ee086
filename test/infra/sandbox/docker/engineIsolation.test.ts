import { describe, expect, it } from 'vitest';
import { describeIsolation, engineIsolation, isolationFromSecurityOptions } from '../../../../infra/sandbox/docker/engineIsolation';
import { describeWithDocker, dockerForTests } from '../../../support/dockerEngine';

/** What the engine adds to a container's isolation, read from `docker info` (never assumed). */
describe('engine isolation from docker info', () => {
  it('reads user-namespace remapping, rootless and seccomp from the security options', () => {
    expect(isolationFromSecurityOptions(['name=seccomp,profile=default'])).toEqual({ userNamespaceRemap: false, rootless: false, seccomp: true, keptVolumeQuota: false });
    expect(isolationFromSecurityOptions(['name=apparmor', 'name=seccomp,profile=default', 'name=userns'])).toMatchObject({ userNamespaceRemap: true, seccomp: true });
    expect(isolationFromSecurityOptions(['name=seccomp,profile=default', 'name=rootless', 'name=cgroupns'])).toMatchObject({ userNamespaceRemap: false, rootless: true });
    // Not fooled by a profile whose name mentions userns.
    expect(isolationFromSecurityOptions(['name=seccomp,profile=/etc/userns.json'])).toMatchObject({ userNamespaceRemap: false });
    expect(isolationFromSecurityOptions([])).toMatchObject({ seccomp: false });
  });

  it('says it in one line, loudly when there is no remapping', () => {
    expect(describeIsolation(isolationFromSecurityOptions(['name=seccomp,profile=default']))).toMatch(/^no user-namespace remapping \(container uids are host uids/);
    expect(describeIsolation(isolationFromSecurityOptions(['name=seccomp,profile=default', 'name=userns']))).toBe('user namespaces remapped, seccomp');
  });
});

describeWithDocker('engine isolation of the engine under test', dockerForTests(), ({ docker }) => {
  it('reports what this engine has, as docker info lists it', async () => {
    const info = (await docker.info()) as { SecurityOptions?: string[] };
    const options = info.SecurityOptions ?? [];
    const isolation = await engineIsolation(docker);
    expect(isolation.userNamespaceRemap).toBe(options.some((o) => o.split(',').includes('name=userns')));
    expect(isolation.seccomp).toBe(true);
  });
});
