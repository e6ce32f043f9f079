import net from 'node:net';

/**
 * A plaintext TCP hop in front of pgward that keeps every byte pgward sends
 * to a client, so a test can look for secrets in all of it: rows, errors,
 * notices, notifications, ParameterStatus, COPY data, whatever the driver
 * chooses to show or hide.
 */
export interface TapConnection {
  /** Bytes pgward sent on this connection so far, in order. */
  readonly received: Buffer[];
  receivedLength: number;
  /** Everything received from `offset` on. */
  since(offset: number): Buffer;
}

export interface Tap {
  readonly port: number;
  readonly connections: TapConnection[];
  close(): Promise<void>;
}

export async function startTap(targetPort: number): Promise<Tap> {
  const connections: TapConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect({ host: '127.0.0.1', port: targetPort });
    const connection: TapConnection = {
      received: [],
      receivedLength: 0,
      since(offset) {
        return Buffer.concat(this.received).subarray(offset);
      },
    };
    connections.push(connection);
    outbound.on('data', (chunk: Buffer) => {
      connection.received.push(chunk);
      connection.receivedLength += chunk.length;
      inbound.write(chunk);
    });
    inbound.pipe(outbound);
    outbound.on('end', () => inbound.end());
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.once('close', () => {
        sockets.delete(socket);
        inbound.destroy();
        outbound.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** The secrets found in `bytes`, leaving out those the client itself sent (they may be echoed back). */
export function leaked(bytes: Buffer | string, secrets: readonly string[], sent: string): string[] {
  const text = typeof bytes === 'string' ? bytes : bytes.toString('utf8');
  return secrets.filter((s) => text.includes(s) && !sent.includes(s));
}
