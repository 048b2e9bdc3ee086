import { existsSync, readdirSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { channelPreparers, ChannelRequestError, preparerFor } from '../../../../infra/sandbox/channels';
import { createHash } from 'node:crypto';
import { launchWithDelivery } from '../../../support/launchWithDelivery';
import type { CredentialDelivery, CredentialRequest } from '../../../../infra/sandbox/credentialDelivery';
import { aCredentialRequest, aScratch, baseEnv } from './builders';

const scratches: Array<ReturnType<typeof aScratch>> = [];
function scratch() {
  const s = aScratch();
  scratches.push(s);
  return s;
}
afterEach(() => scratches.splice(0).forEach((s) => s.dispose()));

/** A node one-liner run as the receiving process. */
const node = (script: string) => [process.execPath, '-e', script];
/** The child reports what it received as a SHA-256, so the comparison survives the launcher's redaction. */
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const HASH = 'const h = (t) => require("crypto").createHash("sha256").update(t).digest("hex");';
/** Through the real guarded launcher; its guard and redactor know the request's secret. */
function launch(command: string[], delivery: CredentialDelivery | undefined, s: ReturnType<typeof aScratch>, request: CredentialRequest) {
  return launchWithDelivery(command, delivery, { cwd: s.workspace, env: baseEnv(s.root), secrets: [{ name: request.secretName, value: request.value }] });
}

describe('process-env channel', () => {
  it('puts the value in that one process env under the `as` name, and nowhere on disk or in argv', async () => {
    const s = scratch();
    const request = aCredentialRequest({ use: 'env', as: 'TRACKER_KEY' });
    const delivery = await channelPreparers['process-env'](request, s.target);
    expect(delivery.paths).toEqual([]);
    expect(delivery.argsAfterCommand).toEqual([]);
    const run = await launch(node(`${HASH} process.stdout.write(h(process.env.TRACKER_KEY ?? "missing"))`), delivery, s, request);
    expect(run.stdout).toBe(sha256(request.value));
    expect(run.argv.join(' ')).not.toContain(request.value);
    expect(readdirSync(s.target.credentialDir)).toEqual([]);
  });

  it('a second process started without the delivery does not see it', async () => {
    const s = scratch();
    const request = aCredentialRequest();
    await channelPreparers['process-env'](request, s.target);
    const run = await launch(node('process.stdout.write(JSON.stringify(Object.keys(process.env)))'), undefined, s, request);
    expect(JSON.parse(run.stdout)).not.toContain('TRACKER_KEY');
  });

  it('refuses a missing, malformed or code-loading env name, naming the secret but not the value', async () => {
    const s = scratch();
    for (const as of [undefined, '', '1BAD', 'A-B', 'LD_PRELOAD', 'NODE_OPTIONS', 'PATH', 'GIT_CONFIG_COUNT', 'BASH_ENV']) {
      const request = aCredentialRequest({ as });
      const error = await channelPreparers['process-env'](request, s.target).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ChannelRequestError);
      expect((error as ChannelRequestError).message).toContain('TRACKER_KEY');
      expect((error as ChannelRequestError).message).not.toContain(request.value);
    }
  });
});

describe('temp-file channel', () => {
  it('writes a 0600 file in the credential dir, hands over its path, and cleanup removes it', async () => {
    const s = scratch();
    const request = aCredentialRequest({ use: 'file', as: 'KEY_FILE' });
    const delivery = await preparerFor(request)(request, s.target);
    const file = delivery.env.KEY_FILE ?? '';
    expect(file.startsWith(`${s.target.credentialDir}/`)).toBe(true);
    expect(delivery.paths).toEqual([file]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(delivery.env)).not.toContain(request.value);

    const run = await launch(node(`${HASH} process.stdout.write(h(require("fs").readFileSync(process.env.KEY_FILE, "utf8")))`), delivery, s, request);
    expect(run.stdout).toBe(sha256(request.value));
    expect(existsSync(file)).toBe(false); // the exit of the process triggered cleanup
    expect(readdirSync(s.target.credentialDir)).toEqual([]);
    await delivery.cleanup(); // idempotent
  });

  it('cleanup removes the file even when the process fails', async () => {
    const s = scratch();
    const request = aCredentialRequest({ use: 'file', as: 'KEY_FILE' });
    const delivery = await preparerFor(request)(request, s.target);
    const run = await launch(node('process.exit(3)'), delivery, s, request);
    expect(run.code).toBe(3);
    expect(readdirSync(s.target.credentialDir)).toEqual([]);
  });

  it('the file is owned by the receiving uid when the host isolates', async () => {
    const s = scratch();
    const request = aCredentialRequest({ use: 'file', as: 'KEY_FILE' });
    const delivery = await preparerFor(request)(request, { ...s.target, uid: 4242, gid: 4343 });
    const stat = statSync(delivery.env.KEY_FILE ?? '');
    expect([stat.uid, stat.gid, stat.mode & 0o777]).toEqual([4242, 4343, 0o600]);
    await delivery.cleanup();
    expect(readdirSync(s.target.credentialDir)).toEqual([]);
  });
});

describe('stdin channel', () => {
  it('delivers the value on stdin, byte for byte, and nowhere else', async () => {
    const s = scratch();
    const request = aCredentialRequest({ use: 'stdin', as: undefined, value: `${aCredentialRequest().value} with spaces\tand "quotes"` });
    const delivery = await preparerFor(request)(request, s.target);
    expect(delivery.env).toEqual({});
    expect(delivery.paths).toEqual([]);
    const run = await launch(
      node(`${HASH} let d = ""; process.stdin.on("data", (c) => (d += c)).on("end", () => process.stdout.write(JSON.stringify({ d: h(d), env: h(JSON.stringify(process.env)), inEnv: JSON.stringify(process.env).includes(d) })))`),
      delivery,
      s,
      request,
    );
    const seen = JSON.parse(run.stdout) as { d: string; inEnv: boolean };
    expect(seen.d).toBe(sha256(request.value));
    expect(seen.inEnv).toBe(false);
    expect(run.argv.join(' ')).not.toContain(request.value);
  });
});

describe('preparerFor', () => {
  it('maps each use to its channel and refuses a use that has none', async () => {
    const s = scratch();
    expect(preparerFor(aCredentialRequest({ use: 'env' }))).toBe(channelPreparers['process-env']);
    expect(preparerFor(aCredentialRequest({ use: 'git' }))).toBe(channelPreparers['git-credential-helper']);
    expect(preparerFor(aCredentialRequest({ use: 'npm' }))).toBe(channelPreparers['package-manager-config']);
    const bogus = aCredentialRequest({ use: 'constructor' as unknown as 'env' });
    expect(() => preparerFor(bogus)).toThrow(ChannelRequestError);
    expect(readdirSync(s.target.credentialDir)).toEqual([]);
  });
});
