import { describe, expect, it } from 'vitest';
import { PHASES } from '../../domain/run';
import { SECRET_POLICY, channelFor, mayLease, policyFor } from '../../domain/secretPolicy';

describe('secret policy table', () => {
  it('covers every phase and the sidecar, and answers "no" to a standing managed key everywhere', () => {
    expect(Object.keys(SECRET_POLICY).sort()).toEqual([...PHASES, 'sidecar'].sort());
    for (const policy of Object.values(SECRET_POLICY)) expect(policy.managedKeyAsStandingEnv).toBe(false);
  });

  it('allows no credential at seed and teardown', () => {
    expect(policyFor('seed').leaseHolders).toEqual([]);
    expect(policyFor('teardown').leaseHolders).toEqual([]);
    expect(mayLease('seed', 'install-command')).toBe(false);
    expect(mayLease('teardown', 'operation')).toBe(false);
  });

  it('gives each context only its own lease holders', () => {
    expect(mayLease('install', 'install-command')).toBe(true);
    expect(mayLease('install', 'agent-runtime')).toBe(false);
    expect(mayLease('mcp', 'mcp-server')).toBe(true);
    expect(mayLease('mcp', 'agent-runtime')).toBe(false);
    expect(mayLease('turn', 'agent-runtime')).toBe(true);
    expect(mayLease('turn', 'operation')).toBe(true);
    expect(mayLease('turn', 'mcp-server')).toBe(false);
  });

  it('keeps platform secrets in the sidecar, and workspace leases out of it', () => {
    expect(policyFor('sidecar').platformSecrets).toBe(true);
    expect(policyFor('sidecar').leaseHolders).toEqual([]);
    for (const phase of PHASES) expect(policyFor(phase).platformSecrets).toBe(false);
  });
});

describe('channelFor', () => {
  it('maps each use to its narrowest channel', () => {
    expect(channelFor('git')).toBe('git-credential-helper');
    expect(channelFor('npm')).toBe('package-manager-config');
    expect(channelFor('file')).toBe('temp-file');
    expect(channelFor('stdin')).toBe('stdin');
    expect(channelFor('env')).toBe('process-env');
  });

  it('refuses anything else, including near misses and prototype keys', () => {
    for (const use of ['', 'ENV', 'Env', 'standing-env', 'argv', 'url', 'header', 'toString', '__proto__', 'constructor', 'hasOwnProperty'])
      expect(channelFor(use)).toBe('refused');
  });
});
