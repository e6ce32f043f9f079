import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';

/**
 * The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it,
 * for when pgward authenticates to the upstream itself. With an upstream TLS
 * certificate it uses SCRAM-SHA-256-PLUS with tls-server-end-point binding (RFC 5929 §4.1).
 */
export class ScramClient {
  readonly mechanism: 'SCRAM-SHA-256' | 'SCRAM-SHA-256-PLUS';
  private readonly nonce = randomBytes(18).toString('base64');
  private readonly gs2Header: string;
  private readonly bindingData: Buffer;
  private clientFirstBare = '';
  private expectedServerSignature: Buffer | undefined;

  constructor(
    private readonly password: string,
    offered: readonly string[],
    serverCertificate: X509Certificate | undefined,
  ) {
    if (serverCertificate && offered.includes('SCRAM-SHA-256-PLUS')) {
      this.mechanism = 'SCRAM-SHA-256-PLUS';
      this.gs2Header = 'p=tls-server-end-point,,';
      this.bindingData = certificateHash(serverCertificate);
    } else if (offered.includes('SCRAM-SHA-256')) {
      this.mechanism = 'SCRAM-SHA-256';
      // 'y' would tell a TLS server we could bind but think it cannot, which it rejects.
      this.gs2Header = serverCertificate ? 'y,,' : 'n,,';
      this.bindingData = Buffer.alloc(0);
    } else {
      throw new Error(`upstream offers no supported SASL mechanism (${offered.join(', ')})`);
    }
  }

  clientFirstMessage(): string {
    // PostgreSQL ignores the user name here and uses the startup packet's.
    this.clientFirstBare = `n=,r=${this.nonce}`;
    return this.gs2Header + this.clientFirstBare;
  }

  clientFinalMessage(serverFirst: string): string {
    const attributes = parseAttributes(serverFirst);
    const serverNonce = attributes.get('r');
    const salt = attributes.get('s');
    const iterations = Number(attributes.get('i'));
    if (!serverNonce?.startsWith(this.nonce) || serverNonce.length === this.nonce.length) {
      throw new Error('SCRAM server nonce does not extend the client nonce');
    }
    if (!salt || !Number.isInteger(iterations) || iterations < 1) throw new Error('malformed SCRAM server-first-message');
    // The count comes from the server; an absurd one would stall pgward's event loop (pbkdf2 is synchronous here).
    if (iterations > MAX_ITERATIONS) throw new Error(`SCRAM iteration count ${iterations} exceeds ${MAX_ITERATIONS}`);
    const channelBinding = Buffer.concat([Buffer.from(this.gs2Header), this.bindingData]).toString('base64');
    const withoutProof = `c=${channelBinding},r=${serverNonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const saltedPassword = pbkdf2Sync(this.password.normalize('NFKC'), Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
    const clientKey = hmac(saltedPassword, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.expectedServerSignature = hmac(hmac(saltedPassword, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Throws unless the server proved it knows the password too (mutual authentication). */
  verifyServerFinal(serverFinal: string): void {
    const attributes = parseAttributes(serverFinal);
    const error = attributes.get('e');
    if (error) throw new Error(`SCRAM authentication failed: ${error}`);
    const signature = Buffer.from(attributes.get('v') ?? '', 'base64');
    const expected = this.expectedServerSignature;
    if (!expected || signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new Error('upstream SCRAM server signature does not match');
    }
  }
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function parseAttributes(message: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) attributes.set(part[0]!, part.slice(2));
  }
  return attributes;
}

/** PostgreSQL's default is 4096 (scram_iterations); this bounds what a server may ask of pgward. */
const MAX_ITERATIONS = 1_000_000;

/** DER-encoded OIDs of signature algorithms whose hash is not SHA-256. */
const SIGNATURE_HASHES: ReadonlyArray<readonly [oid: Buffer, hash: string]> = [
  [Buffer.from('06092a864886f70d01010c', 'hex'), 'sha384'], // sha384WithRSAEncryption
  [Buffer.from('06092a864886f70d01010d', 'hex'), 'sha512'], // sha512WithRSAEncryption
  [Buffer.from('06082a8648ce3d040303', 'hex'), 'sha384'], // ecdsa-with-SHA384
  [Buffer.from('06082a8648ce3d040304', 'hex'), 'sha512'], // ecdsa-with-SHA512
];

/**
 * tls-server-end-point: the certificate hashed with its signature algorithm's hash,
 * where MD5 and SHA-1 are replaced by SHA-256 (RFC 5929 §4.1). Node 20's X509Certificate
 * does not name the signature algorithm, so its OID is looked up in the DER.
 */
function certificateHash(certificate: X509Certificate): Buffer {
  const der = certificate.raw;
  const hash = SIGNATURE_HASHES.find(([oid]) => der.includes(oid))?.[1] ?? 'sha256';
  return createHash(hash).update(der).digest();
}
