import type { TLSSocket } from 'node:tls';
import { Backend } from '../protocol/codes.js';
import { TERMINATE_FRAME } from '../protocol/frontend-messages.js';
import { encodeStartupMessage } from '../protocol/startup-packet.js';
import { buildCatalog, CATALOG_SQL, type Catalog } from '../rewrite/catalog.js';
import { SocketReader } from '../session/socket-reader.js';
import { openUpstream, type UpstreamTarget } from './connect.js';
import { runInternalQuery } from './internal-query.js';
import { loginAsService } from './login.js';
import { decodeErrorFields } from '../protocol/backend-messages.js';

const MAX_MESSAGE = 64 * 1024 * 1024;
/** A load that takes longer is abandoned, so one hung connection cannot block every later refresh. */
const DEADLINE_MS = 30_000;

/**
 * Reads a catalog snapshot of one database over a short connection of
 * pgward's own service role (OIDC mode), so live sessions can move to a fresh
 * snapshot without waiting for a reconnect.
 */
export async function loadCatalogAsService(
  target: UpstreamTarget,
  service: { user: string; password: string | undefined },
  database: string,
): Promise<Catalog> {
  const { socket, encrypted } = await openUpstream(target);
  const deadline = setTimeout(() => socket.destroy(new Error(`catalog load exceeded ${DEADLINE_MS} ms`)), DEADLINE_MS);
  try {
    socket.write(encodeStartupMessage([['user', service.user], ['database', database], ['application_name', 'pgward catalog']]));
    const reader = new SocketReader(socket, MAX_MESSAGE);
    const login = await loginAsService(reader, service, encrypted ? (socket as TLSSocket).getPeerX509Certificate() : undefined);
    if (login.kind === 'refused') throw new Error(decodeErrorFields(login.errorFrame).get('M') ?? 'refused');
    if (login.kind === 'failed') throw new Error(login.detail);
    // The login ends with parameter statuses, key data and ReadyForQuery.
    while ((await reader.readMessage())[0] !== Backend.ReadyForQuery);
    return buildCatalog(await runInternalQuery(reader, CATALOG_SQL));
  } finally {
    clearTimeout(deadline);
    socket.end(TERMINATE_FRAME);
  }
}
