import net from 'node:net';

/**
 * A TCP hop between pgward and a real server: counts the connections that
 * reach the server and lets a test cut them, to simulate a network failure.
 */
export interface TcpHop {
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  cutAll(): void;
  close(): Promise<void>;
}

export async function startTcpHop(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpHop> {
  const links = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((inbound) => {
    accepted += 1;
    const outbound = net.connect({ host: targetHost, port: targetPort });
    links.add(inbound).add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    for (const socket of [inbound, outbound]) {
      socket.on('error', () => {});
      socket.once('close', () => links.delete(socket));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get accepted() {
      return accepted;
    },
    cutAll() {
      for (const link of links) link.destroy();
    },
    close() {
      for (const link of links) link.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
