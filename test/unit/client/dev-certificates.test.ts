import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevCertificates, type CertificateFiles } from '../../../src/client/dev-certificates.js';

describe('ensureDevCertificates', () => {
  let dir: string;
  let files: CertificateFiles;

  beforeAll(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'pgward-certs-')), 'certs');
    files = await ensureDevCertificates(dir);
  }, 60_000);

  afterAll(async () => {
    await rm(join(dir, '..'), { recursive: true, force: true });
  });

  it('signs the server certificate with the CA it writes', async () => {
    const ca = new X509Certificate(await readFile(files.caFile));
    const cert = new X509Certificate(await readFile(files.certFile));
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
  });

  it('lists every hostname as a DNS or IP subject alternative name', async () => {
    const cert = new X509Certificate(await readFile(files.certFile));
    const sans = (cert.subjectAltName ?? '').split(', ');
    expect(sans).toContain('DNS:localhost');
    expect(sans).toContain('IP Address:127.0.0.1');
    expect(sans).toContain('IP Address:0:0:0:0:0:0:0:1');
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
  });

  it('is valid for about two years', async () => {
    const cert = new X509Certificate(await readFile(files.certFile));
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    expect(days).toBeGreaterThan(700);
    expect(days).toBeLessThan(740);
  });

  it('keeps the directory and private key private', async () => {
    expect((await stat(files.keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });

  it('reuses the existing files on later calls', async () => {
    const before = await Promise.all([files.caFile, files.certFile, files.keyFile].map((f) => readFile(f)));
    const again = await ensureDevCertificates(dir);
    expect(again).toEqual(files);
    const after = await Promise.all([again.caFile, again.certFile, again.keyFile].map((f) => readFile(f)));
    expect(after).toEqual(before);
  });

  it('lets a node:tls client that trusts the CA verify the server as localhost', async () => {
    const server = tls.createServer(
      { cert: await readFile(files.certFile), key: await readFile(files.keyFile) },
      (socket) => socket.end('hello'),
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: await readFile(files.caFile) });
      await once(socket, 'secureConnect');
      expect(socket.authorized).toBe(true);
      const [data] = (await once(socket, 'data')) as [Buffer];
      expect(data.toString()).toBe('hello');
      socket.destroy();
    } finally {
      server.close();
    }
  });

  it('is rejected by a client that does not trust the CA', async () => {
    const server = tls.createServer({ cert: await readFile(files.certFile), key: await readFile(files.keyFile) });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost' });
      const [err] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
      expect(err.code).toMatch(/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY/);
    } finally {
      server.close();
    }
  });
});
