import path from 'node:path';
import { WebSocket } from 'ws';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { CHANNEL_PATH } from '../../../../infra/sandbox/remote/protocol';
import { hostChannelContract } from '../../../contracts/hostChannel.contract';

hostChannelContract('the local wss:// channel server', async (deps, dir) => {
  const tls = selfSignedCertificate(path.join(dir, 'tls'));
  const frames: { direction: 'to-host' | 'from-host'; raw: string }[] = [];
  const channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(deps), tap: (direction, raw) => frames.push({ direction, raw }) });
  return {
    directory: channel,
    agentArgs: ['--platform', channel.url, '--ca', tls.certFile],
    frames: () => frames,
    openRaw: async (credential) => {
      const socket = new WebSocket(channel.url.replace('https', 'wss') + CHANNEL_PATH, { ca: tls.cert, headers: { authorization: `Bearer ${credential}` } });
      const first = await new Promise<{ session: string }>((resolve) => socket.once('message', (d) => resolve(JSON.parse(String(d)) as { session: string })));
      return { session: first.session, send: (raw) => socket.send(raw), close: () => socket.close() };
    },
    close: () => channel.close(),
  };
});
