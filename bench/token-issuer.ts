/**
 * A minimal OIDC issuer for the token phase: discovery document and JWKS over
 * plain HTTP on loopback (which pgward accepts without allowInsecureHttp), an
 * RS256 key to sign with, and a count of every request so the report can say
 * how often pgward fetched keys.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export const BENCH_AUDIENCE = 'pgward-bench';

export interface IssuerCounts {
  discovery: number;
  jwks: number;
  other: number;
}

export class CountingIssuer {
  private constructor(
    readonly counts: IssuerCounts,
    private readonly server: http.Server,
    readonly url: string,
    private readonly privateKey: CryptoKey,
    private readonly kid: string,
  ) {}

  static async start(): Promise<CountingIssuer> {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const kid = randomUUID();
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
    const counts: IssuerCounts = { discovery: 0, jwks: 0, other: 0 };
    let url = '';
    const server = http.createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      let body: unknown;
      if (path === '/.well-known/openid-configuration') {
        counts.discovery++;
        body = { issuer: url, jwks_uri: `${url}/jwks`, id_token_signing_alg_values_supported: ['RS256'] };
      } else if (path === '/jwks') {
        counts.jwks++;
        body = { keys: [jwk] };
      } else {
        counts.other++;
        response.writeHead(404).end();
        return;
      }
      const text = JSON.stringify(body);
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      response.end(text);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return new CountingIssuer(counts, server, url, privateKey, kid);
  }

  /** Every request so far, added up. */
  get fetches(): number {
    return this.counts.discovery + this.counts.jwks + this.counts.other;
  }

  /** A token for `user`; a fresh jti makes every call's token distinct. */
  mint(user: string, lifetimeSeconds: number): Promise<string> {
    return new SignJWT({ preferred_username: user })
      .setProtectedHeader({ alg: 'RS256', kid: this.kid, typ: 'JWT' })
      .setIssuer(this.url)
      .setAudience(BENCH_AUDIENCE)
      .setSubject(user)
      .setIssuedAt()
      .setExpirationTime(`${lifetimeSeconds}s`)
      .setJti(randomUUID())
      .sign(this.privateKey);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
