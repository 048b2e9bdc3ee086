import { describe, expect, it } from 'vitest';
import { PHASES } from '../../domain/run';
import {
  DEFAULT_SECRET_USES, LEASE_REFUSAL, type LeaseAsk, SECRET_POLICY, type SecretUses, allowedAudience, channelFor, decideLease, mayLease, policyFor, requiredUse,
} from '../../domain/secretPolicy';

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

describe('the lease decision (phase table, channel and the owner-set use, in one)', () => {
  const member = { userId: 'bob', role: 'member' as const };
  const owner = { userId: 'alice', role: 'owner' as const };
  const secret = (uses: SecretUses) => ({ exists: true, uses });
  const ask = (holder: LeaseAsk['holder'], delivery: string, context: LeaseAsk['context'] = 'turn'): LeaseAsk => ({ context, holder, delivery, secretName: 'KEY' });

  it('names the use each ask needs: model, mcp and command hand the value over; git, npm and http keep it on the platform side', () => {
    expect(requiredUse('agent-runtime', 'env')).toBe('model');
    for (const d of ['env', 'file', 'stdin']) {
      expect(requiredUse('mcp-server', d)).toBe('mcp');
      expect(requiredUse('install-command', d)).toBe('command');
    }
    for (const d of ['git', 'npm'] as const) expect(requiredUse('install-command', d)).toBe(d);
    expect(requiredUse('operation', 'http')).toBe('http');
    expect(requiredUse('install-command', 'http')).toBeUndefined();
    expect(requiredUse('operation', 'env')).toBeUndefined();
  });

  it('a new secret (git, npm, http) refuses a model key, an MCP lease and a command lease, naming the secret and the use', () => {
    for (const [a, use] of [[ask('agent-runtime', 'env'), 'model'], [ask('mcp-server', 'file', 'mcp'), 'mcp'], [ask('install-command', 'stdin', 'install'), 'command']] as const) {
      const decision = decideLease(a, secret(DEFAULT_SECRET_USES), owner);
      expect(decision).toMatchObject({ ok: false, code: LEASE_REFUSAL.USE_NOT_ALLOWED, use });
      expect(decision.ok ? '' : decision.reason).toContain('KEY');
    }
    expect(decideLease(ask('install-command', 'git', 'install'), secret(DEFAULT_SECRET_USES), member)).toEqual({ ok: true, use: 'git', channel: 'git-credential-helper' });
    expect(decideLease(ask('operation', 'http'), secret(DEFAULT_SECRET_USES), member)).toEqual({ ok: true, use: 'http', channel: 'gateway-header' });
  });

  it('a use allowed to members admits owners and members; limited to owners it refuses a member', () => {
    expect(decideLease(ask('agent-runtime', 'env'), secret({ model: 'members' }), member)).toEqual({ ok: true, use: 'model', channel: 'process-env' });
    expect(decideLease(ask('agent-runtime', 'env'), secret({ model: 'owners' }), owner)).toMatchObject({ ok: true });
    expect(decideLease(ask('agent-runtime', 'env'), secret({ model: 'owners' }), member)).toMatchObject({ ok: false, code: LEASE_REFUSAL.USE_EXCLUDES_CALLER, use: 'model' });
  });

  it('a use limited to named members admits exactly those, while they are members', () => {
    const named = secret({ command: ['bob'] });
    const installEnv = ask('install-command', 'env', 'install');
    expect(decideLease(installEnv, named, member)).toMatchObject({ ok: true, use: 'command' });
    expect(decideLease(installEnv, named, owner)).toMatchObject({ ok: false, code: LEASE_REFUSAL.USE_EXCLUDES_CALLER });
    expect(decideLease(installEnv, named, { userId: 'bob', role: undefined })).toMatchObject({ ok: false, code: LEASE_REFUSAL.USE_EXCLUDES_CALLER });
  });

  it('the phase table still decides first: no credential at seed, no model key in install, no unknown delivery', () => {
    const all = secret({ model: 'members', mcp: 'members', command: 'members', git: 'members', npm: 'members', http: 'members' });
    expect(decideLease(ask('install-command', 'env', 'seed'), all, owner)).toMatchObject({ ok: false, code: LEASE_REFUSAL.HOLDER_NOT_ALLOWED });
    expect(decideLease(ask('agent-runtime', 'env', 'install'), all, owner)).toMatchObject({ ok: false, code: LEASE_REFUSAL.HOLDER_NOT_ALLOWED });
    for (const d of ['ENV', 'argv', 'toString', '__proto__', 'http'])
      expect(decideLease(ask('install-command', d, 'install'), all, owner)).toMatchObject({ ok: false, code: LEASE_REFUSAL.NO_CHANNEL });
    expect(decideLease(ask('agent-runtime', 'env'), { exists: false, uses: { model: 'members' } }, owner)).toMatchObject({ ok: false, code: LEASE_REFUSAL.SECRET_NOT_FOUND });
  });

  it('a prototype key is not a use', () => {
    const uses = JSON.parse('{"__proto__": "members"}') as SecretUses;
    expect(allowedAudience(uses, 'model')).toBeUndefined();
    expect(decideLease(ask('agent-runtime', 'env'), secret(uses), owner)).toMatchObject({ ok: false, code: LEASE_REFUSAL.USE_NOT_ALLOWED });
  });
});
