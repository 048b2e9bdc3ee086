import type net from 'node:net';

/**
 * Listens on a unix socket of a door and makes `close` end the connections the server holds: a plain
 * `server.close` waits for them, and a sandbox's teardown must not wait on a connection its agent keeps open.
 */
export async function listenOnUnixSocket<S extends net.Server>(server: S, socketPath: string): Promise<S> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  const close = server.close.bind(server);
  server.close = (callback) => {
    for (const socket of sockets) socket.destroy();
    return close(callback);
  };
  return server;
}
