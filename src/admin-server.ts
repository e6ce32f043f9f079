import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface AdminStatus {
  ready(): boolean;
  metrics(): Record<string, number>;
  /** Extra read-only JSON documents by path (e.g. the development issuer's JWKS). */
  documents?: () => ReadonlyMap<string, unknown>;
}

/**
 * The operator's HTTP port: liveness, readiness and metrics in the Prometheus
 * text format. It never carries client traffic and listens on loopback by default.
 */
export async function startAdminServer(host: string, port: number, status: AdminStatus): Promise<{ address: AddressInfo; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz') return reply(response, 200, 'ok\n');
    if (path === '/readyz') return status.ready() ? reply(response, 200, 'ready\n') : reply(response, 503, 'not ready\n');
    if (path === '/metrics') {
      const lines = Object.entries(status.metrics()).map(([name, value]) => `${name} ${value}`);
      return reply(response, 200, `${lines.join('\n')}\n`, 'text/plain; version=0.0.4');
    }
    const document = path === undefined ? undefined : status.documents?.().get(path);
    if (document !== undefined) return reply(response, 200, JSON.stringify(document), 'application/json');
    reply(response, 404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    address: server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function reply(response: http.ServerResponse, status: number, body: string, type = 'text/plain'): void {
  response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  response.end(body);
}
