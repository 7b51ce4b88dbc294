import type { AuthChecker } from 'type-graphql';

import type { Context, Role } from '../../resolvers/context';
import { ForbiddenError, UnauthenticatedError } from '../errors';
import type { AdminKeyVerifier } from './admin-key';

/** `Authorization: Bearer <key>` → `<key>`; anything else → `undefined`. */
export function bearerFrom(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * The `authorization` entry of graphql-ws connection params, whatever the case of its name:
 * clients copy it from an HTTP header (`Authorization`). The exact lower-case name wins when
 * there are several.
 */
export function authorizationParam(params: Readonly<Record<string, unknown>> | undefined | null): unknown {
  if (!params || typeof params !== 'object') return undefined;
  if (Object.hasOwn(params, 'authorization')) return params.authorization;
  const name = Object.keys(params).find((key) => key.toLowerCase() === 'authorization');
  return name === undefined ? undefined : params[name];
}

/** A WebSocket carries no headers after its handshake, so the message says where the key goes instead. */
const WEBSOCKET_UNAUTHENTICATED =
  'This operation needs the admin key: over WebSocket, send it in the connection params as ' +
  '{ "authorization": "Bearer <key>" } (not as a header).';

/**
 * type-graphql's `@Authorized(Role.ADMIN)` check. No credential → `UNAUTHENTICATED`; a
 * credential that is not the admin key → `FORBIDDEN`.
 */
export function createAuthChecker(admin: AdminKeyVerifier): AuthChecker<Context, Role> {
  return ({ context }) => {
    if (context.bearer === undefined) {
      throw new UnauthenticatedError(context.transport === 'websocket' ? WEBSOCKET_UNAUTHENTICATED : undefined);
    }
    if (!admin.matches(context.bearer)) throw new ForbiddenError();
    return true;
  };
}
