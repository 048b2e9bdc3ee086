import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  WELL_KNOWN_KEY_NAMES,
  checkRunSpecEnv,
  checkRunSpecValues,
  isReservedEnvName,
  checkStandingEnv,
  describeRefusal,
  type GuardPolicy,
  type GuardRefusal,
} from '../../domain/launchGuard';
import { createRedactor, encodedForms } from '../../domain/redaction';
import type { RunSpec } from '../../domain/runSpec';

const TOKEN = 'ghp_Zq8tY3kLmN0pQrS7uVwX1aBcDeF';
const policy: GuardPolicy = {
  secretNames: ['TRACKER_KEY', 'DEPLOY_TOKEN'],
  managedValues: [
    { name: 'TRACKER_KEY', value: 'trk-8f1e2d3c4b5a6978' },
    { name: 'DEPLOY_TOKEN', value: TOKEN },
  ],
};

function refused(env: Record<string, string>): GuardRefusal {
  const decision = checkStandingEnv(env, policy);
  if (decision.ok) throw new Error(`expected a refusal for ${Object.keys(env).join(',')}`);
  return decision;
}

function aRunSpec(overrides: Partial<RunSpec> = {}): RunSpec {
  return { template: { files: { 'agent.js': 'console.log(1)' } }, turns: [{ command: ['node', 'agent.js'] }], deadlineSeconds: 600, ...overrides };
}

describe('launch guard', () => {
  it('passes an env that carries no managed key', () => {
    expect(checkStandingEnv({ LOG_LEVEL: 'debug', PATH: '/usr/bin', MAX_TOKENS: '4096' }, policy)).toEqual({ ok: true });
    expect(checkStandingEnv({}, policy)).toEqual({ ok: true });
  });

  it('refuses a workspace secret name, case-insensitively, naming the key', () => {
    expect(refused({ LOG_LEVEL: 'x', TRACKER_KEY: 'anything' })).toMatchObject({ offendingKey: 'TRACKER_KEY', reason: 'name-is-secret' });
    expect(refused({ deploy_token: 'anything' })).toMatchObject({ offendingKey: 'deploy_token', reason: 'name-is-secret', secretName: 'DEPLOY_TOKEN' });
  });

  it('refuses every well-known provider key name in any case, even with a harmless value', () => {
    for (const name of WELL_KNOWN_KEY_NAMES) {
      expect(refused({ [name]: 'placeholder' })).toMatchObject({ offendingKey: name, reason: 'well-known-provider-key' });
      expect(refused({ [name.toLowerCase()]: 'x' }).reason).toBe('well-known-provider-key');
    }
    for (const name of ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'AZURE_OPENAI_API_KEY', 'GEMINI_API_KEY', 'GH_TOKEN', 'GITLAB_TOKEN', 'NODE_AUTH_TOKEN', 'AWS_SESSION_TOKEN', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN'])
      expect(WELL_KNOWN_KEY_NAMES).toContain(name);
  });

  it('refuses a value equal to a managed value under an innocent name', () => {
    expect(refused({ LOG_LEVEL: 'debug', HARMLESS: TOKEN })).toMatchObject({ offendingKey: 'HARMLESS', reason: 'value-matches-secret', secretName: 'DEPLOY_TOKEN' });
  });

  it('refuses a value that contains a managed value (a URL with the token inside)', () => {
    expect(refused({ REPO_URL: `https://x-access-token:${TOKEN}@github.com/o/r.git` })).toMatchObject({ offendingKey: 'REPO_URL', reason: 'value-matches-secret' });
  });

  it('refuses encoded forms: base64 (every alignment), base64url, URI, hex, JSON', () => {
    const value = 'trk-8f1e2d3c4b5a6978';
    const forms = [
      Buffer.from(value).toString('base64'),
      `Basic ${Buffer.from(`user:${value}`).toString('base64')}`,
      `Basic ${Buffer.from(`us:${value}`).toString('base64')}`,
      `Basic ${Buffer.from(`u:${value}!`).toString('base64')}`,
      Buffer.from(`>>${value}`).toString('base64url'),
      `https://h/?k=${encodeURIComponent(value)}`,
      Buffer.from(value).toString('hex').toUpperCase(),
      JSON.stringify({ k: value }),
    ];
    for (const form of forms) expect(refused({ BLOB: form })).toMatchObject({ offendingKey: 'BLOB', secretName: 'TRACKER_KEY' });
  });

  it('finds any managed value base64-encoded inside any surrounding bytes (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 8, maxLength: 40 }), fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (value, before, after) => {
        const encoded = Buffer.from(`${before}${value}${after}`).toString('base64');
        const decision = checkStandingEnv({ X: encoded }, { secretNames: [], managedValues: [{ name: 'S', value }] });
        return !decision.ok && decision.offendingKey === 'X';
      }),
      { numRuns: 300 },
    );
  });

  it('refuses every byte percent-encoded (upper and lower case hex) and base64 of base64, inside any text (property)', () => {
    const bytes = fc.uint8Array({ maxLength: 7 });
    fc.assert(
      fc.property(fc.string({ minLength: 8, maxLength: 40 }), fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), bytes, bytes, bytes, bytes, (value, before, after, innerPre, innerPost, outerPre, outerPost) => {
        const raw = Buffer.from(value, 'utf8');
        const hex = raw.toString('hex');
        const inner = Buffer.concat([innerPre, raw, innerPost]).toString('base64');
        const forms = [
          hex.replace(/../g, '%$&'),
          hex.toUpperCase().replace(/../g, '%$&'),
          Buffer.concat([outerPre, Buffer.from(inner), outerPost]).toString('base64'),
          Buffer.from(Buffer.from(value).toString('base64')).toString('base64'),
        ];
        for (const form of forms) {
          const decision = checkStandingEnv({ X: `${before}${form}${after}` }, { secretNames: [], managedValues: [{ name: 'S', value }] });
          expect(decision, form).toMatchObject({ ok: false, offendingKey: 'X', secretName: 'S' });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never puts a value into the refusal or its description', () => {
    const refusals = [refused({ HARMLESS: TOKEN }), refused({ URL: `https://u:${TOKEN}@h` }), refused({ TRACKER_KEY: TOKEN }), refused({ GH_TOKEN: TOKEN })];
    for (const refusal of refusals) {
      const text = `${JSON.stringify(refusal)} ${describeRefusal(refusal)}`;
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(Buffer.from(TOKEN).toString('base64').slice(0, 12));
      expect(describeRefusal(refusal)).toContain(refusal.offendingKey);
    }
  });

  it('checks a RunSpec top-level env', () => {
    expect(checkRunSpecEnv(aRunSpec({ env: { LOG_LEVEL: 'debug' } }), policy)).toEqual({ ok: true });
    expect(checkRunSpecEnv(aRunSpec(), policy)).toEqual({ ok: true });
    expect(checkRunSpecEnv(aRunSpec({ env: { LOG_LEVEL: 'debug', OPENAI_API_KEY: 'sk-x' } }), policy)).toMatchObject({ ok: false, offendingKey: 'OPENAI_API_KEY' });
    expect(checkRunSpecEnv(aRunSpec({ env: { CFG: `token=${TOKEN}` } }), policy)).toMatchObject({ ok: false, offendingKey: 'CFG', reason: 'value-matches-secret' });
  });

  it('checks a RunSpec template files and every command argument for values, naming where', () => {
    expect(checkRunSpecValues(aRunSpec({ install: [{ command: ['npm', 'ci'] }], mcp: [{ name: 'm', command: ['node', 'm.js'] }] }), policy)).toEqual({ ok: true });
    const cases: [Partial<RunSpec>, string][] = [
      [{ template: { files: { 'agent.js': 'ok', 'conf/app.json': `{"k":"${TOKEN}"}` } } }, 'file conf/app.json'],
      [{ install: [{ command: ['npm', 'ci'] }, { command: ['sh', '-c', `curl -H "Authorization: Bearer ${TOKEN}" x`] }] }, 'install[1].command[2]'],
      [{ mcp: [{ name: 'm', command: ['node', 'm.js', `--key=${Buffer.from(TOKEN).toString('base64')}`] }] }, 'mcp[0].command[2]'],
      [{ turns: [{ command: ['node', 'agent.js', TOKEN] }] }, 'turns[0].command[2]'],
    ];
    for (const [overrides, key] of cases) {
      const decision = checkRunSpecValues(aRunSpec(overrides), policy);
      expect(decision).toMatchObject({ ok: false, offendingKey: key, reason: 'value-matches-secret', secretName: 'DEPLOY_TOKEN' });
      const text = describeRefusal(decision as GuardRefusal);
      expect(text).toMatch(new RegExp(`^${key.replace(/[[\]]/g, '\\$&')} is refused`));
      expect(text).not.toContain(TOKEN);
    }
  });

  it('treats previous values within the rotation window like current ones', () => {
    const rotated: GuardPolicy = { ...policy, managedValues: [...policy.managedValues, { name: 'DEPLOY_TOKEN', value: 'old-token-value-123' }] };
    expect(checkStandingEnv({ X: 'old-token-value-123' }, rotated)).toMatchObject({ ok: false, secretName: 'DEPLOY_TOKEN' });
  });
});

describe('launch guard and the redactor', () => {
  it('also refuses the encodings only the redactor knows (XML and backslash escapes)', () => {
    const value = `a<b>&c"d'e\\f-${TOKEN}`;
    const guardWith: GuardPolicy = { secretNames: [], managedValues: [{ name: 'ODD', value }] };
    const xml = value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
    expect(checkStandingEnv({ X: `<v>${xml}</v>` }, guardWith)).toMatchObject({ ok: false, offendingKey: 'X', secretName: 'ODD' });
  });

  it('refuses exactly what the redactor would mask: one list of encodings for both (property)', () => {
    const unit = fc.constantFrom(...'abcXYZ019-_%+/= \n"<&é'.split(''));
    fc.assert(
      fc.property(fc.string({ unit, minLength: 8, maxLength: 16 }), fc.string({ unit, maxLength: 30 }), fc.option(fc.nat()), fc.string({ unit, maxLength: 30 }), (value, before, form, after) => {
        const forms = encodedForms(value);
        const text = `${before}${form === null ? '' : forms[form % forms.length]!}${after}`;
        const managed = [{ name: 'S', value }];
        expect(checkStandingEnv({ X: text }, { secretNames: [], managedValues: managed }).ok).toBe(!createRedactor(managed).matches(text));
      }),
      { numRuns: 300 },
    );
  });

  it('does not throw for a managed value shorter than the redactor minimum', () => {
    expect(checkStandingEnv({ X: 'has-abc-inside' }, { secretNames: [], managedValues: [{ name: 'SHORT', value: 'abc' }] })).toMatchObject({ ok: false });
  });
});

describe('reserved names in the standing env', () => {
  const empty = { secretNames: [], managedValues: [] };
  it('refuses names that steer how processes load code, find programs, trust TLS or reach the network, naming the key', () => {
    for (const key of ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'DYLD_INSERT_LIBRARIES', 'NODE_OPTIONS', 'NODE_PATH', 'PATH', 'path', 'GIT_SSH_COMMAND', 'GIT_CONFIG_GLOBAL', 'GIT_PROXY_COMMAND', 'npm_config_proxy', 'NPM_CONFIG_REGISTRY', 'BASH_ENV', 'PYTHONPATH', 'HTTPS_PROXY', 'http_proxy', 'GATEWAY_TOKEN', 'DP_LAUNCH_TICKET'])
      expect(checkRunSpecEnv({ env: { LOG_LEVEL: 'debug', [key]: 'x' } }, empty), key).toEqual({ ok: false, offendingKey: key, reason: 'reserved-name' });
  });
  it('leaves ordinary settings and a commit identity alone', () => {
    expect(checkRunSpecEnv({ env: { LOG_LEVEL: 'debug', NODE_ENV: 'production', GIT_AUTHOR_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'a@example.invalid', CI: '1' } }, empty)).toEqual({ ok: true });
  });
  it('is the same list a lease name is checked against', () => {
    expect(isReservedEnvName('LD_PRELOAD')).toBe(true);
    expect(isReservedEnvName('TRACKER_KEY')).toBe(false);
  });
});
