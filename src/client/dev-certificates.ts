/**
 * Development certificates: a throwaway CA and one server certificate signed
 * by it, so `npm start` and the tests get real, verifiable TLS with no setup.
 * Not for production: the CA key is discarded after signing, so the CA can
 * vouch for nothing but the one certificate written next to it.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface CertificateFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

const VALIDITY_DAYS = 730;
/** Renew a little before expiry so a long-running dev setup never trips over it. */
const RENEW_BEFORE_MS = 7 * 24 * 60 * 60 * 1000;

export async function ensureDevCertificates(
  dir: string,
  hostnames: string[] = ['localhost', '127.0.0.1', '::1'],
): Promise<CertificateFiles> {
  if (hostnames.length === 0) throw new Error('ensureDevCertificates needs at least one hostname');
  const files: CertificateFiles = {
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
  };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (await usable(files)) return files;

  const pem = await generate(hostnames);
  // Write under temporary names and rename, so a crash or a concurrent reader
  // never sees a certificate without its key. ca.crt goes last: its presence
  // is what marks the set complete.
  const suffix = `.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const writes: Array<[string, string, number]> = [
    [files.keyFile, pem.key, 0o600],
    [files.certFile, pem.cert, 0o644],
    [files.caFile, pem.ca, 0o644],
  ];
  for (const [target, content, mode] of writes) {
    const tmp = target + suffix;
    await writeFile(tmp, content, { mode, flag: 'wx' });
    await chmod(tmp, mode); // the create mode is filtered by the umask; be exact
    await rename(tmp, target);
  }
  return files;
}

/** All three files present, parseable and not about to expire. */
async function usable(files: CertificateFiles): Promise<boolean> {
  try {
    const [ca, cert] = await Promise.all([readFile(files.caFile), readFile(files.certFile)]);
    await readFile(files.keyFile);
    const expiry = Math.min(
      Date.parse(new X509Certificate(ca).validTo),
      Date.parse(new X509Certificate(cert).validTo),
    );
    return expiry - Date.now() > RENEW_BEFORE_MS;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    if (err instanceof Error && /certificate|PEM|asn1/i.test(err.message)) return false;
    throw err;
  }
}

async function generate(hostnames: string[]): Promise<{ ca: string; cert: string; key: string }> {
  // node-forge is large and only needed on first run; keep it out of every other import graph.
  const mod = await import('node-forge');
  const forge = (mod as unknown as { default?: typeof mod }).default ?? mod;
  const { pki, md } = forge;

  const generateKeyPair = (): Promise<import('node-forge').pki.rsa.KeyPair> =>
    new Promise((resolve, reject) =>
      pki.rsa.generateKeyPair({ bits: 2048 }, (err, pair) => (err ? reject(err) : resolve(pair))),
    );
  const [caKeys, serverKeys] = await Promise.all([generateKeyPair(), generateKeyPair()]);

  // Start an hour back so a slightly skewed clock on the verifying side still accepts it.
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(notBefore.getTime() + VALIDITY_DAYS * 24 * 60 * 60 * 1000);

  const ca = pki.createCertificate();
  ca.publicKey = caKeys.publicKey;
  ca.serialNumber = serialNumber();
  ca.validity.notBefore = notBefore;
  ca.validity.notAfter = notAfter;
  const caSubject = [
    { name: 'commonName', value: 'pgward development CA' },
    { name: 'organizationName', value: 'pgward (development only)' },
  ];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, md.sha256.create());

  const cert = pki.createCertificate();
  cert.publicKey = serverKeys.publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject([
    { name: 'commonName', value: hostnames[0]! },
    { name: 'organizationName', value: 'pgward (development only)' },
  ]);
  cert.setIssuer(caSubject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    // RFC 6125: clients match names against the SAN only, never the CN.
    // GeneralName tags (RFC 5280 §4.2.1.6): 2 = dNSName, 7 = iPAddress.
    {
      name: 'subjectAltName',
      altNames: hostnames.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h })),
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKeys.privateKey, md.sha256.create());

  return {
    ca: pki.certificateToPem(ca),
    cert: pki.certificateToPem(cert),
    key: pki.privateKeyToPem(serverKeys.privateKey),
  };
}

/** Positive 128-bit serial, hex (RFC 5280 §4.1.2.2: positive, at most 20 octets). */
function serialNumber(): string {
  // A leading 0x01 octet keeps it positive without an ASN.1 padding byte.
  return '01' + randomBytes(16).toString('hex');
}
